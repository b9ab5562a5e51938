"""chat_template: OpenAI-style `messages` rendered with a chat template, assistant turns trained.

The ids are the tokenizer's ids for the *whole* rendered chat (what the template renders is what
the model sees). Turn spans come from rendering message prefixes, which works with stock templates
that have no `{% generation %}` markers:

    render(messages[:i], add_generation_prompt=True)  →  where assistant turn i starts
    render(messages[:i + 1])                          →  where it ends (after its end-of-turn token)

A template that rewrites earlier turns when later ones are added (or refuses partial chats) falls
back to finding the message text in the full render. A trained turn's span is its content plus its
end-of-turn token(s) (`train_on_eos`), never the whitespace the template puts after them.

    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>\\n
    ------------- masked -------------------------------- trained ----------- ·

Prefix renders get `real_last_index` (the index of the conversation's last message), the variable
Axolotl passes so that templates such as qwen3 render earlier turns in a prefix as they render
them in the whole chat. Template text between the generation prompt and the content (qwen3's
empty `<think>\\n\\n</think>\\n\\n` before the last answer) is part of the prompt, as in Axolotl.

End of turn: without `eot_tokens`, the template's own end-of-turn marker after a turn's content
(`<|im_end|>`, `<|eot_id|>`, `</s>`) is trained as `train_on_eos` (or `train_on_eot`, either one
suffices) says. With `eot_tokens`, Axolotl's rule replaces it: after each trained turn (every turn
when either option is `all`) the first of those tokens within 3 tokens of the content's end is
trained as `train_on_eot` says, and the first EOS there as `train_on_eos` says.

System message (in this order, as Axolotl): the row's `field_system` column becomes the system
message when the conversation has none; `drop_system_message` removes system messages;
`default_system_message` is inserted when the conversation (then) has none, so with
`drop_system_message` every sample carries the default instead of its own. A template that writes
its own default system prompt (SmolLM2, qwen_25) writes it only when there is none: with
`default_system_message` there always is one, so the template's default never appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from honer.data.formats.context import FormatContext
from honer.data.tokenize import FormatError, Segment, TokenizedSample, TokenizerView

VERSION = 2  # 2: field_system, default_system_message, eot_tokens, real_last_index

# Role names found in the wild, mapped to ours unless the dataset's `roles` says otherwise.
DEFAULT_ROLES: dict[str, list[str]] = {
    "system": ["system"],
    "user": ["user", "human"],
    "assistant": ["assistant", "gpt", "model", "bot"],
    "tool": ["tool", "function"],
}


def normalise_messages(
    raw: Any,
    field: str,
    role_key: str,
    content_key: str,
    roles: dict[str, list[str]] | None,
    drop_system: bool,
) -> list[dict[str, str]]:
    """The row's messages as [{role, content}] with our role names; errors name the message."""
    if not isinstance(raw, list) or not raw:
        raise FormatError(f"column `{field}` must be a non-empty list of messages")
    to_ours = {name: ours for ours, names in DEFAULT_ROLES.items() for name in names}
    for ours, names in (roles or {}).items():
        to_ours.update(dict.fromkeys(names, ours))
    messages = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise FormatError(
                f"{field}[{i}] must be an object with `{role_key}` and `{content_key}`"
            )
        role, content = msg.get(role_key), msg.get(content_key)
        if not isinstance(role, str) or not isinstance(content, str):
            raise FormatError(
                f"{field}[{i}] needs text in `{role_key}` and `{content_key}` "
                f"(set `message_property_mappings` if your keys differ)"
            )
        if role not in to_ours:
            raise FormatError(
                f"{field}[{i}] has unknown role `{role}`; map it, e.g. `roles: {{assistant: [{role}]}}`"
            )
        if drop_system and to_ours[role] == "system":
            continue
        messages.append({"role": to_ours[role], "content": content})
    return messages


def _render(
    tok: TokenizerView,
    messages: list,
    template: str | None,
    gen: bool,
    kwargs: Mapping[str, Any] | None = None,
    last_index: int | None = None,
) -> str | None:
    """A render, or None when the template refuses it. `last_index`: Axolotl's
    `real_last_index`, the index of the whole conversation's last message, for prefix renders."""
    extra = dict(kwargs or {})
    if last_index is not None:
        extra["real_last_index"] = last_index
    try:
        return tok.render_chat(messages, template, add_generation_prompt=gen, template_kwargs=extra)
    except Exception:  # Jinja templates raise anything (e.g. "roles must alternate")
        return None


