"""SQL dumps: multi-row INSERTs with escaped quotes, COPY blocks, tables and columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from honer.curate.ingest import IngestOptions, ingest
from honer.curate.ingest.sql_split import CopyData, Statement, split_statements
from honer.curate.ingest.sql_values import ValuesScanner
from honer.data.readers.lines import Line
from honer.errors import DataError
from tests.curate.helpers import FIXTURES, leftovers, read_jsonl

MYSQL = FIXTURES / "dump_mysql.sql"
PG = FIXTURES / "dump_pg.sql"


def test_mysql_dump_multi_row_inserts_with_escapes(tmp_path: Path) -> None:
    out = tmp_path / "posts.jsonl"
    tally = ingest([MYSQL], out, IngestOptions(table="posts", add_source=True))
    assert read_jsonl(out) == [
        {
            "id": 1,
            "title": 'It\'s a "test"',
            "body": "Line one\nLine two",
            "score": 4.5,
            "source": f"{MYSQL}:25",
        },
        {
            "id": 2,
            "title": "Semi; colon -- not a comment",
            "body": "C:\\temp\\new",
            "score": None,
            "source": f"{MYSQL}:25",
        },
        {"id": 3, "title": "O'Brien", "body": "café", "score": -1, "source": f"{MYSQL}:25"},
        {
            "id": 5,
            "title": "Tab\there",
            "body": "100\\% sure",
            "score": 12,
            "source": f"{MYSQL}:26",
        },
        {"id": 6, "title": "Only two", "source": f"{MYSQL}:27"},
    ]
    assert (tally.rows_in, dict(tally.rejected)) == (6, {"malformed": 1})
    assert tally.examples["malformed"] == [f"{MYSQL}:26: not a literal value: `NOW()`"]


def test_postgres_dump_copy_and_standard_strings(tmp_path: Path) -> None:
    out = tmp_path / "faq.jsonl"
    ingest([PG], out, IngestOptions())
    assert read_jsonl(out) == [
        {"id": 1, "question": "What is SQL?", "answer": "A query language.\nWith two lines."},
        {"id": 2, "question": "Tabs?", "answer": "a\tb"},
        {"id": 3, "question": None, "answer": "no question"},
        {"id": 4, "question": "Backslash?", "answer": "C:\\dir"},
        {"id": 5, "question": "It's", "answer": "esc'apedA"},
        {"id": 6, "question": "Cast", "answer": "2024-01-01"},
    ]


def test_several_tables_need_table_and_leave_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as err:
        ingest([MYSQL], out, IngestOptions())
    assert str(err.value) == (
        f"{MYSQL}:33: the dump has rows for several tables (posts, users); choose one with --table."
    )
    assert not out.exists()
    assert leftovers(tmp_path) == []
    with pytest.raises(
        DataError,
        match=r"--table nope: no rows for it in the dump \(tables with rows: posts, users\)",
    ):
        ingest([MYSQL], out, IngestOptions(table="nope"))


def test_columns_option_names_values_without_a_column_list(tmp_path: Path) -> None:
    src = tmp_path / "bare.sql"
    src.write_text("INSERT INTO qa VALUES ('q1', 'a1'), ('q2', 'a2');\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match="names no columns .* give the names with --columns a,b,c"):
        ingest([src], out, IngestOptions())
    ingest([src], out, IngestOptions(sql_columns=("instruction", "output")))
    assert read_jsonl(out) == [
        {"instruction": "q1", "output": "a1"},
        {"instruction": "q2", "output": "a2"},
    ]
    src.write_text("INSERT INTO qa (q, a) VALUES ('q1', 'a1');\n")
    tally = ingest([src], out, IngestOptions(sql_columns=("instruction", "output")))
    assert read_jsonl(out) == [{"q": "q1", "a": "a1"}]
    assert tally.notes == ["--columns was not needed: every INSERT/COPY names its columns."]


def test_escape_style_decides_where_strings_end(tmp_path: Path) -> None:
    src = tmp_path / "s.sql"
    src.write_text("INSERT INTO t (a, b) VALUES ('C:\\', 'x''y');\n")
    out = tmp_path / "out.jsonl"
    ingest([src], out, IngestOptions(sql_escapes="standard"))
    assert read_jsonl(out) == [{"a": "C:\\", "b": "x'y"}]
    src.write_text("INSERT INTO t (a, b) VALUES ('a\\\\', 'it\\'s');\n")
    ingest([src], out, IngestOptions(sql_escapes="backslash"))
    assert read_jsonl(out) == [{"a": "a\\", "b": "it's"}]


def _lines(text: str) -> list[Line]:
    return [Line(i, t) for i, t in enumerate(text.splitlines(keepends=True), start=1)]


def test_splitter_ignores_semicolons_in_strings_and_comments() -> None:
    dump = (
        "-- a; comment\n"
        "INSERT INTO t VALUES ('a;b', \"c;d\") /* x; y */;\n"
        "# mysql; comment\n"
        "INSERT INTO `w;x` VALUES (1)\n"
        ";COPY t (a) FROM stdin;\n"
        "semi;colon\n"
        "\\.\n"
        "SELECT 1"
    )
    items = list(split_statements(_lines(dump), backslash_escapes=True))
    assert items == [
        Statement("INSERT INTO t VALUES ('a;b', \"c;d\")  ", 2),
        Statement("INSERT INTO `w;x` VALUES (1)\n", 4),
        Statement("COPY t (a) FROM stdin", 5),
        CopyData("semi;colon", 6),
        Statement("SELECT 1", 8),
    ]


def test_unterminated_quote_is_reported_not_swallowed() -> None:
    items = list(split_statements(_lines("INSERT INTO t VALUES ('open);\n"), False))
    assert items == [
        Statement(
            "INSERT INTO t VALUES ('open);\n",
            1,
            problem="quote ' opened in this statement never closes",
        )
    ]


@pytest.mark.parametrize(
    ("values", "backslash", "rows"),
    [
        ("(1, -2.5, 1e3, NULL, TRUE, false)", False, [[1, -2.5, 1000.0, None, True, False]]),
        ("(X'6869', 0x6869, B'101', N'n')", False, [["hi", "hi", 5, "n"]]),
        ("(_binary 'a\\0b', 'x\\Zy')", True, [["a\0b", "x\x1ay"]]),
        ("(E'\\u00e9\\101', '2020'::date)", False, [["éA", "2020"]]),
        ("('a'),('b') ON DUPLICATE KEY UPDATE a=a", True, [["a"], ["b"]]),
    ],
)
def test_literals(values: str, backslash: bool, rows: list[list[object]]) -> None:
    scanned = list(ValuesScanner(values, 1, backslash).rows())
    assert [r.values for r in scanned] == rows


def test_a_bad_row_skips_to_the_next() -> None:
    scanned = list(ValuesScanner("(1, 2 + 3),\n(CONCAT('a', ')'), 4),\n(5, 6)", 10, False).rows())
    assert [(r.first_line, r.values, r.problem) for r in scanned] == [
        (10, None, "not a literal value: `2 + 3`"),
        (11, None, "not a literal value: `CONCAT('a', ')`"),
        (12, [5, 6], None),
    ]


def test_escape_style_detection(tmp_path: Path) -> None:
    from honer.curate.ingest.sql_rows import sniff_backslash_escapes

    src = tmp_path / "d.sql"
    src.write_text("INSERT INTO t (a) VALUES ('`code` C:\\');\n")  # a backtick in data only
    assert not sniff_backslash_escapes(src)
    out = tmp_path / "out.jsonl"
    ingest([src], out, IngestOptions())
    assert read_jsonl(out) == [{"a": "`code` C:\\"}]
    src.write_text("INSERT INTO `t` (`a`) VALUES ('it\\'s');\n")
    assert sniff_backslash_escapes(src)
    assert sniff_backslash_escapes(MYSQL) and not sniff_backslash_escapes(PG)
