"""Axolotl's training keys do what Axolotl means by them, checked on the built objects and, where
the effect only shows while training, on short runs (marked slow).

Keys: gradient_checkpointing (offload, offload_disk) + gradient_checkpointing_kwargs,
activation_offloading, save_strategy, save_only_model, evals_per_epoch: 0,
include_tokens_per_second, cosine_constant_lr_ratio, unfrozen_parameters, neftune_noise_alpha,
torch_compile*, and the optimizer names (transformers', Axolotl's aliases, muon).
"""

from __future__ import annotations

import copy
import io
import json
import math

import pytest

from honer import hardware
from honer.errors import ConfigError, HonerError
from tests.train.data_util import config, dataset


@pytest.fixture
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _trainer(model, tokenizer, tiny_model_dir, tmp_path, n=32, eval_n=0, **keys):
    from honer.train.trainer import build_trainer

    if eval_n:
        keys.setdefault("val_set_size", eval_n)
    cfg = config(tiny_model_dir, tmp_path / "out", **keys)
    evals = dataset(eval_n, seed=5) if eval_n else None
    trainer, plan = build_trainer(cfg, model, tokenizer, dataset(n), evals)
    return trainer, plan


def _batch(seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 70, (2, 12), generator=g)
    return {"input_ids": ids, "labels": ids}


def _grads(model, seed: int = 0) -> dict:
    model.zero_grad(set_to_none=True)
    model(**_batch(seed)).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --- cosine_constant_lr_ratio --------------------------------------------------------------------


