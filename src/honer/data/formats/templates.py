"""Chat templates by name: Axolotl's named templates, honer's few built-ins, the tokenizer's own.

`chat_template: NAME` accepts every name Axolotl accepts. Axolotl's named templates ship as
package data (`chat_templates/NAME.jinja`, copied byte for byte from Axolotl 0.21, Apache-2.0:
see `chat_templates/NOTICE`), so a name renders what Axolotl renders for it, token for token.
The built-ins below are the role formats of honer's `sharegpt` `conversation:` option (FastChat
styles) and the two names Axolotl lacks (`mistral`, `vicuna`). Every template is plain Jinja
rendered by transformers' own `apply_chat_template` (its sandbox, `raise_exception`,
`strftime_now`), so inference renders the same prompt.

Names (`resolve_template`):

- `tokenizer_default`: the tokenizer's own template (an error when it has none).
- `tokenizer_default_fallback_NAME`: the tokenizer's own template, else NAME (Axolotl's).
- `jinja`: the text of `chat_template_jinja` (or the file it names, as Axolotl allows).
- an Axolotl name (`AXOLOTL_CHAT_TEMPLATES`): the shipped file, also for `chatml`, `llama3` and
  `alpaca`. For `chatml` and `llama3` the files render exactly what honer's built-in texts
  rendered (tested); `alpaca` is Axolotl's (no Stanford preamble, turns joined by a blank line),
  where honer's built-in `alpaca` (kept for `conversation: alpaca`) is FastChat's.
- `mistral`, `vicuna`: honer's built-ins.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

# Mistral Instruct (v1 style): the system prompt is folded into the first user turn.
MISTRAL = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system %}{{ '[INST] ' + system + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

# FastChat's "alpaca" conversation style (Axolotl `sharegpt` with `conversation: alpaca`).
ALPACA = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\\n\\n' }}{% set loop_messages = messages[1:] %}"
    "{% else %}"
    "{{ 'Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\\n\\n' }}"
    "{% set loop_messages = messages %}"
    "{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)

# FastChat's vicuna_v1.1.
VICUNA = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + ' ' }}{% set loop_messages = messages[1:] %}"
    "{% else %}"
    "{{ 'A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user\\'s questions. ' }}"
    "{% set loop_messages = messages %}"
    "{% endif %}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

BUILTIN_TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "llama3": LLAMA3,
    "mistral": MISTRAL,
    "alpaca": ALPACA,
    "vicuna": VICUNA,
}


FALLBACK_PREFIX = "tokenizer_default_fallback_"


def shipped_template_names() -> tuple[str, ...]:
    """The names of the shipped template files (`chat_templates/*.jinja`), sorted."""
    from importlib.resources import files

    folder = files("honer.data.formats").joinpath("chat_templates")
    return tuple(
        sorted(p.name[: -len(".jinja")] for p in folder.iterdir() if p.name.endswith(".jinja"))
    )


@cache
def named_template(name: str) -> str | None:
    """The text of the shipped template `name` (Axolotl's), or None when none ships."""
    from importlib.resources import files

    if not name.replace("_", "").isalnum():  # a name, never a path
        return None
    path = files("honer.data.formats").joinpath("chat_templates", f"{name}.jinja")
    return path.read_text(encoding="utf-8") if path.is_file() else None


def template_by_name(name: str) -> str | None:
    """A named template: the shipped (Axolotl) file first, else honer's built-in, else None."""
    return named_template(name) or BUILTIN_TEMPLATES.get(name)


def _jinja_text(jinja_text: str | None) -> str:
    """`chat_template_jinja`: the template text, or (as in Axolotl) the path of a file holding it."""
    from honer.errors import DataError

    if not jinja_text:
        raise DataError("chat_template: `jinja` needs `chat_template_jinja`.")
    if "{" not in jinja_text and "\n" not in jinja_text:
        path = Path(jinja_text).expanduser()
        if path.is_file():
            return path.read_text(encoding="utf-8")
        raise DataError(
            f"chat_template_jinja: `{jinja_text}` is neither a Jinja template nor a file."
        )
    return jinja_text


def resolve_template(name: str, jinja_text: str | None, tokenizer_template: str | None) -> str:
    """The Jinja text for a `chat_template` name (see the module docstring for the names)."""
    from honer.errors import DataError

    if name == "tokenizer_default":
        if not tokenizer_template:
            raise DataError(
                "chat_template: the tokenizer has no chat template of its own; set "
                "`chat_template:` to a named template (e.g. chatml, llama3), "
                "`tokenizer_default_fallback_chatml`, or `jinja`."
            )
        return tokenizer_template
    if name.startswith(FALLBACK_PREFIX):
        if tokenizer_template:
            return tokenizer_template
        name = name[len(FALLBACK_PREFIX) :]
    if name == "jinja":
        return _jinja_text(jinja_text)
    text = template_by_name(name)
    if text is None:
        known = sorted({*shipped_template_names(), *BUILTIN_TEMPLATES})
        raise DataError(f"chat_template: no template named `{name}` (known: {', '.join(known)}).")
    return text
