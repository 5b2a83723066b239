"""``/deliveries``: the ledger (filtered, cursor-paginated) and re-driving failed deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from channels.base import ChannelKind
from dispatcher.domain.models import DeliveryState
from dispatcher.reporting.ledger_queries import DeliveryRow, Selection, retry_failed
from dispatcher.reporting.ledger_queries import list_deliveries as ledger_rows
from dispatcher.web.api.auth import PublishToken, ReadToken, RuntimeDep
from dispatcher.web.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page_of
from dispatcher.web.api.problems import AUTH_PROBLEMS, CONFLICT
from dispatcher.web.api.work import QueueDep

router = APIRouter(prefix="/deliveries", tags=["deliveries"], responses=AUTH_PROBLEMS)

MAX_IDS = 1000


MAX_DELIVERY_ID = 2**53 - 1
"""Beyond any id the ledger will reach, and exact in every JSON reader (larger integers become floats,
so a bound of 2**62 was compared inexactly by clients validating against the description)."""

class DeliveryOut(DeliveryRow):
    """One ledger row: (update, channel, address) and where its delivery stands."""


class RetryRequest(BaseModel):
    """Which FAILED deliveries to re-drive: every filter given must match (none: every failed row)."""

    model_config = ConfigDict(extra="forbid")

    update_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    channels: list[ChannelKind] = Field(default_factory=list)
    provider: str | None = Field(default=None, max_length=50)
    ids: list[Annotated[int, Field(ge=1, le=MAX_DELIVERY_ID)]] = Field(
        default_factory=list, max_length=MAX_IDS
    )
    dry_run: bool = Field(default=False, strict=True, description="Only count what would be re-driven.")


class BatchOut(BaseModel):
    update_id: int
    channel: ChannelKind
    batch: int


class RetryOut(BaseModel):
    rows: int = Field(description="Failed deliveries put back in the queue (or that would be).")
    batches: list[BatchOut]
    update_ids: list[int]
    notes: list[str] = Field(description="Why some deliveries asked for by id are not re-driven.")
    dry_run: bool


@router.get("", summary="Ledger rows, newest first (cursor pagination); every state unless filtered")
def list_deliveries(
    rt: RuntimeDep,
    _token: ReadToken,
    update_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    channel: Annotated[list[ChannelKind] | None, Query(description="Only these channels.")] = None,
    state: Annotated[list[DeliveryState] | None, Query(description="Only these states.")] = None,
    provider: Annotated[str | None, Query(max_length=50)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    selection = Selection(
        update_id=update_id, channels=tuple(channel or ()), states=tuple(state or ()), provider=provider
    )
    rows = ledger_rows(rt, selection, limit + 1, before=decode_cursor(cursor))
    items = [DeliveryOut.model_validate(r.model_dump()) for r in rows]
    return page_of(items, [r.id for r in rows], limit)


@router.post(
    "/retry",
    summary="Re-drive FAILED deliveries (superseded and suppressed ones never are)",
    responses={**CONFLICT},
)
def retry(body: RetryRequest, rt: RuntimeDep, _token: PublishToken, queue: QueueDep) -> RetryOut:
    selection = Selection(
        update_id=body.update_id,
        channels=tuple(body.channels),
        provider=body.provider,
        ids=tuple(body.ids),
    )
    result = retry_failed(rt, selection, None if body.dry_run else queue, dry_run=body.dry_run)
    return RetryOut(
        rows=result.rows,
        batches=[BatchOut(update_id=b.update_id, channel=b.channel, batch=b.batch) for b in result.batches],
        update_ids=result.update_ids,
        notes=list(result.notes),
        dry_run=result.dry_run,
    )
