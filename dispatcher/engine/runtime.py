"""Everything a dispatcher function needs, built once per process from the settings."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine

from channels import registry
from channels.base import Adapter, Capabilities, ChannelKind, Message
from dispatcher.config.providers import provider_problems
from dispatcher.config.settings import Settings
from dispatcher.config.strict import summarise
from dispatcher.domain.clock import Clock, SystemClock
from dispatcher.domain.errors import ConfigurationError, NotInitialised
from dispatcher.domain.policy import LoadedPolicy, load_policy
from dispatcher.engine.pacing.circuit_breaker import CircuitBreaker
from dispatcher.engine.pacing.pause import LocalPauses, Pauses, RedisPauses
from dispatcher.engine.pacing.rate_limit import BucketSpec, LocalRateLimiter, RateLimiter, RedisRateLimiter
from dispatcher.rendering.renderer import Renderer
from dispatcher.store.engine import get_engine, is_initialised


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    renderer: Renderer
    clock: Clock = field(default_factory=SystemClock)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    limiter: RateLimiter = field(default_factory=LocalRateLimiter)
    pauses: Pauses = field(default_factory=LocalPauses)
    """Provider accounts told to wait (a 429's Retry-After), shared like the rate limits."""
    render_cache: dict[tuple[int, ChannelKind, str, tuple[int, ...]], Message] = field(default_factory=dict)
    _adapters: dict[str, Adapter] = field(default_factory=dict)
    injected: dict[str, Adapter] = field(default_factory=dict)
    """Adapter objects handed in by name (``build_runtime(adapters=…)``): used instead of building the
    provider from its options. The seam for engine tests (``channels.memory.MemoryAdapter``)."""
    _policy: LoadedPolicy | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def adapter(self, provider: str) -> Adapter:
        """The adapter for ``provider``: the one handed in, else created on first use and kept (it may
        pool connections)."""
        if provider in self.injected:
            return self.injected[provider]
        with self._lock:
            if provider not in self._adapters:
                try:
                    self._adapters[provider] = registry.create(
                        provider, self.settings.provider_options(provider)
                    )
                except (registry.UnknownProvider, registry.InvalidProviderOptions) as exc:
                    raise ConfigurationError(str(exc)) from None
            return self._adapters[provider]

    def providers_for(self, channel: ChannelKind) -> list[str]:
        return list(self.settings.channels[channel].providers)

    def batch_size(self, channel: ChannelKind) -> int:
        """The configured batch size, never above what the primary provider takes in one call.

        A fallback with smaller calls (SMTP) gets the batch in several calls."""
        configured = self.settings.channels[channel].batch_size
        ceiling = self.capabilities(self.providers_for(channel)[0]).max_batch
        return min(configured, ceiling) if configured else ceiling

    def broadcast_targets(self, channel: ChannelKind) -> list[str]:
        """Where a broadcast channel posts: the social account, or each configured chat room by name."""
        if channel is ChannelKind.CHAT:
            options = self.settings.providers.get(self.providers_for(channel)[0], {})
            rooms = options.get("rooms")
            return sorted(rooms) if rooms else ["default"]
        if channel is ChannelKind.STATUSPAGE:
            # One ledger row per destination the site is published to.
            options = self.settings.providers.get(self.providers_for(channel)[0], {})
            pairs = (
                ("directory", "directory"),
                ("s3", "s3_bucket"),
                ("internal-directory", "internal_directory"),
                ("internal-s3", "internal_s3_bucket"),
            )
            targets = [t for t, key in pairs if options.get(key)]
            return targets or ["site"]
        return ["public"]

    def rate_spec(self, provider: str) -> BucketSpec | None:
        """The provider's rate limit: configured, else the adapter's declared default, else none."""
        configured = self.settings.rate_limits.get(provider)
        if configured is not None:
            return BucketSpec(configured.per_second, configured.burst)
        default = self.capabilities(provider).rate_limit_per_second
        return None if default is None else BucketSpec(default, 1)

    def capabilities(self, provider: str) -> Capabilities:
        """What ``provider`` can carry, without building it (an injected adapter says for itself)."""
        if provider in self.injected:
            return self.injected[provider].capabilities
        return registry.adapter_class(provider).capabilities

    @property
    def policy(self) -> LoadedPolicy:
        """The severity policy and its version, read from ``settings.policy_file`` once per runtime."""
        if self._policy is None:
            self._policy = load_policy(self.settings.policy_file)
        return self._policy

    def close(self) -> None:
        with self._lock:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()


def build_runtime(
    settings: Settings | None = None,
    clock: Clock | None = None,
    require_schema: bool = True,
    adapters: Mapping[str, Adapter] | None = None,
) -> Runtime:
    """The runtime for ``settings``; ``adapters`` replaces providers by name with objects of your own."""
    settings = settings or Settings()
    problems = provider_problems(settings, skip=frozenset(adapters or {}))
    if problems:  # refuse now, not when the first update meets the provider
        raise ConfigurationError(summarise(problems))
    engine = get_engine(settings.database_url)
    if require_schema and not is_initialised(settings.database_url):
        raise NotInitialised("the database has no Tocsin schema yet: run `tocsin init` first")
    limiter, pauses = _pacing(settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        renderer=Renderer(settings.templates_dir),
        clock=clock or SystemClock(),
        breaker=CircuitBreaker(settings.circuit_breaker.failures, settings.circuit_breaker.reset_after),
        limiter=limiter,
        injected=dict(adapters or {}),
    )
    # In-process pauses follow the runtime's own clock (whatever clock it is given later).
    runtime.pauses = pauses or LocalPauses(lambda: runtime.clock.now().timestamp())
    return runtime


def _pacing(settings: Settings) -> tuple[RateLimiter, Pauses | None]:
    """Shared by every worker process through Redis when there is one; in-process otherwise (pauses:
    None, made by the caller on the runtime's clock)."""
    if settings.redis_url is None:
        return LocalRateLimiter(), None
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    return RedisRateLimiter(client), RedisPauses(client)
