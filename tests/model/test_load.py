"""Loading the base model as the config says: class, config source, dtype, attention, quantization,
new tokens, and the errors a user can act on."""

from __future__ import annotations

import json
import shutil

import pytest

from honer import hardware
from honer.errors import ConfigError, ModelError
from tests.train.data_util import config


def _load(cfg):
    from honer.model.load import load_model, load_tokenizer

    return load_model(cfg, load_tokenizer(cfg))


def test_defaults_full_precision_auto_class(tiny_model_dir, tmp_path):
    import torch

    model = _load(config(tiny_model_dir, tmp_path))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32
    assert model.honer_new_tokens == 0
    assert model.config.pad_token_id == 3  # the tokenizer's <pad>


def test_model_type_names_a_transformers_class(tiny_model_dir, tmp_path):
    model = _load(config(tiny_model_dir, tmp_path, model_type="LlamaForCausalLM"))
    assert type(model).__name__ == "LlamaForCausalLM"
    with pytest.raises(
        ModelError, match=r"^model_type: `LamaForCausalLM` is not a transformers model class"
    ):
        _load(config(tiny_model_dir, tmp_path, model_type="LamaForCausalLM"))


def test_base_model_config_is_read_from_its_own_folder(tiny_model_dir, tmp_path):
    other = tmp_path / "other-config"
    other.mkdir()
    data = json.loads((tiny_model_dir / "config.json").read_text())
    data["rms_norm_eps"] = 0.125
    (other / "config.json").write_text(json.dumps(data))
    model = _load(config(tiny_model_dir, tmp_path, base_model_config=str(other)))
    assert model.config.rms_norm_eps == 0.125


def test_revision_and_trust_remote_code_reach_from_pretrained(
    tiny_model_dir, tmp_path, monkeypatch
):
    from transformers import AutoModelForCausalLM

    from honer.model.load import load_model
    from honer.model.load import load_tokenizer as real_load_tokenizer

    tokenizer = real_load_tokenizer(config(tiny_model_dir, tmp_path))
    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(name, **kwargs):
        seen.update(kwargs)
        kwargs.pop("revision")
        return real(name, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    load_model(
        config(tiny_model_dir, tmp_path, revision_of_model="v1", trust_remote_code=True), tokenizer
    )
    assert (seen["revision"], seen["trust_remote_code"]) == ("v1", True)
    load_model(config(tiny_model_dir, tmp_path), tokenizer)
    assert (seen["revision"], seen["trust_remote_code"]) == (None, False)


def test_missing_base_model_offline(tmp_path, monkeypatch, tiny_model_dir):
    from honer.model.load import load_model, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = load_tokenizer(config(tiny_model_dir, tmp_path))
    with pytest.raises(ModelError) as err:
        load_model(
            config(tiny_model_dir, tmp_path, base_model="no-such-org/no-such-model"), tokenizer
        )
    text = str(err.value)
    assert text.startswith("cannot load the base model `no-such-org/no-such-model`")
    assert "HF_HUB_OFFLINE=1 is set" in text


def test_new_tokens_resize_embeddings(tiny_model_dir, tmp_path):
    from honer.model.load import load_model, load_tokenizer

    cfg = config(
        tiny_model_dir, tmp_path, tokens=["<sql>", "</sql>"], special_tokens={"pad_token": "<pad>"}
    )
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, tokenizer)
    assert model.honer_new_tokens == 2
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)


@pytest.mark.parametrize(
    ("keys", "kernel", "notice"),
    [
        ({}, "sdpa", None),
        ({"sdp_attention": True}, "sdpa", None),
        ({"attn_implementation": "eager"}, "eager", None),
        # Seed configs written for GPUs: no flash_attn / no GPU here → sdpa with a notice.
        (
            {"flash_attention": True},
            "sdpa",
            "flash_attention: using sdpa instead of flash-attention 2",
        ),
        # Axolotl's explicit spelling (19 of its examples) falls back the same way.
        (
            {"attn_implementation": "flash_attention_2"},
            "sdpa",
            "attn_implementation: using sdpa instead of flash-attention 2",
        ),
        (
            {"attn_implementation": "flash_attention_3"},
            "sdpa",
            "attn_implementation: using sdpa instead of flash-attention 3",
        ),
    ],
)
def test_attention_kernel(keys, kernel, notice, tiny_model_dir, tmp_path, capsys, monkeypatch):
    from honer.model import load

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    monkeypatch.setattr(load, "_flash_attn_importable", lambda package: False)
    model = _load(config(tiny_model_dir, tmp_path, **keys))
    assert model.config._attn_implementation == kernel
    err = capsys.readouterr().err
    if notice:
        assert notice in err and "no GPU" in err
    else:
        assert "using sdpa instead" not in err


