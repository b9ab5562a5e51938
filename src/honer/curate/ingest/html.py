"""Text of HTML documents: scripts and styles dropped, block structure kept as paragraphs.

The document is decoded and fed in 1 MiB chunks to the standard library's streaming tokenizer
(`html.parser`, BeautifulSoup's "html.parser" backend), which keeps only the not-yet-parsed
remainder, so memory stays flat however large the page. (lxml/libxml2 was measured first: its
push parser keeps the whole input, 543 MB of RSS for a 500 MB page.) No tree is built; the
rules work on start/end events and tolerate what real pages do (unclosed `<p>`/`<li>`, stray end
tags, a missing `</head>`):

- a block element (p, div, li, h1–h6, tr, …) starts and ends a paragraph; paragraphs are joined
  with one blank line; `<br>` is a line break inside a paragraph;
- runs of whitespace (`&nbsp;` included) become one space, except inside `<pre>`, kept verbatim;
- table cells of one row are joined with " | ";
- script, style, noscript, template and svg are dropped (an end tag closes the innermost open
  one of its name, like a browser); the first `<title>` outside them becomes the `title`.

The encoding comes from a byte-order mark or a `<meta charset>` in the first 4 KiB, else the
`--encoding` option; Latin-1 and ASCII labels mean windows-1252, as browsers read them.
Undecodable bytes become U+FFFD, which `honer data clean` rejects.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from honer.data.readers.lines import Meter, open_bytes

CHUNK_BYTES = 1 << 20
BLOCK_TAGS = frozenset(
    "address article aside blockquote body br caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section "
    "summary table tbody tfoot thead tr ul".split()
)
CELL_TAGS = frozenset({"td", "th"})
DROPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_SPACES = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_AS_WINDOWS_1252 = frozenset({"latin-1", "iso8859-1", "ascii"})


def sniff_encoding(head: bytes, default: str) -> str:
    """The document's encoding: byte-order mark, then `<meta charset>`, then `default`."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    match = _META_CHARSET.search(head)
    if match:
        try:
            name = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            return default
        return "cp1252" if name in _AS_WINDOWS_1252 else name
    return default


class _TextParser(HTMLParser):
    """Tokenizer events → finished paragraphs (collected in `done` until the caller takes them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.done: list[str] = []
        self.title: list[str] = []
        self._parts: list[str] = []
        self._dropped: list[str] = []  # open dropped elements, innermost last
        self._pre = 0  # depth inside <pre>
        self._in_title = False
        self._title_seen = False
        self._row_has_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_TAGS:
            self._dropped.append(tag)
        elif self._dropped:
            return
        elif tag == "title":
            self._in_title = not self._title_seen
            self._title_seen = True
        elif tag == "br":
            self._parts.append("\n")
        elif tag in CELL_TAGS:
            if self._row_has_cell:
                self._parts.append(" | ")
            self._row_has_cell = True
        elif tag in BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._pre += 1
            if tag == "tr":
                self._row_has_cell = False

    def handle_endtag(self, tag: str) -> None:
        if tag in self._dropped:
            while self._dropped.pop() != tag:
                pass
        elif self._dropped:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in BLOCK_TAGS and tag != "br":
            self._flush()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._in_title:
            self.title.append(data)
        else:
            self._parts.append(data if self._pre else _SPACES.sub(" ", data))

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts = []
        if not self._pre:
            text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
        text = text.strip("\n")
        if text.strip():
            self.done.append(text)


class HtmlText:
    """One HTML file's paragraphs, streamed; `title` is known once `paragraphs()` is exhausted."""

    def __init__(self, path: Path, default_encoding: str = "utf-8", meter: Meter | None = None):
        self.path = path
        self.default_encoding = default_encoding
        self.meter = meter
        self.title = ""

    def paragraphs(self) -> Iterator[str]:
        parser = _TextParser()
        with open_bytes(self.path, self.meter) as f:
            chunk = f.read(CHUNK_BYTES)
            encoding = sniff_encoding(chunk[:4096], self.default_encoding)
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
            while chunk:
                parser.feed(decoder.decode(chunk))
                yield from _take(parser)
                chunk = f.read(CHUNK_BYTES)
            parser.feed(decoder.decode(b"", final=True))
            parser.close()
            yield from _take(parser)
        self.title = _SPACES.sub(" ", "".join(parser.title)).strip()


def _take(parser: _TextParser) -> Iterator[str]:
    done, parser.done = parser.done, []
    yield from done
