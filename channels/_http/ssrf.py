"""Destination guard for user-supplied URLs (SSRF): only public addresses unless allowed.

Subscribers give their own webhook endpoint URLs, so without a guard anyone able to subscribe could make
Tocsin POST to the cloud metadata service, an admin port on localhost or a host on the internal network.
``DestinationPolicy`` decides which destinations may be reached:

* ``check_url(url)``: the URL itself - ``http``/``https`` only, a host, no ``user:password@``; and when the
  host is a literal IP address, that address (no DNS involved);
* ``resolve_and_check(host, port)``: resolves a host name and refuses it when *any* of its addresses is
  loopback, private (RFC 1918, ULA ``fc00::/7``), link-local, CGNAT (``100.64.0.0/10``), unspecified,
  multicast, reserved or otherwise not globally routable, or a cloud metadata address - also when wrapped
  in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). It returns the checked
  addresses, and the caller must connect to exactly those (no second lookup a rebinding DNS server could
  answer differently): ``channels.webhook`` pins each request to an address this method returned.

``allow`` opens exceptions for tests and intranets: CIDR networks (``"127.0.0.0/8"``, ``"10.1.0.0/16"``, a
single address) and host names (``"hooks.intranet.example"``, or ``"*.intranet.example"`` for every name
under it). A host name entry trusts whatever that name resolves to. The cloud metadata addresses are
stricter: a network entry opens one only when it is exactly that address (``"169.254.169.254/32"``), so
allowing ``fc00::/7`` or ``100.64.0.0/10`` for an intranet does not also open ``fd00:ec2::254`` or
``100.100.100.200``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], list[IPAddress]]
"""``resolve(host, port)``: every address of a host name, as ``socket.getaddrinfo`` would give them."""

ALLOWED_SCHEMES = frozenset({"http", "https"})

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        ipaddress.IPv4Address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
    }
)

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_NAME = re.compile(
    r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$"
)


class BlockedDestination(ValueError):
    """A URL the policy refuses; ``reason`` names the host and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host`` from ``socket.getaddrinfo`` (TCP), in its order, without duplicates.

    Raises ``socket.gaierror`` (an ``OSError``) when the name does not resolve."""
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(_with_scope(sockaddr))
        if address not in addresses:
            addresses.append(address)
    return addresses


def _with_scope(sockaddr: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]) -> str:
    host = str(sockaddr[0])
    if len(sockaddr) == 4 and sockaddr[3] and "%" not in host:
        return f"{host}%{sockaddr[3]}"
    return host


def classify(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached by default (``"a private address"``), or None when public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = classify(embedded)
        return None if inner is None else f"{inner} ({embedded} inside an IPv6 address)"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose (not globally routable) address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _canonical_host(host: str) -> str:
    return host.rstrip(".").lower()


_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def _loopback_name(host: str) -> bool:
    """``localhost`` and every name under it are loopback by definition (RFC 6761), whatever the case or
    a trailing dot, and whether or not this machine's resolver answers for them."""
    name = _canonical_host(host)
    return name == "localhost" or name.endswith(".localhost")


