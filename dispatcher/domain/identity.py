"""Who is acting: a name, and the API token that proved it.

Four eyes only hold when "who wrote it" and "who approves it" are facts, not typed text. An identity
proven by a token (the CLI's personal token, the API's bearer token, the console's session) carries the
token's id; two identities are the same person when they come from the same token, or from tokens
with the same name (one person holding two tokens). A name nobody proved (monitoring, Tocsin itself, a
``--as`` on a command that needs no approval) has no token id.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    name: str
    """What the timeline shows: the token's name (``api:<name>`` through the HTTP API)."""
    token_id: int | None = None
    """The token that proved it; None: nobody proved it."""
    token_name: str | None = None
    """The token's own name (without the ``api:`` prefix), for telling one person's two tokens apart."""

    @property
    def proven(self) -> bool:
        return self.token_id is not None

    def is_author_of(self, author: str | None, author_token_id: int | None, author_token: str | None) -> bool:
        """Whether this identity wrote what ``author`` (proven by ``author_token_id``, whose name is
        ``author_token``) wrote. Without a token on either side the names are compared, case-blind."""
        if self.token_id is not None and author_token_id is not None:
            if self.token_id == author_token_id:
                return True
            mine, theirs = (self.token_name or self.name), (author_token or "")
            return bool(theirs) and mine.strip().casefold() == theirs.strip().casefold()
        if author is None:
            return False
        return author.strip().casefold() == self.name.strip().casefold()


SYSTEM = Identity("tocsin")
"""Tocsin itself (holding messages, reminders, maintenance stages)."""
