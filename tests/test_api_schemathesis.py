"""Property-based run of the whole HTTP API against its own OpenAPI document (schemathesis).

Every generated request is sent to the ASGI app with a valid admin token, and every check runs: no
response may be a 5xx, every response must be one the document declares (status code, content type,
body schema, headers), a request the document calls valid must not be refused as invalid (422) and one
it calls invalid must be. What no schema can say (a guardrail on the text, a time already past, an
incident's lifecycle, a key already used) is a 409 conflict, not a 422. ``POST /policy/check`` is fuzzed
through its ``application/toml`` body as well as ``text/plain``. Covered: every API operation, the
status-page components, ``/metrics``, the provider callbacks (unconfigured here: they answer their
declared 404), ``/ingest/*`` (the payloads, read strictly, as described) and the public self-service
pages (``/subscribe``, ``/subscribe/verify``, ``/subscribe/confirm``, ``/manage``, ``/unsubscribe``:
their JSON and form bodies, their ``token`` links, their pages and problems). Their rate limits are set
high here so the run is not throttled (a 429 and its ``Retry-After`` are tested in
tests/test_self_service_answers.py), and nothing leaves loopback: a webhook signup's ping (or a
subscriber's webhook check) resolves no name but ``localhost`` and connects to loopback only.
Bounded: a few examples per operation, on SQLite, so it takes a minute or two on 2 cores."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from limits import parse_many

from channels.base import ChannelKind
from dispatcher.access.tokens import Scope, create_token
from dispatcher.config.settings import Settings
from dispatcher.engine.runtime import Runtime, build_runtime
from dispatcher.store.engine import get_engine, migrate
from dispatcher.web.app import create_app
from dispatcher.web.self_service.rate_limits import LIMITS, RateLimits
from tests.helpers import RecordingQueue, draft, incident, publish_and_deliver, subscribe

_current: dict[str, Runtime] = {}
app = create_app(lambda: _current["rt"])
app.state.task_queue = RecordingQueue  # publishing writes the update; nothing is delivered here
app.state.self_service_limits = RateLimits.build(None, {kind: parse_many("100000/minute") for kind in LIMITS})


@schemathesis.serializer("application/toml", "text/plain")
def _text(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """A text body is its UTF-8 bytes. A value that is not a string (a negative case of ``type:
    string``) cannot be text at all: it goes as bytes that are not UTF-8, the only body on the wire
    that is not a string, rather than as a JSON spelling that would be a valid string again."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return b"\xff" + repr(value).encode("utf-8")


OURS = (
    r"^/(incidents|updates|approvals|subscribers|deliveries|policy|maintenance|templates|drafts|components|metrics"
    r"|readyz|healthz|providers|ingest|subscribe|manage|unsubscribe)"
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex=OURS)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def loopback_only() -> Iterator[None]:
    """Generated webhook URLs name any host: none is looked up (but ``localhost`` and literal
    addresses) and no connection goes anywhere but loopback, so the run never reaches outside."""
    real_resolve, real_connect = socket.getaddrinfo, socket.socket.connect

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name == "localhost":
            return real_resolve(host, port, *args, **kwargs)
        try:
            ipaddress.ip_address(str(name).split("%")[0])
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: not looked up by this test") from None
        return real_resolve(host, port, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not _loopback(str(address[0])):
            raise ConnectionRefusedError(f"{address[0]}: only loopback is reachable in this test")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", resolve)
        patch.setattr(socket.socket, "connect", connect)
        yield


@pytest.fixture(scope="module")
def seeded(loopback_only: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database for the whole run, with an incident, subscribers and a delivered update."""
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'tocsin.db'}"
    migrate(url)
    rt = build_runtime(Settings(database_url=url, outbox_dir=folder / "outbox"))
    subscribe(rt, 3, sms=True)
    publish_and_deliver(rt, draft(incident(rt), channels=[ChannelKind.EMAIL], override_reason="seed data"))
    _current["rt"] = rt
    token = create_token(rt, "schemathesis", [Scope.ADMIN])[1]
    yield token
    rt.close()
    get_engine(url).dispose()


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_conforms_to_the_spec(case: schemathesis.Case, seeded: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded}"})


def test_the_description_states_bounds_in_json_schema_words() -> None:
    """Pydantic writes a bound it cannot place as ``ge``/``le`` (a component's ``position`` did), which no
    JSON Schema reader knows: the document then calls -1 valid while the server refuses it."""
    found: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{where}.{key}" for key in ("ge", "gt", "le", "lt") if key in node)
            for key, value in node.items():
                if key != "properties":
                    walk(value, f"{where}.{key}")
                else:
                    for name, prop in value.items():
                        walk(prop, f"{where}.{name}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    walk(app.openapi(), "openapi")
    assert found == []
