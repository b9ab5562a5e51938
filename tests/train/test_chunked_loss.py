"""The chunked head + loss (`cut_cross_entropy`, liger's fused linear CE on CPU) equals the plain one.

Loss and gradients (hidden states, head weight and bias, LoRA parameters, a LoRA-adapted or
`modules_to_save` head, a tied head) match `token_sum_loss` on full logits to 1e-5, for chunk
sizes that do and do not divide the trained-token count; whole training runs give the same loss
curve, packed and padded, evaluation included.
"""

from __future__ import annotations

import io
import json
import sys
import types

import pytest

from tests.train.data_util import config, dataset, token_rows

TOL = 1e-5


def _plain_sum(logits, labels):
    import torch.nn.functional as F

    shifted = F.pad(labels, (0, 1), value=-100)[..., 1:]
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        shifted.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


def _labels(batch: int, seq: int, vocab: int):
    import torch

    labels = torch.randint(0, vocab, (batch, seq))
    labels[0, :4] = -100  # a prompt
    labels[1, 7:] = -100  # padding
    return labels


# --- the function alone ---------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 16, None])
@pytest.mark.parametrize("transform", ["none", "scale+softcap"])
@pytest.mark.parametrize("path", ["linear", "module"])
def test_sum_and_gradients_equal_the_plain_loss(chunk, transform, path):
    """Hidden-state, weight and bias gradients; 7 does not divide the 17 trained tokens.

    `linear`: a plain linear head, computed from its weight; `module`: any other head, through
    its own forward and autograd (a LoRA head takes this path)."""
    import torch

    from honer.train.chunked_loss import LogitTransform, chunked_cross_entropy_sum

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50)
    hidden = torch.randn(2, 13, 16, requires_grad=True)
    labels = _labels(2, 13, 50)
    t = LogitTransform() if transform == "none" else LogitTransform(scale=0.5, softcap=2.0)

    plain = _plain_sum(t(head(hidden).float()), labels)
    plain.backward()
    expected = [hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]
    hidden.grad = None
    head.zero_grad()

    call = head if path == "linear" else (lambda x: head(x))
    total = chunked_cross_entropy_sum(hidden, labels, call, list(head.parameters()), t, chunk)
    assert total.dtype == torch.float32 and total.dim() == 0
    # The trainer scales the sum (÷ the step's tokens): backward must carry that factor.
    (total / 3).backward()
    assert float(total.detach()) == pytest.approx(float(plain.detach()), rel=1e-6)
    for want, got in zip(expected, [hidden.grad, head.weight.grad, head.bias.grad], strict=True):
        assert float((want / 3 - got).abs().max()) <= TOL

    with torch.no_grad():  # evaluation: no graph, same sum
        again = chunked_cross_entropy_sum(hidden, labels, call, [], t, chunk)
    assert float(again) == pytest.approx(float(plain), rel=1e-6)


def test_no_trained_token_gives_zero_and_zero_gradients():
    import torch

    from honer.train.chunked_loss import chunked_cross_entropy_sum
    from honer.train.trainer import step_share

    head = torch.nn.Linear(8, 20)
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    labels = torch.full((2, 5), -100)
    labels[:, 0] = 3  # the first token is never predicted: after the shift, nothing is trained
    total = chunked_cross_entropy_sum(hidden, labels, head, list(head.parameters()), chunk=3)
    loss = step_share(total, labels, None)
    loss.backward()
    assert float(loss) == 0.0 and not torch.isnan(loss)
    assert float(hidden.grad.abs().max()) == 0.0 and float(head.weight.grad.abs().max()) == 0.0


def test_chunk_size_follows_the_vocabulary():
    from honer.train.chunked_loss import chunk_tokens

    assert chunk_tokens(49_152) == 512  # 512 × 49,152 float32 logits = 96 MiB a chunk
    assert chunk_tokens(151_936) == 128
    assert chunk_tokens(2_048) == 2**14
    assert chunk_tokens(10**9) == 64


