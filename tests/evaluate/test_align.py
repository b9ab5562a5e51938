"""Judge-vs-expert alignment: export → fill in a spreadsheet → align, against hand-computed
figures, and the errors of bad sheets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from honer.errors import DataError
from honer.evaluate.align import align, export_sheet

# Judge verdicts and the expert's, per case: 3 both fail, 1 judge-only fail, 2 expert-only
# fail, 4 both pass.
JUDGE = ["fail"] * 3 + ["fail"] + ["pass"] * 2 + ["pass"] * 4
EXPERT = ["fail"] * 3 + ["pass"] + ["fail"] * 2 + ["pass"] * 4


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "evals"
    results.mkdir()
    cases = [
        {
            "prompt": f"question {i}",
            "expected": f"SELECT {i}",
            "output": f'SELECT {i}\nFROM t -- "quoted", multi-line' if i == 0 else f"SELECT {i}",
            "checks": {"starts_with_select": True, "json": i % 2 == 0},
        }
        for i in range(10)
    ]
    (results / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    judged = [
        {
            "case": i,
            "prompt": c["prompt"],
            "output": c["output"],
            "grader": {"verdict": v, "critique": f"c{i}"},
        }
        for i, (c, v) in enumerate(zip(cases, JUDGE, strict=True))
    ]
    (results / "judge.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judged))
    return results


def _fill(sheet: Path, verdicts: list[str], *, drop: str | None = None) -> None:
    """Fill the expert columns as a spreadsheet saves a CSV: re-quoted minimally, with a BOM."""
    with sheet.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row, verdict in zip(rows, verdicts, strict=False):
        row["expert_verdict"] = verdict
        row["expert_critique"] = f"expert on {row['case']}"
    fields = [c for c in rows[0] if c != drop]
    with sheet.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_export_fill_align_round_trip(tmp_path: Path) -> None:
    results = _results(tmp_path)
    sheet = tmp_path / "critiques.csv"
    assert export_sheet(results, sheet, bom=True) == 10
    raw = sheet.read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf"case","prompt","answer","reference"')
    header = next(csv.reader(sheet.open(encoding="utf-8-sig")))
    assert header == [
        "case",
        "prompt",
        "answer",
        "reference",
        "starts_with_select",
        "json",
        "grader_verdict",
        "grader_critique",
        "expert_verdict",
        "expert_critique",
    ]
    _fill(sheet, [v.upper() if i == 5 else v for i, v in enumerate(EXPERT)])
    agreement = align(sheet, results)
    assert agreement.confusion == {
        "judge_fail_expert_fail": 3,
        "judge_fail_expert_pass": 1,
        "judge_pass_expert_fail": 2,
        "judge_pass_expert_pass": 4,
    }
    # By hand: accuracy 7/10; precision 3/4; recall 3/5; chance agreement
    # 0.4 × 0.5 + 0.6 × 0.5 = 0.5, so kappa = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    assert agreement.accuracy == pytest.approx(0.7)
    assert agreement.precision == pytest.approx(0.75)
    assert agreement.recall == pytest.approx(0.6)
    assert agreement.kappa == pytest.approx(0.4)
    assert [(d["case"], d["judge"], d["expert"]) for d in agreement.disagreements] == [
        (3, "fail", "pass"),
        (4, "pass", "fail"),
        (5, "pass", "fail"),
    ]
    assert agreement.disagreements[0]["expert_critique"] == "expert on 3"


def test_unreviewed_rows_are_counted_not_guessed(tmp_path: Path) -> None:
    results = _results(tmp_path)
    sheet = tmp_path / "s.csv"
    export_sheet(results, sheet)
    _fill(sheet, EXPERT[:4] + [""] * 6)
    agreement = align(sheet, results)
    assert (agreement.reviewed, agreement.not_reviewed) == (4, 6)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("drop", r"missing column\(s\) expert_verdict"),
        ("word", r"s.csv:4: `expert_verdict` is `maybe`; write pass or fail"),
        ("answer", r"s.csv:2: case 0 does not match the evaluation"),
    ],
)
def test_bad_sheets_name_the_row(tmp_path: Path, edit: str, message: str) -> None:
    results = _results(tmp_path)
    sheet = tmp_path / "s.csv"
    export_sheet(results, sheet)
    if edit == "drop":
        _fill(sheet, EXPERT, drop="expert_verdict")
    elif edit == "word":
        _fill(sheet, ["pass", "fail", "maybe"])
    else:
        _fill(sheet, EXPERT)
        text = sheet.read_text(encoding="utf-8-sig").replace("multi-line", "edited")
        sheet.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        align(sheet, results)


def test_report_shows_judge_rates_agreement_and_critiques(tmp_path: Path) -> None:
    from honer.evaluate.report import build_report

    results = _results(tmp_path)  # tmp_path/evals, as in a run folder
    (results / "results.json").write_text(
        json.dumps(
            {
                "loss": 1.0,
                "perplexity": 2.7,
                "judges": [
                    {"name": "grader", "pass": 6, "fail": 4, "unparsed": 0, "pass_rate": 0.6}
                ],
            }
        )
    )
    sheet = tmp_path / "s.csv"
    export_sheet(results, sheet)
    _fill(sheet, EXPERT)
    (results / "alignment.json").write_text(json.dumps(align(sheet, results).as_dict()))
    page = build_report(tmp_path).read_text()
    assert "<h2>LLM judge</h2>" in page
    assert "<td>grader</td><td>6</td><td>4</td><td>0</td><td>60.0%</td>" in page
    assert "Agreement with the expert (grader, 10 reviewed cases)" in page
    assert "<td>70.0%</td><td>75.0%</td><td>60.0%</td><td>0.40</td>" in page
    assert "<td>c3</td>" in page  # a failed case's critique


def test_a_filled_sheet_is_a_few_shot_file(tmp_path: Path) -> None:
    from honer.evaluate.judge import read_few_shot

    results = _results(tmp_path)
    sheet = tmp_path / "s.csv"
    export_sheet(results, sheet, bom=True)
    _fill(sheet, EXPERT[:2] + [""] * 8)
    examples = read_few_shot(sheet, "evals.checks[0]")
    assert examples == [
        {
            "prompt": "question 0",
            "answer": examples[0]["answer"],
            "verdict": "fail",
            "critique": "expert on 0",
        },
        {
            "prompt": "question 1",
            "answer": "SELECT 1",
            "verdict": "fail",
            "critique": "expert on 1",
        },
    ]
    assert examples[0]["answer"].startswith("SELECT 0\nFROM t")
