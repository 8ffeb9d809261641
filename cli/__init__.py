"""The ``cytokit`` command line: thin Typer commands over importable functions."""