# --- a real model, its wrappers and its head --------------------------------------------------


def _padded_batch(n: int = 4, seed: int = 1):
    from honer.train.collate import PaddingCollator

    rows = token_rows(n, seed=seed)
    samples = [{"input_ids": i, "labels": lab} for i, lab in zip(*rows.values(), strict=True)]
    return PaddingCollator(pad_token_id=3)(samples)


def _packed_batch(n: int = 4, seed: int = 2):
    """One row of several samples: position ids restart, no attention mask."""
    import torch

    rows = token_rows(n, seed=seed)
    ids, labels, positions = [], [], []
    for i, lab in zip(*rows.values(), strict=True):
        ids += i
        labels += [-100, *lab[1:]]
        positions += list(range(len(i)))
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
    }


def _loss_and_grads(model, batch, chunk=None):
    """(loss, {trainable parameter: grad}) through the plain loss, or the chunked head."""
    from honer.train.chunked_loss import ChunkedHead
    from honer.train.trainer import step_share, token_sum_loss

    model.zero_grad(set_to_none=True)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    labels = batch["labels"]
    if chunk is None:
        loss = token_sum_loss(model(**inputs, use_cache=False), labels)
    else:
        head = ChunkedHead(model, chunk=chunk)
        with head.capture(labels):
            outputs = model(**inputs, use_cache=False)
        loss = step_share(head.take_total(outputs), labels, None)
        assert "forward" not in head.module.__dict__  # the head is itself again
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return float(loss.detach()), grads


def _assert_same(model, batch, chunks=(5, 64)):
    loss, grads = _loss_and_grads(model, batch)
    for chunk in chunks:
        loss_c, grads_c = _loss_and_grads(model, batch, chunk)
        assert loss_c == pytest.approx(loss, abs=TOL)
        worst = max(float((grads[k] - grads_c[k]).abs().max()) for k in grads)
        assert worst <= TOL, f"chunk {chunk}: gradient differs by {worst}"


def _lora_model(tiny_model_dir, tmp_path, **keys):
    import torch

    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer

    cfg = config(tiny_model_dir, tmp_path, adapter="lora", lora_dropout=0.0, **keys)
    model = build_adapter(cfg, load_model(cfg, load_tokenizer(cfg)), verbose=False)
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B starts at zero: make every LoRA gradient non-trivial
            param.data.normal_(0, 0.05)
    return model


@pytest.mark.parametrize(
    "keys",
    [
        {"lora_target_linear": True},
        {"lora_target_modules": ["q_proj", "v_proj", "lm_head"]},  # LoRA on the head itself
        {"lora_target_linear": True, "lora_modules_to_save": ["lm_head"]},
    ],
    ids=["lora", "lora_on_head", "head_saved"],
)
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_lora_gradients_equal_the_plain_loss(keys, layout, tiny_model_dir, tmp_path):
    model = _lora_model(tiny_model_dir, tmp_path, **keys)
    _assert_same(model, _padded_batch() if layout == "padded" else _packed_batch())


def _tiny(kind: str):
    """Random tiny models whose heads differ: tied (Llama), softcapped (Gemma 2), scaled
    (Cohere, × logit_scale; Granite, ÷ logits_scaling)."""
    import torch
    from transformers import (
        CohereConfig,
        CohereForCausalLM,
        Gemma2Config,
        Gemma2ForCausalLM,
        GraniteConfig,
        GraniteForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    shape = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=3,
    )
    torch.manual_seed(0)
    if kind == "tied":
        return LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=True))
    if kind == "softcap":
        # A cap of 1.0 bends every logit (Gemma 2 ships 30.0, which random logits barely reach).
        cfg = Gemma2Config(**shape, head_dim=16, final_logit_softcapping=1.0)
        return Gemma2ForCausalLM(cfg)
    if kind == "scale":
        return CohereForCausalLM(CohereConfig(**shape, logit_scale=0.25))
    return GraniteForCausalLM(GraniteConfig(**shape, logits_scaling=4.0))


