"""Write the quickstart's synthetic task: English requests → a small SQL-like query language.

    "count orders with total equal to 42"  →  "SELECT COUNT(*) FROM orders WHERE total = 42"

Held-out rows use (pattern, table, column, number) combinations never seen in training, so a
model has to learn the mapping, not memorise rows. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TABLES = {
    "users": ["age", "score"],
    "orders": ["total", "quantity"],
    "products": ["price", "stock"],
    "cities": ["population", "area"],
}
NUMBERS = 30  # every number is seen in training, in other (pattern, table, column) combinations
PATTERNS = [
    ("list {t} with {c} above {n}", "SELECT * FROM {t} WHERE {c} > {n}"),
    ("list {t} with {c} below {n}", "SELECT * FROM {t} WHERE {c} < {n}"),
    ("count {t} with {c} equal to {n}", "SELECT COUNT(*) FROM {t} WHERE {c} = {n}"),
    ("show the largest {c} in {t}", "SELECT MAX({c}) FROM {t}"),
    ("show the smallest {c} in {t}", "SELECT MIN({c}) FROM {t}"),
]


def all_examples() -> list[dict[str, str]]:
    rows = []
    for p, (ask, query) in enumerate(PATTERNS):
        for t, cols in TABLES.items():
            for c in cols:
                numbers = range(NUMBERS) if "{n}" in ask else [None]
                for n in numbers:
                    rows.append(
                        {
                            "instruction": ask.format(t=t, c=c, n=n),
                            "output": query.format(t=t, c=c, n=n),
                            "pattern": str(p),
                        }
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-heldout", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = all_examples()
    random.Random(args.seed).shuffle(rows)
    # Max/min rows are few (8 each): keep all of them in training.
    heldout = [r for r in rows if "{n}" in PATTERNS[int(r["pattern"])][0]][: args.n_heldout]
    seen = {r["instruction"] for r in heldout}
    train = [r for r in rows if r["instruction"] not in seen][: args.n_train]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        with (args.out / name).open("w") as f:
            for r in part:
                f.write(json.dumps({"instruction": r["instruction"], "output": r["output"]}) + "\n")
    print(f"wrote {len(train)} training rows and {len(heldout)} held-out rows to {args.out}")


if __name__ == "__main__":
    main()
