"""Retry-After in both of its forms, and rate-limit resets in epoch seconds."""

from __future__ import annotations

import pytest

from channels._http.hints import base_url, retry_after, seconds_until_epoch

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after({"Retry-After": "7"}) == 7
    assert retry_after({"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}, now=NOW) == 30
    assert retry_after({"Retry-After": "Tue, 14 Nov 2023 22:13:00 GMT"}, now=NOW) == 0, "a past date: now"
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_reset_in_epoch_seconds() -> None:
    assert seconds_until_epoch(str(NOW + 12), now=NOW) == 12
    assert seconds_until_epoch("x", now=NOW) is None


def test_base_urls_are_http_without_a_trailing_slash() -> None:
    assert base_url("https://api.eu.sendgrid.com/") == "https://api.eu.sendgrid.com"
    with pytest.raises(ValueError, match="http"):
        base_url("ftp://example.com")
