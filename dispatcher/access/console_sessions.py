"""Console sessions, kept on the server: the cookie carries a random session id, the store keeps its
sha256, and logging out ends the session here, so a copy of the cookie stops working at once (before,
a copied cookie worked for its whole 12 hours)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import insert, select, update

from dispatcher.engine.runtime import Runtime
from dispatcher.store.schema import console_sessions


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def begin_session(rt: Runtime, session_id: str, token_id: int, expires_at: datetime) -> None:
    with rt.engine.begin() as conn:
        conn.execute(
            insert(console_sessions).values(
                session_hash=_hash(session_id),
                token_id=token_id,
                created_at=rt.clock.now(),
                expires_at=expires_at,
            )
        )


def session_alive(rt: Runtime, session_id: str, token_id: int) -> bool:
    """The session was begun for this token, has not ended and has not expired."""
    if not session_id:
        return False
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(
                console_sessions.c.token_id, console_sessions.c.expires_at, console_sessions.c.ended_at
            ).where(console_sessions.c.session_hash == _hash(session_id))
        ).first()
    return (
        row is not None
        and row.token_id == token_id
        and row.ended_at is None
        and row.expires_at > rt.clock.now()
    )


def end_session(rt: Runtime, session_id: str) -> bool:
    """End the session (logout); False when it was not running."""
    with rt.engine.begin() as conn:
        done = conn.execute(
            update(console_sessions)
            .where(
                console_sessions.c.session_hash == _hash(session_id), console_sessions.c.ended_at.is_(None)
            )
            .values(ended_at=rt.clock.now())
        )
    return done.rowcount == 1
