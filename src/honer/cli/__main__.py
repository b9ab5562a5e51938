"""`python -m honer.cli` (e.g. `accelerate launch -m honer.cli train CONFIG`) runs the CLI."""

from honer.cli.main import run

run()
