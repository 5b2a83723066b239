"""The ``tocsin`` command line (typer + rich)."""
