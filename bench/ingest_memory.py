"""Peak memory of `honer data ingest` and `honer data clean` on a generated large input.

Generates a ~500 MB source file per kind in a temporary folder (CSV with a broken quote every
10,000 rows, a mysqldump-style SQL dump of multi-row INSERTs with escapes, one big HTML page,
one big text file), runs `honer data ingest` on it and `honer data clean` on the result, each in
its own subprocess, and measures each one's peak RSS with `os.wait4` (the child's own
`ru_maxrss`); `resource.getrusage(RUSAGE_CHILDREN)` after both gives the overall peak. HTML and
text are ingested with `--unit paragraph` (one 500 MB document would be one 500 MB row).

Prints one JSON line:
    {"bench": "ingest_memory", "limit_mb": 500, "results": [{"kind": ..., "input_mb": ...,
     "ingest_peak_rss_mb": ..., "ingest_s": ..., "clean_peak_rss_mb": ..., "clean_s": ...,
     "rows_kept": ..., "under_limit": true}, ...], "children_peak_rss_mb": ...}

Usage: .venv/bin/python bench/ingest_memory.py [--mb 500] [--kinds csv,sql,html,text]
(`--mb 5` is a quick smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LIMIT_MB = 500
WORDS = (
    "the a of to and in is it that for on with as was be by this are from or at an not have "
    "data model train token learn rate loss batch layer weight bias value query answer question "
    "write explain list name city river colour number water light sound music story book time"
).split()
RUNNER = (
    "import sys\n"
    "from honer.cli.data import data_app\n"
    "data_app(sys.argv[1:], prog_name='honer data')\n"
)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_until(
    path: Path, target: int, chunk: Callable[[int], str], head: str = "", tail: str = ""
) -> None:
    """Write `head`, then chunks until the file reaches `target` bytes, then `tail`."""
    with path.open("w", encoding="utf-8") as f:
        f.write(head)
        size, i = len(head), 0
        while size < target:
            text = chunk(i)
            f.write(text)
            size += len(text.encode())
            i += 1
        f.write(tail)


def gen_csv(path: Path, target: int, rng: random.Random) -> None:
    def chunk(i: int) -> str:
        lines = []
        for j in range(1000):
            n = i * 1000 + j
            if n % 10_000 == 9_999:
                lines.append(f'"broken quote {n},x,y\n')
            elif n % 1000 == 500:
                lines.append(f'"Tell me {n}","As an AI language model, I cannot.",{n}\n')
            else:
                answer = sentence(rng, 60).replace('"', '""')
                lines.append(
                    f'"{sentence(rng, 12)}","{answer}\nSecond line, with ""quotes"".",{n}\n'
                )
        return "".join(lines)

    write_until(path, target, chunk, head="instruction,output,id\n")


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def gen_sql(path: Path, target: int, rng: random.Random) -> None:
    head = (
        "-- MySQL dump 10.13\n"
        "CREATE TABLE `qa` (`id` int NOT NULL, `instruction` text, `output` text, "
        "PRIMARY KEY (`id`));\n"
    )

    def chunk(i: int) -> str:
        rows = []
        for j in range(2000):
            n = i * 2000 + j
            answer = sentence(rng, 60) + ' It\'s "quoted" and C:\\path.\nNew line.'
            rows.append(f"({n},{_sql_string(sentence(rng, 12))},{_sql_string(answer)})")
        return "INSERT INTO `qa` VALUES " + ",".join(rows) + ";\n"

    write_until(path, target, chunk, head=head)


def gen_html(path: Path, target: int, rng: random.Random) -> None:
    def chunk(i: int) -> str:
        parts = []
        for _ in range(200):
            parts.append(f"<p>{sentence(rng, 60)} <b>{sentence(rng, 5)}</b>")
            if rng.random() < 0.05:
                parts.append("<script>var x = '<p>not text</p>';</script>")
        return "\n".join(parts) + "\n"

    write_until(
        path,
        target,
        chunk,
        head="<html><head><title>Bench</title></head><body>\n",
        tail="</body></html>\n",
    )


def gen_text(path: Path, target: int, rng: random.Random) -> None:
    def chunk(i: int) -> str:
        return "".join(f"{sentence(rng, 30)}\n{sentence(rng, 30)}\n\n" for _ in range(200))

    write_until(path, target, chunk)


GENERATORS = {"csv": gen_csv, "sql": gen_sql, "html": gen_html, "text": gen_text}
SUFFIX = {"csv": ".csv", "sql": ".sql", "html": ".html", "text": ".txt"}


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, output) of `honer data ARGS` in a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"honer data {' '.join(args)} failed:\n{output}")
    return usage.ru_maxrss / 1024, seconds, output  # ru_maxrss is in KiB on Linux


def bench(kind: str, mb: float, folder: Path) -> dict:
    rng = random.Random(0)
    source = folder / f"input{SUFFIX[kind]}"
    GENERATORS[kind](source, int(mb * 2**20), rng)
    ingested = folder / f"{kind}.jsonl"
    cleaned = folder / f"{kind}.clean.jsonl"
    ingest_args = ["ingest", str(source), "--out", str(ingested)]
    if kind in ("html", "text"):
        ingest_args += ["--unit", "paragraph"]
    ingest_mb, ingest_s, _ = run_measured(ingest_args)
    clean_mb, clean_s, _ = run_measured(["clean", str(ingested), "--out", str(cleaned)])
    with cleaned.open("rb") as f:
        kept = sum(1 for _ in f)
    result = {
        "kind": kind,
        "input_mb": round(source.stat().st_size / 2**20, 1),
        "ingest_peak_rss_mb": round(ingest_mb, 1),
        "ingest_s": round(ingest_s, 1),
        "clean_peak_rss_mb": round(clean_mb, 1),
        "clean_s": round(clean_s, 1),
        "rows_kept": kept,
        "under_limit": max(ingest_mb, clean_mb) < LIMIT_MB,
    }
    for f in folder.iterdir():
        f.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=500, help="Size of each generated input.")
    parser.add_argument("--kinds", default="csv,sql,html,text", help="Comma-separated kinds.")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; choose from {list(GENERATORS)}")
    with tempfile.TemporaryDirectory(prefix="honer-bench-") as tmp:
        results = [bench(kind, args.mb, Path(tmp)) for kind in kinds]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "bench": "ingest_memory",
                "limit_mb": LIMIT_MB,
                "results": results,
                "children_peak_rss_mb": round(children, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
