"""``tocsin api`` as a user runs it: a token from ``tocsin tokens create``, an incident opened and an
update published over HTTP, delivered by the server itself (embedded default, no Redis) to the outbox."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.cli import start_tocsin, stop, tocsin

TEXT = "Since 09:12 UTC a third of checkouts fail. We are sorry. We are rolling back the 09:05 deploy."
CSV = "name,email,phone\nAda,ada@example.com,+14155550101\nBob,bob@example.com,\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    """Poll a subprocess's observable state, bounded (no fixed sleeps standing in for an outcome)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def test_publish_over_http_reaches_the_outbox(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    token = tocsin("tokens", "create", "ops", "--scope", "admin", cwd=tmp_path).out.strip()
    port = free_port()
    server = start_tocsin("api", "--port", str(port), cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        assert eventually(lambda: httpx.get(f"{base}/readyz").status_code == 200), (
            tmp_path / "api.log"
        ).read_text()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
            imported = http.post("/subscribers/import", content=CSV, headers={"Content-Type": "text/csv"})
            assert imported.status_code == 201 and imported.json()["imported"] == 2
            incident = http.post("/incidents", json={"title": "Checkout failing"}).json()["incident"]
            published = http.post(
                f"/incidents/{incident['id']}/updates",
                json={
                    "status": "investigating",
                    "message": TEXT,
                    "next_update_in": "30m",
                    "channels": ["email", "sms"],
                },
                headers={"Idempotency-Key": "first"},
            )
            assert published.status_code == 201, published.text
            update_id = published.json()["update"]["id"]

            def delivered() -> bool:
                status = http.get(f"/updates/{update_id}/status").json()
                return status["owed"] == 0 and sum(sum(c["counts"].values()) for c in status["channels"]) == 3

            assert eventually(delivered), (tmp_path / "api.log").read_text()
            assert http.get("/openapi.json").json()["info"]["title"] == "Tocsin"
            assert "swagger" in http.get("/docs").text.lower()
        outbox = tmp_path / "outbox" / f"update-{update_id}"
        assert len(list((outbox / "email").glob("*.eml"))) == 2
        assert len(list((outbox / "sms").glob("*.json"))) == 1
    finally:
        stop(server)
