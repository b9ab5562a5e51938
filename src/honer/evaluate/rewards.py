"""GRPO's reward functions from the config: honer's evaluation checks, or the user's Python.

(`honer.runs.train` builds them and hands them to `honer.train.grpo`.)

`trl.reward_funcs` lists, in order:

* a check mapping, as in `evals.checks` (`{type: regex, pattern: ...}`, `not_regex`, `json`,
  `json_schema`, `exact`, `contains`, `callable`): the reward of a completion is the check's
  score (1 pass, 0 fail, or the `callable`'s number); `exact` and `contains` compare with the
  row's `answer` column;
* `evals`: every entry of `evals.checks`, so the assertions `honer evaluate` reports are the
  rewards the model is trained on;
* a Python `module.function` / `module:function` with TRL's signature
  (`prompts, completions, completion_ids, **columns) -> list[float | None]`), imported from the
  working directory, as Axolotl's reward modules are.

TRL names each reward's logged mean after the function (`rewards/<name>/mean`): a check is
named by its `name`, else its type, numbered when two share a name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from honer.config.schema import Config
from honer.errors import HonerError

RewardFn = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """A completion as text: TRL gives text for text prompts, and `[{role, content}]` for
    conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return str(completion)


def check_reward(check: Any, name: str) -> RewardFn:
    """A reward function scoring each completion with one of honer's checks."""

    def reward(prompts: list, completions: list, **columns: Any) -> list[float | None]:
        answers = columns.get("answer")
        scores: list[float | None] = []
        for i, completion in enumerate(completions):
            expected = None if answers is None or answers[i] is None else str(answers[i])
            try:
                scores.append(float(check.score(completion_text(completion), expected)))
            except Exception as err:
                raise HonerError(
                    f"the reward `{name}` (trl.reward_funcs) failed on a completion: "
                    f"{type(err).__name__}: {err}"
                ) from err
        return scores

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def _expanded(cfg: Config) -> list[tuple[str, Any]]:
    """(config key path, spec) of every reward, `evals` replaced by the checks it means."""
    assert cfg.trl is not None
    out: list[tuple[str, Any]] = []
    for i, spec in enumerate(cfg.trl.reward_funcs):
        if spec == "evals" and cfg.evals is not None:
            out += [(f"evals.checks[{j}]", c) for j, c in enumerate(cfg.evals.checks)]
        else:
            out.append((f"trl.reward_funcs[{i}]", spec))
    return out


def reward_functions(cfg: Config) -> list[RewardFn]:
    """The run's reward functions, in `reward_weights` order."""
    from honer.data.prompts import import_python
    from honer.evaluate.assertions import build_check

    functions: list[RewardFn] = []
    seen: dict[str, int] = {}
    for where, spec in _expanded(cfg):
        if isinstance(spec, dict):
            check = build_check(spec, where)
            base = check.name
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}_{seen[base]}"
            functions.append(check_reward(check, name))
        else:
            functions.append(import_python(str(spec), where))
    return functions
