"""`honer data clean`: drop the rows that would teach a model the wrong thing.

Each row goes through the filters below in this order; the first that fires is the row's
reason, written with the row to the rejects file. Filters read the row's *answers* (found by its
shape, see `honer.curate.ingest.fields`) or its whole text:

- empty answer:  an answer that is empty or only whitespace (or a chat with no assistant turn);
- charset:       U+FFFD replacement characters, control characters, lone surrogates and
                 UTF-8-read-as-Latin-1 mojibake (`Ã©`, `â€™`) in the row's text;
- slop:          a refusal or boilerplate phrase in an answer ("As an AI language model", …;
                 the default list is `slop_phrases.txt`, extendable);
- broken JSON:   with `json_answers`, an answer that does not parse as JSON (a surrounding
                 ```json fence is allowed);
- too short / too long: characters or tokens of the row's text (or of its answers);
- language:      with `lang`, see `language_problem` for exactly what is checked.

Options come from a YAML filters file and/or flags (flags win); both are validated by the same
pydantic model, so a misspelt key is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from honer.curate.ingest.fields import answer_texts, row_text
from honer.curate.ingest.output import JsonlWriter
from honer.data.readers.lines import Meter
from honer.data.readers.records import Tally
from honer.data.readers.rowfiles import iter_row_file
from honer.errors import ConfigError, DataError

DEFAULT_PHRASES = Path(__file__).with_name("slop_phrases.txt")
TokenCounter = Callable[[str], int]

# Writing systems (first word of a letter's Unicode name) of the languages `lang` knows.
LANG_SCRIPTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        "en de fr es it pt nl pl sv da no fi cs sk ro hu tr vi id ms hr sl et lv lt".split(),
        frozenset({"LATIN"}),
    ),
    **dict.fromkeys("ru uk be bg mk".split(), frozenset({"CYRILLIC"})),
    "sr": frozenset({"CYRILLIC", "LATIN"}),
    "el": frozenset({"GREEK"}),
    **dict.fromkeys("ar fa ur".split(), frozenset({"ARABIC"})),
    "he": frozenset({"HEBREW"}),
    **dict.fromkeys("hi mr ne".split(), frozenset({"DEVANAGARI"})),
    "bn": frozenset({"BENGALI"}),
    "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}),
    "th": frozenset({"THAI"}),
    "ka": frozenset({"GEORGIAN"}),
    "hy": frozenset({"ARMENIAN"}),
    "zh": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
}
# Frequent words that tell apart the common Latin-script languages (a vote, not a model).
COMMON_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to in is that it for was on are with as this be at by not but have "
        "from or you they which",
        "de": "der die und das ist nicht ich sie es ein eine zu den mit sich auf für von dem des "
        "auch wird sind werden bei oder wie",
        "fr": "le la les et est un une des du que qui pas pour dans ce il sur au avec sont mais "
        "ou nous vous elle être cette",
        "es": "el la los las y es un una que de en no por con para se del lo como más pero sus "
        "al está son también",
        "it": "il la le di che è e un una per non sono del della con si gli anche nel alla ma "
        "come questo più dei",
        "pt": "o a os as e é um uma que de do da em não para com por se dos das ao mas como mais "
        "também são",
        "nl": "de het een en is van dat niet in op te zijn voor met die er ook maar bij aan om "
        "wordt dit naar",
    }.items()
}
MIN_WORDS_FOR_VOTE = 20

_MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf]|â€")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+")
_FENCE = re.compile(r"\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*", re.S)


class CleanOptions(BaseModel):
    """What `clean` checks; the keys of a filters file and the names behind the flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer_fields: list[str] | None = Field(
        None, description="Fields holding the answer, when the row's shape does not tell."
    )
    empty_answers: bool = Field(True, description="Reject empty or whitespace-only answers.")
    charset: bool = Field(True, description="Reject rows with broken characters.")
    max_bad_chars: int = Field(0, ge=0, description="Broken characters a row may have.")
    slop: bool = Field(True, description="Reject answers holding a slop/refusal phrase.")
    default_slop_phrases: bool = Field(True, description="Use the shipped phrase list.")
    slop_phrases: list[str] = Field(default_factory=list, description="More phrases.")
    slop_phrases_file: str | None = Field(None, description="File of more phrases, one a line.")
    json_answers: bool = Field(False, description="Answers must be valid JSON.")
    min_chars: int | None = Field(None, ge=0, description="Fewest characters.")
    max_chars: int | None = Field(None, ge=1, description="Most characters.")
    min_tokens: int | None = Field(None, ge=0, description="Fewest tokens (needs a tokenizer).")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens (needs a tokenizer).")
    length_of: Literal["row", "answer"] = Field(
        "row", description="Measure length over the whole row or over its answers."
    )
    lang: str | None = Field(None, description="Expected language code (see language check).")
    min_lang_share: float = Field(
        0.8, gt=0, le=1, description="Share of letters that must be in the language's script."
    )

    @property
    def uses_tokens(self) -> bool:
        return self.min_tokens is not None or self.max_tokens is not None

    @property
    def uses_chars(self) -> bool:
        return self.min_chars is not None or self.max_chars is not None

    @property
    def uses_answers(self) -> bool:
        return self.empty_answers or self.slop or self.json_answers or self.length_of == "answer"


