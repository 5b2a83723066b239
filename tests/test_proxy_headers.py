"""``tocsin api --proxy-headers`` behind an HTTPS proxy: the proxy's X-Forwarded-Proto counts, so the
console's cookies are marked Secure; without the flag a forged header changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.cli import start_tocsin, stop, tocsin
from tests.services import free_port


def login_cookie_secure(tmp_path: Path, *flags: str) -> bool:
    port = free_port()
    server = start_tocsin("api", "--port", str(port), *flags, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/console/login", headers={"X-Forwarded-Proto": "https"}
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail((tmp_path / "api.log").read_text())
                time.sleep(0.2)
    finally:
        stop(server)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_proxy_headers_make_the_console_cookie_secure_behind_https(tmp_path: Path) -> None:
    assert tocsin("init", cwd=tmp_path).code == 0
    assert login_cookie_secure(tmp_path, "--proxy-headers") is True
    assert login_cookie_secure(tmp_path) is False, "without the flag, the header is not trusted"
