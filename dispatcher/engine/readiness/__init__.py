"""Channel readiness: probe every configured provider (``probing``), keep what was found and when a
channel's state changed (``state``), and check the services every channel needs (``services``)."""
