"""Tocsin's web interfaces (FastAPI): the HTTP API, the console, monitoring ingest, metrics, consent pages and
provider callbacks."""
