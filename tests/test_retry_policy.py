"""The retry schedule: Svix's by default, per channel when configured, never before Retry-After."""

from __future__ import annotations

import pytest

from channels.base import ChannelKind
from dispatcher.config.settings import ChannelSettings, Settings
from dispatcher.engine.retry import Action, RetryPolicy


def test_the_default_schedule_is_svixs_then_the_delivery_fails() -> None:
    policy = RetryPolicy.for_channel(Settings(), ChannelKind.EMAIL)
    exact = RetryPolicy(policy.schedule, jitter=0)
    waits = [exact.after_transient(attempts).delay for attempts in range(1, 9)]
    assert waits == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert exact.after_transient(9).action is Action.GIVE_UP


def test_jitter_spreads_waits_by_at_most_the_fraction() -> None:
    low = RetryPolicy([100], jitter=0.1, rng=lambda: 0.0)
    high = RetryPolicy([100], jitter=0.1, rng=lambda: 1.0)
    assert low.backoff(1) == pytest.approx(90)
    assert high.backoff(1) == pytest.approx(110)


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy([0, 5], jitter=0)
    assert policy.backoff(1, retry_after=30) == 30
    assert policy.backoff(2, retry_after=1) == 5


def test_a_channel_may_have_its_own_schedule() -> None:
    settings = Settings(channels={ChannelKind.SMS: ChannelSettings(retry_schedule=[1, 2])})
    sms = RetryPolicy.for_channel(settings, ChannelKind.SMS)
    assert sms.schedule == [1, 2] and sms.max_attempts == 3
    assert RetryPolicy.for_channel(settings, ChannelKind.EMAIL).max_attempts == 9
