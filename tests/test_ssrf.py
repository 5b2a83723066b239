"""The SSRF guard for subscriber webhook URLs: classification, allowlist, pinning, and the real adapter.

Public-vs-private classification uses literal IPs and an injected resolver (no real DNS for made-up
names); end-to-end tests post to a real WebhookReceiver on 127.0.0.1 and resolve ``localhost`` for real.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import socket
from collections.abc import Callable, Iterator

import pytest

from channels import registry
from channels._http.ssrf import BlockedDestination, DestinationPolicy, IPAddress, classify, system_resolve
from channels.base import ChannelKind, Message, Outcome, Recipient
from channels.webhook import WebhookAdapter, WebhookOptions
from tests.emulators import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
MESSAGE = Message(
    kind=ChannelKind.WEBHOOK,
    update_id=1,
    incident_id=1,
    subject="s",
    text="t",
    json_body=json.dumps({"type": "incident.update"}),
)
LOCAL = ["127.0.0.0/8"]
Resolver = Callable[[str, int], list[IPAddress]]
MakeAdapter = Callable[..., WebhookAdapter]


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def fixed(table: dict[str, list[str]]) -> Resolver:
    """A resolver answering from ``table``; unknown names fail like real DNS does."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} not in the test table")
        return [ip(a) for a in table[host]]

    return resolve


def no_dns(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"check_url must not resolve host names (asked for {host})")


# ---------------------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::1", "loopback"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.5", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:5", "private"),  # NAT64 of 10.0.0.5
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("192.0.2.1", "address"),  # documentation range: not globally routable
        ("240.0.0.1", "address"),  # reserved
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    reason = classify(ip(address))
    assert reason is not None and why in reason
    with pytest.raises(BlockedDestination, match=why) as caught:
        DestinationPolicy(resolve=no_dns).resolve_and_check(address, 443)
    assert address in str(caught.value)
    with pytest.raises(BlockedDestination, match=why):
        DestinationPolicy(resolve=no_dns).check_url(f"https://{_bracketed(address)}/hook")


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert classify(ip(address)) is None
    assert DestinationPolicy(resolve=no_dns).resolve_and_check(address, 443) == [ip(address)]
    DestinationPolicy(resolve=no_dns).check_url(f"https://{_bracketed(address)}:8443/hook")


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def test_the_allowlist_opens_exactly_its_networks() -> None:
    policy = DestinationPolicy(["127.0.0.0/8", "10.1.0.0/16", "fd00:1::/32"], resolve=no_dns)
    for allowed in ("127.0.0.1", "127.8.9.10", "::ffff:127.0.0.1", "10.1.200.3", "fd00:1::5"):
        assert policy.resolve_and_check(allowed, 80) == [ip(allowed)]
    for refused in ("10.2.0.1", "192.168.0.1", "::1", "169.254.169.254", "fd00:2::5"):
        with pytest.raises(BlockedDestination):
            policy.resolve_and_check(refused, 80)


def test_a_broad_network_does_not_open_the_metadata_addresses_but_an_exact_entry_does() -> None:
    broad = DestinationPolicy(["fc00::/7", "100.64.0.0/10", "169.254.0.0/16"], resolve=no_dns)
    assert broad.resolve_and_check("fd00:1::5", 80) == [ip("fd00:1::5")]
    assert broad.resolve_and_check("169.254.1.1", 80) == [ip("169.254.1.1")]
    for metadata in ("fd00:ec2::254", "100.100.100.200", "169.254.169.254", "::ffff:169.254.169.254"):
        with pytest.raises(BlockedDestination, match="metadata"):
            broad.resolve_and_check(metadata, 80)
    exact = DestinationPolicy(["169.254.169.254/32"], resolve=no_dns)
    assert exact.resolve_and_check("169.254.169.254", 80) == [ip("169.254.169.254")]


def test_allowed_host_names_may_resolve_to_private_addresses() -> None:
    resolve = fixed(
        {
            "hooks.intranet.example": ["10.0.0.5"],
            "a.b.corp.example": ["192.168.3.4"],
            "other.example": ["10.0.0.6"],
        }
    )
    policy = DestinationPolicy(["Hooks.Intranet.Example", "*.corp.example"], resolve=resolve)
    assert policy.resolve_and_check("hooks.intranet.example", 443) == [ip("10.0.0.5")]
    assert policy.host_allowed("HOOKS.intranet.example.")
    assert not policy.host_allowed("corp.example") and not policy.host_allowed("evilcorp.example")
    assert policy.resolve_and_check("a.b.corp.example", 443) == [ip("192.168.3.4")]
    with pytest.raises(
        BlockedDestination, match=re.escape("other.example resolves to 10.0.0.6, a private address")
    ):
        policy.resolve_and_check("other.example", 443)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "http://x.example/", "", "1.2.3"])
