"""The ``rramctl`` command line (Typer)."""
