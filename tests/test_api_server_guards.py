"""``tocsin api`` as it runs: oversized unauthenticated bodies cost it nothing, and tokens never reach its
log, whatever part of the request carries them. A real server process, real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.cli import start_tocsin, stop, tocsin
from tests.services import free_port
from tests.test_api_e2e import eventually

MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, psutil.Process]]:
    assert tocsin("init", cwd=tmp_path).code == 0
    port = free_port()
    proc = start_tocsin("api", "--port", str(port), cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        assert eventually(lambda: httpx.get(f"{base}/healthz").status_code == 200), (
            tmp_path / "api.log"
        ).read_text()
        yield base, tmp_path / "api.log", psutil.Process(proc.pid)
    finally:
        stop(proc)


def _post_huge(port: int, declared: bool) -> bytes:
    """An unauthenticated 256 MiB POST, declared by Content-Length or streamed chunked; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        length = f"Content-Length: {256 * MIB}\r\n" if declared else "Transfer-Encoding: chunked\r\n"
        sock.sendall(
            f"POST /incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{length}\r\n".encode()
        )
        chunk = b"x" * MIB
        framed = chunk if declared else f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            for _ in range(256):
                sock.sendall(framed)
        except OSError:  # the server answered and closed: the rest is never read
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
        return answer


def test_four_unauthenticated_256_mib_posts_leave_memory_as_it_was(
    server: tuple[str, Path, psutil.Process],
) -> None:
    """The issue: four such posts took `tocsin api` from 224 MiB to 1,164 MiB."""
    base, _, process = server
    port = int(base.rsplit(":", 1)[1])
    before = process.memory_info().rss
    answers = [_post_huge(port, declared=i % 2 == 0) for i in range(4)]
    after = process.memory_info().rss
    assert after - before < 64 * MIB, f"grew by {(after - before) / MIB:.0f} MiB"
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_tokens_never_reach_the_access_log(server: tuple[str, Path, psutil.Process], tmp_path: Path) -> None:
    base, log, _ = server
    api_token = tocsin("tokens", "create", "ops", "--scope", "read", cwd=tmp_path).out.strip()
    with httpx.Client(base_url=base, timeout=30) as http:
        refused = http.get("/incidents", params={"access_token": api_token})
        assert refused.status_code == 422  # a token in the query string is refused, never accepted
        assert http.get("/incidents", params={"limit": 5, "q": api_token}).status_code == 422
        # not a link's shape: 422 (see docs/pages/api.md)
        assert http.get("/unsubscribe", params={"token": "signed.link-secret-value"}).status_code == 422
        assert http.get("/incidents", headers={"Authorization": f"Bearer {api_token}"}).status_code == 200
    assert eventually(lambda: "/unsubscribe" in log.read_text())
    written = log.read_text()
    assert "GET /incidents?access_token=********" in written, "the request is logged, its token masked"
    assert api_token not in written
    assert api_token.removeprefix("tcn_") not in written
    assert "link-secret-value" not in written
