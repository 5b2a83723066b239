"""Tocsin's HTTP interface (FastAPI): for now, the endpoints providers call back with events."""
