"""X (Twitter) adapter: one post per update through API v2 ``POST /2/tweets`` with the official ``tweepy``.

X is a broadcast channel: the "recipient" is the configured account, and its address is only a label.
Every call makes exactly one post, whatever the number of recipients (the dispatcher sends one). A
``Message.reply_to_id`` (the id of the previous post of the incident) makes the post a reply, so an
incident's updates read as a thread; the new post's id comes back as ``provider_message_id``.

Posting needs user context: OAuth 1.0a with the app's consumer key/secret and the account's access
token/secret. tweepy always builds ``https://api.twitter.com/...`` URLs; a ``requests`` transport adapter
mounted on that prefix sends them to ``base_url`` instead (an emulator in tests) and applies the timeout
(tweepy passes none).

Error mapping (tweepy never sleeps: ``wait_on_rate_limit=False``; retry policy is the dispatcher's):

* 403/400 "reply to a Tweet that is deleted or not visible" -> posted again without the reply (once);
* 403 "duplicate content": X refuses a text equal to a recent post of the account. After an attempt
  whose answer was lost (a timeout, a dropped connection, a worker killed just after X answered), it
  means that attempt did post. The adapter then looks the post up among the account's recent posts
  (``GET /2/users/me``, then ``GET /2/users/:id/tweets``): the same text (links and HTML entities
  aside, as X rewrites them), posted no earlier than the update was published, in reply to the same
  post when there is one. Found -> ``sent`` with that post's id (the thread goes on from it); not found
  -> ``PermanentError`` (the text was posted before this update: nothing of ours to resend). A failed
  look-up is transient: the next attempt meets the same 403 and looks again.
* other 403 (app-only auth, app not permitted to post, account locked), 401 -> ``ProviderUnavailable``;
* 400 -> ``PermanentError`` with X's messages; 404 -> ``ProviderUnavailable`` (is ``base_url`` right?);
* 429 -> ``TransientError`` with ``retry_after`` = ``x-rate-limit-reset`` - now (at least 1 second);
* 5xx, timeouts, connection errors -> ``TransientError``.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from requests.adapters import HTTPAdapter

from channels._http.hints import base_url
from channels.base import (
    AdapterBase,
    Capabilities,
    ChannelError,
    ChannelKind,
    LengthRule,
    Message,
    PermanentError,
    ProviderUnavailable,
    Recipient,
    Result,
    TransientError,
)
from channels.readiness import Readiness
from channels.text.x_text import MAX_WEIGHTED_LENGTH, shorten_keeping_last_link

X_API = "https://api.twitter.com"
DUPLICATE_CONTENT = "duplicate content"
LOOKUP_POSTS = 20
"""Recent posts of the account read when looking for one we may have made (X's minimum page is 5)."""
CLOCK_SKEW = timedelta(minutes=2)
"""A found post may carry a creation time this much before the update's publication (clocks differ)."""
_LINK = re.compile(r"https?://\S+")


class XOptions(BaseModel):
    """Settings of the X adapter: OAuth 1.0a user-context credentials of the posting account."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    base_url: str = X_API
    """API host; an emulator URL in tests."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for X (connect, and each socket read)."""

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return base_url(value)

    @field_validator("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class _RedirectingAdapter(HTTPAdapter):
    """Mounted on ``https://api.twitter.com``: sends tweepy's requests to ``base_url`` with a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.base_url = base_url
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        if url.startswith(X_API) and self.base_url != X_API:
            request.url = self.base_url + url[len(X_API) :]
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class XAdapter(AdapterBase):
    """Posts to X. See the module docstring."""

    name: ClassVar[str] = "x"
    capabilities: ClassVar[Capabilities] = Capabilities(
        kinds=frozenset({ChannelKind.SOCIAL}),
        max_batch=1,
        broadcast=True,
        max_text_length=MAX_WEIGHTED_LENGTH,
        length_rule=LengthRule.X_WEIGHTED,
    )
    Options: ClassVar[type[BaseModel]] = XOptions

    def __init__(self, options: XOptions) -> None:
        self.options = options
        self._client = tweepy.Client(
            consumer_key=options.consumer_key.get_secret_value(),
            consumer_secret=options.consumer_secret.get_secret_value(),
            access_token=options.access_token.get_secret_value(),
            access_token_secret=options.access_token_secret.get_secret_value(),
            return_type=dict,
            wait_on_rate_limit=False,
        )
        self._client.session.mount(X_API, _RedirectingAdapter(options.base_url, options.timeout))

    def close(self) -> None:
        self._client.session.close()

    def send(self, message: Message, recipients: Sequence[Recipient]) -> list[Result]:
        """One post for the account; every recipient (normally exactly one) gets its result."""
        if message.kind is not ChannelKind.SOCIAL:
            raise PermanentError(f"x carries social posts, not {message.kind}")
        if not recipients:
            return []
        post_id = self.post(message.text, message.reply_to_id, since=message.published_at)
        return [Result.sent(r.delivery_id, post_id) for r in recipients]

    def post(self, text: str, reply_to_id: str | None = None, since: datetime | None = None) -> str | None:
        """Create one post (shortened to 280 weighted characters if needed); returns its id.

        When X refuses the reply because the post it answers is gone (deleted, or hidden from the
        account), the update is posted on its own instead: a broken thread must not block the updates.
        When X refuses it as duplicate content, the post an earlier attempt made is looked up (created
        no earlier than ``since``) and its id returned.
        """
        text = shorten_keeping_last_link(text, MAX_WEIGHTED_LENGTH)
        try:
            try:
                return self._create(text, reply_to_id)
            except _ParentGone:
                reply_to_id = None
                return self._create(text, None)
        except _Duplicate as exc:
            # Without the update's publication time, an older post with this text cannot be told from
            # ours: then it stays a refusal.
            found = None if since is None else self.find_own_post(text, reply_to_id, since)
            if found is None:
                raise PermanentError(str(exc)) from None
            return found

    def find_own_post(self, text: str, reply_to_id: str | None, since: datetime) -> str | None:
        """The id of the account's recent post with this text (made by an attempt whose answer was
        lost), or None. X's failures here are transient: the next attempt looks again."""
        try:
            me = self._client.get_me(user_auth=True)
            user_id = me["data"]["id"]
            params: dict[str, Any] = {
                "max_results": LOOKUP_POSTS,
                "tweet_fields": ["created_at", "referenced_tweets"],
            }
            params["start_time"] = (since - CLOCK_SKEW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            recent = self._client.get_users_tweets(user_id, user_auth=True, **params)
        except tweepy.HTTPException as exc:
            mapped = _map_http_error(exc)
            raise TransientError(f"looking up a post after duplicate content: {mapped.message}") from None
        except (requests.RequestException, KeyError, TypeError) as exc:
            raise TransientError(f"x: looking up a post after duplicate content: {exc}") from None
        wanted = _comparable(text)
        for post in recent.get("data") or []:
            if _comparable(str(post.get("text", ""))) != wanted:
                continue
            if reply_to_id is not None and _replied_to(post) not in (None, reply_to_id):
                continue
            return str(post["id"])
        return None

    def _create(self, text: str, reply_to_id: str | None) -> str | None:
        try:
            answer = self._client.create_tweet(text=text, in_reply_to_tweet_id=reply_to_id, user_auth=True)
        except tweepy.HTTPException as exc:
            if reply_to_id is not None and _parent_gone(exc):
                raise _ParentGone() from None
            mapped = _map_http_error(exc)
            if isinstance(mapped, PermanentError) and DUPLICATE_CONTENT in mapped.message:
                raise _Duplicate(mapped.message) from None
            raise mapped from None
        except requests.Timeout as exc:
            raise TransientError(f"x: timed out: {exc}") from None
        except requests.RequestException as exc:
            raise TransientError(f"x: {type(exc).__name__}: {exc}") from None
        data = answer.get("data") if isinstance(answer, Mapping) else None
        post_id = data.get("id") if isinstance(data, Mapping) else None
        return None if post_id is None else str(post_id)

    def probe(self) -> Readiness:
        """``GET /2/users/me`` with the posting account's user-context credentials: ready when X names
        the account and the token is not limited to reading (``x-access-level``)."""
        try:
            response = self._client.request("GET", "/2/users/me", user_auth=True)
        except tweepy.HTTPException as exc:
            status = int(getattr(exc.response, "status_code", 0))
            detail = "; ".join(str(m) for m in (exc.api_messages or [])) or str(
                getattr(exc.response, "reason", "")
            )
            if status == 401:
                return Readiness.not_ready(f"X refused the access token (401: {detail}): revoked or wrong")
            if status == 403:
                return Readiness.not_ready(f"X refused the app (403: {detail}): its plan or permissions")
            return Readiness.not_ready(f"X answered {status}: {detail}")
        except requests.RequestException as exc:
            return Readiness.not_ready(f"cannot reach X at {self.options.base_url}: {type(exc).__name__}")
        try:
            user = response.json().get("data") or {}
        except (ValueError, AttributeError):
            return Readiness.not_ready("X's /2/users/me answer was not the expected JSON")
        level = response.headers.get("x-access-level", "")
        if level and "write" not in level:
            return Readiness.not_ready(
                f"the access token of @{user.get('username', '?')} may only read (x-access-level: {level}): "
                "give the app Read and Write permission and make a new access token"
            )
        return Readiness.ok(f"posting as @{user.get('username', '?')}")


class _ParentGone(Exception):
    """X refused a reply because the post it answers cannot be replied to any more."""


class _Duplicate(Exception):
    """X refused the text as a duplicate of a recent post of the account."""


def _comparable(text: str) -> str:
    """A post's text as X gives it back compared with ours: links (X rewrites them to t.co), HTML
    entities (X escapes &, < and >) and runs of white space set aside."""
    return " ".join(_LINK.sub("<link>", html.unescape(text)).split())


def _replied_to(post: Mapping[str, Any]) -> str | None:
    for ref in post.get("referenced_tweets") or []:
        if isinstance(ref, Mapping) and ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _parent_gone(exc: Any) -> bool:
    """X answers 403 (or 400) "You attempted to reply to a Tweet that is deleted or not visible to you."
    when the thread's previous post was deleted."""
    status = int(getattr(exc.response, "status_code", 0))
    text = " ".join(str(m) for m in (exc.api_messages or [])).lower()
    return status in (400, 403) and "reply" in text and ("deleted" in text or "not visible" in text)


def _map_http_error(exc: Any) -> ChannelError:
    response = exc.response
    status = int(getattr(response, "status_code", 0))
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    messages = [str(m) for m in (exc.api_messages or [])]
    detail = "; ".join(messages) or str(getattr(response, "reason", "") or "")
    text = f"x {status}" + (f": {detail}" if detail else "")
    if status == 403 and any(DUPLICATE_CONTENT in m.lower() for m in messages):
        return PermanentError(
            f"x 403: {DUPLICATE_CONTENT}: {detail} (no post of ours with this text since the update "
            "was published: it was posted before)"
        )
    if status == 403:
        return ProviderUnavailable(f"{text} (posting needs OAuth 1.0a user context with write access)")
    if status == 401:
        return ProviderUnavailable(f"{text} (check the consumer key/secret and access token/secret)")
    if status == 429:
        return TransientError(text, retry_after=_retry_after(headers))
    if status >= 500:
        return TransientError(text, retry_after=_seconds(headers.get("Retry-After")))
    if status == 404:
        return ProviderUnavailable(f"{text} (is base_url right?)")
    if status == 402:
        return ProviderUnavailable(f"{text} (the X app has no posting credits)")
    return PermanentError(text)


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds until ``x-rate-limit-reset`` (epoch seconds), else Retry-After; never less than 1."""
    reset = headers.get("x-rate-limit-reset")
    wait: float | None = None
    if reset:
        try:
            wait = float(reset) - time.time()
        except ValueError:
            wait = None
    if wait is None:
        wait = _seconds(headers.get("Retry-After"))
    return max(1.0, wait if wait is not None else 1.0)


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
