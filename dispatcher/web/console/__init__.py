"""The web console: incidents, composing with a live preview, delivery progress, subscribers.

Server-rendered (Jinja2) with htmx for the live parts; htmx is vendored in ``static/`` so the console
works when the internet (or a CDN) is down. ``tocsin api`` and ``tocsin console`` serve it at ``/console``.
"""

from __future__ import annotations

from dispatcher.web.console.routes import router

__all__ = ["router"]