def test_flash_attention_chosen_when_available(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    from honer.model import load

    monkeypatch.setattr(load, "_flash_attn_importable", lambda package: True)
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    cfg = config(tiny_model_dir, tmp_path, flash_attention=True)
    assert load.attn_implementation(cfg, torch.bfloat16) == "flash_attention_2"
    assert load.attn_implementation(cfg, torch.float32) == "sdpa"  # flash needs half precision
    cfg = config(tiny_model_dir, tmp_path, attn_implementation="flash_attention_3")
    assert load.attn_implementation(cfg, torch.bfloat16) == "flash_attention_3"


def test_dtype_follows_precision(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    from honer.model import load

    monkeypatch.setattr(hardware, "bf16_supported", lambda: False)
    assert load.model_dtype(config(tiny_model_dir, tmp_path, bf16="auto")) == torch.float32
    monkeypatch.setattr(hardware, "bf16_supported", lambda: True)
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert load.model_dtype(config(tiny_model_dir, tmp_path, bf16="auto")) == torch.bfloat16
    assert load.model_dtype(config(tiny_model_dir, tmp_path, bf16=True)) == torch.bfloat16
    # fp16: half-precision base under an adapter; float32 master weights for full fine-tuning.
    assert (
        load.model_dtype(config(tiny_model_dir, tmp_path, fp16=True, adapter="lora"))
        == torch.float16
    )
    assert load.model_dtype(config(tiny_model_dir, tmp_path, fp16=True)) == torch.float32


def test_bf16_true_without_hardware_support(tiny_model_dir, tmp_path, monkeypatch):

    monkeypatch.setattr(hardware, "bf16_supported", lambda: False)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        _load(config(tiny_model_dir, tmp_path, bf16=True))
    assert str(err.value) == (
        "bf16: true, but this machine has no GPU, and bf16 mixed precision needs one: "
        "set `bf16: auto` (bf16 where supported) or `bf16: false`."
    )


def test_load_in_4bit_nf4_double_quant(tiny_model_dir, tmp_path):
    import bitsandbytes as bnb

    model = _load(config(tiny_model_dir, tmp_path, adapter="qlora", load_in_4bit=True))
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    state = q_proj.weight.quant_state
    assert state.quant_type == "nf4"
    assert state.nested  # double quantization
    assert model.is_loaded_in_4bit


def test_bnb_config_kwargs_are_honoured(tiny_model_dir, tmp_path):
    model = _load(
        config(
            tiny_model_dir,
            tmp_path,
            adapter="qlora",
            load_in_4bit=True,
            bnb_config_kwargs={"bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False},
        )
    )
    state = model.model.layers[0].self_attn.q_proj.weight.quant_state
    assert state.quant_type == "fp4" and not state.nested


def test_load_in_8bit(tiny_model_dir, tmp_path):
    import bitsandbytes as bnb

    model = _load(config(tiny_model_dir, tmp_path, adapter="lora", load_in_8bit=True))
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear8bitLt)
    assert model.is_loaded_in_8bit


def test_missing_bitsandbytes(tiny_model_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(ModelError) as err:
        _load(config(tiny_model_dir, tmp_path, adapter="qlora", load_in_4bit=True))
    assert str(err.value) == (
        "load_in_4bit: quantized loading needs bitsandbytes, which is not installed: "
        "pip install 'bitsandbytes>=0.45' (or pip install 'honer[quant]')."
    )


def test_out_of_memory_while_loading(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from honer.errors import OutOfMemoryError

    def explode(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", explode)
    with pytest.raises(
        OutOfMemoryError, match=r"^out of memory while loading the base model: lower"
    ):
        _load(config(tiny_model_dir, tmp_path))


def test_local_folder_without_weights(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"^cannot load the base model"):
        _load(config(broken, tmp_path))


def test_a_new_padding_only_token_needs_no_training(tiny_model_dir, tmp_path):
    """Llama-3 configs set `pad_token: <|end_of_text|>`; on a tokenizer without it the new row is
    only ever padding (masked, never a label), so a LoRA needs no `lora_modules_to_save` for it."""
    from honer.model.load import load_model, load_tokenizer

    cfg = config(tiny_model_dir, tmp_path, special_tokens={"pad_token": "<|end_of_text|>"})
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == 2049
    assert model.honer_new_tokens == 0
    # The same token as EOS is predicted in training text: it counts.
    cfg = config(tiny_model_dir, tmp_path, special_tokens={"eos_token": "<|end_of_text|>"})
    tokenizer = load_tokenizer(cfg)
    assert load_model(cfg, tokenizer).honer_new_tokens == 1
