"""``Idempotency-Key`` on POSTs that create something.

The first request with a key (per token) claims it by inserting a placeholder row; the unique constraint
on (token, key) makes that claim atomic, so of two identical requests racing only one runs. When it
succeeds its status and body are stored, and a retry with the same key and the same method, path and
body gets that same answer back (marked ``Idempotent-Replayed: true``) without running again. The same
key with a different body is a 409 (the key is taken); a retry while the first is still running is a
409 too (try again). A request that fails stores nothing: the key is released and may be used again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dispatcher.access.tokens import ApiToken
from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import idempotency_records
from dispatcher.web.api.auth import runtime_of
from dispatcher.web.api.problems import FieldError, ProblemError

HEADER = "Idempotency-Key"
IN_PROGRESS = 0
"""``status_code`` of a claimed key whose request has not finished."""
ABANDONED_AFTER = timedelta(minutes=5)
"""A claim older than this whose request never finished (its process died) may be taken over."""


@dataclass(frozen=True)
class Idempotency:
    rt: Runtime
    key: str | None
    method: str
    path: str
    request_hash: str

    def run(self, token: ApiToken, status_code: int, produce: Callable[[], BaseModel | Any]) -> Response:
        """Answer with ``produce()`` as JSON, once per key: replays get the first answer."""
        if self.key is None:
            return _json(status_code, _encode(produce()))
        record_id = self._claim(token)
        if isinstance(record_id, Response):
            return record_id
        try:
            body = _encode(produce())
        except BaseException:
            with self.rt.engine.begin() as conn:
                conn.execute(delete(idempotency_records).where(idempotency_records.c.id == record_id))
            raise
        with self.rt.engine.begin() as conn:
            conn.execute(
                update(idempotency_records)
                .where(idempotency_records.c.id == record_id)
                .values(status_code=status_code, body=body)
            )
        return _json(status_code, body)

    def _claim(self, token: ApiToken) -> int | Response:
        """The id of our placeholder row, or the stored answer to replay."""
        now = self.rt.clock.now()
        try:
            with self.rt.engine.begin() as conn:
                return int(
                    conn.execute(
                        insert(idempotency_records)
                        .values(
                            token_id=token.id,
                            key=self.key,
                            method=self.method,
                            path=self.path,
                            request_hash=self.request_hash,
                            status_code=IN_PROGRESS,
                            body="",
                            created_at=now,
                        )
                        .returning(idempotency_records.c.id)
                    ).scalar_one()
                )
        except IntegrityError:
            pass  # the key is taken: replay, refuse, or take over an abandoned claim
        with self.rt.engine.begin() as conn:
            row = (
                conn.execute(
                    select(idempotency_records).where(
                        idempotency_records.c.token_id == token.id, idempotency_records.c.key == self.key
                    )
                )
                .mappings()
                .one()
            )
            if (row["method"], row["path"], row["request_hash"]) != (
                self.method,
                self.path,
                self.request_hash,
            ):
                message = (
                    f"{HEADER} {self.key!r} was used for another request "
                    f"({row['method']} {row['path']} with a different body)"
                )
                raise ProblemError(
                    409,
                    "idempotency-key-reused",
                    message,
                    title="Idempotency-Key reused",
                    errors=[FieldError(field=HEADER, message=message)],
                )
            if row["status_code"] != IN_PROGRESS:
                return _json(row["status_code"], row["body"], replayed=True)
            if row["created_at"] < now - ABANDONED_AFTER:
                taken = conn.execute(
                    update(idempotency_records)
                    .where(
                        idempotency_records.c.id == row["id"],
                        idempotency_records.c.status_code == IN_PROGRESS,
                        idempotency_records.c.created_at == row["created_at"],
                    )
                    .values(created_at=now)
                ).rowcount
                if taken:
                    return int(row["id"])
        raise ProblemError(
            409,
            "request-in-progress",
            f"a request with {HEADER} {self.key!r} is still being processed; retry shortly",
            headers={"Retry-After": "1"},
        )


def _encode(result: BaseModel | Any) -> str:
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(jsonable_encoder(result))


def _json(status_code: int, body: str, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


async def idempotency(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="Retrying with the same key and body returns the first answer; nothing runs twice.",
        ),
    ] = None,
) -> Idempotency:
    body = await request.body()
    return Idempotency(
        rt=runtime_of(request),
        key=key,
        method=request.method,
        path=request.url.path,
        request_hash=hashlib.sha256(body).hexdigest(),
    )


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
