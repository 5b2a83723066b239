"""``GET /metrics``: Prometheus exposition of this process's metrics and the ledger's (see
``dispatcher.reporting.metrics``). Scrape one ``tocsin api`` for the ledger-derived series: every process
reads the same database, so scraping several and summing would count them twice."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from dispatcher.reporting import metrics
from dispatcher.runners.factory import queue_lengths

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (the text exposition format)",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def prometheus_metrics(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "ledger_metrics", None) is None:
        lengths = queue_lengths(state.runtime().settings)
        state.ledger_metrics = metrics.ledger_registry(state.runtime, lengths)
    body = await run_in_threadpool(metrics.render, state.ledger_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
