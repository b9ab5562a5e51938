"""The Python API: the documented example runs as written, and a run through `honer.train_model`
writes the same files and losses as `honer train` on the same config."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import honer
from honer.cli.main import app
from tests.helpers import write_addition_run

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def test_the_documented_example_runs(capsys) -> None:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    exec(compile(code, str(DOC), "exec"), {})
    # The runs print their own progress and summaries (as the commands do), and the library
    # leaves third-party logging to its user; the example's three prints are found among them.
    out = capsys.readouterr().out.splitlines()
    assert [x for x in out if re.fullmatch(r"6 [0-9.]+ \S+report\.html", x)], out
    assert [x for x in out if re.match(r"[0-9.]+ .*'name': 'digits'", x)], out
    assert [x for x in out if x.endswith("out/merged 14")], out  # 7 linear layers x 2 layers


def _losses(out: Path) -> list[float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r.get("kind") == "train"]


def test_train_through_the_api_equals_the_command(tmp_path: Path, tiny_model_dir: Path) -> None:
    extra = "adapter: lora\nmicro_batch_size: 4\nmax_steps: 4\nval_set_size: 4\nlogging_steps: 1\n"
    api_cfg = write_addition_run(tmp_path / "api", tiny_model_dir, 24, extra)
    cli_cfg = write_addition_run(tmp_path / "cli", tiny_model_dir, 24, extra)
    run = honer.train_model(api_cfg)
    result = CliRunner().invoke(app, ["train", str(cli_cfg)])
    assert result.exit_code == 0, result.output
    api_out, cli_out = tmp_path / "api" / "out", tmp_path / "cli" / "out"
    assert run.output_dir == api_out and run.global_step == 4
    names = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert names(api_out) == names(cli_out)
    for must in ("report.html", "README.md", "config.yml", "data_stats.json", "curves.png"):
        assert (api_out / must).is_file()
    assert _losses(api_out) == _losses(cli_out)
    shutil.rmtree(tmp_path)


def test_api_names_are_not_hidden_by_subpackages() -> None:
    """Importing `honer.train.trainer` sets `honer.train` to the package: an API function of that
    name would vanish. Every API name stays callable after the whole library is imported."""
    import importlib

    src = Path(honer.__file__).parent
    for name in honer.__all__:
        assert not (src / name).is_dir() and not (src / f"{name}.py").is_file(), name
    for sub in ("honer.train.trainer", "honer.evaluate.report", "honer.runs.train"):
        importlib.import_module(sub)
    assert all(callable(getattr(honer, name)) for name in honer.__all__)
