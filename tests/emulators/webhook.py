"""A Standard Webhooks receiver: accepts signed POSTs on any path.

Fast enough for benchmarks (several thousand POSTs/s): with ``verify=False`` and ``record=False`` a request
costs one dict lookup and a set insertion besides aiohttp's own parsing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.emulators.server import Emulator, FaultSpec, seconds_header


class WebhookReceiver(Emulator):
    """Records verified webhook deliveries.

    * ``secret``: default ``whsec_…`` secret; ``secrets``: per-path secrets (``{"/a": "whsec_…"}``). A path
      with no secret (and no default) is accepted unverified (``verified: False`` in the record).
    * ``verify``: set False to skip signature checks entirely (benchmarks).
    * ``responses``: per-path canned answers that win over everything else, e.g.
      ``{"/gone": 410, "/broken": 500, "/busy": {"status": 429, "retry_after": 3}}``.
    * ``ok_status``: status of an accepted delivery (default 204).

    Each ``received`` item: ``webhook_id``, ``path``, ``timestamp`` (int), ``signature``, ``verified``,
    ``body`` (parsed JSON, or the raw text when it is not JSON). ``stats`` adds ``unique_ids`` and
    ``duplicates`` (accepted deliveries whose webhook-id had been accepted before), counted even when
    ``record`` is False.
    """

    name = "webhook"

    def __init__(
        self,
        *,
        secret: str | None = None,
        secrets: Mapping[str, str] | None = None,
        verify: bool = True,
        responses: Mapping[str, Any] | None = None,
        ok_status: int = 204,
        answer_challenges: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.verify = verify
        self.answer_challenges = answer_challenges
        """Answer a ``subscription.verify`` event with its challenge, as a subscriber's endpoint should."""
        self.ok_status = ok_status
        self._default_secret = secret
        self._secrets: dict[str, str] = dict(secrets or {})
        self._verifiers: dict[str, Webhook] = {}
        self.responses: dict[str, FaultSpec] = {}
        self._set_responses(responses or {})
        self._seen: set[str] = set()
        self._duplicates = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self.provider_route(self.deliver))

    async def request_key(self, request: web.Request) -> str | None:
        """The ``webhook-id`` of a delivery, else (a chat post through Apprise) the path and the title."""
        webhook_id = request.headers.get("webhook-id")
        if webhook_id:
            return webhook_id
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        title = body.get("title") if isinstance(body, dict) else None
        return f"{request.path} {title}" if title else request.path

    # ------------------------------------------------------------------ configuration

    def _set_responses(self, responses: Mapping[str, Any]) -> None:
        self.responses = {path: FaultSpec.parse(spec) for path, spec in responses.items()}

    def set_secret(self, secret: str | None, path: str | None = None) -> None:
        """Set the default secret, or one path's secret."""
        if path is None:
            self._default_secret = secret
        elif secret is None:
            self._secrets.pop(path, None)
        else:
            self._secrets[path] = secret
        self._verifiers.clear()

    def configure(self, options: Mapping[str, Any]) -> None:
        """Keys: ``secret``, ``secrets`` (replaces), ``verify``, ``responses`` (replaces), ``ok_status``."""
        options = dict(options)
        if "secret" in options:
            self.set_secret(options.pop("secret"))
        if "secrets" in options:
            self._secrets = dict(options.pop("secrets") or {})
            self._verifiers.clear()
        if "verify" in options:
            self.verify = bool(options.pop("verify"))
        if "responses" in options:
            self._set_responses(options.pop("responses") or {})
        if "ok_status" in options:
            self.ok_status = int(options.pop("ok_status"))
        super().configure(options)

    def config_json(self) -> dict[str, Any]:
        return {
            "verify": self.verify,
            "has_default_secret": self._default_secret is not None,
            "secret_paths": sorted(self._secrets),
            "responses": {path: spec.to_json() for path, spec in self.responses.items()},
            "ok_status": self.ok_status,
        }

    def _verifier(self, path: str) -> Webhook | None:
        verifier = self._verifiers.get(path)
        if verifier is None:
            secret = self._secrets.get(path, self._default_secret)
            if secret is None:
                return None
            verifier = self._verifiers[path] = Webhook(secret)
        return verifier

    # ------------------------------------------------------------------ recording

    @property
    def stats(self) -> dict[str, Any]:
        stats = super().stats
        stats["unique_ids"] = len(self._seen)
        stats["duplicates"] = self._duplicates
        return stats

    def reset(self) -> None:
        super().reset()
        self._seen.clear()
        self._duplicates = 0

    def ids(self) -> list[str]:
        """webhook-id of every recorded delivery, in arrival order."""
        return [item["webhook_id"] for item in self.received]

    def by_path(self, path: str) -> list[dict[str, Any]]:
        return [item for item in self.received if item["path"] == path]

    # ------------------------------------------------------------------ handler

    async def deliver(self, request: web.Request) -> web.Response:
        path = request.path
        canned = self.responses.get(path)
        if canned is not None and canned.action == "status":
            extra = {} if canned.retry_after is None else {"Retry-After": seconds_header(canned.retry_after)}
            return web.Response(status=canned.status, headers=extra)
        raw = await request.read()
        headers = request.headers
        webhook_id = headers.get("webhook-id", "")
        verified = False
        body: Any = None
        if self.verify:
            verifier = self._verifier(path)
            if verifier is not None:
                try:
                    body = verifier.verify(raw, {k.lower(): v for k, v in headers.items()})
                    verified = True
                except WebhookVerificationError as exc:
                    self.reject(401, str(exc), path=path, webhook_id=webhook_id)
                    return web.json_response({"error": "invalid signature"}, status=401)
                except ValueError as exc:  # malformed signature header
                    self.reject(401, f"malformed signature: {exc}", path=path, webhook_id=webhook_id)
                    return web.json_response({"error": "invalid signature"}, status=401)
        if webhook_id in self._seen:
            self._duplicates += 1
        else:
            self._seen.add(webhook_id)
        if self.record:
            if body is None:
                text = raw.decode("utf-8", "replace")
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
            timestamp = headers.get("webhook-timestamp", "")
            self.accept(
                {
                    "webhook_id": webhook_id,
                    "path": path,
                    "timestamp": int(timestamp) if timestamp.isdigit() else None,
                    "signature": headers.get("webhook-signature"),
                    "verified": verified,
                    "user_agent": headers.get("User-Agent"),
                    "body": body,
                }
            )
        else:
            self.accept({})
        if self.answer_challenges and isinstance(body, dict) and body.get("type") == "subscription.verify":
            return web.json_response({"challenge": body.get("challenge")})
        return web.Response(status=self.ok_status)
