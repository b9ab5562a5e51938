"""Plain text and Markdown: documents, paragraphs, front matter, fenced code."""

from __future__ import annotations

from pathlib import Path

from honer.curate.ingest import IngestOptions, ingest
from tests.curate.helpers import FIXTURES, read_jsonl

GUIDE = FIXTURES / "guide.md"
CODE = "```python\ndef f():\n\n    return 1\n```"


def test_text_document_and_paragraphs(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ingest([FIXTURES / "notes.txt"], out, IngestOptions())
    assert read_jsonl(out) == [{"text": "First paragraph\nstill first.\n\nSecond paragraph."}]
    ingest([FIXTURES / "notes.txt"], out, IngestOptions(unit="paragraph", add_source=True))
    notes = FIXTURES / "notes.txt"
    assert read_jsonl(out) == [
        {"text": "First paragraph\nstill first.", "source": f"{notes}:1"},
        {"text": "Second paragraph.", "source": f"{notes}:5"},
    ]


def test_markdown_drops_front_matter_and_keeps_code_blocks_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ingest([GUIDE], out, IngestOptions(unit="paragraph"))
    assert [r["text"] for r in read_jsonl(out)] == [
        "# Guide",
        "Some *markdown* text.",
        CODE,
        "- item one\n- item two",
    ]
    ingest([GUIDE], out, IngestOptions())
    assert read_jsonl(out) == [
        {"text": f"# Guide\n\nSome *markdown* text.\n\n{CODE}\n\n- item one\n- item two"}
    ]


def test_a_rule_that_never_closes_is_not_front_matter(tmp_path: Path) -> None:
    src = tmp_path / "rule.md"
    src.write_text("---\nJust text after a rule.\n")
    out = tmp_path / "out.jsonl"
    ingest([src], out, IngestOptions())
    assert read_jsonl(out) == [{"text": "---\nJust text after a rule."}]


def test_bad_bytes_reject_the_paragraph_or_document(tmp_path: Path) -> None:
    src = tmp_path / "bytes.txt"
    src.write_bytes(b"good one\n\nbad \xfe here\n\ngood two\n")
    out = tmp_path / "out.jsonl"
    tally = ingest([src], out, IngestOptions(unit="paragraph"))
    assert [r["text"] for r in read_jsonl(out)] == ["good one", "good two"]
    assert tally.examples["malformed"] == [
        f"{src}:3: line 3: not valid utf-8 (byte 0xfe at column 5)"
    ]
    tally = ingest([src], out, IngestOptions())
    assert (tally.kept, tally.examples["malformed"]) == (
        0,
        [f"{src}: line 3: not valid utf-8 (byte 0xfe at column 5)"],
    )
    latin = ingest([src], out, IngestOptions(encoding="latin-1"))
    assert latin.kept == 1
