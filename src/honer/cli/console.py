"""The rich consoles every command prints through (plain lines when not on a terminal)."""

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