@pytest.mark.parametrize("kind", ["tied", "softcap", "scale", "divide"])
def test_full_fine_tune_heads_equal_the_plain_loss(kind):
    """Every parameter trains; a tied head's gradient reaches the embedding through both uses."""
    model = _tiny(kind)
    model.train()
    _assert_same(model, _padded_batch(3), chunks=(7,))


def test_logits_changed_in_a_way_not_reproduced_are_refused():
    """A model that changes its logits after the head in a way the chunked loss does not (here:
    a softcap the config declares but Llama never applies) is refused on the first batch."""
    from honer.errors import NotSupportedError

    model = _tiny("tied")
    model.config.final_logit_softcapping = 1.0
    with pytest.raises(NotSupportedError, match="turn `cut_cross_entropy`"):
        _loss_and_grads(model, _padded_batch(2), chunk=8)


# --- liger's fused kernel inside the same head (CUDA), by monkeypatch -------------------------


def _fake_liger(monkeypatch):
    """A `liger_kernel` whose fused linear CE is plain torch: records how it is called."""
    import torch
    import torch.nn.functional as F

    calls: list[dict] = []

    class LigerFusedLinearCrossEntropyLoss(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.kwargs = kwargs

        def forward(self, weight, h, target, bias=None):
            calls.append({**self.kwargs, "rows": h.shape[0]})
            logits = F.linear(h, weight, bias).float()
            cap = self.kwargs.get("softcap")
            if cap:
                logits = torch.tanh(logits / cap) * cap
            return F.cross_entropy(logits, target, ignore_index=-100, reduction="sum")

    for name in ("liger_kernel", "liger_kernel.transformers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    module = types.ModuleType("liger_kernel.transformers.fused_linear_cross_entropy")
    module.LigerFusedLinearCrossEntropyLoss = LigerFusedLinearCrossEntropyLoss
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return calls


@pytest.mark.parametrize("kind", ["tied", "softcap"])
def test_liger_backend_gets_the_trained_rows_and_sums(kind, monkeypatch):
    from honer.train.chunked_loss import ChunkedHead
    from honer.train.trainer import token_sum_loss

    calls = _fake_liger(monkeypatch)
    model = _tiny(kind)
    batch = _padded_batch(3)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    plain = float(token_sum_loss(model(**inputs), batch["labels"]))
    head = ChunkedHead(model, backend="liger")
    with head.capture(batch["labels"]):
        outputs = model(**inputs)
    total = head.take_total(outputs)
    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert float(total) / trained == pytest.approx(plain, abs=TOL)
    assert len(calls) == 1 and calls[0]["reduction"] == "sum" and calls[0]["rows"] == trained
    assert calls[0]["softcap"] == (1.0 if kind == "softcap" else None)


def test_liger_backend_leaves_a_lora_head_to_honers_loss(monkeypatch, tiny_model_dir, tmp_path):
    """Liger's kernel takes a weight matrix; a LoRA-adapted head is computed by its own forward."""
    calls = _fake_liger(monkeypatch)
    model = _lora_model(tiny_model_dir, tmp_path, lora_target_modules=["q_proj", "lm_head"])
    from honer.train.chunked_loss import ChunkedHead

    head = ChunkedHead(model, backend="liger")
    batch = _padded_batch(2)
    with head.capture(batch["labels"]):
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    head.take_total(outputs)
    assert calls == []


# --- the trainer ------------------------------------------------------------------------------


def _build(tiny_model_dir, out, data, eval_data=None, **keys):
    from rich.console import Console

    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import build_trainer

    cfg = config(tiny_model_dir, out, **keys)
    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    text = io.StringIO()
    console = Console(file=text, highlight=False, soft_wrap=True)
    trainer, _ = build_trainer(cfg, model, tokenizer, data, eval_data, console)
    return trainer, text


@pytest.mark.parametrize(
    "keys",
    [
        {"cut_cross_entropy": True},
        {"plugins": ["axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"]},
        {
            "plugins": ["axolotl.integrations.liger.LigerPlugin"],
            "liger_fused_linear_cross_entropy": True,
        },
    ],
    ids=["key", "plugin", "liger_flce"],
)
def test_configs_that_turn_on_the_chunked_head(keys, tiny_model_dir, tmp_path):
    trainer, text = _build(tiny_model_dir, tmp_path / "out", dataset(8), max_steps=1, **keys)
    assert trainer.chunked_head is not None and trainer.chunked_head.backend == "chunked"
    if "liger_fused_linear_cross_entropy" in keys:  # CPU: one line, then honer's loss
        lines = [line for line in text.getvalue().splitlines() if "liger" in line]
        assert len(lines) == 1 and "GPU-only" in lines[0]


def test_plain_config_keeps_the_plain_loss(tiny_model_dir, tmp_path):
    trainer, _ = _build(tiny_model_dir, tmp_path / "out", dataset(8), max_steps=1)
    assert trainer.chunked_head is None


def _curve(tiny_model_dir, out, **keys):
    """Train and evaluate loss values of a short LoRA run, as metrics.jsonl records them."""
    trainer, _ = _build(
        tiny_model_dir,
        out,
        dataset(32, seed=0),
        dataset(8, seed=3),
        adapter="lora",
        lora_target_linear=True,
        max_steps=6,
        eval_steps=3,
        val_set_size=8,
        save_steps=1000,
        **keys,
    )
    trainer.train()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r.get("loss", r.get("eval_loss")) for r in records if r["kind"] in ("train", "eval")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout",
    [{}, {"sample_packing": True, "sequence_len": 128}, {"gradient_checkpointing": True}],
    ids=["padded", "packed", "checkpointed"],
)
def test_training_curve_matches_the_plain_loss(layout, tiny_model_dir, tmp_path, monkeypatch):
    from honer.train import chunked_loss

    taken = []
    original = chunked_loss.ChunkedHead.take_total
    monkeypatch.setattr(
        chunked_loss.ChunkedHead,
        "take_total",
        lambda self, outputs: taken.append(1) or original(self, outputs),
    )
    plain = _curve(tiny_model_dir, tmp_path / "plain", **layout)
    assert not taken
    chunked = _curve(tiny_model_dir, tmp_path / "chunked", cut_cross_entropy=True, **layout)
    assert taken  # the chunked head really ran, in training and evaluation
    assert len(plain) == len(chunked) == 8  # 6 train lines + 2 evaluations
    assert max(abs(a - b) for a, b in zip(plain, chunked, strict=True)) <= TOL


@pytest.mark.slow
def test_engines_full_fine_tune_matches_one_plain_process(tiny_model_dir, tmp_path):
    """DDP, FSDP2 and ZeRO-3 on two processes train a full fine-tune with the chunked loss
    exactly like the plain loss on one process. ZeRO-3 gathers the head's weight only around
    the head's own forward and backward: the gradients are taken inside that forward and the
    loss is routed through the head's output (`chunked_loss._through_output`)."""
    from tests.train.test_distributed import _losses, _run

    single = _losses(_run(tmp_path / "single", tiny_model_dir, "", processes=1))
    engines = {"ddp": "", "fsdp2": "fsdp: [full_shard, auto_wrap]\n", "zero3": "deepspeed: zero3\n"}
    for name, extra in engines.items():
        out = _run(tmp_path / name, tiny_model_dir, "cut_cross_entropy: true\n" + extra, 2)
        ours = _losses(out)
        assert json.loads((out / "parallel.json").read_text())["engine"].endswith(name)
        assert [s for s, _ in ours] == [s for s, _ in single]
        worst = max(abs(a - b) for (_, a), (_, b) in zip(ours, single, strict=True))
        assert worst <= 1e-4, f"{name}: {worst}"
