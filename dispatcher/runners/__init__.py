"""What runs the work: the embedded runner in this process, or the Celery queue on Redis."""
