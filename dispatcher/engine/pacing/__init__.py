"""How fast a provider may be called: the per-account rate limit and the per-provider circuit breaker."""
