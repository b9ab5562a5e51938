"""`python -m honer` runs the CLI."""

from honer.cli.main import run

run()
