"""Pushing a run to the Hugging Face Hub: `hub_model_id`, `hub_strategy`, `hub_private_repo`,
`hub_revision` (see docs/hub.md).

transformers' own `push_to_hub` is not used: it reads the token its own way, uploads what the
Trainer wrote (`training_args.bin`, peft's generic card, TensorBoard folders) and pushes from a
copy of the checkpoint it makes in `output_dir`. Here one callback and one final commit upload
exactly the files honer publishes:

* the repository root: the model or adapter, the tokenizer, `config.yml`, `README.md` (the model
  card, with Hub-valid metadata), `metrics.jsonl`, and at the end `report.html`, `curves.png`,
  `data_stats.json`, `parallel.json`;
* `last-checkpoint/` (`hub_strategy: checkpoint`): the newest checkpoint, training state included,
  so a run can be resumed from the Hub copy;
* `checkpoint-N/` (`hub_strategy: all_checkpoints`): every checkpoint.

With `every_save` (the default, as in transformers), `checkpoint` and `all_checkpoints`, each save
is pushed in the background while training goes on; the push at the end waits for those, then
commits the final result and reports its commit. Checkpoint files are hard-linked into a staging
folder before their push is queued, so rotation (`save_total_limit`) can delete a checkpoint that
is still uploading.

The token comes from the environment only (`HF_TOKEN`, or the login `hf auth login` stored):
honer never reads it into its config, its files or its messages, and every error text passes
through `scrub` before it is shown. `preflight` says before any data or model is loaded when the
Hub is offline, unreachable, or there is no usable token, and creates the repository (and
branch), as transformers does when its trainer starts.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from honer.config.dump import resolved_config_yaml
from honer.config.schema import Config
from honer.errors import HonerError
from honer.runs.card import model_card
from honer.train.checkpoint import STAGING_PREFIX, list_checkpoints

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd, HfApi

DEFAULT_STRATEGY = "every_save"  # transformers' default for `hub_strategy`
PROBE_TIMEOUT_S = 15.0  # the reachability probe; huggingface_hub's own calls have no timeout

# Files of a checkpoint folder that are training state, not the model: kept out of the repository
# root. `training_args.bin` (pickled arguments) and peft's generic README never leave the machine.
_STATE_FILES = (
    "optimizer*",
    "scheduler*",
    "scaler*",
    "rng_state*",
    "trainer_state.json",
    "training_args.bin",
    "README.md",
)
_NEVER_UPLOADED = ("training_args.bin", "README.md")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TOKEN_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(bearer\s+)[^\s'\"]+"),
)


class HubError(HonerError):
    """The Hub cannot be used as the config asks (offline, no token, refused, failed push)."""


@dataclass(frozen=True)
class HubTarget:
    """Where a run pushes: the repository as the Hub named it, and the branch."""

    repo_id: str
    url: str
    revision: str | None
    private: bool | None
    strategy: str

    def describe(self) -> str:
        branch = f", branch {self.revision}" if self.revision else ""
        private = ", private" if self.private else ""
        return f"hub: pushing to {self.url} ({self.strategy}{branch}{private})"


def scrub(text: str) -> str:
    """`text` without the Hub token (the one in use, and anything shaped like one), so an error
    from huggingface_hub or httpx can be shown and logged."""
    token = _current_token()
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    text = _TOKEN_PATTERNS[0].sub("hf_***", text)
    return _TOKEN_PATTERNS[1].sub(r"\1***", text)


def _current_token() -> str | None:
    """The token huggingface_hub would send (environment first, then the stored login); only
    ever compared or handed to huggingface_hub, never stored by honer."""
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception:  # an OIDC exchange that fails: reported by the calls that need it
        return None


def _endpoint() -> str:
    """`HF_ENDPOINT` read now (huggingface_hub reads it once, at import), else its default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _offline_reason() -> str | None:
    """Why requests would be refused before they leave: offline mode, as the environment says
    now or as huggingface_hub read it at import (it then blocks every request)."""
    from huggingface_hub import constants

    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{var}={os.environ[var]} is set (offline mode)"
    if constants.is_offline_mode():
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it was imported)"
    return None


def _api() -> HfApi:
    from huggingface_hub import HfApi

    # No token passed: huggingface_hub looks it up at each request, so honer holds none.
    return HfApi(endpoint=_endpoint(), library_name="honer")