class DestinationPolicy:
    """Which destinations outbound requests to user-supplied URLs may reach. See the module docstring."""

    def __init__(self, allow: Sequence[str] = (), *, resolve: Resolve = system_resolve) -> None:
        self.allow = tuple(allow)
        self._resolve = resolve
        self._networks: list[IPNetwork] = []
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        for entry in self.allow:
            text = entry.strip()
            try:
                self._networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            name = _canonical_host(text)
            if not _HOST_NAME.match(name) or name.replace(".", "").isdigit():
                raise ValueError(f"allowed destination {entry!r} is neither a CIDR network nor a host name")
            if name.startswith("*."):
                self._suffixes.append(name[1:])
            else:
                self._names.add(name)

    def __repr__(self) -> str:
        return f"DestinationPolicy(allow={list(self.allow)!r})"

    # ------------------------------------------------------------------ allowlist

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` is an allowed host name (then whatever it resolves to may be reached)."""
        name = _canonical_host(host)
        return name in self._names or any(name.endswith(suffix) for suffix in self._suffixes)

    def address_allowed(self, address: IPAddress) -> bool:
        """True when an allow network covers ``address`` (metadata addresses: only an exact entry)."""
        candidates: list[IPAddress] = [_without_scope(address)]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        metadata = any(candidate in METADATA_ADDRESSES for candidate in candidates)
        for candidate in candidates:
            for network in self._networks:
                if candidate.version != network.version or candidate not in network:
                    continue
                if metadata and network.num_addresses != 1:
                    continue
                return True
        return False

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused under this policy, or None when it may be reached."""
        reason = classify(address)
        if reason is None or self.address_allowed(address):
            return None
        return reason

    # ------------------------------------------------------------------ checks

    def check_url(self, url: str | URL) -> None:
        """Refuse a URL that is not ``http(s)://host...``, carries credentials, or names a refused IP.

        A host name is not resolved here: ``resolve_and_check`` does that when connecting."""
        parsed = url if isinstance(url, URL) else _parse(url)
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            shown = f"scheme {scheme!r}" if scheme else "no scheme"
            raise BlockedDestination(
                f"{_shorten(str(url))} has {shown}: only http:// and https:// are allowed"
            )
        if parsed.user is not None or parsed.password is not None:
            raise BlockedDestination(
                f"URL of host {parsed.raw_host or '?'} contains credentials (user:password@), not allowed"
            )
        host = parsed.raw_host
        if not host:
            raise BlockedDestination(f"{_shorten(str(url))} has no host")
        address = _literal_address(host)
        if address is not None:
            reason = self.refusal(address)
            if reason is not None:
                raise BlockedDestination(f"{host} is {reason}")

    def _check_loopback_name(self, host: str) -> None:
        if _loopback_name(host) and not (self.host_allowed(host) or self.address_allowed(_LOOPBACK)):
            raise BlockedDestination(f"{host} is a loopback name (localhost)")

    def check_endpoint(self, url: str | URL) -> list[IPAddress] | None:
        """What sending checks, done ahead (at signup and import): the URL, then every address its host
        resolves to. None when the name does not resolve from here: sending checks it again then."""
        parsed = url if isinstance(url, URL) else _parse(url)
        self.check_url(parsed)
        if not parsed.host or parsed.port is None:
            raise BlockedDestination(f"{_shorten(str(url))} has no host")
        try:
            return self.resolve_and_check(parsed.host, parsed.port)
        except BlockedDestination:
            raise
        except OSError:
            return None

    def resolve_and_check(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host`` (a name or a literal IP), all of which may be reached; connect to
        exactly these. Raises ``BlockedDestination`` when any address is refused, ``OSError`` when the
        name does not resolve."""
        address = _literal_address(host)
        if address is not None:
            reason = self.refusal(address)
            if reason is not None:
                raise BlockedDestination(f"{host} is {reason}")
            return [address]
        try:
            addresses = self._resolve(host, port)
        except OSError:
            # `LOCALHOST.` may not resolve here, yet it is loopback wherever it does: refused by name.
            self._check_loopback_name(host)
            raise
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no addresses")
        if self.host_allowed(host):
            return list(addresses)
        for resolved in addresses:
            reason = self.refusal(resolved)
            if reason is not None:
                raise BlockedDestination(f"{host} resolves to {resolved}, {reason}")
        return list(addresses)


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except ValueError as exc:
        raise BlockedDestination(f"{_shorten(url)} is not a valid URL: {exc}") from None


def _literal_address(host: str) -> IPAddress | None:
    """The address when ``host`` is (or looks like) a literal IP; looks-like-but-is-not is refused.

    Anything all digits and dots, or with a colon, is taken as an address by HTTP clients and never
    resolved, so the legacy forms ``socket`` maps onto an address (``127.1``, ``2130706433``) are refused.
    Hexadecimal forms (``0x7f000001``) are names to an HTTP client: resolving them (glibc reads them as
    an address) gives the address that is checked."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        if ":" in text or text.replace(".", "").isdigit():
            raise BlockedDestination(f"{host} is not a canonical IP address") from None
        return None


def _without_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