def test_bad_allow_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed destination"):
        DestinationPolicy([entry])
    with pytest.raises(registry.InvalidProviderOptions, match="allow_destinations"):
        registry.create("webhook", {"allow_destinations": [entry]})


def test_options_default_to_no_exceptions() -> None:
    assert WebhookOptions().allow_destinations == []
    assert WebhookOptions.model_validate({"allow_destinations": LOCAL}).allow_destinations == LOCAL


# ---------------------------------------------------------------------------------------- host names


def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused() -> None:
    # DNS rebinding: the attacker's name answers with an internal address.
    policy = DestinationPolicy(resolve=fixed({"hooks.totally-public.com": ["10.0.0.5"]}))
    policy.check_url("https://hooks.totally-public.com/in")  # the URL alone looks fine
    with pytest.raises(BlockedDestination) as caught:
        policy.resolve_and_check("hooks.totally-public.com", 443)
    assert str(caught.value) == "hooks.totally-public.com resolves to 10.0.0.5, a private address"
    assert caught.value.reason == str(caught.value)


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    resolve = fixed({"mixed.example": ["93.184.216.34", "2606:4700::1111", "169.254.169.254"]})
    with pytest.raises(BlockedDestination, match=re.escape("169.254.169.254, a cloud metadata address")):
        DestinationPolicy(resolve=resolve).resolve_and_check("mixed.example", 80)


def test_a_public_name_resolves_to_its_checked_addresses() -> None:
    resolve = fixed({"hooks.example.com": ["93.184.216.34", "2606:4700::1111"]})
    assert DestinationPolicy(resolve=resolve).resolve_and_check("hooks.example.com", 443) == [
        ip("93.184.216.34"),
        ip("2606:4700::1111"),
    ]


def test_unresolvable_names_raise_a_dns_error_not_a_block() -> None:
    with pytest.raises(socket.gaierror):
        DestinationPolicy(resolve=fixed({})).resolve_and_check("nowhere.example", 80)


def test_localhost_is_resolved_for_real_and_refused_unless_allowed() -> None:
    assert any(a.is_loopback for a in system_resolve("localhost", 80))
    with pytest.raises(BlockedDestination, match=r"localhost resolves to .*, a loopback address"):
        DestinationPolicy().resolve_and_check("localhost", 80)
    assert DestinationPolicy(["localhost"]).resolve_and_check("localhost", 80)
    assert DestinationPolicy(["127.0.0.0/8", "::1/128"]).resolve_and_check("localhost", 80)
    # legacy numeric forms resolve too (glibc inet_aton): still checked
    with pytest.raises(BlockedDestination, match=re.escape("127.0.0.1, a loopback address")):
        DestinationPolicy().resolve_and_check("0x7f.0.0.1", 80)