def _unreachable(reason: str) -> HubError:
    return HubError(
        f"hub_model_id is set but the Hub cannot be reached: {scrub(reason)}; unset "
        "HF_HUB_OFFLINE / check the network, or remove hub_model_id."
    )


def preflight(cfg: Config) -> HubTarget | None:
    """Check, before data or model are loaded, that the run can push where `hub_model_id` says:
    online, a token, the Hub reachable and accepting it; then create the repository
    (`hub_private_repo`) and the `hub_revision` branch if they do not exist. None without
    `hub_model_id`."""
    if not cfg.hub_model_id:
        return None
    reason = _offline_reason()
    if reason:
        raise _unreachable(reason)
    if not _current_token():
        raise HubError(
            "hub_model_id is set but no Hugging Face token was found: set HF_TOKEN to a token "
            "with write access (or log in with `hf auth login`), or remove hub_model_id."
        )
    _probe()
    api = _api()
    try:
        url = api.create_repo(cfg.hub_model_id, private=cfg.hub_private_repo, exist_ok=True)
        revision = cfg.hub_revision if cfg.hub_revision not in (None, "main") else None
        if revision:
            api.create_branch(url.repo_id, branch=revision, exist_ok=True)
    except Exception as err:
        raise HubError(
            f"hub_model_id: cannot create or use the Hub repository `{cfg.hub_model_id}`"
            f"{f' (branch {cfg.hub_revision})' if cfg.hub_revision else ''}: {_message(err)}"
        ) from None
    return HubTarget(
        repo_id=url.repo_id,
        url=str(url),
        revision=revision,
        private=cfg.hub_private_repo,
        strategy=cfg.hub_strategy or DEFAULT_STRATEGY,
    )


def _probe() -> None:
    """One authenticated request with a timeout (`whoami`): an unreachable endpoint, a rejected
    or read-only token are said now, not after training."""
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers

    url = f"{_endpoint()}/api/whoami-v2"
    try:
        response = get_session().get(
            url, headers=build_hf_headers(library_name="honer"), timeout=PROBE_TIMEOUT_S
        )
    except Exception as err:
        raise _unreachable(f"{_endpoint()}: {_message(err)}") from None
    if response.status_code == 401:
        raise HubError(
            "hub_model_id is set but the Hub rejected the token (HF_TOKEN, or the stored login "
            "when HF_TOKEN is unset): set HF_TOKEN to a valid token with write access, or remove "
            "hub_model_id."
        )
    if response.status_code >= 500:
        raise _unreachable(f"{url} answered HTTP {response.status_code}")
    if response.status_code >= 400:  # reachable (rate-limited, a mirror without whoami…):
        return  # creating the repository, next, says what is wrong if anything is
    try:
        role = response.json()["auth"]["accessToken"]["role"]
    except (ValueError, KeyError, TypeError):
        role = None
    if role == "read":
        raise HubError(
            "hub_model_id is set but the Hugging Face token is read-only: use a token with write "
            "access (HF_TOKEN or `hf auth login`), or remove hub_model_id."
        )


def _message(err: BaseException) -> str:
    """One line for an exception, the token scrubbed out."""
    text = str(err).strip() or type(err).__name__
    return scrub(" ".join(text.split()))


# --- what is uploaded -------------------------------------------------------------------------


def hub_card(cfg: Config, output_dir: Path) -> bytes:
    """README.md as pushed: honer's model card with metadata the Hub accepts (see `card.py`)."""
    return model_card(
        cfg, output_dir, resolved_config_yaml(cfg), [], merged=False, hub=True
    ).encode()


def _add(path_in_repo: str, content: Path | bytes) -> CommitOperationAdd:
    from huggingface_hub import CommitOperationAdd

    return CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=content)


