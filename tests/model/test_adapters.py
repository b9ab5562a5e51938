"""LoRA / QLoRA / DoRA construction from config keys, and full fine-tuning."""

from __future__ import annotations

import math

import pytest

from honer.errors import ConfigError, ModelError
from tests.train.data_util import config


def _build(cfg, new_tokens: int = 0):
    from transformers import AutoModelForCausalLM

    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer

    if cfg.load_in_4bit or cfg.load_in_8bit or cfg.tokens:
        model = load_model(cfg, load_tokenizer(cfg))
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model)
    return build_adapter(cfg, model, verbose=False)


def _adapted(model) -> set[str]:
    """Leaf names of modules that carry a LoRA."""
    return {
        name.rsplit(".", 1)[-1]
        for name, m in model.named_modules()
        if hasattr(m, "lora_A") and m.lora_A
    }


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, tiny_model_dir):
    """A tiny random GPT-2: Conv1D layers (fan-in/fan-out) and `c_proj` in attention and MLP."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    path = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_default_targets_are_the_attention_projections(tiny_model_dir, tmp_path):
    model = _build(config(tiny_model_dir, tmp_path, adapter="lora"))
    assert _adapted(model) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    lora = model.peft_config["default"]
    assert lora.r == 8 and lora.lora_alpha == 16 and lora.lora_dropout == 0.05


def test_rank_alpha_dropout(tiny_model_dir, tmp_path):
    model = _build(
        config(tiny_model_dir, tmp_path, adapter="lora", lora_r=4, lora_alpha=32, lora_dropout=0.2)
    )
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.lora_A["default"].weight.shape[0] == 4
    assert q.scaling["default"] == 32 / 4
    assert q.lora_dropout["default"].p == 0.2


def test_rslora_scaling(tiny_model_dir, tmp_path):
    model = _build(
        config(
            tiny_model_dir, tmp_path, adapter="lora", lora_r=4, lora_alpha=8, peft_use_rslora=True
        )
    )
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(8 / math.sqrt(4))


def test_dora_adds_magnitude_vectors(tiny_model_dir, tmp_path):
    model = _build(config(tiny_model_dir, tmp_path, adapter="lora", peft_use_dora=True))
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert "default" in q.lora_magnitude_vector
    assert model.peft_config["default"].use_dora


@pytest.mark.parametrize("dora", [False, True])
def test_trained_4bit_weights_stay_readable_after_an_eval_forward(tiny_model_dir, tmp_path, dora):
    """bitsandbytes repacks a 4-bit weight for its CPU kernel at the first no-grad eval forward
    (on AVX512-BF16 CPUs): peft's DoRA would read the packed layout as garbage, and the packed
    matmul passes no gradient. A model built for training keeps the plain layout, DoRA or not."""
    import torch
    from peft.utils.integrations import dequantize_module_weight

    cfg = config(
        tiny_model_dir,
        tmp_path,
        adapter="qlora",
        load_in_4bit=True,
        lora_target_linear=True,
        peft_use_dora=dora,
    )
    model = _build(cfg)
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    before = dequantize_module_weight(q.get_base_layer()).float().clone()
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    after = dequantize_module_weight(q.get_base_layer()).float()
    assert (after - before).abs().max().item() == 0.0


def test_target_linear_adapts_every_linear_but_the_head(tiny_model_dir, tmp_path):
    model = _build(config(tiny_model_dir, tmp_path, adapter="lora", lora_target_linear=True))
    assert _adapted(model) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }


def test_target_linear_plus_named_modules(tiny_model_dir, tmp_path):
    cfg = config(
        tiny_model_dir,
        tmp_path,
        adapter="lora",
        lora_target_linear=True,
        lora_target_modules=["lm_head"],
    )
    assert "lm_head" in _adapted(_build(cfg))


def test_target_modules_list_and_regex(tiny_model_dir, tmp_path):
    model = _build(
        config(
            tiny_model_dir, tmp_path, adapter="lora", lora_target_modules=["q_proj", "down_proj"]
        )
    )
    assert _adapted(model) == {"q_proj", "down_proj"}
    regex = r".*layers\.1\.mlp\.(gate|up)_proj"
    model = _build(config(tiny_model_dir, tmp_path, adapter="lora", lora_target_modules=regex))
    names = {n for n, m in model.named_modules() if hasattr(m, "lora_A") and m.lora_A}
    assert names == {
        "base_model.model.model.layers.1.mlp.gate_proj",
        "base_model.model.model.layers.1.mlp.up_proj",
    }


def test_unknown_target_module_lists_the_real_names(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError) as err:
        _build(
            config(
                tiny_model_dir, tmp_path, adapter="lora", lora_target_modules=["query", "v_proj"]
            )
        )
    assert err.value.key_paths == ["lora_target_modules"]
    assert (
        "['query'] not found in the model; its linear layers are named ['down_proj', 'gate_proj'"
        in str(err.value)
    )
    with pytest.raises(ConfigError, match="matches no module"):
        _build(config(tiny_model_dir, tmp_path, adapter="lora", lora_target_modules=r".*\.nothing"))


def test_modules_to_save_train_in_full(tiny_model_dir, tmp_path):
    model = _build(
        config(
            tiny_model_dir,
            tmp_path,
            adapter="lora",
            lora_modules_to_save=["embed_tokens", "lm_head"],
        )
    )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("embed_tokens.modules_to_save" in n for n in trainable)
    assert any("lm_head.modules_to_save" in n for n in trainable)


def test_new_tokens_need_embeddings_in_modules_to_save(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError) as err:
        _build(config(tiny_model_dir, tmp_path, adapter="lora", tokens=["<sql>"]))
    assert err.value.key_paths == ["lora_modules_to_save"]
    assert "set `lora_modules_to_save: [embed_tokens, lm_head]`" in str(err.value)
    model = _build(
        config(
            tiny_model_dir,
            tmp_path,
            adapter="lora",
            tokens=["<sql>"],
            lora_modules_to_save=["embed_tokens", "lm_head"],
        )
    )
    assert model.peft_config["default"].modules_to_save == ["embed_tokens", "lm_head"]
    # Full fine-tuning trains the new rows anyway: no error.
    _build(config(tiny_model_dir, tmp_path, tokens=["<sql>"]))


def test_gpt2_default_targets_attention_only_and_fan_in_fan_out(gpt2_dir, tmp_path):
    from transformers.pytorch_utils import Conv1D

    from honer.model.adapters import default_target_modules

    model = _build(config(gpt2_dir, tmp_path, adapter="lora", lora_fan_in_fan_out=True))
    # `c_proj` is also the MLP output: a leaf name would adapt both, so a path regex is used.
    adapted = {n for n, m in model.named_modules() if hasattr(m, "lora_A") and m.lora_A}
    assert adapted == {
        "base_model.model.transformer.h.0.attn.c_attn",
        "base_model.model.transformer.h.0.attn.c_proj",
    }
    c_attn = model.base_model.model.transformer.h[0].attn.c_attn
    assert isinstance(c_attn.base_layer, Conv1D) and c_attn.fan_in_fan_out
    assert model.peft_config["default"].fan_in_fan_out
    from transformers import AutoModelForCausalLM

    assert (
        default_target_modules(AutoModelForCausalLM.from_pretrained(gpt2_dir))
        == r".*\.(?:attn)\.(?:c_attn|c_proj)"
    )


def test_seed_makes_adapter_init_repeat(tiny_model_dir, tmp_path):
    import torch

    def lora_a(seed):
        model = _build(config(tiny_model_dir, tmp_path, adapter="lora", seed=seed))
        return (
            model.base_model.model.model.layers[0]
            .self_attn.q_proj.lora_A["default"]
            .weight.detach()
            .clone()
        )

    torch.manual_seed(123)  # disturb the global RNG: build_adapter must reseed
    first = lora_a(5)
    assert torch.equal(first, lora_a(5))
    assert not torch.equal(first, lora_a(6))


def test_full_finetune_trains_everything(tiny_model_dir, tmp_path):
    from honer.model.adapters import count_parameters

    model = _build(config(tiny_model_dir, tmp_path))
    count = count_parameters(model)
    assert count.trainable == count.total == sum(p.numel() for p in model.parameters())


def test_parameter_counts(tiny_model_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from honer.model.adapters import build_adapter, count_parameters

    cfg = config(tiny_model_dir, tmp_path, adapter="lora", lora_r=2)
    model = build_adapter(cfg, AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    count = count_parameters(model)
    # 2 layers × 4 projections × r·(in + out); q/o are 64→64, k/v are 64→32 (2 kv heads).
    assert count.trainable == 2 * (2 * 2 * (64 + 64) + 2 * 2 * (64 + 32))
    assert count.total == count.trainable + sum(
        p.numel() for p in model.base_model.model.parameters() if not p.requires_grad
    )
    assert f"trainable params: {count.trainable:,} / {count.total:,}" in capsys.readouterr().err


def test_qlora_counts_4bit_weights_whole_and_respects_checkpointing(tiny_model_dir, tmp_path):
    from honer.model.adapters import count_parameters

    full = count_parameters(_build(config(tiny_model_dir, tmp_path, adapter="lora")))
    for gc in (False, True):
        model = _build(
            config(
                tiny_model_dir,
                tmp_path,
                adapter="qlora",
                load_in_4bit=True,
                gradient_checkpointing=gc,
            )
        )
        assert count_parameters(model) == full
        base = model.base_model.model
        assert bool(getattr(base.model.layers[0], "gradient_checkpointing", False)) is gc
        assert all(p.dtype.is_floating_point for n, p in model.named_parameters() if "norm" in n)


def test_quantized_base_cannot_be_fully_finetuned(tiny_model_dir, tmp_path):
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer

    qcfg = config(tiny_model_dir, tmp_path, adapter="lora", load_in_8bit=True)
    model = load_model(qcfg, load_tokenizer(qcfg))
    with pytest.raises(ModelError, match="quantized base cannot be fully fine-tuned"):
        build_adapter(config(tiny_model_dir, tmp_path), model, verbose=False)


def test_continue_an_existing_adapter(tiny_model_dir, tmp_path):
    import torch

    first = _build(config(tiny_model_dir, tmp_path, adapter="lora", lora_r=4, seed=1))
    with torch.no_grad():
        for name, p in first.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)
    saved = tmp_path / "adapter"
    first.save_pretrained(saved)

    again = _build(
        config(tiny_model_dir, tmp_path, adapter="lora", lora_model_dir=str(saved), seed=2)
    )
    b = again.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight
    assert torch.all(b == 0.5) and b.requires_grad
    assert again.peft_config["default"].r == 4

    with pytest.raises(ConfigError) as err:
        _build(
            config(tiny_model_dir, tmp_path, adapter="lora", lora_model_dir=str(saved), lora_r=16)
        )
    assert err.value.key_paths == ["lora_r"]
    assert "trained with 4" in str(err.value)
    with pytest.raises(ModelError, match="^lora_model_dir: cannot load the adapter"):
        _build(
            config(tiny_model_dir, tmp_path, adapter="lora", lora_model_dir=str(tmp_path / "none"))
        )
