"""Pushing to the Hub (`hub_model_id`, `hub_strategy`, `hub_private_repo`, `hub_revision`),
against a local stub of the Hub API (tests/runs/hub_stub.py) on 127.0.0.1.

The checks that fail before training (offline, no token, unreachable, rejected token) run no
model; the strategy tests run `honer train` on the tiny model from YAML, as a user would.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import write_addition_run
from tests.runs.hub_stub import HubStub

TOKEN = "hf_honerTestToken0123456789abcdefXYZ"  # fake; must never leave the process
RUN = (
    "adapter: lora\nmicro_batch_size: 4\nsequence_len: 64\nmax_steps: 4\nsave_steps: 2\n"
    "logging_steps: 1\n"
)
runner = CliRunner()


def _hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """Online, pointed at `endpoint`, with the fake token and no stored login. huggingface_hub
    reads its constants at import (tests/conftest.py set offline mode before that), so they are
    patched as well as the environment."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # any stray request lands on the stub
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # LFS, which the stub speaks


CLIENT_TIMEOUT_S = 30.0


def _bounded_client() -> object:
    """huggingface_hub's own client, with a timeout on every request (its default has none), so
    a stub that stopped answering fails the test instead of hanging it."""
    import httpx2
    from huggingface_hub.utils import _http

    client = _http.default_client_factory()
    client.timeout = httpx2.Timeout(CLIENT_TIMEOUT_S)
    return client


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubStub]:
    import huggingface_hub
    from huggingface_hub.utils import _http

    stub = HubStub(TOKEN).start()
    huggingface_hub.set_client_factory(_bounded_client)
    try:
        _hub_env(monkeypatch, tmp_path, stub.url)
        yield stub
    finally:
        huggingface_hub.set_client_factory(_http.default_client_factory)
        stub.stop()


def _config(tmp_path: Path, model_dir: Path, hub_keys: str) -> Path:
    return write_addition_run(tmp_path, model_dir, 24, RUN + hub_keys)


def _train(cfg: Path) -> tuple[BaseException | None, str]:
    """`honer train CFG`; the error it ended with (the entry point prints it) and its output."""
    from honer.cli.main import app

    result = runner.invoke(app, ["train", str(cfg)])
    return result.exception, result.output


def _no_stray_writes(hub: HubStub) -> None:
    """Online, huggingface_hub and transformers make a few reads of their own (the agent-harness
    registry, a kernels organisation); nothing honer does may miss the stub's routes."""
    assert all(u.startswith("GET /api/") and "tiny" not in u for u in hub.unexpected), (
        hub.unexpected
    )


