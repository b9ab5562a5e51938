"""The LLM judge (`type: judge` checks): parsing, retries, `unparsed`, an OpenAI-compatible stub
server on 127.0.0.1, a local tiny model, and the API key kept out of every file and log."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from honer.config.evals import judge_problems
from honer.evaluate.judge import Judge, parse_verdict
from tests.helpers import write_addition_run

SECRET = "sk-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"verdict": "pass", "critique": "Right sum."}', ("pass", "Right sum.")),
        ('Sure!\n```json\n{"verdict": "FAIL", "critique": "wrong"}\n```', ("fail", "wrong")),
        ("Verdict: no\nCritique: off by one", ("fail", "off by one")),
        ("**verdict**: Pass.", ("pass", "")),
        ('{"verdict": "maybe"}', None),
        ("I think it is fine", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_verdict(text) == expected


def test_judge_entries_are_checked_at_config_time() -> None:
    problems = dict(
        judge_problems(
            {"type": "judge", "model": "m", "api_key_env": SECRET, "temprature": 0},
            "evals.checks[0]",
        )
    )
    assert problems["evals.checks[0].api_key_env"].startswith("must name an environment variable")
    assert SECRET not in problems["evals.checks[0].api_key_env"]
    assert problems["evals.checks[0].temprature"].startswith("unknown judge key")
    assert judge_problems({"type": "judge"}, "w")[0][0] == "w.model"
    assert (
        "set `base_url`"
        in dict(judge_problems({"type": "judge", "model": "m", "api_key_env": "K"}, "w"))[
            "w.api_key_env"
        ]
    )


class _Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering from a queue, recording what it got."""

    replies: list[str] = []
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        reply = type(self).replies.pop(0)
        data = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_server():
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.mark.slow
def test_endpoint_judge_in_honer_evaluate(
    stub_server, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """Three held-out cases: one parsed on retry (pass), one at once (fail), one never
    (unparsed after 1 + max_retries attempts). The key goes in the header, nowhere else."""
    import honer

    monkeypatch.setenv("JUDGE_KEY", SECRET)
    # 1st round: case 0 garbage, case 1 a verdict line, case 2 garbage; 2nd round: 0 and 2 again.
    _Stub.replies = [
        "hmm",
        "verdict: fail\ncritique: not a number",
        "??",
        '{"verdict": "pass", "critique": "ok"}',
        "still ??",
    ]
    extra = (
        "val_set_size: 3\n"
        "evals:\n  max_samples: 3\n  max_new_tokens: 4\n  checks:\n"
        "    - {type: regex, pattern: '.', name: any_text}\n"
        f"    - {{type: judge, name: grader, model: gpt-test, base_url: '{stub_server}', "
        "api_key_env: JUDGE_KEY, max_retries: 1}\n"
    )
    cfg = honer.load_config(write_addition_run(tmp_path, tiny_model_dir, 30, extra))
    result = honer.evaluate_model(cfg, base_model_only=True)
    assert result.judges == [
        {"name": "grader", "pass": 1, "fail": 1, "unparsed": 1, "pass_rate": 1 / 3}
    ]
    assert len(_Stub.seen) == 5
    assert {s["path"] for s in _Stub.seen} == {"/v1/chat/completions"}
    assert {s["auth"] for s in _Stub.seen} == {f"Bearer {SECRET}"}
    first = _Stub.seen[0]["body"]
    assert first["model"] == "gpt-test" and first["temperature"] == 0
    assert "Automatic checks: any_text" in first["messages"][0]["content"]
    judged = [json.loads(x) for x in (result.output_dir / "judge.jsonl").read_text().splitlines()]
    assert [(j["grader"]["verdict"], j["grader"]["attempts"]) for j in judged] == [
        ("pass", 2),
        ("fail", 1),
        ("unparsed", 2),
    ]
    assert judged[1]["grader"]["critique"] == "not a number"
    # The key is in no file honer wrote, and in nothing it printed.
    for path in result.output_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="ignore"), path
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err

    # The expert loop through the CLI: export the sheet, fill it, align (no model runs).
    import csv

    from typer.testing import CliRunner

    from honer.cli.main import app
    from honer.evaluate.align import export_sheet

    sheet = tmp_path / "critiques.csv"
    assert export_sheet(result.output_dir, sheet) == 3
    with sheet.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row, verdict in zip(rows, ["pass", "pass", "fail"], strict=True):
        row["expert_verdict"] = verdict
    with sheet.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config_path = tmp_path / "c.yml"
    out = CliRunner().invoke(
        app, ["evaluate", str(config_path), "--base-model-only", "--align", str(sheet)]
    )
    assert out.exit_code == 0, out.output + repr(out.exception)
    # judge: pass, fail, unparsed (= not a pass); expert: pass, pass, fail → 2 of 3 agree.
    assert (
        "judge grader vs expert on 3 reviewed cases (0 not reviewed): accuracy 66.7%" in out.output
    )
    saved = json.loads((result.output_dir / "alignment.json").read_text())
    assert saved["confusion"] == {
        "judge_fail_expert_fail": 1,
        "judge_fail_expert_pass": 1,
        "judge_pass_expert_fail": 0,
        "judge_pass_expert_pass": 1,
    }


@pytest.mark.slow
def test_local_model_judge_counts_unparsed_never_pass(tiny_model_dir: Path) -> None:
    """A random tiny model answers gibberish: every case is asked 1 + max_retries times (the
    same greedy output) and counted unparsed."""
    judge = Judge(
        {"type": "judge", "model": str(tiny_model_dir), "max_retries": 1, "max_new_tokens": 6},
        "evals.checks[0]",
    )
    cases = [
        {"prompt": "Add 1 and 1", "output": "2", "expected": "2"},
        {"prompt": "x", "output": "y"},
    ]
    verdicts = judge.judge(cases)
    assert [(v.verdict, v.attempts) for v in verdicts] == [("unparsed", 2), ("unparsed", 2)]
    assert all(v.raw for v in verdicts)  # the model did answer; the answer said nothing usable
    assert judge.judge(cases)[0].raw == verdicts[0].raw  # greedy: deterministic