def _contradictions(options: CleanOptions) -> list[tuple[str, str]]:
    """(key, problem) for options that contradict each other or name unknown things."""
    problems = []
    for low, high in (("min_chars", "max_chars"), ("min_tokens", "max_tokens")):
        lo, hi = getattr(options, low), getattr(options, high)
        if lo is not None and hi is not None and lo > hi:
            problems.append((low, f"{lo} is larger than {high} ({hi})"))
    if options.lang is not None and options.lang not in LANG_SCRIPTS:
        known = ", ".join(sorted(LANG_SCRIPTS))
        problems.append(("lang", f"`{options.lang}` is not known; known: {known}"))
    given = options.model_fields_set
    if not options.slop:
        for key in ("slop_phrases", "slop_phrases_file", "default_slop_phrases"):
            if key in given:
                problems.append((key, "applies to the slop check, which is off"))
    needs = {
        "min_lang_share": ("lang", options.lang is not None),
        "max_bad_chars": ("charset", options.charset),
        "length_of": ("min/max chars or tokens", options.uses_tokens or options.uses_chars),
        "answer_fields": ("an answer check", options.uses_answers),
    }
    for key, (what, active) in needs.items():
        if key in given and not active:
            problems.append((key, f"only applies with {what}, which is off"))
    return problems


def load_clean_options(filters: Path | None, flags: dict[str, Any]) -> CleanOptions:
    """Options from a YAML filters file, overridden by the flags that were given (not None)."""
    import yaml

    doc: dict[str, Any] = {}
    source = str(filters) if filters else "flags"
    if filters is not None:
        try:
            loaded = yaml.safe_load(filters.read_text(encoding="utf-8"))
        except OSError as err:
            raise DataError(f"--filters {filters}: cannot read ({err.strerror}).") from None
        except yaml.YAMLError as err:
            raise ConfigError([("", f"invalid YAML ({err})")], source) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([("", "a filters file is a mapping of option: value")], source)
        doc = loaded or {}
        unknown = [k for k in doc if k not in CleanOptions.model_fields]
        if unknown:
            problems = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), list(CleanOptions.model_fields), 1)
                hint = f" Did you mean `{close[0]}`?" if close else ""
                problems.append((str(key), f"unknown key.{hint}"))
            raise ConfigError(problems, source)
    for key, value in flags.items():
        if value is None:
            continue
        if key == "slop_phrases":
            doc[key] = [*doc.get(key, []), *value]
        else:
            doc[key] = value
    try:
        options = CleanOptions(**doc)
    except ValidationError as err:
        problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in err.errors()]
        raise ConfigError(problems, source) from None
    problems = _contradictions(options)
    if problems:
        raise ConfigError(problems, source)
    return options


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text.translate(_QUOTES).casefold()).strip()