def _assert_token_nowhere(root: Path, *texts: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    for text in texts:
        assert TOKEN not in text


# --- before training ----------------------------------------------------------------------------


def test_offline_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    from honer.config.load import load_config
    from honer.runs.hub import HubError
    from honer.runs.train import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cfg = load_config(_config(tmp_path, tmp_path / "never-loaded", "hub_model_id: user/tiny\n"))
    with pytest.raises(HubError) as err:
        train(cfg)
    assert str(err.value) == (
        "hub_model_id is set but the Hub cannot be reached: HF_HUB_OFFLINE=1 is set (offline "
        "mode); unset HF_HUB_OFFLINE / check the network, or remove hub_model_id."
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "prepared").exists()


def test_missing_token_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    from honer.config.load import load_config
    from honer.runs.train import preflight

    _hub_env(monkeypatch, tmp_path, "http://127.0.0.1:9")
    monkeypatch.delenv("HF_TOKEN")
    cfg = load_config(_config(tmp_path, tmp_path, "hub_model_id: user/tiny\n"))
    with pytest.raises(Exception, match="no Hugging Face token was found: set HF_TOKEN"):
        preflight(cfg)


def test_unreachable_endpoint_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    from honer.config.load import load_config
    from honer.runs.hub import HubError
    from honer.runs.train import preflight

    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _hub_env(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
    cfg = load_config(_config(tmp_path, tmp_path, "hub_model_id: user/tiny\n"))
    with pytest.raises(HubError) as err:
        preflight(cfg)
    text = str(err.value)
    assert text.startswith(
        f"hub_model_id is set but the Hub cannot be reached: http://127.0.0.1:{port}: "
    )
    assert text.endswith("unset HF_HUB_OFFLINE / check the network, or remove hub_model_id.")
    assert TOKEN not in text


def test_rejected_and_read_only_tokens(hub: HubStub, tmp_path: Path, monkeypatch) -> None:
    from honer.config.load import load_config
    from honer.runs.hub import HubError
    from honer.runs.train import preflight

    cfg = load_config(_config(tmp_path, tmp_path, "hub_model_id: user/tiny\n"))
    monkeypatch.setenv("HF_TOKEN", "hf_someOtherToken0123456789")
    with pytest.raises(HubError, match="the Hub rejected the token") as err:
        preflight(cfg)
    assert "hf_someOtherToken" not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.role = "read"
    with pytest.raises(HubError, match="token is read-only"):
        preflight(cfg)
    assert hub.repos == {}  # nothing created with a token that cannot write


def test_scrub_removes_tokens(hub: HubStub) -> None:
    from honer.runs.hub import scrub

    text = scrub(f"401 for {TOKEN}; Authorization: Bearer abc.def; other hf_abcdefghijkl123")
    assert TOKEN not in text and "abc.def" not in text and "hf_abcdefghijkl123" not in text


# --- pushing ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_save_pushes_each_save_and_the_result(
    hub: HubStub, tmp_path: Path, tiny_model_dir: Path, capfd, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = _config(
        tmp_path,
        tiny_model_dir,
        "hub_model_id: user/tiny\nhub_strategy: every_save\nhub_private_repo: true\n"
        "hub_revision: honer-test\n",
    )
    error, output = _train(cfg)
    assert error is None, output
    out = tmp_path / "out"

    assert hub.repos["user/tiny"].visibility == "private"
    assert set(hub.repos["user/tiny"].branches) == {"main", "honer-test"}
    assert hub.files("user/tiny", "main") == {}  # everything went to the branch
    assert {c.revision for c in hub.commits} == {"honer-test"}
    summaries = [c.summary for c in hub.commits]
    # A save made while the previous push still runs is skipped, so 1 or 2 checkpoint pushes.
    assert (
        summaries[0] == "honer train: checkpoint-2" and summaries[-1] == "honer train: final model"
    )
    assert set(summaries[1:-1]) <= {"honer train: checkpoint-4"}
    first = hub.commits[0]
    assert "adapter_model.safetensors" in first.paths and "metrics.jsonl" in first.paths
    assert first.lfs_paths == ["adapter_model.safetensors"]  # weights took the LFS route

    files = hub.files("user/tiny", "honer-test")
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "config.yml",
        "metrics.jsonl",
        "report.html",
        "curves.png",
        "data_stats.json",
    ):
        assert files[name] == (out / name).read_bytes(), name
    assert "README.md" in files and "training_args.bin" not in files
    assert not [p for p in files if "/" in p]  # every_save: no checkpoint folders
    card = files["README.md"].decode()
    assert "base_model:" not in card.split("\n---", 1)[0]  # a local base is not Hub metadata
    assert str(tiny_model_dir) in card and "library_name: peft" in card
    assert hub.validated_cards and all(c.startswith("---\n") for c in hub.validated_cards)

    assert f"hub: pushing to {hub.url}/user/tiny (every_save, branch honer-test, private)" in output
    assert f"hub: pushed to {hub.url}/user/tiny/commit/" in output
    _no_stray_writes(hub)
    ours = [r for r in hub.requests if f"{r.method} {r.path}" not in hub.unexpected]
    assert all(r.authenticated for r in ours if not r.path.startswith("/_lfs/"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # snapshots removed
    captured = capfd.readouterr()
    _assert_token_nowhere(tmp_path, output, captured.out, captured.err, caplog.text)


@pytest.mark.slow
def test_checkpoint_strategy_failed_final_push_and_retry(
    hub: HubStub, tmp_path: Path, tiny_model_dir: Path, capfd
) -> None:
    from honer.runs import hub as hub_module

    cfg = _config(tmp_path, tiny_model_dir, "hub_model_id: tiny\nhub_strategy: checkpoint\n")
    hub.fail_commit = lambda summary: "final" in summary
    error, output = _train(cfg)
    out = tmp_path / "out"
    assert isinstance(error, hub_module.HubError), output
    text = str(error)
    assert f"training finished and every output is saved in {out}" in text
    assert f"python -m honer.runs.hub {out}" in text
    assert (out / "adapter_model.safetensors").is_file() and (out / "report.html").is_file()

    # During training: the newest checkpoint, training state included, under last-checkpoint/.
    files = hub.files("user/tiny")  # `tiny` resolved to the token's namespace by the Hub
    assert hub.repos["user/tiny"].visibility is None  # hub_private_repo unset: Hub default
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert f"last-checkpoint/{name}" in files, name
    assert "last-checkpoint/training_args.bin" not in files
    assert "last-checkpoint/README.md" not in files
    assert "report.html" not in files  # the final push failed

    hub.fail_commit = None
    assert hub_module.main([str(out)]) == 0
    files = hub.files("user/tiny")
    assert files["report.html"] == (out / "report.html").read_bytes()
    assert (
        files["last-checkpoint/trainer_state.json"]
        == (out / "checkpoint-4" / "trainer_state.json").read_bytes()
    )
    assert json.loads(files["last-checkpoint/trainer_state.json"])["global_step"] == 4
    _no_stray_writes(hub)
    captured = capfd.readouterr()
    _assert_token_nowhere(tmp_path, output, text, captured.out, captured.err)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["end", "all_checkpoints"])
def test_end_and_all_checkpoints(
    strategy: str, hub: HubStub, tmp_path: Path, tiny_model_dir: Path
) -> None:
    cfg = _config(
        tmp_path,
        tiny_model_dir,
        f"hub_model_id: user/tiny\nhub_strategy: {strategy}\nhub_private_repo: false\n",
    )
    error, output = _train(cfg)
    assert error is None, output
    assert hub.repos["user/tiny"].visibility == "public"
    files = hub.files("user/tiny")
    folders = {p.split("/")[0] for p in files if "/" in p}
    if strategy == "end":
        assert [c.summary for c in hub.commits] == ["honer train: final model"]
        assert folders == set()
    else:
        assert folders == {"checkpoint-2", "checkpoint-4"}  # queued, never skipped
        assert "checkpoint-2/optimizer.pt" in files
        assert hub.commits[-1].summary == "honer train: final model"
    assert (
        files["adapter_model.safetensors"]
        == (tmp_path / "out/adapter_model.safetensors").read_bytes()
    )
    _no_stray_writes(hub)


def _fake_checkpoint(out: Path, step: int) -> Path:
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name, data in {
        "adapter_model.safetensors": b"weights-%d" % step,
        "adapter_config.json": b"{}",
        "optimizer.pt": b"optimizer",
        "trainer_state.json": b'{"global_step": %d}' % step,
        "training_args.bin": b"pickled",
        "README.md": b"---\nbase_model: /somewhere/local\n---\npeft's card\n",
    }.items():
        (folder / name).write_bytes(data)
    return folder


def test_queued_pushes_survive_rotation_and_busy_saves_are_skipped(
    hub: HubStub, tmp_path: Path, capsys
) -> None:
    """A checkpoint rotated away (`save_total_limit`) while its push waits in the queue is still
    uploaded whole (the push reads hard links); with `every_save`, a save made while a push runs
    is skipped, with `all_checkpoints` it is queued."""
    import threading

    from honer.config.load import load_config
    from honer.runs.hub import HubPusher, preflight

    out = tmp_path / "out"
    for strategy in ("all_checkpoints", "every_save"):
        cfg = load_config(
            _config(tmp_path, tmp_path, f"hub_model_id: user/tiny\nhub_strategy: {strategy}\n")
        )
        pusher = HubPusher(cfg, preflight(cfg))
        gate = threading.Event()
        pusher.futures.append(pusher.api.run_as_future(gate.wait, 10))  # the worker is busy
        checkpoint = _fake_checkpoint(out, 3)
        pusher.saved(out, 3)
        shutil.rmtree(checkpoint)  # rotation, before the queued push ran
        gate.set()
        pusher.wait()
    assert "hub: the previous push is still running; checkpoint-3 is not pushed" in " ".join(
        capsys.readouterr().out.split()
    )
    assert [c.summary for c in hub.commits] == ["honer train: checkpoint-3"]  # all_checkpoints
    files = hub.files("user/tiny")
    assert files["checkpoint-3/adapter_model.safetensors"] == b"weights-3"
    assert files["checkpoint-3/optimizer.pt"] == b"optimizer"
    assert files["adapter_model.safetensors"] == b"weights-3"
    assert "optimizer.pt" not in files and "trainer_state.json" not in files
    assert not [p for p in files if p.endswith(("training_args.bin", "/README.md"))]
    assert "base_model" not in files["README.md"].decode().split("\n---", 1)[0]
    assert list(out.iterdir()) == []  # the hard-link snapshots are gone


def test_the_hub_card_names_only_hub_models_as_base_model(tmp_path: Path) -> None:
    from honer.runs.card import hub_base_model

    assert hub_base_model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert hub_base_model("gpt2") == "gpt2"
    for local in (str(tmp_path), "./models/x", "a/b/c", "model.gguf"):
        assert hub_base_model(local) is None, local
