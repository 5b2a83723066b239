"""``/readyz``: can this instance serve? The database answers and, with ``REDIS_URL``, the broker too.

(``/healthz``, in ``dispatcher.web.app``, only says the process is alive: it touches nothing.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from dispatcher.web.api.problems import problem_doc, problem_response

router = APIRouter(tags=["health"])
BROKER_TIMEOUT_SECONDS = 2.0


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _database(request: Request) -> tuple[str | None, str | None]:
    """(redis_url or None, why the database is down or None)."""
    try:
        rt = request.app.state.runtime()
    except Exception as exc:
        return None, _first_line(exc)
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return rt.settings.redis_url, _first_line(exc)
    return rt.settings.redis_url, None


def _broker(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT_SECONDS, socket_connect_timeout=BROKER_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except Exception as exc:
        return _first_line(exc)
    finally:
        client.close()
    return None


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
    return Readiness(status="ok", checks=checks)
