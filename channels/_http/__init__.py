"""HTTP plumbing shared by adapters: the libcurl pool, Retry-After hints and the SSRF guard. Not part of
the plugin API (``channels.base`` is)."""
