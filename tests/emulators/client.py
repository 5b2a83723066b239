"""Talk to an emulator's ``/_emulator/*`` control endpoints, and start one as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class EmulatorClient:
    """``EmulatorClient("http://127.0.0.1:PORT")``: inspect and steer an emulator in any process."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def received(self) -> list[dict[str, Any]]:
        return self._get("/_emulator/received")  # type: ignore[no-any-return]

    def rejected(self) -> list[dict[str, Any]]:
        return self._get("/_emulator/rejected")  # type: ignore[no-any-return]

    def requests(self) -> list[dict[str, Any]]:
        """The request log: every provider request, its key, account, answer and (monotonic) time."""
        return self._get("/_emulator/requests")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._get("/_emulator/stats")  # type: ignore[no-any-return]

    def faults(self) -> dict[str, Any]:
        return self._get("/_emulator/faults")  # type: ignore[no-any-return]

    def config(self) -> dict[str, Any]:
        return self._get("/_emulator/config")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._http.post("/_emulator/reset").raise_for_status()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge fault settings, e.g. ``set_faults(fail_next=[{"status": 429, "retry_after": 2}])``."""
        return self._post("/_emulator/faults", faults)

    def configure(self, **options: Any) -> dict[str, Any]:
        """Change provider settings, e.g. ``configure(stop_numbers=["+15005550009"])``."""
        return self._post("/_emulator/config", options)

    def wait_for(self, accepted: int, timeout: float = 10.0) -> dict[str, Any]:
        """Poll ``stats`` until at least ``accepted`` messages were accepted; returns the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["accepted"] >= accepted or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def _get(self, path: str) -> Any:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        if response.status_code == 400:
            raise ValueError(response.json().get("error"))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EmulatorProcess:
    """Run ``python -m tests.emulators.run KIND ARGS...`` and wait for its URL.

    ``with EmulatorProcess("webhook", "--no-verify") as proc: proc.base_url, proc.client``
    """

    def __init__(self, kind: str, *args: str, port: int = 0, python: str = sys.executable) -> None:
        self.command = [python, "-m", "tests.emulators.run", kind, "--port", str(port), *args]
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.client: EmulatorClient

    def start(self, timeout: float = 15.0) -> Self:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.base_url = line
        self.client = EmulatorClient(line)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.base_url:
            self.client.close()
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
