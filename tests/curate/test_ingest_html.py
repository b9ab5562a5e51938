"""HTML: exact text of a malformed page, paragraphs, encodings, empty documents."""

from __future__ import annotations

from pathlib import Path

from honer.curate.ingest import IngestOptions, ingest
from honer.curate.ingest.html import HtmlText, sniff_encoding
from tests.curate.helpers import FIXTURES, read_jsonl

PAGE_PARAGRAPHS = [
    "Home | Recipes",
    "Making bread",
    "Flour, water and salt. That's all you need — almost.",
    "Knead for ten minutes",
    "Rest the dough.",
    "Bake at 220 °C\nuntil golden.",  # &nbsp; becomes a plain space
    "Tip one",
    "Tip two",
    "  loaf = bake(dough)\n    print(loaf)",
    "Step | Minutes",
    "Knead | 10",
    "Café au lait",
]


def test_malformed_page_gives_exact_text_and_title(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    tally = ingest([FIXTURES / "page.html"], out, IngestOptions())
    assert (tally.rows_in, tally.kept) == (1, 1)
    assert read_jsonl(out) == [
        {"text": "\n\n".join(PAGE_PARAGRAPHS), "title": "Making Bread & Butter"}
    ]


def test_paragraph_unit_gives_one_row_per_block(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ingest([FIXTURES / "page.html"], out, IngestOptions(unit="paragraph", add_source=True))
    rows = read_jsonl(out)
    assert [r["text"] for r in rows] == PAGE_PARAGRAPHS
    assert rows[2]["source"] == f"{FIXTURES / 'page.html'} paragraph 3"


def test_encoding_from_meta_else_option(tmp_path: Path) -> None:
    latin = tmp_path / "latin.html"
    latin.write_bytes('<meta charset="iso-8859-1"><p>café</p>'.encode("latin-1"))
    plain = tmp_path / "plain.html"
    plain.write_bytes("<p>naïve — ok</p>".encode())
    assert list(HtmlText(latin).paragraphs()) == ["café"]
    assert list(HtmlText(plain).paragraphs()) == ["naïve — ok"]  # libxml2 alone: mojibake
    assert sniff_encoding(b"\xef\xbb\xbf<p>", "latin-1") == "utf-8-sig"
    assert sniff_encoding(b'<meta charset="ISO-8859-1">', "utf-8") == "cp1252"  # as browsers
    assert sniff_encoding(b"<p>no meta</p>", "cp1252") == "cp1252"


def test_document_without_text_is_rejected_as_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<html><head><title>Only a title</title><script>x()</script></head></html>")
    blank = tmp_path / "blank.htm"
    blank.write_text("")
    tally = ingest([empty, blank], tmp_path / "out.jsonl", IngestOptions())
    assert (tally.kept, dict(tally.rejected)) == (0, {"empty": 2})
    assert tally.examples["empty"] == [
        f"{empty}: no text in the document",
        f"{blank}: no text in the document",
    ]


def test_svg_titles_are_not_the_page_title(tmp_path: Path) -> None:
    src = tmp_path / "icons.html"
    src.write_text(
        "<html><head><title>Real</title></head><body><svg><title>icon</title></svg><p>x</p>"
    )
    doc = HtmlText(src)
    assert list(doc.paragraphs()) == ["x"]
    assert doc.title == "Real"


def test_tolerates_missing_head_end_and_unbalanced_tags(tmp_path: Path) -> None:
    src = tmp_path / "sloppy.html"
    src.write_text(
        "<html><head><title>T</title><meta name=x>\n"
        "<p>First <noscript>hidden <b>bold</noscript> shown\n"
        "<svg><g><text>icon</svg></div>After svg\n"
        "<style>p{}</STYLE><P>Upper &amp; case</P><br/>tail"
    )
    doc = HtmlText(src)
    assert list(doc.paragraphs()) == ["First shown", "After svg", "Upper & case", "tail"]
    assert doc.title == "T"