def _turn_spans(
    tok: TokenizerView,
    messages: list[dict[str, str]],
    ctx: FormatContext,
    full: str,
    trained: set[int],
) -> list[tuple[int, int, int]]:
    """(start, content_end, turn_end) character offsets of every message in `full`.

    A message the template leaves out (e.g. a dropped system turn) gets an empty span, unless it
    is to be trained: then not finding it is an error.
    """
    template, kwargs = ctx.chat_template, ctx.chat_template_kwargs
    last = len(messages) - 1
    spans = []
    cursor = 0
    for i, msg in enumerate(messages):
        start = None
        if msg["role"] == "assistant":
            prefix = _render(tok, messages[:i], template, True, kwargs, last)
            if prefix is not None and full.startswith(prefix) and len(prefix) >= cursor:
                start = len(prefix)
        found = full.find(msg["content"], start if start is not None else cursor)
        if start is None:
            if found < 0 and i not in trained:
                spans.append((cursor, cursor, cursor))
                continue
            if found < 0:
                raise FormatError(
                    f"cannot locate message {i} ({msg['role']}) in the rendered chat: the template "
                    "rewrites message text; use a template that keeps it"
                )
            start = found
        elif found > start and full[start:found].strip():
            start = found  # template text after the generation prompt (qwen3's empty think block)
        content_end = found + len(msg["content"]) if found >= 0 else start
        upto = _render(tok, messages[: i + 1], template, False, kwargs, last)
        shared = -1
        if upto is not None:
            shared = len(upto) if full.startswith(upto) else _shared_tokens(tok, upto, full)
        if shared >= content_end:
            # The prefix render agrees with the whole chat up to here: the turn ends with it
            # (all of it, or up to the first token where they differ: a template that always
            # appends a generation prompt, like command_a, or ends only the last turn, like
            # metharme).
            turn_end = shared
        else:  # template refuses or rewrites partial chats: the turn ends where the next starts
            nxt = messages[i + 1]["content"] if i + 1 < len(messages) else None
            turn_end = full.find(nxt, content_end) if nxt else len(full)
            turn_end = content_end if turn_end < 0 else turn_end
        spans.append((start, content_end, turn_end))
        cursor = content_end
    return spans


def _shared_tokens(tok: TokenizerView, a: str, b: str) -> int:
    """Where `a` and `b` part, in characters, at a token boundary: the end of the tokens they
    share (as Axolotl compares token ids, never cutting a special token in half)."""
    _, offsets_a = tok.encode_segments_with_offsets([Segment(a, False)], add_special_tokens=False)
    _, offsets_b = tok.encode_segments_with_offsets([Segment(b, False)], add_special_tokens=False)
    end = 0
    for (sa, ea), (sb, eb) in zip(offsets_a, offsets_b, strict=False):
        if (sa, ea) != (sb, eb) or a[sa:ea] != b[sb:eb]:
            break
        end = ea
    return end


def end_of_turn_text(full: str, content_end: int, turn_end: int, eos: str | None = None) -> str:
    """The end-of-turn marker after a message's content (`<|im_end|>`, `</s>`…), no whitespace;
    it ends with the first EOS in it (what follows the EOS already belongs to the next turn)."""
    marker = full[content_end:turn_end].strip()
    if eos and eos in marker:
        marker = marker[: marker.index(eos) + len(eos)]
    return marker


def _marks(mode: str | None, turn: int, trained: bool, last_trained: int) -> bool:
    """Whether a `train_on_eos`/`train_on_eot` mode trains the end of turn `turn`."""
    return (
        mode == "all" or (mode == "turn" and trained) or (mode == "last" and turn == last_trained)
    )


