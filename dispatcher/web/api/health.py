"""``/readyz``: can this instance serve? The database answers and, with ``REDIS_URL``, the broker too
(503 naming what is down). The body also shows each channel's readiness as the last round of probes
found it (``tocsin check``, or the tick every ``readiness.probe_every`` seconds): a channel that is down
does not make the instance unready (it can still publish on the others), but it is named here.

(``/healthz``, in ``dispatcher.web.app``, only says the process is alive: it touches nothing.)"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.domain.errors import TocsinError
from dispatcher.engine.readiness.services import check_broker, check_database, first_line
from dispatcher.engine.readiness.state import snapshot
from dispatcher.web.api.problems import problem_doc, problem_response

router = APIRouter(tags=["health"])


class ProviderReady(BaseModel):
    provider: str
    ready: bool
    detail: str = Field(description="What the probe saw, or why the provider is not ready.")
    checked_at: datetime
    took_ms: int


class ChannelReady(BaseModel):
    state: str = Field(description="ready (every provider answers), degraded (some do) or down (none does).")
    standing: bool = Field(description="Some provider carries it: updates still go out on it.")
    since: datetime = Field(description="When the channel entered this state.")
    checked_at: datetime
    providers: list[ProviderReady] = Field(description="In failover order, primary first.")


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    channels: dict[str, ChannelReady] = Field(
        default_factory=dict, description="Per enabled channel, from the last probe round (empty before any)."
    )


def _database(request: Request) -> tuple[str | None, str | None]:
    """(redis_url or None, why the database is down or None)."""
    try:
        rt = request.app.state.runtime()
    except (TocsinError, SQLAlchemyError, OSError) as exc:  # not initialised, misconfigured, unreachable
        return None, first_line(exc)
    return rt.settings.redis_url, check_database(rt.engine).problem


def _broker(url: str) -> str | None:
    return check_broker(url).problem


@router.get(
    "/readyz",
    summary="Ready to serve: database reachable (and the broker, when REDIS_URL is set)",
    responses={503: problem_doc("Something this instance needs is down; `detail` names it.")},
)
def readyz(request: Request) -> Readiness:
    redis_url, db_down = _database(request)
    checks = {"database": "ok" if db_down is None else f"down: {db_down}"}
    down = [] if db_down is None else [f"database ({db_down})"]
    if redis_url is not None:
        broker_down = _broker(redis_url)
        checks["broker"] = "ok" if broker_down is None else f"down: {broker_down}"
        if broker_down is not None:
            down.append(f"broker ({broker_down})")
    if down:
        return problem_response(  # type: ignore[return-value]
            503, "not-ready", "not ready: " + "; ".join(down) + " unreachable", title="Not ready"
        )
    return Readiness(status="ok", checks=checks, channels=_channels(request))


def _channels(request: Request) -> dict[str, ChannelReady]:
    rt = request.app.state.runtime()
    return {
        kind.value: ChannelReady(
            state=found.state,
            standing=found.standing,
            since=found.since,
            checked_at=found.checked_at,
            providers=[
                ProviderReady(
                    provider=p.provider,
                    ready=p.ready,
                    detail=p.detail,
                    checked_at=p.checked_at,
                    took_ms=p.elapsed_ms,
                )
                for p in found.providers
            ],
        )
        for kind, found in snapshot(rt).items()
    }
