"""X (Twitter) API v2 emulator: ``POST /2/tweets``, and the look-ups of the posting account's own posts
(``GET /2/users/me``, ``GET /2/users/:id/tweets``)."""

from __future__ import annotations

import html
import itertools
import json
import re
import time
import unicodedata
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.emulators.server import DownMode, Emulator, seconds_header

MAX_WEIGHTED_LENGTH = 280
USER_ID = "2244994945"
"""The id of the one posting account."""
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
# twitter-text v3: code points in these ranges weigh 1, everything else 2; a URL weighs 23.
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


def weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3 rules, simplified: per code point, URLs count 23)."""
    text = unicodedata.normalize("NFC", text)
    length = 0
    position = 0
    for match in _URL.finditer(text):
        length += _weigh(text[position : match.start()]) + 23
        position = match.end()
    return length + _weigh(text[position:])


def _weigh(chunk: str) -> int:
    return sum(1 if any(lo <= ord(ch) <= hi for lo, hi in _LIGHT_RANGES) else 2 for ch in chunk)


def problem(title: str, detail: str, status: int, type_: str = "about:blank", **extra: Any) -> dict[str, Any]:
    """X's v2 problem shape."""
    return {"title": title, "detail": detail, "type": type_, "status": status, **extra}


_PROBLEMS = {
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "Forbidden"),
    429: ("Too Many Requests", "Too Many Requests"),
    500: ("Internal Server Error", "Internal Server Error"),
    502: ("Bad Gateway", "Bad Gateway"),
    503: ("Service Unavailable", "Service Unavailable"),
    504: ("Gateway Timeout", "Gateway Timeout"),
}


