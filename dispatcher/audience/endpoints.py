"""Webhook endpoints checked when they are given (API, CLI, CSV import) exactly as when sending: the URL
(scheme, no credentials, no refused literal address) and every address its host resolves to, through the
same ``DestinationPolicy`` the webhook provider uses. A name that does not resolve from here is let
through: sending resolves and checks it again (and retries while it does not resolve)."""

from __future__ import annotations

from channels._http.ssrf import BlockedDestination, DestinationPolicy
from dispatcher.config.settings import Settings


class EndpointCheck:
    """One check per import or request; each distinct host is resolved once."""

    def __init__(self, settings: Settings) -> None:
        allowed = settings.provider_options("webhook").get("allow_destinations", [])
        self.policy = DestinationPolicy(allowed)
        self._seen: dict[str, str | None] = {}

    def problem(self, url: str) -> str | None:
        """Why Tocsin would refuse to POST to ``url`` (``"not reachable by Tocsin: …"``), or None."""
        if url not in self._seen:
            try:
                self.policy.check_endpoint(url)
                self._seen[url] = None
            except BlockedDestination as exc:
                self._seen[url] = f"not reachable by Tocsin: {exc.reason}"
        return self._seen[url]
