"""Provider adapters: one module per provider, one contract (see ``channels.base``).

Nothing here imports ``dispatcher`` or ``workers``: adapters get rendered messages and addresses and
return per-address results, or raise one of the three typed errors.
"""
