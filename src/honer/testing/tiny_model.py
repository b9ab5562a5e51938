"""Build a tiny tokenizer + Llama model offline, for tests and benchmarks.

Nothing is downloaded: the byte-level BPE tokenizer is trained with the `tokenizers` library on
generated text, and the model is a random-init `LlamaForCausalLM`. Both are deterministic for a
given set of arguments, so tests can assert exact token ids and losses.

The tokenizer behaves like Llama's on purpose (BOS added by `add_special_tokens=True`, EOS `</s>`)
and carries a ChatML chat template whose end-of-turn token `<|im_end|>` is *not* the EOS: the same
mismatch real models have, so the EOS checks get exercised.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from honer.data.formats.templates import CHATML

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD, IM_START, IM_END]  # ids 0..5, in this order

CHATML_TEMPLATE = CHATML  # the tiny tokenizer ships the built-in ChatML template

_WORDS = (
    "the a an of to in and or is are was be it that this with for on as by at from you we "
    "they what which who how why when where can will would should could give write list "
    "explain name answer question instruction input response task request context number sum "
    "add plus minus times divided result value table select count from where order group "
    "user assistant system hello world model data train test loss rate learning token "
    "sequence label mask true false small large first last next previous open close start "
    "stop yes no one two three four five six seven eight nine ten city country river "
    "mountain color red green blue cat dog bird time day year people water food book story "
    "code python function return print list string"
).split()

_SNIPPETS = [
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n",
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n",
    "### Instruction:\n",
    "\n\n### Input:\n",
    "\n\n### Response:\n",
    "USER: ",
    " ASSISTANT: ",
    "[INST] ",
    " [/INST]",
    "user\n",
    "assistant\n",
    "system\n",
    "What is 12 + 7?",
    "SELECT name FROM users WHERE age > 30;",
]


def _corpus(n_lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        parts: list[str] = []
        for _ in range(rng.randint(3, 20)):
            r = rng.random()
            if r < 0.7:
                w = rng.choice(_WORDS)
                parts.append(w.capitalize() if rng.random() < 0.1 else w)
            elif r < 0.85:
                parts.append(str(rng.randint(0, 999)))
            elif r < 0.95:
                parts.append(rng.choice(".,?!:;()=+-*/'\""))
            else:
                parts.append(rng.choice(_SNIPPETS))
        lines.append(" ".join(parts))
    return lines + _SNIPPETS * 50


def build_tokenizer(vocab_size: int = 2048, seed: int = 0):
    """Train a byte-level BPE and wrap it as a `PreTrainedTokenizerFast` (BOS/EOS/PAD/UNK, ChatML)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(4000, seed), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[IM_START, IM_END],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_model(
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_positions: int = 4096,
    seed: int = 0,
):
    """A random-init `LlamaForCausalLM` of the given shape (float32)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def tiny_model(
    dest: str | os.PathLike[str],
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    vocab_size: int = 2048,
    seed: int = 0,
) -> Path:
    """Create (once) a tokenizer + tiny Llama in `dest` and return the folder.

    The folder is complete or absent: it is built in a temporary sibling and renamed into place,
    so parallel test sessions or an interrupted build never leave a half-written model.
    """
    dest = Path(dest)
    marker = dest / "honer_tiny.json"
    spec = {
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "vocab_size": vocab_size,
        "seed": seed,
    }
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return dest
    from honer.atomic import staged_folder

    with staged_folder(dest) as tmp:
        tokenizer = build_tokenizer(vocab_size=vocab_size, seed=seed)
        model = build_model(
            len(tokenizer),
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            seed=seed,
        )
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "honer_tiny.json").write_text(json.dumps(spec))
    return dest
