"""`honer inference`: one prompt, batch JSONL, terminal chat with history, flags, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer.errors import HonerError
from tests.merge.adapter_util import make_adapter


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter in out/ and a config (chat_template, ChatML) that points at it."""
    tmp = tmp_path_factory.mktemp("infer")
    make_adapter(tiny_model_dir, tmp / "out")
    (tmp / "c.yml").write_text(
        f"base_model: {tiny_model_dir}\n"
        f"datasets:\n  - path: {tmp / 'd.jsonl'}\n    type: chat_template\n"
        f"output_dir: {tmp / 'out'}\nadapter: lora\nlora_r: 4\nlora_alpha: 8\n"
        "lora_target_linear: true\n"
    )
    return tmp


def _invoke(args: list[str], stdin: str | None = None):
    from honer.cli.main import app

    return CliRunner().invoke(app, ["inference", *args], input=stdin)


def test_prompt_streams_the_greedy_answer(run_dir) -> None:
    from honer.config import load_config
    from honer.infer.chat import Assistant
    from honer.infer.generate import generate
    from honer.infer.load import load_for_inference
    from honer.infer.prompt import PromptFormatter
    from honer.infer.stream import Sampling

    res = _invoke([str(run_dir / "c.yml"), "--prompt", "hello world", "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    cfg = load_config(run_dir / "c.yml")
    model, tok, what = load_for_inference(cfg)
    assert "adapter" in what
    fmt = PromptFormatter(cfg, tok)
    ids = fmt.ids([{"role": "user", "content": "hello world"}])
    want = tok.decode(
        generate(model, tok, [ids], 8, stop_ids=fmt.stop_ids)[0], skip_special_tokens=True
    )
    assistant = Assistant(model, tok, fmt, Sampling(max_new_tokens=8))
    streamed = list(assistant.reply([{"role": "user", "content": "hello world"}]))
    assert "".join(streamed) == want
    assert res.stdout.endswith(want + "\n")


def test_sampling_with_seed_repeats(run_dir) -> None:
    args = [str(run_dir / "c.yml"), "--prompt", "hi", "--temperature", "1.5", "--top-k", "50"]
    first = _invoke([*args, "--seed", "3", "--top-p", "0.95"])
    again = _invoke([*args, "--seed", "3", "--top-p", "0.95"])
    assert first.exit_code == 0, first.output
    assert first.stdout == again.stdout and first.stdout.strip()


def test_batch_writes_jsonl(run_dir) -> None:
    prompts = run_dir / "p.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "hello world", "id": 1})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "hello world"}], "id": 2})
        + "\n"
    )
    res = _invoke([str(run_dir / "c.yml"), "--file", str(prompts), "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run_dir / "p.responses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["response"] == rows[1]["response"]  # same conversation, greedy


def test_batch_takes_a_held_out_file_in_the_training_format(run_dir) -> None:
    """Rows written like the training data (messages ending with the assistant's answer): the
    prompt is everything before the first trained turn, the answer is kept as `reference`."""
    prompts = run_dir / "heldout.jsonl"
    chat = [
        {"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "the answer"},
    ]
    prompts.write_text(
        json.dumps({"messages": chat, "id": 1})
        + "\n\n"
        + json.dumps({"prompt": "hello world", "id": 2})
        + "\n"
    )
    args = [str(run_dir / "c.yml"), "--file", str(prompts), "--max-new-tokens", "8"]
    res = _invoke([*args, "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run_dir / "heldout.responses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["reference"] == "the answer" and "reference" not in rows[1]
    assert rows[0]["messages"] == chat  # the input row is kept as it was
    assert rows[0]["response"] == rows[1]["response"]  # the same prompt, greedy
    one_by_one = _invoke([*args, "--batch-size", "1", "--output", str(run_dir / "one.jsonl")])
    assert one_by_one.exit_code == 0
    again = [json.loads(x) for x in (run_dir / "one.jsonl").read_text().splitlines()]
    assert [r["response"] for r in again] == [r["response"] for r in rows]


def test_a_bad_row_fails_with_file_and_line_before_the_model_loads(run_dir, monkeypatch) -> None:
    import honer.infer.load

    def must_not_load(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the rows were checked")

    monkeypatch.setattr(honer.infer.load, "load_source", must_not_load)
    prompts = run_dir / "bad.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "fine"})
        + "\n\n"
        + json.dumps(
            {"messages": [{"role": "user", "content": "q"}, {"role": "wizard", "content": "x"}]}
        )
        + "\n"
    )
    res = _invoke([str(run_dir / "c.yml"), "--file", str(prompts)])
    assert isinstance(res.exception, HonerError), res.output
    assert str(res.exception).startswith(f"{prompts}:3: ")
    prompts.write_text(json.dumps({"question": "?"}) + "\n")
    res = _invoke([str(run_dir / "c.yml"), "--file", str(prompts)])
    assert f"{prompts}:1: a row needs `prompt`, `messages`" in str(res.exception)
    assert "the training format `chat_template` (messages)" in str(res.exception)


def test_interactive_chat_keeps_history_and_resets(run_dir) -> None:
    from honer.config import load_config
    from honer.infer.chat import Assistant, ChatSession, interactive
    from honer.infer.load import load_for_inference
    from honer.infer.prompt import PromptFormatter
    from honer.infer.stream import Sampling

    cfg = load_config(run_dir / "c.yml")
    model, tok, _ = load_for_inference(cfg)
    session = ChatSession(Assistant(model, tok, PromptFormatter(cfg, tok), Sampling(4)))
    lines = iter(["first", "second", "/reset", "third", "/exit", "never read"])
    seen: list[int] = []
    out: list[str] = []

    def write(text: str) -> None:
        out.append(text)
        seen.append(len(session.history))

    interactive(session, lambda _prompt: next(lines), write)
    assert "(history cleared)\n" in out
    assert [m["content"] for m in session.history if m["role"] == "user"] == ["third"]
    assert len(session.history) == 2
    assert max(seen) >= 3  # the second turn was generated with the first exchange in history
    res = _invoke([str(run_dir / "c.yml"), "--max-new-tokens", "3"], stdin="hi\n/reset\n/exit\n")
    assert res.exit_code == 0 and "(history cleared)" in res.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--top-p", "0.9"], "--top-p"),
        (["--host", "0.0.0.0"], "--host"),
        (["--prompt", "x", "--file", "p.jsonl"], "--prompt"),
        (["--output", "o.jsonl"], "--output"),
        (["--lora-model-dir", "nowhere"], "--lora-model-dir"),
        (["--base-model-only", "--lora-model-dir", "nowhere"], "--base-model-only"),
        (["--file", "missing.jsonl"], "--file"),
    ],
)
def test_flag_errors_name_the_flag(run_dir, args, flag) -> None:
    res = _invoke([str(run_dir / "c.yml"), *args])
    assert isinstance(res.exception, HonerError), res.output
    assert flag in str(res.exception)


def test_no_trained_model_is_a_clear_error(tiny_model_dir, tmp_path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"base_model: {tiny_model_dir}\ndatasets:\n  - path: d.jsonl\n    type: alpaca\n"
        f"output_dir: {tmp_path / 'none'}\nadapter: lora\n"
    )
    res = _invoke([str(cfg), "--prompt", "x"])
    assert isinstance(res.exception, HonerError) and "--base-model-only" in str(res.exception)
    res = _invoke(
        [str(cfg), "--prompt", "Add 1 and 1", "--base-model-only", "--max-new-tokens", "2"]
    )
    assert res.exit_code == 0, res.output


def test_gradio_history_becomes_messages() -> None:
    from honer.infer.gradio_app import to_messages

    dicts = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
    ]
    want = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert to_messages(dicts, "c") == want
    assert to_messages([["a", "b"]], {"text": "c"}) == want


def test_system_message_is_added_where_a_conversation_has_none(run_dir) -> None:
    """Training rows that carry a system message are answered well only with it: --system adds
    it exactly where the training rows had it."""
    from honer.config import load_config
    from honer.infer.prompt import PromptFormatter
    from honer.model.load import load_tokenizer

    cfg = load_config(run_dir / "c.yml")
    tok = load_tokenizer(cfg)
    with_flag = PromptFormatter(cfg, tok, system="Answer in SQL.")
    written = PromptFormatter(cfg, tok)
    user = [{"role": "user", "content": "hello"}]
    system = [{"role": "system", "content": "Answer in SQL."}]
    assert with_flag.ids(user) == written.ids(system + user)
    assert with_flag.ids(user) != written.ids(user)
    own = [{"role": "system", "content": "Other."}, *user]
    assert with_flag.ids(own) == written.ids(own)  # a conversation's own system message wins
    res = _invoke(
        [str(run_dir / "c.yml"), "--prompt", "hi", "--system", "Be brief.", "--max-new-tokens", "3"]
    )
    assert res.exit_code == 0, res.output