def _axolotl_decay_constant(step, warmup, total, constant_ratio, min_ratio):
    """Axolotl's `_get_cosine_schedule_with_warmup_decay_constant_lr_lambda`, verbatim."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    num_constant_steps = int(total * constant_ratio)
    step = min(step, num_constant_steps)
    progress = float(step - warmup) / float(max(1, num_constant_steps - warmup))
    return (
        max(0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress))) + min_ratio
    )


@pytest.mark.parametrize("warmup", [0, 3])
def test_cosine_constant_lr_ratio_matches_axolotl_at_every_step(
    warmup, model, tokenizer, tiny_model_dir, tmp_path
):
    keys = dict(
        lr_scheduler="cosine",
        cosine_min_lr_ratio=0.1,
        cosine_constant_lr_ratio=0.8,
        max_steps=20,
        learning_rate=1e-3,
        warmup_steps=warmup or None,
    )
    trainer, plan = _trainer(model, tokenizer, tiny_model_dir, tmp_path, **keys)
    assert trainer.args.lr_scheduler_type.value == "constant"  # a placeholder: honer's policy runs
    trainer.create_optimizer_and_scheduler(num_training_steps=plan.total_steps)
    sched = trainer.lr_scheduler
    got = [1e-3 * sched.lr_lambdas[0](s) for s in range(21)]
    want = [1e-3 * _axolotl_decay_constant(s, warmup, 20, 0.8, 0.1) for s in range(21)]
    assert got == pytest.approx(want, abs=1e-15)
    assert got[16:] == pytest.approx([1e-4] * 5)  # int(20 · 0.8) = 16: constant from there

    # `honer lr plot` draws the same curve (one scheduler builder for both).
    from honer.train.optim import lr_curve

    assert lr_curve(config(tiny_model_dir, tmp_path, **keys), 20) == pytest.approx(want)


# --- evals_per_epoch: 0, save_strategy, save_only_model ----------------------------------------


def test_evals_per_epoch_zero_means_no_evaluation_during_training(
    model, tokenizer, tiny_model_dir, tmp_path
):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, eval_n=8, evals_per_epoch=0)
    assert trainer.args.eval_strategy.value == "no"
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, eval_n=8)
    assert trainer.args.eval_strategy.value == "epoch"  # unset: once per epoch, as before


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        ({}, ("epoch", None)),
        ({"save_strategy": "epoch"}, ("epoch", None)),
        ({"save_strategy": "no"}, ("no", None)),
        ({"save_strategy": "steps", "save_steps": 3}, ("steps", 3)),
        ({"saves_per_epoch": 2}, ("steps", 4)),  # 32 samples / 4 = 8 steps per epoch
    ],
)
def test_save_strategy(keys, want, model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, **keys)
    strategy, steps = want
    assert trainer.args.save_strategy.value == strategy
    if steps is not None:
        assert trainer.args.save_steps == steps


def test_save_strategy_best_keeps_the_lowest_eval_loss(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(
        model, tokenizer, tiny_model_dir, tmp_path, eval_n=8, eval_steps=2, save_strategy="best"
    )
    args = trainer.args
    assert (args.save_strategy.value, args.eval_strategy.value) == ("best", "steps")
    assert (args.metric_for_best_model, args.greater_is_better) == ("eval_loss", False)
    assert args.load_best_model_at_end is False  # saving the best is not loading it at the end


@pytest.mark.parametrize(
    ("keys", "path", "text"),
    [
        ({"save_strategy": "steps"}, "save_strategy", "needs `save_steps` or `saves_per_epoch`"),
        ({"save_strategy": "epoch", "save_steps": 2}, "save_steps", "save_strategy: steps"),
        ({"save_strategy": "best"}, "save_strategy", "no evaluation runs during training"),
        (
            {"save_strategy": "best", "eval_n": 8, "evals_per_epoch": 0},
            "save_strategy",
            "no evaluation runs during training",
        ),
        (
            {"save_strategy": "no", "eval_n": 8, "load_best_model_at_end": True},
            "load_best_model_at_end",
            "`save_strategy: no` saves none",
        ),
    ],
)
def test_save_strategy_mistakes_name_the_key(
    keys, path, text, model, tokenizer, tiny_model_dir, tmp_path
):
    with pytest.raises(ConfigError) as err:
        _trainer(model, tokenizer, tiny_model_dir, tmp_path, **keys)
    assert err.value.key_paths == [path]
    assert text in str(err.value)


def test_save_only_model_reaches_the_trainer(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, save_only_model=True)
    assert trainer.args.save_only_model is True


def _fake_checkpoint(path, *files):
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    for name in files:
        (path / name).write_bytes(b"")
    return path


def test_resume_from_a_model_only_checkpoint_is_refused(tiny_model_dir, tmp_path):
    from honer.train.checkpoint import resolve_resume

    out = tmp_path / "out"
    _fake_checkpoint(out / "checkpoint-2", "model.safetensors")
    with pytest.raises(HonerError, match="holds the model only, no optimizer"):
        resolve_resume(config(tiny_model_dir, out), resume=True)
    with pytest.raises(ConfigError) as err:
        resolve_resume(
            config(tiny_model_dir, out, resume_from_checkpoint=str(out / "checkpoint-2")), False
        )
    assert err.value.key_paths == ["resume_from_checkpoint"]
    # Checkpoints with optimizer state, in each engine's layout, resume as before.
    for name, extra in (("a", "optimizer.pt"), ("b", "optimizer_0/"), ("c", "global_step2/")):
        ckpt = _fake_checkpoint(tmp_path / name / "checkpoint-2")
        (ckpt / extra).mkdir() if extra.endswith("/") else (ckpt / extra).write_bytes(b"")
        assert resolve_resume(config(tiny_model_dir, tmp_path / name), resume=True) == ckpt


# --- gradient checkpointing and activation offloading ------------------------------------------


@pytest.mark.parametrize(
    ("keys", "reentrant"),
    [
        ({"gradient_checkpointing": True}, False),
        ({"gradient_checkpointing": "offload"}, False),
        ({"gradient_checkpointing": "offload_disk"}, False),
        (
            {
                "gradient_checkpointing": True,
                "gradient_checkpointing_kwargs": {"use_reentrant": True},
            },
            True,
        ),
    ],
)
def test_gradient_checkpointing_arguments(
    keys, reentrant, model, tokenizer, tiny_model_dir, tmp_path
):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, **keys)
    args = trainer.args
    on = getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
    kwargs = getattr(args, "activation_checkpointing_kwargs", None) or (
        args.gradient_checkpointing_kwargs
    )
    assert on is True and kwargs == {"use_reentrant": reentrant}


def _offload_config(tiny_model_dir, tmp_path, **keys):
    return config(tiny_model_dir, tmp_path / "out", **keys)


@pytest.mark.parametrize(
    "keys",
    [
        {"activation_offloading": "disk"},
        {"gradient_checkpointing": "offload_disk"},
    ],
)
def test_disk_offload_gives_the_same_gradients(keys, tiny_model_dir, tmp_path, monkeypatch):
    """The saved tensors really go to files, and the gradients are bit-for-bit the plain ones."""
    import tempfile

    from transformers import AutoModelForCausalLM

    from honer.model import offload

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    hooked = copy.deepcopy(plain)
    cfg = _offload_config(tiny_model_dir, tmp_path, **keys)
    if offload.checkpointing(cfg):
        for m in (plain, hooked):
            m.gradient_checkpointing_enable({"use_reentrant": False})
            m.train()
    offloaded = offload.install(cfg, hooked)
    assert offloaded is not None and offloaded.target == "disk"

    want = _grads(plain)
    hooked.zero_grad(set_to_none=True)
    loss = hooked(**_batch()).loss
    files_during = list(offloaded.folder.iterdir())
    loss.backward()
    got = {n: p.grad for n, p in hooked.named_parameters() if p.grad is not None}
    assert offloaded.offloaded > 0 and len(files_during) > 0
    del loss
    assert list(offloaded.folder.iterdir()) == []  # each file goes when autograd frees it
    assert got.keys() == want.keys()
    for name in want:
        assert __import__("torch").equal(got[name], want[name]), name


def test_cpu_offload_mechanism_gives_the_same_gradients(tiny_model_dir):
    """The CPU target (pinned copies on a GPU) packs and unpacks exactly; here CPU tensors stand
    in for the GPU's, without pinning."""
    import torch
    from transformers import AutoModelForCausalLM

    from honer.model.offload import SavedTensorOffload

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    want = _grads(model)
    hooks = SavedTensorOffload("cpu", devices=("cpu",), pin_memory=False)
    hooks.watch_parameters(model)
    model.zero_grad(set_to_none=True)
    with hooks:
        loss = model(**_batch()).loss
    loss.backward()
    assert hooks.offloaded > 0
    for name, param in model.named_parameters():
        assert torch.equal(param.grad, want[name]), name


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ({"activation_offloading": True}, "activation_offloading: true"),
        ({"activation_offloading": "legacy"}, "activation_offloading: legacy"),
        ({"gradient_checkpointing": "offload"}, "gradient_checkpointing: offload"),
    ],
)
def test_cpu_offload_without_gpu_is_one_notice(
    keys, said, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    from transformers import AutoModelForCausalLM

    from honer.model import offload

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    capsys.readouterr()
    assert offload.install(_offload_config(tiny_model_dir, tmp_path, **keys), model) is None
    err = capsys.readouterr().err
    assert f"{said}: activations are already in CPU memory" in err
    assert err.count("\n") == 1
    assert not model._forward_pre_hooks  # the run is exactly the plain one


def test_offloading_with_a_sharding_engine_is_refused(tiny_model_dir, tmp_path):
    # Refused by the config itself, so `honer validate` says it before any run.
    with pytest.raises(ConfigError) as err:
        _offload_config(tiny_model_dir, tmp_path, activation_offloading="disk", deepspeed="zero2")
    assert err.value.key_paths == ["activation_offloading"]
    assert "runs on one process without FSDP/DeepSpeed" in str(err.value)


def test_build_adapter_installs_offloading(tiny_model_dir, tmp_path, monkeypatch):
    import tempfile

    from transformers import AutoModelForCausalLM

    from honer.model.adapters import build_adapter

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cfg = _offload_config(tiny_model_dir, tmp_path, adapter="lora", activation_offloading="disk")
    model = build_adapter(cfg, AutoModelForCausalLM.from_pretrained(tiny_model_dir), False)
    loss = model(**_batch()).loss
    assert list(tmp_path.glob("honer-activations-*/*.pt"))
    loss.backward()


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (pinned host copies)"
)
def test_cpu_offload_on_gpu_gives_the_same_gradients(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from honer.model import offload

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).cuda()
    hooked = copy.deepcopy(plain)
    hooks = offload.install(
        _offload_config(tiny_model_dir, tmp_path, activation_offloading=True), hooked
    )
    assert hooks is not None and hooks.pin_memory
    batch = {k: v.cuda() for k, v in _batch().items()}
    plain(**batch).loss.backward()
    hooked(**batch).loss.backward()
    assert hooks.offloaded > 0
    for (name, a), (_, b) in zip(plain.named_parameters(), hooked.named_parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


# --- unfrozen_parameters -----------------------------------------------------------------------


def _changed_after_step(model, **sgd) -> dict:
    """Names of the parameters one SGD step changed, with their before-values."""
    import torch

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model(**_batch()).loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, **sgd).step()
    return {n: before[n] for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def test_unfrozen_parameters_full_finetune(model, tiny_model_dir, tmp_path):
    import torch

    from honer.model.adapters import build_adapter

    cfg = config(
        tiny_model_dir,
        tmp_path,
        unfrozen_parameters=[r"model\.layers\.0\.mlp\..*", "lm_head.weight$[:20]"],
    )
    model = build_adapter(cfg, model, verbose=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "lm_head.weight",
    }
    changed = _changed_after_step(model)
    assert set(changed) == trainable
    head = model.lm_head.weight.detach()
    assert torch.equal(head[20:], changed["lm_head.weight"][20:])  # rows outside the range
    assert not torch.equal(head[:20], changed["lm_head.weight"][:20])


def test_unfrozen_parameters_choose_among_the_adapter_weights(model, tiny_model_dir, tmp_path):
    from honer.model.adapters import build_adapter

    cfg = config(
        tiny_model_dir,
        tmp_path,
        adapter="lora",
        lora_target_linear=True,
        unfrozen_parameters=["^model.layers.1.*"],  # as Axolotl's examples write them
    )
    model = build_adapter(cfg, model, verbose=False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n and ".lora_" in n for n in trainable)
    assert len(trainable) == 2 * 7  # A and B of q/k/v/o/gate/up/down
    changed = set(_changed_after_step(model))  # B starts at zero: A moves from the second step
    assert changed == {n for n in trainable if ".lora_B." in n}


@pytest.mark.parametrize(
    ("keys", "text"),
    [
        ({"unfrozen_parameters": ["embed_tokens"]}, "matches no parameter name from its start"),
        ({"unfrozen_parameters": ["model.layers.(0"]}, "is not a regular expression"),
        ({"unfrozen_parameters": ["lm_head.weight$[40:20]"]}, "is empty"),
        ({"unfrozen_parameters": ["lm_head.weight$[5000:]"]}, "outside `lm_head.weight`"),
        (
            {"unfrozen_parameters": ["lm_head.weight$[:20]"], "weight_decay": 0.1},
            "would still shrink the other rows",
        ),
        (
            {"unfrozen_parameters": ["^lm_head.*"], "adapter": "lora"},
            "matches only base weights (lm_head.weight)",
        ),
    ],
)
def test_unfrozen_parameters_mistakes_name_the_entry(keys, text, model, tiny_model_dir, tmp_path):
    from honer.model.adapters import build_adapter

    with pytest.raises(ConfigError) as err:
        build_adapter(config(tiny_model_dir, tmp_path, **keys), model, verbose=False)
    assert err.value.key_paths == ["unfrozen_parameters[0]"]
    assert text in str(err.value)


# --- NEFTune and torch.compile: arguments ------------------------------------------------------


def test_neftune_noise_alpha_reaches_the_trainer(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, neftune_noise_alpha=5.0)
    assert trainer.args.neftune_noise_alpha == 5.0
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path)
    assert trainer.args.neftune_noise_alpha is None


