"""Aligning the judge with a domain expert: export the cases as a sheet, read it back filled.

`honer evaluate CONFIG --export-critiques FILE.csv` writes one row per evaluated case: the
prompt, the answer, the reference, each level-1 check's result, each judge's verdict and critique,
and two empty columns for the expert, `expert_verdict` (pass/fail) and `expert_critique`. It is
a plain CSV that spreadsheets open and save back: UTF-8 (with a BOM on request, which Excel
wants), every cell quoted, multi-line answers kept inside their cells.

`honer evaluate CONFIG --align FILE.csv` reads the filled sheet and compares the expert's
verdicts with a judge's: accuracy, precision and recall on failures (a failure is the positive
class: the judge's job is to catch bad answers), Cohen's κ (agreement beyond chance), the 2×2
confusion table, and the cases they disagree on. Rows left without an expert verdict are
counted, not guessed. A sheet that does not match the evaluation it was exported from (missing
columns, a case number that is not there, an answer edited), or a verdict word that is neither
pass nor fail, is an error naming the row. The rows with expert critiques then serve as the
judge's `few_shot` file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from honer.errors import DataError

EXPERT_VERDICT = "expert_verdict"
EXPERT_CRITIQUE = "expert_critique"
PASS_WORDS = {"pass", "passed", "yes", "y", "ok", "good", "1", "true"}
FAIL_WORDS = {"fail", "failed", "no", "n", "bad", "0", "false"}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def export_sheet(results: Path, sheet: Path, bom: bool = False) -> int:
    """Write the critique sheet of the evaluation in `results` (cases.jsonl, judge.jsonl);
    returns the number of rows."""
    from honer.atomic import write_text

    cases = _read_jsonl(results / "cases.jsonl")
    if not cases:
        raise DataError(
            f"{results}: no cases.jsonl: the evaluation ran no checks (add `evals.checks`)."
        )
    judged = _read_jsonl(results / "judge.jsonl")
    checks = list(cases[0].get("checks", {}))
    judges = [k for k in (judged[0] if judged else {}) if isinstance(judged[0][k], dict)]
    header = ["case", "prompt", "answer", "reference", *checks]
    for name in judges:
        header += [f"{name}_verdict", f"{name}_critique"]
    header += [EXPERT_VERDICT, EXPERT_CRITIQUE]
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    for i, case in enumerate(cases):
        row = [i, case.get("prompt", ""), case.get("output", ""), case.get("expected") or ""]
        row += ["pass" if case.get("checks", {}).get(c) else "fail" for c in checks]
        for name in judges:
            verdict = judged[i].get(name, {}) if i < len(judged) else {}
            row += [verdict.get("verdict", ""), verdict.get("critique", "")]
        writer.writerow([*row, "", ""])
    write_text(sheet, ("\ufeff" if bom else "") + buffer.getvalue())
    return len(cases)


@dataclass
class Agreement:
    """Judge-vs-expert agreement over the reviewed cases (a failure is the positive class)."""

    judge: str
    confusion: dict[str, int]  # judge_fail_expert_fail, judge_fail_expert_pass, …
    reviewed: int
    not_reviewed: int
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        c = self.confusion
        right = c["judge_fail_expert_fail"] + c["judge_pass_expert_pass"]
        return right / self.reviewed if self.reviewed else 0.0

    @property
    def precision(self) -> float:
        """Of the cases the judge failed, the share the expert failed too."""
        c = self.confusion
        flagged = c["judge_fail_expert_fail"] + c["judge_fail_expert_pass"]
        return c["judge_fail_expert_fail"] / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        """Of the cases the expert failed, the share the judge caught."""
        c = self.confusion
        bad = c["judge_fail_expert_fail"] + c["judge_pass_expert_fail"]
        return c["judge_fail_expert_fail"] / bad if bad else 0.0

    @property
    def kappa(self) -> float:
        """Cohen's κ: (observed − chance agreement) / (1 − chance agreement)."""
        c, n = self.confusion, self.reviewed
        if not n:
            return 0.0
        judge_fail = (c["judge_fail_expert_fail"] + c["judge_fail_expert_pass"]) / n
        expert_fail = (c["judge_fail_expert_fail"] + c["judge_pass_expert_fail"]) / n
        chance = judge_fail * expert_fail + (1 - judge_fail) * (1 - expert_fail)
        return 1.0 if chance == 1 else (self.accuracy - chance) / (1 - chance)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "reviewed": self.reviewed,
            "not_reviewed": self.not_reviewed,
            "accuracy": self.accuracy,
            "precision_on_failures": self.precision,
            "recall_on_failures": self.recall,
            "cohen_kappa": self.kappa,
            "confusion": self.confusion,
            "disagreements": self.disagreements,
        }


def _word(value: str, where: str, column: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    if text in PASS_WORDS:
        return "pass"
    if text in FAIL_WORDS:
        return "fail"
    raise DataError(f"{where}: `{column}` is `{value}`; write pass or fail (or leave it empty).")


def align(sheet: Path, results: Path, judge: str | None = None) -> Agreement:
    """Compare the filled `sheet` with the judge's verdicts of the evaluation in `results`."""
    if not sheet.is_file():
        raise DataError(f"--align: `{sheet}` does not exist.")
    cases = _read_jsonl(results / "cases.jsonl")
    with sheet.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig: with or without a BOM
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    judges = [
        c.removesuffix("_verdict")
        for c in columns
        if c.endswith("_verdict") and c != EXPERT_VERDICT
    ]
    needed = ["case", "answer", EXPERT_VERDICT]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"{sheet}: missing column(s) {', '.join(missing)}: align a sheet written by "
            "--export-critiques (columns may be added, not removed or renamed)."
        )
    if not judges:
        raise DataError(f"{sheet}: no `<judge>_verdict` column: the evaluation had no judge.")
    name = judge or judges[0]
    if name not in judges:
        raise DataError(f"--judge {name}: the sheet has {', '.join(judges)}.")
    confusion = dict.fromkeys(
        (f"judge_{j}_expert_{e}" for j in ("fail", "pass") for e in ("fail", "pass")), 0
    )
    agreement = Agreement(name, confusion, 0, 0)
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{sheet}:{line}"
        try:
            case = int(str(row["case"]).strip())
        except ValueError:
            raise DataError(f"{where}: `case` must be the exported case number.") from None
        if not 0 <= case < len(cases) or cases[case].get("output", "") != row["answer"]:
            raise DataError(
                f"{where}: case {case} does not match the evaluation in {results} (another "
                "run, or an edited answer): export again and copy the verdicts over."
            )
        expert = _word(row.get(EXPERT_VERDICT) or "", where, EXPERT_VERDICT)
        if expert is None:
            agreement.not_reviewed += 1
            continue
        verdict = (row.get(f"{name}_verdict") or "").strip().lower()
        if verdict not in ("pass", "fail"):  # the judge's answer was unparsed: it did not pass
            verdict = "fail"
        agreement.reviewed += 1
        agreement.confusion[f"judge_{verdict}_expert_{expert}"] += 1
        if verdict != expert:
            agreement.disagreements.append(
                {
                    "case": case,
                    "prompt": row.get("prompt", ""),
                    "answer": row["answer"],
                    "judge": verdict,
                    "judge_critique": row.get(f"{name}_critique", ""),
                    "expert": expert,
                    "expert_critique": row.get(EXPERT_CRITIQUE, ""),
                }
            )
    return agreement
