"""CSV/TSV/Parquet/JSON sources: broken quotes recovered line by line, column mapping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from honer.curate.ingest import IngestOptions, ingest
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import DataError
from tests.curate.helpers import FIXTURES, leftovers, read_jsonl

CSV = FIXTURES / "qa.csv"


def test_csv_with_broken_quotes_keeps_every_good_row(tmp_path: Path) -> None:
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    tally = ingest([CSV], out, IngestOptions(), rejects)
    assert read_jsonl(out) == [
        {"instruction": "Say hi", "output": "Hi!", "source": "web"},
        {"instruction": "Two\nlines", "output": "Both\n\nkept", "source": "book"},
        {"instruction": "What is 2+2?", "output": "4", "source": "quiz"},
        {"instruction": 'Quote "inside"', "output": "fine", "source": "quiz"},
        {"instruction": "", "output": "empty instruction", "source": "quiz"},
    ]
    assert (tally.rows_in, tally.kept, dict(tally.rejected)) == (8, 5, {"malformed": 3})
    assert read_jsonl(rejects) == [
        {
            "source": f"{CSV}:7",
            "reason": "malformed",
            "detail": 'stray quote inside a quoted field (write a quote inside quotes as "")',
        },
        {"source": f"{CSV}:8", "reason": "malformed", "detail": "4 cells, the header has 3"},
        {
            "source": f"{CSV}:9",
            "reason": "malformed",
            "detail": "unterminated quoted field (the quote opened here breaks on line 11)",
        },
    ]


def test_quote_open_until_end_of_file_costs_one_row(tmp_path: Path) -> None:
    src = tmp_path / "tail.csv"
    src.write_text('a,b\n1,2\n"open,3\n4,5\n6,7\n')
    records = list(iter_row_file(src))
    assert [(r.where.rsplit(":", 1)[1], r.row, r.problem) for r in records] == [
        ("2", {"a": "1", "b": "2"}, None),
        ("3", None, "unterminated quoted field (a quote opened on this line never closes)"),
        ("4", {"a": "4", "b": "5"}, None),
        ("5", {"a": "6", "b": "7"}, None),
    ]


def test_undecodable_bytes_reject_only_their_record(tmp_path: Path) -> None:
    src = tmp_path / "bytes.csv"
    src.write_bytes(b"a,b\n1,ok\n2,bad \xff\n3,ok\n")
    records = list(iter_row_file(src))
    assert [r.row for r in records] == [{"a": "1", "b": "ok"}, None, {"a": "3", "b": "ok"}]
    assert records[1].problem == "line 3: not valid utf-8 (byte 0xff at column 7)"


def test_tsv_with_templates(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    options = IngestOptions(templates=("instruction=Q: {question}", "output={answer}"))
    ingest([FIXTURES / "qa.tsv"], out, options)
    assert read_jsonl(out) == [
        {"instruction": "Q: Capital of France?", "output": "Paris"},
        {"instruction": 'Q: A "quoted" word', "output": "yes"},
    ]


def test_parquet_in_batches_with_columns_and_templates(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "t.parquet"
    n = 2500  # more than one record batch
    table = pa.table({"q": [f"q{i}" for i in range(n)], "a": list(range(n)), "x": [None] * n})
    pq.write_table(table, src, row_group_size=1000)
    out = tmp_path / "out.jsonl"
    tally = ingest([src], out, IngestOptions(columns=("q",), templates=("output=#{a}",)))
    rows = read_jsonl(out)
    assert tally.kept == n
    assert rows[0] == {"q": "q0", "output": "#0"}
    assert rows[-1] == {"q": "q2499", "output": "#2499"}


def test_missing_and_null_columns_are_rejected_per_row(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_text('{"q": "a", "a": "1"}\n{"q": "b"}\n{"q": "c", "a": null}\nnot json\n[1]\n')
    out = tmp_path / "out.jsonl"
    tally = ingest([src], out, IngestOptions(templates=("output={a}",)))
    assert read_jsonl(out) == [{"output": "1"}]
    assert dict(tally.rejected) == {"missing column": 2, "malformed": 2}
    assert tally.examples == {
        "missing column": [
            f"{src}:2: column `a` is missing (row has: q)",
            f"{src}:3: column `a` is NULL",
        ],
        "malformed": [
            f"{src}:4: invalid JSON: Expecting value (column 1)",
            f"{src}:5: a line must hold one JSON object",
        ],
    }


def test_json_list_source_streams_items_with_lines(tmp_path: Path) -> None:
    src = tmp_path / "list.json"
    items = [{"text": "x" * 3000 + str(i)} for i in range(3)]
    src.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    records = list(iter_row_file(src))
    assert [r.row for r in records] == items
    assert [r.where for r in records] == [f"{src}:2", f"{src}:3", f"{src}:4"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "expected a JSON list of objects"),
        ('[{"a": 1},\n {"a": }]', "2: invalid JSON (Expecting value)"),
        ('[{"a": 1}', "the JSON list is not closed"),
        ('[{"a": 1}] x', "text after the end of the JSON list"),
    ],
)
def test_broken_json_list_stops_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "bad.json"
    src.write_text(text)
    with pytest.raises(DataError, match=re.escape(message)):
        list(iter_row_file(src))


def test_bad_template_is_an_error_before_any_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    for spec, message in [
        ("output", "write FIELD=TEXT"),
        ("output={a!r}", "plain `{column}` placeholders"),
        ("output={a", "expected '}'"),
    ]:
        with pytest.raises(DataError, match=message):
            ingest([FIXTURES / "qa.tsv"], out, IngestOptions(templates=(spec,)))
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_option_checks_name_the_flag(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=r"^--table: only apply to SQL dumps"):
        ingest([CSV], out, IngestOptions(table="t"))
    with pytest.raises(DataError, match=r"^--unit: only applies to HTML"):
        ingest([CSV], out, IngestOptions(unit="paragraph"))
    with pytest.raises(DataError, match="name the file \\*.jsonl"):
        ingest([CSV], tmp_path / "out.csv", IngestOptions())
    with pytest.raises(DataError, match="cannot ingest `.xml` files"):
        (tmp_path / "a.xml").write_text("<a/>")
        ingest([tmp_path / "a.xml"], out, IngestOptions())
    with pytest.raises(DataError, match="is not ASCII-compatible"):
        ingest([CSV], out, IngestOptions(encoding="utf-16"))
    (tmp_path / "t.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="^--encoding: Parquet files carry their own encoding"):
        ingest([tmp_path / "t.parquet"], out, IngestOptions(encoding="latin-1"))
    with pytest.raises(DataError, match="t.parquet: cannot read parquet"):
        ingest([tmp_path / "t.parquet"], out, IngestOptions())


def test_folder_sources_are_read_sorted(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("Bee.\n")
    (folder / "sub" / "a.md").write_text("Ay.\n")
    (folder / "ignored.bin").write_bytes(b"\0")
    out = tmp_path / "out.jsonl"
    ingest([folder], out, IngestOptions(add_source=True))
    assert read_jsonl(out) == [
        {"text": "Bee.", "source": str(folder / "b.txt")},
        {"text": "Ay.", "source": str(folder / "sub" / "a.md")},
    ]