def test_torch_compile_arguments(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        torch_compile=True,
        torch_compile_backend="aot_eager",
        torch_compile_mode="max-autotune",
    )
    args = trainer.args
    assert (args.torch_compile, args.torch_compile_backend, args.torch_compile_mode) == (
        True,
        "aot_eager",
        "max-autotune",
    )
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path)
    assert trainer.args.torch_compile is False


def test_torch_compile_auto(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from honer.train import args as args_module

    cfg = config(tiny_model_dir, tmp_path, torch_compile="auto", torch_compile_mode="default")
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert args_module.use_torch_compile(cfg) is False
    assert "torch_compile: auto: off" in capsys.readouterr().err
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert args_module.use_torch_compile(cfg) is True  # torch 2.13 >= 2.5


def test_torch_compile_on_cpu_without_a_compiler_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    from honer.train import args as args_module

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(args_module, "_cxx_compiler", lambda: None)
    with pytest.raises(ConfigError) as err:
        args_module.use_torch_compile(config(tiny_model_dir, tmp_path, torch_compile=True))
    assert err.value.key_paths == ["torch_compile"] and "C++ compiler" in str(err.value)
    # Another backend needs no compiler.
    cfg = config(tiny_model_dir, tmp_path, torch_compile=True, torch_compile_backend="aot_eager")
    assert args_module.use_torch_compile(cfg) is True


# --- optimizers ------------------------------------------------------------------------------


def test_optimizer_names_are_transformers_names_plus_muon():
    from transformers.training_args import OptimizerNames

    from honer.config.schema import OPTIMIZERS

    assert set(OPTIMIZERS) == {o.value for o in OptimizerNames} | {"muon"}


def test_axolotl_adamw_8bit_is_bitsandbytes_8bit(model, tokenizer, tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, optimizer="adamw_8bit")
    opt = trainer.create_optimizer()
    assert (type(opt).__module__, type(opt).__name__) == ("bitsandbytes.optim.adamw", "AdamW")
    assert opt.args.optim_bits == 8 and opt.is_paged is False


@pytest.mark.parametrize(
    ("name", "cls"), [("adamw_torch_8bit", "AdamW8bit"), ("adamw_torch_4bit", "AdamW4bit")]
)
def test_torchao_optimizers(name, cls, model, tokenizer, tiny_model_dir, tmp_path):
    pytest.importorskip("torchao")
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, optimizer=name)
    assert type(trainer.create_optimizer()).__name__ == cls


