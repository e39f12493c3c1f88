"""The `empq` command line (typer + rich); the entry point is `empq.cli.main:main`."""
