"""Settings (``tocsin.toml`` and the environment), what is derived from them (the shown configuration,
the starter file, signing keys) and where packaged files are."""
