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
"""

from __future__ import annotations

from typing import Any

from honer.data.formats.context import FormatContext
from honer.data.tokenize import FormatError, Segment, TokenizedSample, TokenizerView

VERSION = 1

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


def _render(tok: TokenizerView, messages: list, template: str | None, gen: bool) -> str | None:
    try:
        return tok.render_chat(messages, template, add_generation_prompt=gen)
    except Exception:  # Jinja templates raise anything (e.g. "roles must alternate")
        return None


def _turn_spans(
    tok: TokenizerView,
    messages: list[dict[str, str]],
    template: str | None,
    full: str,
    trained: set[int],
) -> list[tuple[int, int, int]]:
    """(start, content_end, turn_end) character offsets of every message in `full`.

    A message the template leaves out (e.g. a dropped system turn) gets an empty span, unless it
    is to be trained: then not finding it is an error.
    """
    spans = []
    cursor = 0
    for i, msg in enumerate(messages):
        start = None
        if msg["role"] == "assistant":
            prefix = _render(tok, messages[:i], template, gen=True)
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
        content_end = found + len(msg["content"]) if found >= 0 else start
        upto = _render(tok, messages[: i + 1], template, gen=False)
        if upto is not None and full.startswith(upto) and len(upto) >= content_end:
            turn_end = len(upto)
        else:  # template refuses or rewrites partial chats: the turn ends where the next starts
            nxt = messages[i + 1]["content"] if i + 1 < len(messages) else None
            turn_end = full.find(nxt, content_end) if nxt else len(full)
            turn_end = content_end if turn_end < 0 else turn_end
        spans.append((start, content_end, turn_end))
        cursor = content_end
    return spans


def end_of_turn_text(full: str, content_end: int, turn_end: int) -> str:
    """The end-of-turn marker after a message's content (`<|im_end|>`, `</s>`…), no whitespace."""
    return full[content_end:turn_end].strip()


def tokenize_messages(
    messages: list[dict[str, str]], tok: TokenizerView, ctx: FormatContext
) -> TokenizedSample:
    ds = ctx.dataset
    try:
        full = tok.render_chat(messages, ctx.chat_template, add_generation_prompt=False)
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
    spans = _turn_spans(tok, messages, ctx.chat_template, full, set(trained_turns))
    last_trained = trained_turns[-1]
    segments: list[Segment] = []
    pos = 0
    for i, (start, content_end, turn_end) in enumerate(spans):
        trained = i in trained_turns
        start, content_end = max(start, pos), max(content_end, pos)
        eot = end_of_turn_text(full, content_end, max(turn_end, content_end))
        eot_start = full.find(eot, content_end) if eot else content_end
        eot_end = eot_start + len(eot)
        eos_mode = ds.train_on_eos
        eot_trained = (
            eos_mode == "all"
            or (eos_mode == "turn" and trained)
            or (eos_mode == "last" and i == last_trained)
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


def default_system_prompt(tok: TokenizerView, template: str | None) -> str | None:
    """The system prompt the template writes into a conversation that has none, or None.

    Rendered twice, [user] and [system S, user]: when the first equals the second with S replaced
    by some text D, D is the template's default (SmolLM2 injects "You are a helpful AI assistant
    named SmolLM, …"). Templates that add only fixed headers (Llama 3.1's dates) give D = "".
    """
    marker = "HONER_SYSTEM_PROBE"
    user = [{"role": "user", "content": "Hi"}]
    bare = _render(tok, user, template, gen=False)
    with_system = _render(tok, [{"role": "system", "content": marker}, *user], template, gen=False)
    if bare is None or with_system is None or marker not in with_system:
        return None
    head, tail = with_system.split(marker, 1)
    if len(bare) < len(head) + len(tail) or not (bare.startswith(head) and bare.endswith(tail)):
        return None
    injected = bare[len(head) : len(bare) - len(tail)]
    return injected.strip() or None


def eos_mismatch(tok: TokenizerView, template: str | None) -> str | None:
    """A warning when the template's end of an assistant turn is not the tokenizer's EOS.

    Generation stops at EOS; a model trained to end turns with another token never stops.
    """
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    full = _render(tok, probe, template, gen=False)
    if full is None:
        return None
    end = full.rfind("Hello") + len("Hello")
    eot = full[end:].strip()
    eos = tok.eos_token
    if eot and len(tok.encode(eot, add_special_tokens=False)) > 1:
        return (
            f"the chat template ends assistant turns with `{eot}`, which is not one token in this "
            f"tokenizer (the template was made for another vocabulary): add it with "
            f'`special_tokens: {{eos_token: "{eot}"}}` or use the tokenizer\'s own template.'
        )
    if not eot:
        return (
            "the chat template adds no end-of-turn token after assistant messages, so the model "
            f"cannot learn to stop: use a template that ends turns with EOS (`{eos}`)."
        )
    if eos and (eot.startswith(eos) or eot.endswith(eos)):
        return None
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
    messages = normalise_messages(
        row.get(field), field, role_key, content_key, ds.roles, ds.drop_system_message
    )
    return [tokenize_messages(messages, tok, ctx)]


def tokenize_row(
    row: dict[str, Any], tok: TokenizerView, ctx: FormatContext
) -> list[TokenizedSample]:
    return tokenize_conversation(row, tok, ctx, "messages", "role", "content")


def stop_token_ids(tok: TokenizerView, template: str | None, is_chat: bool) -> set[int]:
    """Where generation must stop: EOS, plus the chat template's end-of-turn token when it is
    one token (ChatML's `<|im_end|>` is often not the EOS: without it a chat model talks on into
    an invented next turn). Used by inference and written into merged models' generation config."""
    stop = {tok.eos_token_id} - {None}
    if not is_chat:
        return stop
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    full = _render(tok, probe, template, gen=False)
    if full is None:  # a template that refuses the probe: EOS alone
        return stop
    end = full.rfind("Hello") + len("Hello")
    eot = end_of_turn_text(full, end, len(full))
    ids = tok.encode(eot, add_special_tokens=False) if eot else []
    if len(ids) == 1:
        stop.add(ids[0])
    return stop
