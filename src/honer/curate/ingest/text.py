"""Plain text and Markdown as paragraphs (runs of lines between blank lines), streamed.

Lines are kept as written, only their endings normalised to "\\n", so code, lists and poems keep
their shape. Markdown adds two rules: a fenced code block (``` or ~~~) is never split at its
blank lines, and YAML front matter (a first block between `---` lines) is dropped, because it
is page metadata rather than text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from honer.data.readers.lines import Line, Meter, read_lines

MAX_FRONT_MATTER_LINES = 200
_FENCES = ("```", "~~~")


@dataclass(frozen=True, slots=True)
class Paragraph:
    first_line: int
    text: str
    problem: str | None = None  # e.g. an undecodable line inside it


def _without_front_matter(lines: Iterator[Line]) -> Iterator[Line]:
    first = next(lines, None)
    if first is None:
        return
    if first.text.strip() != "---":
        yield first
        yield from lines
        return
    held = [first]
    for line in lines:
        held.append(line)
        if line.text.strip() in ("---", "..."):
            yield from lines  # front matter closed: drop it
            return
        if len(held) > MAX_FRONT_MATTER_LINES:
            break  # a rule (---) that opens ordinary text, not front matter
    yield from held
    yield from lines


def text_paragraphs(
    path: Path, markdown: bool, encoding: str = "utf-8", meter: Meter | None = None
) -> Iterator[Paragraph]:
    """The file's paragraphs in order, with the line each starts on."""
    lines: Iterator[Line] = read_lines(path, encoding, meter)
    if markdown:
        lines = _without_front_matter(lines)
    held: list[Line] = []
    fence: str | None = None
    for line in lines:
        stripped = line.text.strip()
        if markdown and stripped.startswith(_FENCES):
            opener = stripped[:3]
            fence = None if fence == opener else (fence or opener)
        if not stripped and fence is None:
            if held:
                yield _paragraph(held)
                held = []
            continue
        held.append(line)
    if held:
        yield _paragraph(held)


def _paragraph(lines: list[Line]) -> Paragraph:
    text = "\n".join(line.text.rstrip("\r\n") for line in lines)
    bad = next((line for line in lines if line.problem), None)
    problem = f"line {bad.number}: {bad.problem}" if bad else None
    return Paragraph(lines[0].number, text, problem)
