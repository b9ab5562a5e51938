"""The rich consoles every command prints through (plain lines when not on a terminal).

`soft_wrap` keeps messages on one line when piped: paths and key paths stay greppable. When the
output is not a terminal, rich would lay tables out for 80 columns and cut their cells; piped
output gets `PIPED_WIDTH` columns instead (or `COLUMNS`, when set).
"""

import os
import sys

from rich.console import Console

PIPED_WIDTH = 200


def _width(stream: object) -> int | None:
    """None (rich measures the terminal) on a TTY; otherwise a width wide enough for tables."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return None
    return int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else PIPED_WIDTH


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))