class XEmulator(Emulator):
    """Accepts posts like X's v2 API. Each ``received`` item: ``id``, ``text``, ``in_reply_to_tweet_id``,
    ``auth`` ("oauth1" or "bearer").

    Any ``Authorization: OAuth ...`` header is accepted as user context (signatures are not checked).
    A ``Bearer`` token is accepted as an OAuth 2 user token unless it is ``app_bearer_token`` (or
    ``forbid_bearer`` is set), which answers 403 like X does for app-only auth.

    ``GET /2/users/me`` names the one posting account (``USER_ID``); ``GET /2/users/:id/tweets`` lists
    its posts, newest first, as X does: the text with links rewritten to ``https://t.co/…`` and ``&``,
    ``<``, ``>`` escaped, ``created_at`` and ``referenced_tweets`` when asked for in ``tweet_fields``,
    ``max_results`` (5 to 100) and ``start_time`` honoured. Faults apply to these routes too.
    """

    name = "x"

    def __init__(
        self,
        *,
        app_bearer_token: str | None = "app-only-token",
        forbid_bearer: bool = False,
        rate_limit: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app_bearer_token = app_bearer_token
        self.forbid_bearer = forbid_bearer
        self.rate_limit = rate_limit
        self._ids = itertools.count(1_800_000_000_000_000_000)
        self._texts: set[str] = set()
        self.username = "examplestatus"
        """The posting account ``GET /2/users/me`` names."""
        self.revoked_tokens: set[str] = set()
        """OAuth 1.0a access tokens the account revoked: 401."""
        self.read_only_tokens: set[str] = set()
        """Access tokens made while the app could only read: ``x-access-level: read``."""
        self.posts: list[dict[str, Any]] = []
        """Every post made, oldest first: ``id``, ``text``, ``created_at``, ``in_reply_to_tweet_id``."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2/tweets", self.provider_route(self.create_tweet))
        app.router.add_get("/2/users/me", self.provider_route(self.users_me))
        app.router.add_get("/2/users/{id}/tweets", self.provider_route(self.users_tweets))

    def account_of(self, request: web.Request) -> str | None:
        return USER_ID

    async def request_key(self, request: web.Request) -> str | None:
        """``post <text>`` for a new post, ``GET <path>`` for a look-up."""
        if request.method != "POST":
            return f"GET {request.path}"
        try:
            body = json.loads(await request.read())
        except ValueError:
            return "post ?"
        return f"post {body.get('text')}" if isinstance(body, dict) else "post ?"

    def reset(self) -> None:
        super().reset()
        self._texts.clear()
        self.posts.clear()

    def configure(self, options: Mapping[str, Any]) -> None:
        options = dict(options)
        if "app_bearer_token" in options:
            self.app_bearer_token = options.pop("app_bearer_token")
        if "forbid_bearer" in options:
            self.forbid_bearer = bool(options.pop("forbid_bearer"))
        for key in ("revoked_tokens", "read_only_tokens"):
            if key in options:
                setattr(self, key, {str(token) for token in options.pop(key)})
        if "username" in options:
            self.username = str(options.pop("username"))
        super().configure(options)

    def config_json(self) -> dict[str, Any]:
        return {"app_bearer_token": self.app_bearer_token, "forbid_bearer": self.forbid_bearer}

    def error_response(self, status: int, retry_after: float | None) -> web.Response:
        title, detail = _PROBLEMS.get(status, ("Error", "Error"))
        headers: dict[str, str] = {}
        if status == 429:
            wait = 1.0 if retry_after is None else retry_after
            headers = {
                "Retry-After": seconds_header(wait),
                "x-rate-limit-limit": str(self.rate_limit),
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(int(time.time() + wait)),
            }
        elif retry_after is not None:
            headers["Retry-After"] = seconds_header(retry_after)
        return web.json_response(problem(title, detail, status), status=status, headers=headers)

    def unavailable_response(self, mode: DownMode) -> web.Response:
        return self.error_response(401 if mode == "auth" else 503, None)

    def _reject(self, status: int, body: dict[str, Any], reason: str) -> web.Response:
        self.reject(status, reason)
        return web.json_response(body, status=status)

    async def users_me(self, request: web.Request) -> web.Response:
        """``GET /2/users/me`` in user context: the posting account, and the token's access level."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("OAuth "):
            if auth.startswith("Bearer "):
                return self._reject(403, problem("Forbidden", "User context is required.", 403), "app-only")
            return self._reject(401, problem("Unauthorized", "Unauthorized", 401), "no credentials")
        token = _oauth_param(auth, "oauth_token")
        if token in self.revoked_tokens:
            return self._reject(401, problem("Unauthorized", "Unauthorized", 401), "revoked token")
        level = "read" if token in self.read_only_tokens else "read-write"
        return web.json_response(
            {"data": {"id": USER_ID, "name": "Example Corp Status", "username": self.username}},
            headers={"x-access-level": level},
        )

    async def create_tweet(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("OAuth "):
            kind = "oauth1"
        elif auth.startswith("Bearer "):
            kind = "bearer"
            if self.forbid_bearer or auth[7:] == self.app_bearer_token:
                return self._reject(
                    403,
                    problem(
                        "Unsupported Authentication",
                        "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                        "Supported authentication types are [OAuth 1.0a User Context, "
                        "OAuth 2.0 User Context].",
                        403,
                        "https://api.twitter.com/2/problems/unsupported-authentication",
                    ),
                    "app-only bearer",
                )
        else:
            return self._reject(401, problem("Unauthorized", "Unauthorized", 401), "no credentials")
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return self._invalid("text", "$.text is required", "text missing")
        text: str = body["text"]
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            return self._invalid(
                "text", f"text must be at most {MAX_WEIGHTED_LENGTH} weighted characters", "too long"
            )
        if text in self._texts:
            return self._reject(
                403,
                problem("Forbidden", "You are not allowed to create a Tweet with duplicate content.", 403),
                "duplicate content",
            )
        reply = body.get("reply") or {}
        in_reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        tweet_id = str(next(self._ids))
        self._texts.add(text)
        self.posts.append(
            {
                "id": tweet_id,
                "text": text,
                "created_at": datetime.now(UTC),
                "in_reply_to_tweet_id": in_reply_to,
            }
        )
        self.accept({"id": tweet_id, "text": text, "in_reply_to_tweet_id": in_reply_to, "auth": kind})
        return web.json_response(
            {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}, status=201
        )

    def _user_context(self, request: web.Request) -> web.Response | None:
        """None when the request may read the account's own data, else X's refusal."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("OAuth ") or (auth.startswith("Bearer ") and auth[7:] != self.app_bearer_token):
            return None
        return self._reject(401, problem("Unauthorized", "Unauthorized", 401), "no user context")

    async def users_tweets(self, request: web.Request) -> web.Response:
        refused = self._user_context(request)
        if refused is not None:
            return refused
        if request.match_info["id"] != USER_ID:
            return self._reject(404, problem("Not Found Error", "Could not find user", 404), "no such user")
        try:
            most = int(request.query.get("max_results", "10"))
            since = request.query.get("start_time")
            start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        except ValueError:
            return self._invalid("max_results", "invalid query parameters", "bad query")
        if not 5 <= most <= 100:
            return self._invalid("max_results", "max_results must be between 5 and 100", "bad max_results")
        fields = set(request.query.get("tweet.fields", "").split(","))
        shown = [p for p in reversed(self.posts) if start is None or p["created_at"] >= start][:most]
        data = [self._as_x_shows(post, fields) for post in shown]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        return web.json_response({"data": data, "meta": meta} if data else {"meta": meta})

    @staticmethod
    def _as_x_shows(post: Mapping[str, Any], fields: set[str]) -> dict[str, Any]:
        """A post as X returns it: links rewritten to t.co, ``&<>`` escaped, the fields asked for."""
        text = _URL.sub(
            lambda m: "https://t.co/" + format(abs(hash(m.group(0))) % 10**10, "010d"), post["text"]
        )
        shown: dict[str, Any] = {
            "id": post["id"],
            "text": html.escape(text, quote=False),
            "edit_history_tweet_ids": [post["id"]],
        }
        if "created_at" in fields:
            shown["created_at"] = post["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if "referenced_tweets" in fields and post["in_reply_to_tweet_id"]:
            shown["referenced_tweets"] = [{"type": "replied_to", "id": post["in_reply_to_tweet_id"]}]
        return shown

    def _invalid(self, parameter: str, message: str, reason: str) -> web.Response:
        body = {
            "errors": [{"parameters": {parameter: []}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }
        return self._reject(400, body, reason)


def _oauth_param(header: str, name: str) -> str | None:
    """One parameter of an ``Authorization: OAuth k="v", …`` header, unquoted."""
    for part in header.removeprefix("OAuth ").split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return urllib.parse.unquote(value.strip('"'))
    return None