# ---------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com:70/_x", "scheme 'gopher'"),
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("not a url", "no scheme"),
        ("http://user:pass@example.com/hook", "example.com contains credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("http:///hook", "no host"),
        ("http://127.1/hook", "127.1 is not a canonical IP address"),
        ("http://2130706433/hook", "not a canonical IP address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_reason(url: str, why: str) -> None:
    with pytest.raises(BlockedDestination, match=why):
        DestinationPolicy(resolve=no_dns).check_url(url)


def test_check_url_accepts_http_and_https_names_without_resolving() -> None:
    policy = DestinationPolicy(resolve=no_dns)
    policy.check_url("https://hooks.example.com/in?x=1")
    policy.check_url("HTTP://Hooks.Example.com:8080/in")


# ---------------------------------------------------------------------------------------- the real adapter


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET, responses={"/moved": 302}) as emu:
        yield emu


@pytest.fixture
def adapters() -> Iterator[MakeAdapter]:
    made: list[WebhookAdapter] = []

    def make(allow: list[str] | None = None, resolve: Resolver | None = None) -> WebhookAdapter:
        options = WebhookOptions.model_validate({"timeout": 2.0, "allow_destinations": allow or []})
        adapter = WebhookAdapter(options, resolve=resolve)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def test_local_endpoints_are_blocked_by_default_and_nothing_is_sent(
    receiver: WebhookReceiver, adapters: MakeAdapter
) -> None:
    port = receiver.port
    recipients = [
        Recipient(1, f"{receiver.base_url}/literal", secret=SECRET),
        Recipient(2, f"http://localhost:{port}/by-name", secret=SECRET),
        Recipient(3, f"http://[::1]:{port}/v6", secret=SECRET),
        Recipient(4, f"http://[::ffff:127.0.0.1]:{port}/mapped", secret=SECRET),
        Recipient(5, "file:///etc/passwd", secret=SECRET),
        Recipient(6, f"http://user:pass@127.0.0.1:{port}/creds", secret=SECRET),
        Recipient(7, f"http://127.1:{port}/short", secret=SECRET),
    ]

    results = adapters().send(MESSAGE, recipients)

    assert [r.outcome for r in results] == [Outcome.FAILED] * 7  # permanent: never retried
    errors = {r.delivery_id: r.error or "" for r in results}
    assert all(e.startswith("blocked: ") for e in errors.values()), errors
    assert errors[1] == "blocked: 127.0.0.1 is a loopback address"
    assert "localhost resolves to" in errors[2] and "loopback" in errors[2]
    assert "::1 is a loopback address" in errors[3]
    assert "scheme 'file'" in errors[5]
    assert "credentials" in errors[6]
    assert "not a canonical IP address" in errors[7]
    assert receiver.stats["requests"] == 0
    assert receiver.received == []


def test_allowlisted_local_endpoints_are_delivered(receiver: WebhookReceiver, adapters: MakeAdapter) -> None:
    adapter = adapters(allow=LOCAL)
    recipients = [
        Recipient(1, f"{receiver.base_url}/a", secret=SECRET),
        Recipient(2, "http://10.0.0.5/internal", secret=SECRET),
        Recipient(3, f"{receiver.base_url}/moved", secret=SECRET),
    ]

    results = adapter.send(MESSAGE, recipients)

    assert results[0].outcome is Outcome.SENT
    assert (
        results[1].outcome is Outcome.FAILED and results[1].error == "blocked: 10.0.0.5 is a private address"
    )
    assert results[2].outcome is Outcome.FAILED and "not followed" in (results[2].error or "")
    assert [m["path"] for m in receiver.received] == ["/a"]
    assert receiver.received[0]["verified"]


def test_the_connection_goes_to_the_checked_address(receiver: WebhookReceiver, adapters: MakeAdapter) -> None:
    # "hooks.example.test" does not exist in real DNS: the delivery can only arrive if the connector
    # connected to the address the policy resolved and checked, with no lookup of its own.
    calls: list[str] = []
    answers = iter([["127.0.0.1"]])

    def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ip(a) for a in next(answers, ["10.0.0.5"])]  # a second lookup would be rebound

    adapter = adapters(allow=LOCAL, resolve=resolve)
    url = f"http://hooks.example.test:{receiver.port}/pinned"
    results = adapter.send(
        MESSAGE, [Recipient(1, url, secret=SECRET), Recipient(2, url + "2", secret=SECRET)]
    )

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert calls == ["hooks.example.test"]  # one lookup, shared by both requests
    assert sorted(m["path"] for m in receiver.received) == ["/pinned", "/pinned2"]


def test_a_name_rebound_to_a_private_address_is_blocked_by_the_adapter(
    receiver: WebhookReceiver, adapters: MakeAdapter
) -> None:
    resolve = fixed({"hooks.totally-public.com": ["127.0.0.1"]})
    adapter = adapters(resolve=resolve)

    results = adapter.send(
        MESSAGE, [Recipient(1, f"http://hooks.totally-public.com:{receiver.port}/x", secret=SECRET)]
    )

    assert results[0].outcome is Outcome.FAILED
    assert results[0].error == "blocked: hooks.totally-public.com resolves to 127.0.0.1, a loopback address"
    assert receiver.stats["requests"] == 0


def test_a_name_that_does_not_resolve_is_retried_not_blocked(adapters: MakeAdapter) -> None:
    results = adapters(resolve=fixed({})).send(
        MESSAGE, [Recipient(1, "https://gone.example/x", secret=SECRET)]
    )
    assert results[0].outcome is Outcome.RETRY


def test_when_the_first_checked_address_refuses_the_next_one_is_tried(
    receiver: WebhookReceiver, adapters: MakeAdapter
) -> None:
    # A dual-stack name whose first address cannot be reached from here (as an AAAA record on a host
    # without IPv6): nothing listens on 127.0.0.2, the receiver does on 127.0.0.1.
    adapter = adapters(allow=LOCAL, resolve=fixed({"hooks.example.test": ["127.0.0.2", "127.0.0.1"]}))
    url = f"http://hooks.example.test:{receiver.port}/second"

    results = adapter.send(MESSAGE, [Recipient(1, url, secret=SECRET)])

    assert results[0].outcome is Outcome.SENT
    assert [m["path"] for m in receiver.received] == ["/second"]
    assert receiver.received[0]["verified"]


def test_when_every_checked_address_refuses_the_delivery_is_retried(adapters: MakeAdapter) -> None:
    adapter = adapters(allow=LOCAL, resolve=fixed({"hooks.example.test": ["127.0.0.2", "127.0.0.3"]}))
    results = adapter.send(MESSAGE, [Recipient(1, "http://hooks.example.test:9/x", secret=SECRET)])
    assert results[0].outcome is Outcome.RETRY
