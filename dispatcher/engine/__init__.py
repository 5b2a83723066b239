"""The delivery machine that owns the ledger: the runtime, fan-out, claims, delivery through the
provider chain, the retry-and-failover decision, the ledger writes, re-drive, and the messages it sends.

Knows nothing of Celery or HTTP: whoever runs the work implements ``engine.task_queue.TaskQueue``."""
