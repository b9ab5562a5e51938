"""`optimizer: muon`: Muon for the 2-D hidden weights, AdamW for everything else, as one optimizer.

Muon orthogonalises each weight matrix's momentum (Newton–Schulz) before the update; it is meant
for the matrices of hidden layers only, so the other parameters need an ordinary optimizer. The
split follows Axolotl's `MuonOptimizerFactory`: a trainable parameter whose name contains
`embed_tokens` or `lm_head` (or ends in `modules_to_save.default.weight`, a LoRA's fully trained
copy of them) goes to AdamW without weight decay, as does every parameter that is not 2-D
(norms, biases); every other 2-D parameter (attention and MLP projections, LoRA A/B) goes to
Muon. One learning rate and its schedule drive both, as in Axolotl; weight decay applies where
the Trainer would apply it (never to biases and norms).

The two halves are torch's own `torch.optim.Muon` and `torch.optim.AdamW`, held by one
`MuonWithAdamW` so that the Trainer, the LR scheduler and checkpoints see a single optimizer:
its `param_groups` are the inner optimizers' group dicts themselves (a schedule that sets a
group's `lr` sets it for the inner optimizer) and its `state` is the one dict both inner
optimizers write (their parameters are disjoint), so `state_dict`/`load_state_dict` round-trip.

Differences from Axolotl's Muon (axolotl-contribs-mit, Dion's implementation): torch's
Newton–Schulz coefficients, momentum as an exponential average (`buf.lerp_(grad, 1 - 0.95)`),
and torch's `original` LR adjustment, lr · sqrt(max(1, rows / cols)), where Axolotl's scales by
sqrt(rows / cols) (the same for square and tall matrices; smaller steps for wide ones there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from honer.errors import ConfigError

# Name parts that mark an embedding or output head (AdamW, as in Axolotl's factory).
_ADAMW_NAMES = ("embed_tokens", "lm_head")
_MODULES_TO_SAVE = "modules_to_save.default.weight"


def check_available() -> None:
    """Muon needs torch's optimizer and a Trainer that accepts optimizer factories."""
    if not hasattr(torch.optim, "Muon"):
        raise ConfigError(
            [
                (
                    "optimizer",
                    f"`muon` needs torch >= 2.9 (torch.optim.Muon); this is torch "
                    f"{torch.__version__}: upgrade torch, or choose `adamw_torch`.",
                )
            ]
        )
    try:
        from transformers.trainer_optimizer import is_optimizer_factory  # noqa: F401
    except ImportError:
        import transformers

        raise ConfigError(
            [
                (
                    "optimizer",
                    f"`muon` needs a transformers whose Trainer takes optimizer factories "
                    f"(5.25 does); this is {transformers.__version__}: upgrade transformers, or "
                    "choose `adamw_torch`.",
                )
            ]
        ) from None


def _is_embedding(name: str) -> bool:
    """An input embedding or output head, or a LoRA's fully trained copy of one."""
    return name.endswith(_MODULES_TO_SAVE) or any(part in name for part in _ADAMW_NAMES)


def uses_muon(name: str, param: torch.Tensor) -> bool:
    """Whether Axolotl's split gives this parameter to Muon (2-D, not embedding or head)."""
    return param.ndim == 2 and not _is_embedding(name)


class MuonWithAdamW(torch.optim.Optimizer):
    """torch's Muon on `muon_groups` and AdamW on `adamw_groups`, seen as one optimizer."""

    def __init__(
        self,
        muon_groups: list[dict[str, Any]],
        adamw_groups: list[dict[str, Any]],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum: float = 0.95,
        nesterov: bool = True,
    ) -> None:
        muon_groups = [g for g in muon_groups if g["params"]]
        adamw_groups = [g for g in adamw_groups if g["params"]]
        groups = [{**g, "algorithm": "muon"} for g in muon_groups]
        groups += [{**g, "algorithm": "adamw"} for g in adamw_groups]
        if not groups:
            raise ValueError("MuonWithAdamW got no parameter to optimize")
        super().__init__(groups, {"lr": lr, "weight_decay": weight_decay})
        self._muon_count = len(muon_groups)
        muon_part, adamw_part = self._split()
        # The inner optimizers take the very group dicts of this one (add_param_group keeps
        # them), so the scheduler's `lr` reaches them.
        self._muon = (
            torch.optim.Muon(
                muon_part, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov
            )
            if muon_part
            else None
        )
        self._adamw = (
            torch.optim.AdamW(adamw_part, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
            if adamw_part
            else None
        )
        self._link()

    def _split(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.param_groups[: self._muon_count], self.param_groups[self._muon_count :]

    def _link(self) -> None:
        """Point the inner optimizers at this optimizer's groups and state (after a load too)."""
        muon_part, adamw_part = self._split()
        for inner, part in ((self._muon, muon_part), (self._adamw, adamw_part)):
            if inner is not None:
                inner.param_groups = part
                inner.state = self.state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Muon step on the hidden matrices and one AdamW step on the rest."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for inner in (self._muon, self._adamw):
            if inner is not None:
                inner.step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as any optimizer does (new group dicts, new state), then re-link the halves."""
        super().load_state_dict(state_dict)
        self._link()


def decay_parameter_names(model: nn.Module) -> set[str]:
    """The names the Trainer applies weight decay to (not biases, not norms).

    `Trainer.get_decay_parameter_names` uses nothing of the trainer, and the factory is called
    with the model only; calling it unbound keeps the rule the Trainer's own."""
    from transformers import Trainer

    return set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]


class MuonFactory:
    """What transformers' `create_optimizer` calls as `MuonFactory()(model, **kwargs)`."""

    def __call__(
        self,
        model: nn.Module,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> MuonWithAdamW:
        decay = decay_parameter_names(model)
        muon_decay, muon_plain, adamw_decay, adamw_plain, embeddings = [], [], [], [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if _is_embedding(name):
                embeddings.append(param)
            elif uses_muon(name, param):
                (muon_decay if name in decay else muon_plain).append(param)
            else:
                (adamw_decay if name in decay else adamw_plain).append(param)
        return MuonWithAdamW(
            [
                {"params": muon_decay, "weight_decay": weight_decay},
                {"params": muon_plain, "weight_decay": 0.0},
            ],
            [
                {"params": adamw_decay, "weight_decay": weight_decay},
                {"params": adamw_plain, "weight_decay": 0.0},
                {"params": embeddings, "weight_decay": 0.0},
            ],
            lr=lr,
            weight_decay=weight_decay,
            betas=betas,
            eps=eps,
        )
