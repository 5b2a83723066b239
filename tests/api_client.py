"""An API client for tests: the real app on a real database, tokens made through ``dispatcher.access.tokens``,
fan-outs queued for an embedded runner the test drives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from dispatcher.access.tokens import Scope, create_token
from dispatcher.engine.runtime import Runtime
from dispatcher.runners.embedded import EmbeddedRunner
from dispatcher.web.app import create_app


@dataclass
class Api:
    rt: Runtime
    http: TestClient
    runner: EmbeddedRunner

    def token(self, *scopes: Scope, name: str = "test") -> str:
        return create_token(self.rt, name, scopes or (Scope.ADMIN,))[1]

    def auth(self, *scopes: Scope, name: str = "test") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes, name=name)}"}

    def deliver(self) -> None:
        self.runner.run_until_idle()


@pytest.fixture(name="api")
def api_fixture(rt: Runtime) -> Iterator[Api]:
    app = create_app(lambda: rt)
    runner = EmbeddedRunner(rt)
    app.state.task_queue = lambda: runner.queue
    with TestClient(app, raise_server_exceptions=False) as http:
        yield Api(rt, http, runner)