def test_torchao_optimizer_without_torchao_names_the_install(monkeypatch, tiny_model_dir, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torchao" else real(n, *a)
    )
    with pytest.raises(ConfigError) as err:
        config(tiny_model_dir, tmp_path, optimizer="adamw_torch_8bit")
    assert err.value.key_paths == ["optimizer"] and "pip install torchao" in str(err.value)


def _muon_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def test_muon_split_follows_axolotl(tiny_model_dir):
    from honer.train.muon import MuonFactory, MuonWithAdamW

    model = _muon_model(tiny_model_dir)
    opt = MuonFactory()(model, lr=0.02, weight_decay=0.1)
    assert isinstance(opt, MuonWithAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[tuple, set] = {}
    for g in opt.param_groups:
        groups.setdefault((g["algorithm"], g["weight_decay"]), set()).update(
            names[id(p)] for p in g["params"]
        )
    muon = groups[("muon", 0.1)]
    assert "model.layers.0.self_attn.q_proj.weight" in muon
    assert all(n.endswith("proj.weight") for n in muon) and len(muon) == 2 * 7
    adamw_plain = groups[("adamw", 0.0)]
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= adamw_plain
    assert sum(len(v) for v in groups.values()) == len(names)
    assert {g["lr"] for g in opt.param_groups} == {0.02}


def test_muon_with_adamw_steps_exactly_as_its_two_halves(tiny_model_dir):
    import torch

    from honer.train.muon import MuonFactory, uses_muon

    model = _muon_model(tiny_model_dir)
    reference = copy.deepcopy(model)
    opt = MuonFactory()(model, lr=0.02, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-7)
    decay = {n for n, p in reference.named_parameters() if p.ndim == 2 and uses_muon(n, p)}
    muon = torch.optim.Muon(
        [p for n, p in reference.named_parameters() if n in decay], lr=0.02, weight_decay=0.1
    )
    adamw = torch.optim.AdamW(
        [p for n, p in reference.named_parameters() if n not in decay],
        lr=0.02,
        betas=(0.9, 0.95),
        eps=1e-7,
        weight_decay=0.0,  # embeddings, head and norms: no decay (Axolotl)
    )
    for step in range(3):
        for m, optimizers in ((model, [opt]), (reference, [muon, adamw])):
            m.zero_grad(set_to_none=True)
            m(**_batch(step)).loss.backward()
            for o in optimizers:
                o.step()
    for (name, a), (_, b) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name


def test_muon_state_dict_round_trip(tiny_model_dir):
    """A resumed run continues exactly: the loaded state reaches both halves."""
    import torch

    from honer.train.muon import MuonFactory

    a = _muon_model(tiny_model_dir)
    opt_a = MuonFactory()(a, lr=0.02, weight_decay=0.1)
    for step in range(2):
        a.zero_grad(set_to_none=True)
        a(**_batch(step)).loss.backward()
        opt_a.step()
    b = copy.deepcopy(a)
    opt_b = MuonFactory()(b, lr=0.02, weight_decay=0.1)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for m, o in ((a, opt_a), (b, opt_b)):
        m.zero_grad(set_to_none=True)
        m(**_batch(7)).loss.backward()
        o.step()
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name


def test_muon_through_the_trainer(model, tokenizer, tiny_model_dir, tmp_path):
    """transformers' `create_optimizer` builds the factory's optimizer; one schedule drives it.
    (`build_trainer` passes `optimizer_cls_and_kwargs`: test_muon_trains checks the wiring.)"""
    from honer.train import optim
    from honer.train.muon import MuonFactory, MuonWithAdamW

    keys = dict(optimizer="muon", lr_scheduler="cosine", weight_decay=0.1, adam_beta2=0.95)
    cfg = config(tiny_model_dir, tmp_path, **keys)
    assert optim.optimizer_name(cfg) == "adamw_torch"  # a placeholder transformers accepts
    factory, kwargs = optim.optimizer_cls_and_kwargs(cfg)
    assert factory is MuonFactory
    assert kwargs == {"lr": 1e-3, "weight_decay": 0.1, "betas": (0.9, 0.95), "eps": 1e-8}
    assert optim.optimizer_cls_and_kwargs(config(tiny_model_dir, tmp_path)) is None

    trainer, plan = _trainer(model, tokenizer, tiny_model_dir, tmp_path, **keys)
    trainer.optimizer_cls_and_kwargs = (factory, kwargs)
    trainer.create_optimizer_and_scheduler(num_training_steps=plan.total_steps)
    assert isinstance(trainer.optimizer, MuonWithAdamW)
    for _ in range(3):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    lrs = {g["lr"] for g in trainer.optimizer.param_groups}
    assert len(lrs) == 1 and lrs.pop() < 1e-3  # every group follows the one cosine schedule


# --- effects that show only while training (slow) ---------------------------------------------


def _run(
    tiny_model_dir, out, data=None, eval_data=None, model=None, resume=False, callbacks=None, **keys
):
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.train.trainer import train

    cfg = config(tiny_model_dir, out, **keys)
    model = model or AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = data if data is not None else dataset(32)
    console = Console(file=io.StringIO(), width=200)
    result = train(
        cfg, model, tokenizer, data, eval_data, resume=resume, console=console, callbacks=callbacks
    )
    return result, model


def _checkpoints(out):
    return sorted(p.name for p in out.glob("checkpoint-*"))


@pytest.mark.slow
def test_save_strategy_no_writes_only_the_final_model(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    _run(tiny_model_dir, out, max_steps=4, save_strategy="no")
    assert _checkpoints(out) == []
    assert (out / "model.safetensors").is_file() and (out / "config.yml").is_file()


@pytest.mark.slow
def test_save_strategy_best_saves_at_each_new_lowest_eval_loss(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    result, _ = _run(
        tiny_model_dir,
        out,
        eval_data=dataset(8, seed=5),
        val_set_size=8,
        max_steps=6,
        eval_steps=1,
        learning_rate=3e-2,  # large enough that some evaluation gets worse
        save_strategy="best",
    )
    evals = [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "eval"
    ]
    best, want = math.inf, []
    for record in evals:
        if record["eval_loss"] < best:
            best = record["eval_loss"]
            want.append(f"checkpoint-{record['step']}")
    assert _checkpoints(out) == sorted(want) and len(want) < len(evals)


@pytest.mark.slow
def test_save_only_model_checkpoints_cannot_be_resumed(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    _run(tiny_model_dir, out, max_steps=4, save_steps=2, save_only_model=True)
    assert _checkpoints(out) == ["checkpoint-2", "checkpoint-4"]
    assert not (out / "checkpoint-4" / "optimizer.pt").exists()
    with pytest.raises(HonerError, match="holds the model only"):
        _run(tiny_model_dir, out, max_steps=6, save_steps=2, resume=True)


@pytest.mark.slow
def test_include_tokens_per_second_in_the_final_metrics(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    result, _ = _run(tiny_model_dir, out, max_steps=3, include_tokens_per_second=True)
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "train_end" and last["train_tokens_per_second"] > 0
    assert result.tokens_per_second == last["train_tokens_per_second"]
    _run(tiny_model_dir, tmp_path / "off", max_steps=2)
    last = json.loads((tmp_path / "off" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "train_tokens_per_second" not in last


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [None, "lora"])
def test_neftune_noises_the_embeddings_in_training_mode_only(adapter, tiny_model_dir, tmp_path):
    """Uniform noise in ±alpha/sqrt(L·d) on the embedding output while training, none in eval
    mode, and none once training is over (transformers removes its hook)."""
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback

    from honer.model.adapters import build_adapter

    alpha, length, seen = 5.0, 20, []
    ids = torch.arange(10, 10 + length).unsqueeze(0)

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            emb = model.get_input_embeddings()
            with torch.no_grad():
                emb.train()
                noisy = emb(ids)
                emb.eval()
                clean = emb(ids)
                emb.train()
            seen.append((noisy - clean, clean))

    keys = {"adapter": adapter} if adapter else {}
    cfg = config(tiny_model_dir, tmp_path, **keys)
    model = build_adapter(cfg, AutoModelForCausalLM.from_pretrained(tiny_model_dir), False)
    _run(
        tiny_model_dir,
        tmp_path / "o",
        model=model,
        max_steps=1,
        neftune_noise_alpha=alpha,
        callbacks=[Probe()],
        **keys,
    )
    ((noise, clean),) = seen
    emb = model.get_input_embeddings()
    bound = alpha / math.sqrt(length * emb.weight.shape[1])
    assert torch.equal(clean, emb.weight[ids].detach())  # eval mode: no noise
    assert noise.abs().max() <= bound and noise.abs().max() > 0.9 * bound
    assert noise.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # uniform on ±bound
    with torch.no_grad():
        emb.train()
        assert torch.equal(emb(ids), clean)  # the hook is gone after training


@pytest.mark.slow
def test_muon_trains(tiny_model_dir, tmp_path):
    from honer.train.muon import MuonWithAdamW

    seen = []
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, **kwargs):
            seen.append(type(optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer))

    result, _ = _run(
        tiny_model_dir,
        tmp_path / "o",
        max_steps=6,
        optimizer="muon",
        learning_rate=0.02,
        callbacks=[Probe()],
    )
    assert seen and all(t is MuonWithAdamW for t in seen)
    assert math.isfinite(result.final_loss)


@pytest.mark.slow
def test_unfrozen_parameters_in_a_training_run(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from honer.model.adapters import build_adapter

    keys = {"unfrozen_parameters": [r"model\.layers\.1\..*"]}
    model = build_adapter(
        config(tiny_model_dir, tmp_path, **keys),
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        verbose=False,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _run(tiny_model_dir, tmp_path / "o", model=model, max_steps=2, **keys)
    changed = {
        n for n, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[n])
    }
    assert changed and all(n.startswith("model.layers.1.") for n in changed)


@pytest.mark.slow
def test_tiny_compiled_run_on_cpu(tiny_model_dir, tmp_path):
    import time

    from honer.train.args import _cxx_compiler

    if _cxx_compiler() is None:
        pytest.skip("no C++ compiler for inductor")
    start = time.perf_counter()
    result, _ = _run(tiny_model_dir, tmp_path / "o", max_steps=2, torch_compile=True)
    assert math.isfinite(result.final_loss)
    assert time.perf_counter() - start < 120


@pytest.mark.slow
def test_disk_offloaded_training_run_matches_the_plain_one(tiny_model_dir, tmp_path, monkeypatch):
    import tempfile

    from transformers import AutoModelForCausalLM

    from honer.model.adapters import build_adapter

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    losses = {}
    for name, gc in (("plain", True), ("disk", "offload_disk")):
        keys = {"adapter": "lora", "gradient_checkpointing": gc}
        model = build_adapter(
            config(tiny_model_dir, tmp_path, **keys),
            AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            verbose=False,
        )
        result, _ = _run(tiny_model_dir, tmp_path / name, model=model, max_steps=3, **keys)
        losses[name] = result.final_loss
    folders = list(tmp_path.glob("honer-activations-*"))
    assert folders and not list(folders[0].iterdir())  # used, and emptied by the backward passes
    assert losses["disk"] == pytest.approx(losses["plain"], abs=1e-6)


def test_auto_resume_picks_the_latest_checkpoint_or_starts_fresh(tiny_model_dir, tmp_path):
    from honer.train.checkpoint import resolve_resume

    out = tmp_path / "out"
    cfg = config(tiny_model_dir, out, auto_resume_from_checkpoints=True)
    assert resolve_resume(cfg, resume=False) is None  # nothing yet: a fresh start, no error
    for step in (2, 4):
        (_fake_checkpoint(out / f"checkpoint-{step}") / "optimizer.pt").write_bytes(b"")
    assert resolve_resume(cfg, resume=False) == out / "checkpoint-4"
    # Without the key, the same folder is refused (two runs' checkpoints would mix).
    with pytest.raises(HonerError, match="already holds checkpoints of an earlier run"):
        resolve_resume(config(tiny_model_dir, out), resume=False)
