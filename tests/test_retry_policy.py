"""The retry schedule: seconds-then-minutes for provider APIs, Svix's for customers' webhook endpoints,
per channel when configured, never before Retry-After."""

from __future__ import annotations

import pytest

from channels.base import ChannelKind
from dispatcher.config.settings import ChannelSettings, RetrySettings, Settings
from dispatcher.engine.retry import Action, RetryPolicy


def test_customers_webhook_endpoints_follow_svixs_schedule_then_the_delivery_fails() -> None:
    policy = RetryPolicy.for_channel(Settings(), ChannelKind.WEBHOOK)
    exact = RetryPolicy(policy.schedule, jitter=0)
    waits = [exact.after_transient(attempts).delay for attempts in range(1, 9)]
    assert waits == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert exact.after_transient(9).action is Action.GIVE_UP


@pytest.mark.parametrize(
    "channel",
    [ChannelKind.EMAIL, ChannelKind.SMS, ChannelKind.SOCIAL, ChannelKind.CHAT, ChannelKind.STATUSPAGE],
)
def test_provider_apis_retry_within_seconds_then_every_minute_within_the_outage(channel: ChannelKind) -> None:
    exact = RetryPolicy(RetryPolicy.for_channel(Settings(), channel).schedule, jitter=0)
    waits = [exact.after_transient(attempts).delay for attempts in range(1, exact.max_attempts)]
    tried_at = [sum(waits[:k]) for k in range(len(waits) + 1)]
    assert waits[:3] == [1, 2, 5], "seconds first: a 503 during an outage is usually gone by then"
    assert max(waits[:12]) == 60, "then every minute, never the 5 min / 30 min of a webhook schedule"
    assert sum(t <= 60 for t in tried_at) >= 6 and sum(t <= 300 for t in tried_at) >= 10
    assert max(waits) <= 300 and sum(waits) <= 30 * 60, "capped: a dead letter (or failover) within 30 min"
    assert exact.after_transient(exact.max_attempts).action is Action.GIVE_UP


def test_one_schedule_may_be_set_for_every_channel() -> None:
    settings = Settings(retry=RetrySettings(schedule=[3, 4]))
    assert RetryPolicy.for_channel(settings, ChannelKind.WEBHOOK).schedule == [3, 4]
    assert RetryPolicy.for_channel(settings, ChannelKind.SMS).schedule == [3, 4]


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
    assert RetryPolicy.for_channel(settings, ChannelKind.WEBHOOK).max_attempts == 9
