"""The rich consoles every command prints through (plain lines when not on a terminal).

`soft_wrap` keeps messages on one line when piped: paths and key paths stay greppable.
"""

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
