"""The `honer data` commands end to end: chained steps, summary tables, lazy imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.errors import DataError
from tests.conftest import REPO
from tests.curate.helpers import FIXTURES, read_jsonl

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["data", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def table_rows(output: str) -> dict[str, str]:
    """{label: count} of the rows of a printed summary table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = cells[1]
    return rows


def test_ingest_clean_dedup_stats_chain(tmp_path: Path) -> None:
    src = tmp_path / "qa.csv"
    src.write_text(
        "question,answer\n"
        "What is 2+2?,4\n"
        "What is 2+2?,4\n"
        '"Tell a joke","As an AI language model, I cannot."\n'
        '"broken,quote\n'
        "Capital of France?,Paris\n"
        "Empty?,\n"
    )
    raw, cleaned, unique = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl", tmp_path / "u.jsonl"
    out = invoke(
        "ingest",
        str(src),
        "--out",
        str(raw),
        "--template",
        "instruction={question}",
        "--template",
        "output={answer}",
    )
    assert table_rows(out) == {"in": "6", "kept": "5", "rejected": "1", "malformed": "1"}
    assert f"malformed: {src}:5: unterminated quoted field (a quote opened on this line" in out
    assert f"wrote {raw} (5 rows)" in out

    out = invoke("clean", str(raw), "--out", str(cleaned))
    assert table_rows(out) == {
        "in": "5",
        "kept": "3",
        "rejected": "2",
        "slop": "1",
        "empty answer": "1",
    }
    assert len(read_jsonl(tmp_path / "clean.rejects.jsonl")) == 2

    out = invoke("dedup", str(cleaned), "--out", str(unique))
    assert table_rows(out) == {"in": "3", "kept": "2", "rejected": "1", "exact duplicate": "1"}
    assert f"{cleaned}:1: 1 removed" in out
    assert read_jsonl(unique) == [
        {"instruction": "What is 2+2?", "output": "4"},
        {"instruction": "Capital of France?", "output": "Paris"},
    ]

    out = invoke("stats", str(unique), "--json", str(tmp_path / "s.json"))
    assert table_rows(out)["rows"] == "2"
    assert (tmp_path / "u.stats.png").is_file()
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == 2


def test_errors_reach_the_caller_as_data_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "ingest", str(FIXTURES / "dump_mysql.sql"), "-o", str(tmp_path / "o.jsonl")]
    )
    assert isinstance(result.exception, DataError)
    assert "choose one with --table" in str(result.exception)
    result = runner.invoke(
        app,
        [
            "data",
            "dedup",
            str(FIXTURES / "mixed.jsonl"),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--semantic-threshold",
            "0.9",
        ],
    )
    assert (
        str(result.exception)
        == "--semantic-threshold applies with --semantic-model, which is not given."
    )
    result = runner.invoke(
        app, ["data", "stats", str(FIXTURES / "mixed.jsonl"), "--png", "x.png", "--no-png"]
    )
    assert isinstance(result.exception, DataError)


@pytest.mark.slow
def test_help_lists_commands_and_imports_nothing_heavy() -> None:
    out = invoke("--help")
    for command in ("ingest", "clean", "dedup", "stats"):
        assert command in out
    probe = (
        "import sys\n"
        "from honer.cli.data import data_app\n"
        "try:\n    data_app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'pandas', 'pyarrow', 'sqlparse', "
        "'datasketch', 'matplotlib', 'numpy')\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_stats_png_defaults_beside_the_source(tmp_path: Path) -> None:
    src = tmp_path / "langs.jsonl"
    shutil.copy(FIXTURES / "languages.jsonl", src)
    out = invoke("stats", str(src))
    assert f"histogram: {tmp_path / 'langs.stats.png'}" in out
    invoke("stats", str(src), "--no-png")
