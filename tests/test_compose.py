"""The compose file's defaults: nothing published beyond this host's loopback."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def test_every_published_port_is_bound_to_loopback() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [(name, port) for name, spec in services.items() for port in spec.get("ports", [])]
    assert published, "the API is published"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
