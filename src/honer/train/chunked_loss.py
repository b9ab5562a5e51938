"""The output layer and the cross-entropy, a chunk of tokens at a time (`cut_cross_entropy`).

Why: the plain causal loss holds the logits of every token of the micro-batch at once, in the
model's dtype and again in float32, and autograd keeps them (and the softmax) until backward::

    hidden  (batch, seq, hidden)  ──lm_head──▶  logits (batch × seq, vocab)  ──CE──▶  loss
                                                ^^^^^^^^^^^^^^^^^^^^^^^^^^
                     2 × 4096 tokens × 152k vocab × 4 bytes ≈ 5 GB, × 2-3 with the softmax and
                     the gradient: on a small model the largest tensor of the whole step

Here only the trained tokens (label ≠ -100 after the shift by one) go through the head, `chunk`
rows at a time, and each chunk's gradient is taken on the spot, so at most one chunk's logits
exist at any moment::

    hidden (N, H) ──select trained rows──▶ h (n, H)
        for each chunk c of h (chunk × H):
            logits_c = lm_head(c).float()                      (chunk, V)   ← the only big tensor
            [× logit scale] [softcap: cap · tanh(· / cap)]
            loss    += CE_sum(logits_c, targets_c)
            grad_h[c], grad_params += ∂CE_sum / ∂(c, head parameters)   (freed with logits_c)
    forward returns Σ loss (float32, a 0-dim tensor); backward returns the stored gradients ×
    the incoming scalar.

Memory is O(chunk × vocab) instead of O(tokens × vocab) (measured by bench/chunked_ce.py);
computing the gradients during forward (as Liger's fused linear cross-entropy does) costs the same
three matrix products as the plain path (logits, grad of hidden, grad of weight), and backward
never needs the head's weights again. A plain linear head (the usual case: frozen under LoRA,
trained in a full fine-tune, tied to the embedding or copied by `modules_to_save`) is computed
from its weight, its gradient summed in place in float32; any other head (LoRA or DoRA on
`lm_head`, a quantized head) is called as the module it is, per chunk, with autograd, so it is
computed exactly as the model computes it, gradients to its trainable parameters included. The
logits are upcast to float32 exactly where the plain path's `token_sum_loss` upcasts them. The
result is the *sum* of token losses: the trainer divides it by the trained tokens of the whole
optimizer step, like `token_sum_loss`.

How the trainer gets the hidden states without the full logits: `ChunkedHead.capture` replaces
the head module's `forward` for one model call. The model runs as usual (through peft, DDP,
FSDP2 or DeepSpeed, whatever they hook), hands its final hidden states to `lm_head`, and our
forward computes the loss there, where every engine has gathered the head's parameters, and
returns the real head output for the last position only, so the model's own logit
post-processing (softcapping, scaling) runs on a (batch, 1, vocab) tensor. The first call
compares that post-processed output with our own transform of the same logits: a model that
changes its logits in a way we do not reproduce is refused, never trained wrongly. The loss is
tied (by + 0) to that output so that the gradient enters the head through its output, as
engines that gather parameters for a module's backward expect (`_through_output`); DDP, FSDP2 and
ZeRO-3 runs on two processes train exactly like the plain loss on one (tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from honer.errors import NotSupportedError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
TURN_OFF = "turn `cut_cross_entropy` (or `liger_fused_linear_cross_entropy`) off for this model"
# Logit elements per chunk: 2**25 float32 logits are 128 MiB (SmolLM2's 49,152 vocabulary: 512
# tokens a chunk; a 152k vocabulary: 128 tokens; the tests' 2,048: 16,384).
CHUNK_ELEMENTS = 2**25


def chunk_tokens(vocab_size: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Tokens per chunk for a vocabulary: a power of two, 64 … 16,384 (wide enough matmuls)."""
    rows = max(1, elements // max(1, vocab_size))
    return max(64, min(2**14, 2 ** int(math.log2(rows))))


class LogitTransform:
    """What a model does to its head's output before the loss: × scale, then softcapping.

    Gemma 2/3 cap logits with `cap · tanh(logits / cap)` (`final_logit_softcapping`), Cohere
    multiplies them by `logit_scale`, Granite divides them by `logits_scaling`. Done in float32
    after the upcast. Anything else a model does is caught by `ChunkedHead`'s first-call check.
    """

    def __init__(self, scale: float = 1.0, softcap: float | None = None) -> None:
        self.scale = float(scale)
        self.softcap = float(softcap) if softcap else None

    @classmethod
    def of(cls, model_config: Any) -> LogitTransform:
        """The transform a transformers config declares (its text config for multimodal ones)."""
        text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else None
        text = text or model_config
        scale = 1.0
        if getattr(text, "logit_scale", None) is not None:
            scale = float(text.logit_scale)
        elif getattr(text, "logits_scaling", None) is not None:
            scale = 1.0 / float(text.logits_scaling)
        return cls(scale, getattr(text, "final_logit_softcapping", None))

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        import torch

        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class LinearHead:
    """A head that is a plain linear layer, `weight` (V, H) and `bias` (V,) or None.

    Computed directly rather than through autograd of the module: each chunk's weight gradient
    is added in place into one float32 sum (`addmm_`), where autograd would allocate a new
    weight-sized tensor per chunk. LoRA-adapted and other heads go through their own forward.
    """

    __slots__ = ("bias", "weight")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.weight = weight
        self.bias = bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.linear(x, self.weight, self.bias)


_FUNCTION: Any = None


def _chunked_function() -> Any:
    """The autograd Function, built on first use so that importing this module stays torch-free."""
    global _FUNCTION
    if _FUNCTION is not None:
        return _FUNCTION
    import torch
    import torch.nn.functional as F

    def add(acc: torch.Tensor | None, grad: torch.Tensor) -> torch.Tensor:
        """Sum chunk gradients in float32; the first one becomes the sum (no extra buffer)."""
        if acc is None:
            return grad.float()
        return acc.add_(grad)

    class ChunkedHeadCrossEntropy(torch.autograd.Function):
        """Σ CE(transform(head(h)), targets) over the rows of `h`, chunk by chunk, gradients
        taken during forward (module docstring).

        Inputs: `h` (n, H) trained rows only, `targets` (n,) all valid, `head` (a `LinearHead`,
        or any callable (c, H) → (c, V)), `transform`, `chunk`, then the head's trainable
        parameters, so that autograd routes their gradients (for a tied head, into the
        embedding too). Only called with gradients enabled: `needs_input_grad` does not see
        `torch.no_grad()`.
        """

        @staticmethod
        def forward(  # type: ignore[override]
            ctx: Any,
            h: torch.Tensor,
            targets: torch.Tensor,
            head: Callable[[torch.Tensor], torch.Tensor],
            transform: LogitTransform,
            chunk: int,
            *params: torch.Tensor,
        ) -> torch.Tensor:
            need_h = bool(ctx.needs_input_grad[0])
            needed = [bool(n) for n in ctx.needs_input_grad[5:]]
            wanted = [p for p, n in zip(params, needed, strict=True) if n]
            grad_h = torch.zeros_like(h) if need_h else None
            grad_p: list[torch.Tensor | None] = [None] * len(wanted)
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            for start in range(0, h.shape[0], chunk):
                rows, stop = h[start : start + chunk], start + chunk
                if isinstance(head, LinearHead):
                    raw = head(rows)  # the layer's own dtype, as nn.Linear computes it
                    with torch.enable_grad():
                        logits = raw.float().requires_grad_()
                        loss = F.cross_entropy(
                            transform(logits), targets[start:stop], reduction="sum"
                        )
                    (g,) = torch.autograd.grad(loss, [logits])  # (chunk, V) float32
                    if need_h:
                        grad_h[start:stop] = g.to(head.weight.dtype) @ head.weight
                    for i, p in enumerate(wanted):
                        if p is head.weight:
                            if grad_p[i] is None:
                                grad_p[i] = torch.zeros(
                                    p.shape, dtype=torch.float32, device=p.device
                                )
                            grad_p[i].addmm_(g.t(), rows.float())
                        elif p is head.bias:
                            grad_p[i] = add(grad_p[i], g.sum(0))
                        else:
                            raise ValueError("a linear head's parameters are its weight and bias")
                    del raw, g
                else:
                    with torch.enable_grad():
                        x = rows.detach().requires_grad_(need_h)
                        logits = transform(head(x).float())
                        loss = F.cross_entropy(logits, targets[start:stop], reduction="sum")
                    wrt = ([x] if need_h else []) + wanted
                    grads = list(torch.autograd.grad(loss, wrt, allow_unused=True))
                    if need_h:
                        grad_h[start:stop] = grads.pop(0)
                    for i, g in enumerate(grads):
                        if g is not None:
                            grad_p[i] = add(grad_p[i], g)
                    del grads
                total += loss.detach()
                del logits, loss
            ctx.grad_h, ctx.grad_p = grad_h, grad_p
            ctx.needed = [
                (n, (p.shape, p.dtype, p.device)) for p, n in zip(params, needed, strict=True)
            ]
            return total

        @staticmethod
        def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[Any, ...]:
            if ctx.grad_p is None:
                raise RuntimeError("the chunked loss's gradients were already handed out once")
            # The stored gradients are scaled in place: no second weight-sized tensor.
            grad_h = ctx.grad_h
            if grad_h is not None:
                grad_h.mul_(grad_total.to(grad_h.dtype))
            stored = iter(ctx.grad_p)
            grads = []
            for needed, (shape, dtype, device) in ctx.needed:
                if not needed:
                    grads.append(None)
                    continue
                g = next(stored)
                if g is None:  # no trained token (or unused): a zero gradient, as plainly
                    g = torch.zeros(shape, dtype=torch.float32, device=device)
                grads.append(g.mul_(grad_total).to(dtype))
            ctx.grad_h = ctx.grad_p = None
            return (grad_h, None, None, None, None, *grads)

    _FUNCTION = ChunkedHeadCrossEntropy
    return _FUNCTION


def trained_rows(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states whose next-token label is trained, and those labels: (n, H), (n,).

    Labels shift by one as the causal loss does (position t predicts label t+1, the last
    position predicts nothing), -100 is dropped: only these rows ever reach the head.
    """
    import torch.nn.functional as F

    shifted = F.pad(labels.to(hidden.device), (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1)
    rows = hidden.reshape(-1, hidden.shape[-1])
    if rows.shape[0] != shifted.shape[0]:
        raise NotSupportedError(
            f"cut_cross_entropy: the output layer got hidden states {tuple(hidden.shape)} for "
            f"labels {tuple(labels.shape)}; {TURN_OFF}."
        )
    keep = (shifted != IGNORE_INDEX).nonzero().squeeze(-1)
    return rows.index_select(0, keep), shifted.index_select(0, keep)


def chunked_cross_entropy_sum(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    params: Sequence[torch.Tensor] = (),
    transform: LogitTransform | None = None,
    chunk: int | None = None,
    vocab_size: int | None = None,
) -> torch.Tensor:
    """Summed next-token cross-entropy of `head(hidden)`, never holding more than one chunk's logits.

    `hidden` (..., seq, H) and `labels` (..., seq) as the model sees them (shifted here, -100
    ignored). `head`: a plain `nn.Linear` or `LinearHead` (computed directly), or any callable
    (the module's forward: LoRA, DoRA, quantized). `params` are the head's parameters: the
    trainable ones get their gradients back through autograd. A batch with no trained token gives 0 with zero gradients, not NaN.
    Returns a float32 0-dim tensor. Without gradients (evaluation) it is the same loop, no graph.
    """
    import torch
    import torch.nn.functional as F

    if type(head) is torch.nn.Linear:
        head = LinearHead(head.weight, head.bias)
    h, targets = trained_rows(hidden, labels)
    transform = transform or LogitTransform()
    chunk = chunk or chunk_tokens(vocab_size or 2**15)
    trainable = [p for p in params if p.requires_grad]
    if torch.is_grad_enabled() and (h.requires_grad or trainable):
        return _chunked_function().apply(h, targets, head, transform, chunk, *trainable)
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    with torch.no_grad():
        for start in range(0, h.shape[0], chunk):
            logits = transform(head(h[start : start + chunk]).float())
            total += F.cross_entropy(logits, targets[start : start + chunk], reduction="sum")
    return total


def _plain_linear(module: Any) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) when the head is a plain `nn.Linear` (or peft's `modules_to_save` copy of
    one), computed from its weight (`LinearHead`, or Liger's kernel). None for anything else
    (LoRA or DoRA on the head, a quantized head, hooks): that head runs its own forward."""
    import torch

    try:
        from peft.utils.other import ModulesToSaveWrapper
    except ImportError:  # pragma: no cover - peft is a dependency
        ModulesToSaveWrapper = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(module, ModulesToSaveWrapper):
        active = module.active_adapters
        if module.disable_adapters or not active or active[0] not in module.modules_to_save:
            module = module.original_module
        else:
            module = module.modules_to_save[active[0]]
    if type(module) is torch.nn.Linear and not getattr(module, "_forward_hooks", None):
        return module.weight, module.bias
    return None


class ChunkedHead:
    """Runs the model's output layer + loss chunk by chunk during one model call (`capture`).

    `backend`: "chunked" (honer's `chunked_cross_entropy_sum`, any device) or "liger" (Liger's
    fused linear cross-entropy kernel on CUDA, used when the head is a plain linear layer and the
    model's only post-processing is softcapping; otherwise honer's). Usage::

        head = ChunkedHead(model)
        with head.capture(labels):
            outputs = model(**inputs_without_labels)
        total = head.take_total(outputs)   # Σ token losses (float32), the step divides it
    """

    def __init__(self, model: Any, backend: str = "chunked", chunk: int | None = None) -> None:
        module = model.get_output_embeddings()
        if module is None:
            raise NotSupportedError(
                f"cut_cross_entropy: {type(model).__name__} has no output layer "
                f"(`get_output_embeddings()` is None); {TURN_OFF}."
            )
        config = model.config
        self.module = module
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
        self.model_name = type(base).__name__
        self.transform = LogitTransform.of(config)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.vocab_size = int(getattr(text, "vocab_size", 0) or 0) or None
        self.chunk = chunk
        self.backend = backend
        self._labels: torch.Tensor | None = None
        self._total: torch.Tensor | None = None
        self._raw_last: torch.Tensor | None = None
        self._checked = False

    @contextmanager
    def capture(self, labels: torch.Tensor) -> Iterator[ChunkedHead]:
        """For the model call inside: the head computes the summed loss of `labels` and returns
        its real output for the last position only."""
        module = self.module
        previous = module.__dict__.get("forward")  # e.g. accelerate's hook wrapper
        original = module.forward
        # A plain linear head (and no wrapper around its forward) is computed from its weight.
        linear = _plain_linear(module) if previous is None else None

        def forward(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            if self._labels is None:
                raise NotSupportedError(
                    f"cut_cross_entropy: {self.model_name} calls its output layer more than once "
                    f"per forward; {TURN_OFF}."
                )
            labels, self._labels = self._labels, None

            def head(x: torch.Tensor) -> torch.Tensor:
                return original(x, *args, **kwargs)

            total = self._loss_sum(hidden, labels, LinearHead(*linear) if linear else head)
            last = original(hidden[..., -1:, :], *args, **kwargs)
            self._raw_last = last.detach()
            self._total = total
            if total.requires_grad:  # see `_through_output`
                last = last + (total * 0).to(last.dtype)
            return last

        self._labels, self._total, self._raw_last = labels, None, None
        module.forward = forward
        try:
            yield self
        finally:
            if previous is None:
                del module.forward
            else:
                module.forward = previous
            self._labels = None

    def _loss_sum(
        self, hidden: torch.Tensor, labels: torch.Tensor, head: Callable[[torch.Tensor], Any]
    ) -> torch.Tensor:
        """Liger's kernel for a plain linear head when asked (it takes a weight matrix and
        knows softcapping, not scaling), else honer's chunked loss."""
        if self.backend == "liger" and isinstance(head, LinearHead) and self.transform.scale == 1:
            h, targets = trained_rows(hidden, labels)
            if h.shape[0] > 0:
                return liger_cross_entropy_sum(
                    h, targets, head.weight, head.bias, self.transform.softcap
                )
        if isinstance(head, LinearHead):  # what this forward uses, nothing else of the module
            params = [p for p in (head.weight, head.bias) if p is not None and p.requires_grad]
        else:
            params = [p for p in self.module.parameters() if p.requires_grad]
        return chunked_cross_entropy_sum(
            hidden, labels, head, params, self.transform, self.chunk, self.vocab_size
        )

    def take_total(self, outputs: Any) -> torch.Tensor:
        """The summed loss of the call just made; the first time, also check that the model's own
        post-processing of its logits is the one the chunked loss applied."""
        total, self._total = self._total, None
        if total is None:
            raise NotSupportedError(
                f"cut_cross_entropy: {self.model_name} never called its output layer "
                f"(`get_output_embeddings()`) in forward; {TURN_OFF}."
            )
        if not self._checked and self._raw_last is not None:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            self._check(logits, self._raw_last)
            self._checked = True
        self._raw_last = None
        return _through_output(total, outputs)

    def _check(self, logits: torch.Tensor, raw: torch.Tensor) -> None:
        import torch

        expected = self.transform(raw.float())
        got = logits.detach().float()
        half = raw.dtype in (torch.float16, torch.bfloat16)
        rtol, atol = (3e-2, 1e-2) if half else (1e-4, 1e-4)
        if got.shape != expected.shape:
            worst = "shape " + str(tuple(got.shape))
        else:
            excess = (got - expected).abs() - rtol * expected.abs()
            if bool((excess <= atol).all()):
                return
            worst = f"{float((got - expected).abs().max()):.4g}"
        raise NotSupportedError(
            f"cut_cross_entropy: {self.model_name} changes its logits after the output layer in "
            f"a way honer's chunked loss does not reproduce (difference {worst}); {TURN_OFF}."
        )


def _through_output(total: torch.Tensor, outputs: Any) -> torch.Tensor:
    """`total`, made to depend (by + 0) on the model's output logits, as the plain loss does.

    Engines that gather a module's parameters for its backward when the gradient reaches the
    module's *output* (DeepSpeed ZeRO-3) would otherwise never see the head's backward start:
    the gradient of the loss would reach the head's weight while it is partitioned. With the
    head's output carrying `0 × total` and the loss carrying `0 × logits`, the gradient enters
    through the head's output first, and the chunked loss's own backward runs after it. Only one
    logit is used, with non-finite values zeroed, so the value stays exactly `total`.
    """
    if not total.requires_grad:
        return total
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    if not getattr(logits, "requires_grad", False):
        return total
    one = logits.reshape(-1)[:1].float().nan_to_num(0.0, 0.0, 0.0).sum()
    return total + one * 0


def liger_cross_entropy_sum(
    h: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    softcap: float | None,
) -> torch.Tensor:
    """Σ CE of `h @ weight.T + bias` (softcapped) through Liger's fused linear cross-entropy
    kernel (CUDA, Triton), over trained rows only (`trained_rows`)."""
    from liger_kernel.transformers.fused_linear_cross_entropy import (
        LigerFusedLinearCrossEntropyLoss,
    )

    loss = LigerFusedLinearCrossEntropyLoss(
        ignore_index=IGNORE_INDEX, reduction="sum", softcap=softcap
    )
    return loss(weight, h, targets, bias).float()
