"""Celery on Redis: the app, its queues and routing, and thin tasks that call dispatcher functions."""