def read_phrases(path: Path) -> list[str]:
    """Phrases of a file, one a line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read the phrase file ({err.strerror}).") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def slop_pattern(options: CleanOptions) -> re.Pattern[str] | None:
    """One regular expression matching any of the configured phrases (normalised)."""
    if not options.slop:
        return None
    phrases = read_phrases(DEFAULT_PHRASES) if options.default_slop_phrases else []
    phrases += options.slop_phrases
    if options.slop_phrases_file:
        phrases += read_phrases(Path(options.slop_phrases_file))
    normalised = sorted({_normalise(p) for p in phrases if p.strip()}, key=len, reverse=True)
    if not normalised:
        raise DataError("slop check: the phrase list is empty (add phrases or turn it off).")
    return re.compile("|".join(map(re.escape, normalised)))


def charset_problem(text: str, allowed: int) -> str | None:
    """Broken characters in `text` beyond `allowed`, described; None when clean enough."""
    counts = {
        "replacement characters (U+FFFD)": text.count("\ufffd"),
        "control characters": len(_CONTROL.findall(text)),
        "lone surrogates": len(_SURROGATE.findall(text)),
        "mojibake sequences (UTF-8 read as Latin-1)": len(_MOJIBAKE.findall(text)),
    }
    if sum(counts.values()) <= allowed:
        return None
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n)


@lru_cache(maxsize=65536)
def script_of(char: str) -> str:
    """The writing system of a letter: the first word of its Unicode name (LATIN, CJK, …)."""
    words = unicodedata.name(char, "").replace("-", " ").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1:
        return words[1]
    return words[0] if words else ""


def language_problem(text: str, lang: str, min_share: float) -> str | None:
    """Whether `text` looks like `lang`, with cheap and honest means (no language model):

    1. script: at least `min_share` of the letters belong to the language's writing system(s)
       (so `ru` accepts any Cyrillic text, Ukrainian too; text without letters passes);
    2. for en, de, fr, es, it, pt and nl, on texts of 20 words or more: a vote of frequent
       words among those seven languages must not favour another one.
    """
    letters = [c for c in text if c.isalpha()]
    if letters:
        expected = LANG_SCRIPTS[lang]
        share = sum(1 for c in letters if script_of(c) in expected) / len(letters)
        if share < min_share:
            found = Counter(script_of(c) for c in letters).most_common(1)[0][0]
            return f"{share:.0%} of letters in {'/'.join(sorted(expected))} script (mostly {found})"
    if lang not in COMMON_WORDS:
        return None
    words = _WORD.findall(text.casefold())
    if len(words) < MIN_WORDS_FOR_VOTE:
        return None
    votes = {code: sum(1 for w in words if w in common) for code, common in COMMON_WORDS.items()}
    best = max(votes, key=lambda code: votes[code])
    if votes[best] > votes[lang]:
        return (
            f"reads as `{best}` ({votes[best]} common words) rather than `{lang}` ({votes[lang]})"
        )
    return None


def _json_problem(answer: str) -> str | None:
    fenced = _FENCE.fullmatch(answer)
    try:
        json.loads(fenced.group(1) if fenced else answer)
    except json.JSONDecodeError as err:
        return f"{err.msg} at line {err.lineno} column {err.colno}"
    return None


class Cleaner:
    """The configured filters; `check(row)` gives (reason, detail) or None to keep the row."""

    def __init__(self, options: CleanOptions, count_tokens: TokenCounter | None = None) -> None:
        problems = _contradictions(options)
        if problems:
            raise ConfigError(problems)
        if options.uses_tokens and count_tokens is None:
            raise DataError(
                "min_tokens/max_tokens need a tokenizer: pass --config CONFIG or --tokenizer DIR."
            )
        if count_tokens is not None and not options.uses_tokens:
            raise DataError(
                "--config/--tokenizer only serve --min-tokens/--max-tokens, and neither is set."
            )
        self.options = options
        self.count_tokens = count_tokens
        self.slop = slop_pattern(options)

    def _answers(self, row: dict[str, Any], where: str) -> list[str]:
        answers = answer_texts(row, self.options.answer_fields)
        if answers is None:
            raise DataError(
                f"{where}: cannot tell which field holds the answer (row has: "
                f"{', '.join(row)}); name it with --answer-field FIELD (answer_fields: in a "
                "filters file)."
            )
        return answers

    def check(self, row: dict[str, Any], where: str) -> tuple[str, str] | None:
        o = self.options
        answers = self._answers(row, where) if o.uses_answers else []
        text = row_text(row)
        if o.empty_answers:
            if not answers:
                return "empty answer", "no answer (no assistant turn)"
            for i, answer in enumerate(answers, start=1):
                if not answer.strip():
                    which = f"answer {i}" if len(answers) > 1 else "the answer"
                    return "empty answer", f"{which} is empty or whitespace"
        if o.charset and (problem := charset_problem(text, o.max_bad_chars)):
            return "charset", problem
        if self.slop is not None:
            for answer in answers:
                if m := self.slop.search(_normalise(answer)):
                    return "slop", f'"{m.group()}"'
        if o.json_answers:
            for answer in answers:
                if problem := _json_problem(answer):
                    return "broken JSON", problem
        measured = "\n".join(answers) if o.length_of == "answer" else text
        if problem := self._length_problem(measured):
            return problem
        if o.lang and (problem := language_problem(text, o.lang, o.min_lang_share)):
            return "language", problem
        return None

    def _length_problem(self, text: str) -> tuple[str, str] | None:
        o = self.options
        chars = len(text)
        if o.min_chars is not None and chars < o.min_chars:
            return "too short", f"{chars} characters < {o.min_chars}"
        if o.max_chars is not None and chars > o.max_chars:
            return "too long", f"{chars} characters > {o.max_chars}"
        if self.count_tokens is not None:
            tokens = self.count_tokens(text)
            if o.min_tokens is not None and tokens < o.min_tokens:
                return "too short", f"{tokens} tokens < {o.min_tokens}"
            if o.max_tokens is not None and tokens > o.max_tokens:
                return "too long", f"{tokens} tokens > {o.max_tokens}"
        return None


def token_counter(config: Path | None, tokenizer_dir: Path | None) -> TokenCounter | None:
    """Count tokens with the config's tokenizer or a local tokenizer folder (never downloads)."""
    if config is not None and tokenizer_dir is not None:
        raise DataError("give --config or --tokenizer, not both.")
    if config is not None:
        from honer.config import load_config
        from honer.model.load import load_tokenizer

        tok = load_tokenizer(load_config(config))
    elif tokenizer_dir is not None:
        if not tokenizer_dir.is_dir():
            raise DataError(
                f"--tokenizer {tokenizer_dir}: not a folder; give a local tokenizer folder "
                "(honer data never downloads)."
            )
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        except (OSError, ValueError) as err:
            raise DataError(
                f"--tokenizer {tokenizer_dir}: cannot load a tokenizer ({err})."
            ) from None
    else:
        return None

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return count


def clean(
    source: Path,
    out: Path,
    rejects: Path,
    options: CleanOptions,
    count_tokens: TokenCounter | None = None,
    meter: Meter | None = None,
) -> Tally:
    """Stream `source`, writing kept rows to `out` and rejected ones (with reasons) to `rejects`."""
    if out.resolve() == rejects.resolve():
        raise DataError(f"--rejects {rejects}: must differ from --out.")
    cleaner = Cleaner(options, count_tokens)
    tally = Tally()
    with ExitStack() as stack:
        kept = stack.enter_context(JsonlWriter(out))
        bad = stack.enter_context(JsonlWriter(rejects))
        for record in iter_row_file(source, meter=meter):
            if record.row is None:
                tally.reject(record.reason, record.where, record.problem or "")
                bad.write(
                    {"source": record.where, "reason": record.reason, "detail": record.problem}
                )
                continue
            verdict = cleaner.check(record.row, record.where)
            if verdict is None:
                kept.write(record.row)
                tally.keep()
                continue
            reason, detail = verdict
            tally.reject(reason, record.where, detail)
            bad.write(
                {"source": record.where, "reason": reason, "detail": detail, "row": record.row}
            )
    return tally