def tokenize_messages(
    messages: list[dict[str, str]], tok: TokenizerView, ctx: FormatContext
) -> TokenizedSample:
    ds = ctx.dataset
    try:
        full = tok.render_chat(
            messages,
            ctx.chat_template,
            add_generation_prompt=False,
            template_kwargs=ctx.chat_template_kwargs,
        )
    except Exception as err:  # Jinja templates raise anything (e.g. "roles must alternate")
        raise FormatError(f"the chat template cannot render this conversation: {err}") from None
    if ctx.train_on_inputs:
        roles_to_train = {m["role"] for m in messages}
    else:
        roles_to_train = set(ds.roles_to_train or ["assistant"])
    if not any(m["role"] in roles_to_train for m in messages):
        raise FormatError(
            f"no message with a trained role ({', '.join(sorted(roles_to_train))}); "
            "this conversation would train nothing"
        )
    trained_turns = [i for i, m in enumerate(messages) if m["role"] in roles_to_train]
    spans = _turn_spans(tok, messages, ctx, full, set(trained_turns))
    if ctx.eot_token_ids is not None and not ctx.train_on_inputs:
        return _with_eot_tokens(full, spans, set(trained_turns), tok, ctx)
    last_trained = trained_turns[-1]
    segments: list[Segment] = []
    pos = 0
    for i, (start, content_end, turn_end) in enumerate(spans):
        trained = i in trained_turns
        start, content_end = max(start, pos), max(content_end, pos)
        eot = end_of_turn_text(full, content_end, max(turn_end, content_end), tok.eos_token)
        eot_start = full.find(eot, content_end) if eot else content_end
        eot_end = eot_start + len(eot)
        # Without `eot_tokens` the template's marker is both Axolotl's EOT and EOS: either
        # option trains it (Axolotl marks the one EOS token under both).
        eot_trained = _marks(ds.train_on_eos, i, trained, last_trained) or _marks(
            ds.train_on_eot, i, trained, last_trained
        )
        if ctx.train_on_inputs:
            segments.append(Segment(full[pos : max(turn_end, pos)], True))
            pos = max(turn_end, pos)
            continue
        segments.append(Segment(full[pos:start], False))
        segments.append(Segment(full[start:content_end], trained))
        segments.append(Segment(full[content_end:eot_start], trained and bool(eot)))
        segments.append(Segment(full[eot_start:eot_end], eot_trained))
        pos = eot_end
    segments.append(Segment(full[pos:], ctx.train_on_inputs))
    return tok.encode_segments(segments, add_special_tokens=False)


# Axolotl accepts an end-of-turn token this many tokens after a turn's content (template padding).
EOT_WINDOW = 3


def _with_eot_tokens(
    full: str,
    spans: list[tuple[int, int, int]],
    trained_turns: set[int],
    tok: TokenizerView,
    ctx: FormatContext,
) -> TokenizedSample:
    """Trained contents, then Axolotl's end-of-turn rule on the ids (`eot_tokens` set).

    For each trained turn (each turn when `train_on_eos` or `train_on_eot` is `all`): the first
    `eot_tokens` id at or after the content's end, if within `EOT_WINDOW` tokens, is trained per
    `train_on_eot`; the first EOS likewise per `train_on_eos`. `last` trains the last such token
    found. Template text between content and marker stays masked, as in Axolotl.
    """
    ds = ctx.dataset
    eos_mode = ds.train_on_eos
    eot_mode = ds.train_on_eot or ds.train_on_eos
    every_turn = "all" in (eos_mode, eot_mode)
    segments: list[Segment] = []
    pos = 0
    for i, (start, content_end, _) in enumerate(spans):
        start, content_end = max(start, pos), max(content_end, pos)
        segments.append(Segment(full[pos:start], False))
        segments.append(Segment(full[start:content_end], i in trained_turns))
        pos = content_end
    segments.append(Segment(full[pos:], False))
    sample, offsets = tok.encode_segments_with_offsets(segments, add_special_tokens=False)
    ids, labels = sample.input_ids, sample.labels
    markers = [(set(ctx.eot_token_ids or ()), eot_mode), ({tok.eos_token_id} - {None}, eos_mode)]
    last_found = [-1] * len(markers)
    for i, (start, content_end, turn_end) in enumerate(spans):
        trained = i in trained_turns
        left_out = start == content_end == turn_end
        if left_out or not (trained or every_turn):
            continue
        after = next((k for k, (a, _) in enumerate(offsets) if a >= content_end), len(ids))
        for m, (wanted, mode) in enumerate(markers):
            k = next((j for j in range(after, len(ids)) if ids[j] in wanted), -1)
            if k < 0 or k - after > EOT_WINDOW:
                continue
            last_found[m] = k
            if mode == "all" or (mode == "turn" and trained):
                labels[k] = ids[k]
    for (_, mode), k in zip(markers, last_found, strict=True):
        if mode == "last" and k >= 0:
            labels[k] = ids[k]
    return sample


def conversation_messages(
    row: dict[str, Any], ctx: FormatContext, field: str, role_key: str, content_key: str
) -> list[dict[str, str]]:
    """The row's conversation as the template will see it, system message settled as Axolotl
    settles it: the `field_system` column, then `drop_system_message`, then
    `default_system_message` (see the module docstring)."""
    ds = ctx.dataset
    messages = normalise_messages(row.get(field), field, role_key, content_key, ds.roles, False)
    column = row.get(ds.field_system) if ds.field_system != field else None
    if column is not None and messages[0]["role"] != "system":
        if not isinstance(column, str):
            raise FormatError(f"column `{ds.field_system}` (the system message) must be text")
        messages.insert(0, {"role": "system", "content": column})
    if ds.drop_system_message:
        messages = [m for m in messages if m["role"] != "system"]
    default = ctx.default_system_message
    if default is not None and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": default})
    return messages


