"""The command line: summaries, short errors with exit code 2, lazy imports, the debug view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.cli.main import app
from honer.config.reference import END, START, reference_markdown
from tests.conftest import REPO
from tests.helpers import write_addition_run

runner = CliRunner()


def write_config(tmp_path: Path, base: str, extra: str = "") -> Path:
    return write_addition_run(
        tmp_path,
        base,
        6,
        "adapter: lora\nmicro_batch_size: 2\ngradient_accumulation_steps: 3\n" + extra,
    )


def run_cli(*args: str):
    """Run the real entry point (HonerError → message + exit 2) in this process."""
    code = (
        "import sys\nfrom honer.cli.main import run\nsys.argv = ['honer', *sys.argv[1:]]\nrun()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_validate_prints_summary(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "some/model")
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "is valid" in out
    assert "model:            some/model" in out
    assert "adapter:          lora (r=8, alpha=16)" in out
    assert "type=alpaca  (local)" in out
    assert "effective batch:  6 per process" in out


def test_bad_config_is_one_message_and_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "m", "lora_alpah: 3\n")
    result = run_cli("validate", str(cfg))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {cfg}: lora_alpah: unknown key. Did you mean `lora_alpha`?"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_and_validate_do_not_import_torch(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "m")
    probe = (
        "import sys\nfrom honer.cli.main import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    for args in (["--help"], ["validate", str(cfg)]):
        out = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
        ).stdout
        assert "HEAVY []" in out, out


@pytest.mark.slow
def test_preprocess_debug_shows_masked_and_trained_tokens(tmp_path: Path, tiny_model_dir) -> None:
    cfg = write_config(tmp_path, str(tiny_model_dir))
    result = run_cli("preprocess", str(cfg), "--debug", "--debug-samples", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "samples" in out and "trained tokens" in out
    assert "prepared data written" in out
    assert "(-100, 1)" in out  # BOS, masked
    assert "(2, 2)" in out  # EOS, trained
    assert "trained text: '1</s>'" in out
    assert "\x1b[" not in out  # no colour codes when not a terminal
    again = run_cli("preprocess", str(cfg))
    assert "prepared data loaded from cache" in again.stdout


@pytest.mark.slow
def test_preprocess_data_error_names_row(tmp_path: Path, tiny_model_dir) -> None:
    cfg = write_config(tmp_path, str(tiny_model_dir))
    (tmp_path / "d.jsonl").write_text('{"instruction": "x", "output": "y"}\n{"broken\n')
    result = run_cli("preprocess", str(cfg))
    assert result.returncode == 2
    assert f"{tmp_path / 'd.jsonl'}:2: invalid JSON" in result.stderr


@pytest.mark.slow
def test_missing_local_model_offline_says_what_to_do(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "no-such-org/no-such-model")
    result = run_cli("preprocess", str(cfg))
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE=1 is set" in result.stderr
    assert "point `base_model` at a local folder" in result.stderr


def test_readme_config_reference_is_current() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == reference_markdown().strip(), (
        "README config reference is stale: run `python -m honer.config.reference README.md`"
    )


def test_data_command_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli(
        "data", "ingest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.jsonl")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.csv'}: no such file or folder."


def test_piped_output_is_laid_out_wide_enough_for_tables(monkeypatch) -> None:
    """rich lays tables out for 80 columns when stdout is not a terminal and cuts their cells."""
    import io

    from rich.console import Console
    from rich.table import Table

    from honer.cli.console import PIPED_WIDTH, _width

    monkeypatch.delenv("COLUMNS", raising=False)
    assert _width(io.StringIO()) == PIPED_WIDTH == 200
    monkeypatch.setenv("COLUMNS", "132")
    assert _width(io.StringIO()) == 132
    monkeypatch.delenv("COLUMNS")
    table = Table()
    for name in ("dataset", "path", "rows in", "samples out", "truncated", "dropped"):
        table.add_column(name)
    table.add_row(
        "datasets[0]",
        "/a/rather/long/path/to/some/training/data.jsonl",
        "600",
        "598",
        "0",
        "{'longer than sequence_len': 2}",
    )
    buffer = io.StringIO()
    Console(file=buffer, width=_width(buffer)).print(table)
    assert "/a/rather/long/path/to/some/training/data.jsonl" in buffer.getvalue()
    assert "{'longer than sequence_len': 2}" in buffer.getvalue()


def test_validate_prints_axolotl_notes_on_stderr(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "m", "is_llama_derived_model: true\ngptq: false\n")
    result = run_cli("validate", str(cfg))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "note: is_llama_derived_model: Axolotl's `is_llama_derived_model` is accepted and changes "
        "nothing: not needed: honer reads the architecture from the model config.",
        "note: gptq: Axolotl's `gptq` (quantization methods) is off here: nothing to switch off.",
    ]
    assert "is valid" in result.stdout


@pytest.mark.parametrize("command", ["inference", "evaluate", "merge-lora"])
def test_generating_commands_refuse_a_reward_model(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "rm.yml"
    cfg.write_text(
        "base_model: some/model\nreward_model: true\noutput_dir: out\n"
        "datasets:\n  - path: pairs.jsonl\n    type: chat_template.default\n"
    )
    result = run_cli(command, str(cfg))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"error: `honer {command}` is for language models, and this config"
    )
    assert "Traceback" not in result.stderr


def test_validate_labels_a_missing_local_file_as_such(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "base_model: some/model\noutput_dir: out\ndatasets:\n"
        f"  - path: {tmp_path / 'nowhere.jsonl'}\n    type: alpaca\n"
        "  - path: tatsu-lab/alpaca\n    type: alpaca\n"
    )
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 0, result.output
    assert (
        "nowhere.jsonl  type=alpaca  (local file not found: create it before training, or fix `path`)"
        in result.output
    )
    assert "tatsu-lab/alpaca  type=alpaca  (Hugging Face Hub)" in result.output