def _folder_operations(folder: Path, prefix: str) -> list[CommitOperationAdd]:
    """Every file under a checkpoint folder, as `prefix/…` (training state included: it is what
    resuming needs), except the pickled arguments and peft's card."""
    return [
        _add(f"{prefix}/{path.relative_to(folder).as_posix()}", path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in _NEVER_UPLOADED
    ]


def published_files(output_dir: Path) -> list[Path]:
    """The run's top-level files, as published in `output_dir` (model/adapter, tokenizer,
    config.yml, metrics, report…): no folder, no hidden or staging file, no pickled arguments."""
    return [
        p
        for p in sorted(output_dir.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != "training_args.bin"
    ]


def final_operations(
    cfg: Config, output_dir: Path, strategy: str, pushed: frozenset[str] = frozenset()
) -> list[CommitOperationAdd]:
    """The final commit: the published files (README.md as `hub_card`), plus the checkpoints the
    strategy keeps on the Hub that were not pushed yet (`pushed`: checkpoint names)."""
    ops = [_add(p.name, p) for p in published_files(output_dir) if p.name != "README.md"]
    ops.append(_add("README.md", hub_card(cfg, output_dir)))
    checkpoints = list_checkpoints(output_dir)
    if strategy == "checkpoint" and checkpoints and checkpoints[-1].name not in pushed:
        ops += _folder_operations(checkpoints[-1], "last-checkpoint")
    if strategy == "all_checkpoints":
        for checkpoint in checkpoints:
            if checkpoint.name not in pushed:
                ops += _folder_operations(checkpoint, checkpoint.name)
    return ops


def checkpoint_operations(
    cfg: Config, output_dir: Path, checkpoint: Path, name: str, strategy: str
) -> list[CommitOperationAdd]:
    """The commit for one save: the checkpoint's model files at the root with the card, the
    config and the metrics so far, and, per strategy, the whole checkpoint in a folder."""
    ops = [
        _add(p.name, p)
        for p in sorted(checkpoint.iterdir())
        if p.is_file() and not any(fnmatch.fnmatch(p.name, pat) for pat in _STATE_FILES)
    ]
    metrics = output_dir / "metrics.jsonl"
    ops.append(_add("config.yml", resolved_config_yaml(cfg).encode()))
    ops.append(_add("README.md", hub_card(cfg, output_dir)))
    if metrics.is_file():
        ops.append(_add("metrics.jsonl", metrics.read_bytes()))
    folder = {"checkpoint": "last-checkpoint", "all_checkpoints": name}.get(strategy)
    if folder:
        ops += _folder_operations(checkpoint, folder)
    return ops


def _snapshot(folder: Path, dest: Path) -> None:
    """Hard links to every file of `folder` under `dest` (a copy where links are refused): the
    upload reads these, whatever rotation does to the checkpoint meanwhile."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        target = dest / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def commit(
    target: HubTarget, operations: list[CommitOperationAdd], message: str, api: HfApi | None = None
) -> Any:
    """One commit of `operations` to the target's repository and branch."""
    api = api or _api()
    return api.create_commit(
        target.repo_id, operations=operations, commit_message=message, revision=target.revision
    )


def retry_hint(output_dir: Path) -> str:
    return f"retry the push (nothing is trained again) with `python -m honer.runs.hub {output_dir}`"


# --- during training --------------------------------------------------------------------------


class HubPusher:
    """Push each save in the background (per `hub_strategy`), then the final result (`finish`).

    Rank 0 only (`runs.train` creates it there; `callback()` is its trainer callback). Pushes run
    one after another on huggingface_hub's background worker (`HfApi.run_as_future`), so training
    never waits for the network. With `every_save` and `checkpoint`, a save made while the
    previous push still runs is not pushed (as transformers does: only the newest matters, and
    the next save or the end pushes it); with `all_checkpoints` it is queued, since every
    checkpoint is kept on the Hub.
    """

    def __init__(self, cfg: Config, target: HubTarget, console: Console | None = None) -> None:
        self.cfg = cfg
        self.target = target
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.api = _api()
        self.futures: list[Future] = []
        self.pushed: set[str] = set()
        self.failures: list[str] = []
        self._lock = threading.Lock()

    # -- during training --

    def callback(self) -> Any:
        """The `TrainerCallback` that hands each save to `saved` (transformers is imported here,
        so `python -m honer.runs.hub` does not load it)."""
        from transformers import TrainerCallback

        pusher = self

        class HubPushCallback(TrainerCallback):
            def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.is_world_process_zero:
                    pusher.saved(Path(args.output_dir), state.global_step)

        return HubPushCallback()

    def saved(self, output_dir: Path, step: int) -> None:
        """`checkpoint-{step}` was just published in `output_dir`: queue its push."""
        if self.target.strategy == "end":
            return
        name = f"checkpoint-{step}"
        checkpoint = output_dir / name
        if not checkpoint.is_dir():
            return
        busy = any(not f.done() for f in self.futures)
        if busy and self.target.strategy != "all_checkpoints":
            self.console.print(
                f"hub: the previous push is still running; {name} is not pushed (a later save "
                "or the final push uploads a newer one)",
                markup=False,
            )
            return
        snapshot = output_dir / f"{STAGING_PREFIX}hub-{name}"
        shutil.rmtree(snapshot, ignore_errors=True)
        _snapshot(checkpoint, snapshot)
        try:
            ops = checkpoint_operations(self.cfg, output_dir, snapshot, name, self.target.strategy)
        except Exception:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise
        future = self.api.run_as_future(self._push, ops, name, snapshot)
        self.futures.append(future)

    def _push(self, ops: list[CommitOperationAdd], name: str, snapshot: Path) -> Any:
        """The background job: one commit, then the snapshot removed; a failure is reported and
        training goes on (the final push uploads the result)."""
        try:
            info = commit(self.target, ops, f"honer train: {name}", self.api)
        except Exception as err:
            text = f"pushing {name} failed: {_message(err)}"
            with self._lock:
                self.failures.append(text)
            _warn(f"hub: {text}; training goes on, and the final push uploads the result.")
            return None
        finally:
            shutil.rmtree(snapshot, ignore_errors=True)
        with self._lock:
            self.pushed.add(name)
        self.console.print(f"hub: pushed {name} ({info.oid[:10]})", markup=False)
        return info

    # -- end of the run --

    def wait(self) -> None:
        """Let the background pushes finish (each reports its own failure)."""
        pending = [f for f in self.futures if not f.done()]
        if pending:
            self.console.print(
                f"hub: waiting for {len(pending)} background push(es) to finish", markup=False
            )
        for future in self.futures:
            future.exception()  # waits; `_push` already reported what went wrong
        self.futures.clear()

    def finish(self, output_dir: Path) -> str:
        """Wait for the background pushes, then commit the final result; returns its commit
        URL. A failure raises `HubError` saying the local outputs are saved and how to retry."""
        self.wait()
        with self._lock:
            pushed = frozenset(self.pushed)
        try:
            ops = final_operations(self.cfg, output_dir, self.target.strategy, pushed)
            info = commit(self.target, ops, "honer train: final model", self.api)
        except Exception as err:
            raise HubError(
                f"training finished and every output is saved in {output_dir}, but pushing them "
                f"to the Hub ({self.target.repo_id}) failed: {_message(err)}; "
                f"{retry_hint(output_dir)}."
            ) from None
        self.console.print(f"hub: pushed to {info.commit_url}", markup=False)
        return str(info.commit_url)


def _warn(text: str) -> None:
    warn = Console(stderr=True, highlight=False, soft_wrap=True)
    warn.print(Text("warning: ", style="yellow") + Text(text))


# --- pushing a finished run again ---------------------------------------------------------------


def push_output(output_dir: str | Path, console: Console | None = None) -> str:
    """Push a finished run's `output_dir` as `honer train` would have at its end (the config is
    the `config.yml` the run wrote); for a push that failed, or a run trained offline. Returns
    the commit URL."""
    from honer.config.load import load_config

    out = Path(output_dir)
    if not (out / "config.yml").is_file():
        raise HubError(f"{out} holds no config.yml: it is not the output_dir of a honer run.")
    cfg = load_config(out / "config.yml")
    if not cfg.hub_model_id:
        raise HubError(
            f"{out / 'config.yml'}: hub_model_id is not set; add it (and hub_* keys) there to push."
        )
    cfg = cfg.model_copy(update={"output_dir": str(out)})
    target = preflight(cfg)
    assert target is not None
    console = console or Console(highlight=False, soft_wrap=True)
    console.print(target.describe(), markup=False)
    try:
        info = commit(target, final_operations(cfg, out, target.strategy), "honer: push run")
    except Exception as err:
        raise HubError(f"pushing {out} to {target.repo_id} failed: {_message(err)}") from None
    console.print(f"hub: pushed to {info.commit_url}", markup=False)
    return str(info.commit_url)


def main(argv: list[str] | None = None) -> int:
    """`python -m honer.runs.hub OUTPUT_DIR`: push a finished run (see `push_output`)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m honer.runs.hub OUTPUT_DIR", file=sys.stderr)
        return 2
    try:
        push_output(args[0])
    except HonerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