def default_system_prompt(
    tok: TokenizerView, template: str | None, kwargs: Mapping[str, Any] | None = None
) -> str | None:
    """The system prompt the template writes into a conversation that has none, or None.

    Rendered twice, [user] and [system S, user]: when the first equals the second with S replaced
    by some text D, D is the template's default (SmolLM2 injects "You are a helpful AI assistant
    named SmolLM, …"). Templates that add only fixed headers (Llama 3.1's dates) give D = "".
    """
    marker = "HONER_SYSTEM_PROBE"
    user = [{"role": "user", "content": "Hi"}]
    bare = _render(tok, user, template, False, kwargs)
    system = [{"role": "system", "content": marker}, *user]
    with_system = _render(tok, system, template, False, kwargs)
    if bare is None or with_system is None or marker not in with_system:
        return None
    head, tail = with_system.split(marker, 1)
    if len(bare) < len(head) + len(tail) or not (bare.startswith(head) and bare.endswith(tail)):
        return None
    injected = bare[len(head) : len(bare) - len(tail)]
    return injected.strip() or None


def eos_mismatch(
    tok: TokenizerView, template: str | None, kwargs: Mapping[str, Any] | None = None
) -> str | None:
    """A warning when the template's end of an assistant turn is not the tokenizer's EOS.

    Generation stops at EOS; a model trained to end turns with another token never stops.
    """
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    full = _render(tok, probe, template, False, kwargs)
    if full is None:
        return None
    end = full.rfind("Hello") + len("Hello")
    eos = tok.eos_token
    eot = end_of_turn_text(full, end, len(full), eos)
    if not eot:
        return (
            "the chat template adds no end-of-turn token after assistant messages, so the model "
            f"cannot learn to stop: use a template that ends turns with EOS (`{eos}`)."
        )
    if eos and (eot.startswith(eos) or eot.endswith(eos)):
        return None  # command_a's `<|END_RESPONSE|><|END_OF_TURN_TOKEN|>` ends with its EOS
    if len(tok.encode(eot, add_special_tokens=False)) > 1:
        return (
            f"the chat template ends assistant turns with `{eot}`, which is not one token in this "
            f"tokenizer (the template was made for another vocabulary): add it with "
            f'`special_tokens: {{eos_token: "{eot}"}}` or use the tokenizer\'s own template.'
        )
    return (
        f"the chat template ends assistant turns with `{eot}` but the tokenizer's EOS is `{eos}`: "
        f'generation stops only at EOS, so set `special_tokens: {{eos_token: "{eot}"}}` '
        "(or set eos_token_id in the model's generation_config at inference)."
    )


def tokenize_conversation(
    row: dict[str, Any],
    tok: TokenizerView,
    ctx: FormatContext,
    default_field: str,
    default_role: str,
    default_content: str,
) -> list[TokenizedSample]:
    """The row's conversation (keys from the dataset entry, else the defaults) as one sample.

    Shared by `chat_template` (messages/role/content) and `sharegpt` (conversations/from/value).
    """
    ds = ctx.dataset
    field = ds.field_messages or default_field
    mapping = ds.message_property_mappings
    role_key = ds.message_field_role or (mapping.role if mapping else default_role)
    content_key = ds.message_field_content or (mapping.content if mapping else default_content)
    messages = conversation_messages(row, ctx, field, role_key, content_key)
    return [tokenize_messages(messages, tok, ctx)]


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    return tokenize_conversation(row, tok, ctx, "messages", "role", "content")


def stop_token_ids(
    tok: TokenizerView,
    template: str | None,
    is_chat: bool,
    kwargs: Mapping[str, Any] | None = None,
    eot_ids: tuple[int, ...] | None = None,
) -> set[int]:
    """Where generation must stop: EOS, plus the chat template's end-of-turn token when it is
    one token (ChatML's `<|im_end|>` is often not the EOS: without it a chat model talks on into
    an invented next turn), plus `eot_tokens`. Used by inference and written into merged models'
    generation config."""
    stop = {tok.eos_token_id} - {None}
    if not is_chat:
        return stop
    stop.update(eot_ids or ())
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    full = _render(tok, probe, template, False, kwargs)
    if full is None:  # a template that refuses the probe: EOS alone
        return stop
    end = full.rfind("Hello") + len("Hello")
    eot = end_of_turn_text(full, end, len(full), tok.eos_token)
    ids = tok.encode(eot, add_special_tokens=False) if eot else []
    if len(ids) == 1:
        stop.add(ids[0])
    return stop
