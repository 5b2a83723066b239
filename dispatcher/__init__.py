"""Tocsin's core: models, settings, store, publish, fan-out, delivery, rendering. Knows nothing of Celery."""
