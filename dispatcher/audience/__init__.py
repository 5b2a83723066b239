"""Who is told: subscribers and their contact points, CSV imports, consent (double opt-in,
unsubscribe) and opt-outs reported by providers."""
