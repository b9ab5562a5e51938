"""Write the quickstart's task: English requests → SQL over a small shop database, as chat rows.

    "how many orders have a total above 420?"  →  SELECT COUNT(*) FROM orders WHERE total > 420

Each row is an OpenAI-style `messages` list (system, user, assistant), the format most
fine-tuning data comes in (`type: chat_template`). Requests are phrased many ways (verbs,
comparisons, word order), use five tables, fifteen columns and numbers up to 999, and combine
filters, counts, aggregates, sorting and limits; no held-out request occurs in training, so the
held-out rows test the mapping, not memory. The house style (upper-case keywords, no semicolon, `ORDER BY … DESC LIMIT n`) is what
the base model does not know and the fine-tune learns. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SYSTEM = "Reply with one SQL query for the shop database."
TABLES = {
    "users": ("user", ["age", "score", "visits"]),
    "orders": ("order", ["total", "quantity", "discount"]),
    "products": ("product", ["price", "stock", "rating"]),
    "cities": ("city", ["population", "area", "elevation"]),
    "stores": ("store", ["revenue", "staff", "rent"]),
}
COMPARE = {
    ">": ["above", "over", "greater than", "more than", "higher than"],
    "<": ["below", "under", "less than", "lower than", "smaller than"],
    "=": ["equal to", "exactly", "of exactly"],
}
LIST_VERBS = ["list", "show", "find", "get", "give me", "return"]
COUNT_ASKS = ["count the {t} with", "how many {t} have", "number of {t} with", "count {t} whose"]
TOP_ASKS = ["top {k} {t} by {c}", "the {k} {t} with the highest {c}", "{k} {t} with the most {c}"]
AGG = {
    "MAX": ["the largest {c} among {t}", "the highest {c} of all {t}", "the maximum {c} in {t}"],
    "MIN": ["the smallest {c} among {t}", "the lowest {c} of all {t}", "the minimum {c} in {t}"],
    "AVG": ["the average {c} of {t}", "the mean {c} across {t}"],
}


def _where(rng: random.Random, cols: list[str], two: bool) -> tuple[str, str]:
    """An English filter and its SQL condition (one or two comparisons)."""
    picked = rng.sample(cols, 2 if two else 1)
    words, sql = [], []
    for c in picked:
        op = rng.choice(list(COMPARE))
        n = rng.randint(1, 999)
        words.append(f"{c} {rng.choice(COMPARE[op])} {n}")
        sql.append(f"{c} {op} {n}")
    return " and ".join(words), " AND ".join(sql)


def example(rng: random.Random) -> tuple[str, str]:
    """(request, query) of a random shape: filter, two filters, count, top-k, aggregate."""
    table = rng.choice(list(TABLES))
    _, cols = TABLES[table]
    kind = rng.choice(["list", "list2", "count", "top", "agg", "agg_where"])
    if kind in ("list", "list2"):
        words, cond = _where(rng, cols, kind == "list2")
        ask = f"{rng.choice(LIST_VERBS)} {table} with {words}"
        return ask, f"SELECT * FROM {table} WHERE {cond}"
    if kind == "count":
        words, cond = _where(rng, cols, False)
        ask = rng.choice(COUNT_ASKS).format(t=table) + f" {words}"
        return ask, f"SELECT COUNT(*) FROM {table} WHERE {cond}"
    if kind == "top":
        c, k = rng.choice(cols), rng.randint(2, 20)
        ask = rng.choice(TOP_ASKS).format(k=k, t=table, c=c)
        return ask, f"SELECT * FROM {table} ORDER BY {c} DESC LIMIT {k}"
    fn = rng.choice(list(AGG))
    c = rng.choice(cols)
    ask = rng.choice(AGG[fn]).format(c=c, t=table)
    if kind == "agg":
        return ask, f"SELECT {fn}({c}) FROM {table}"
    other = [x for x in cols if x != c]
    words, cond = _where(rng, other, False)
    return f"{ask} with {words}", f"SELECT {fn}({c}) FROM {table} WHERE {cond}"


def chat(ask: str, query: str, rng: random.Random) -> dict:
    request = rng.choice([ask, ask.capitalize(), ask + "?", ask.capitalize() + "."])
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": request},
            {"role": "assistant", "content": query},
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-heldout", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < args.n_train + args.n_heldout:
        ask, query = example(rng)
        if ask not in seen:  # every request is unique: held-out ones are never trained on
            seen.add(ask)
            rows.append(chat(ask, query, rng))
    heldout, train = rows[: args.n_heldout], rows[args.n_heldout :]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        with (args.out / name).open("w") as f:
            for row in part:
                f.write(json.dumps(row) + "\n")
    print(f"wrote {len(train)} training rows and {len(heldout)} held-out rows to {args.out}")


if __name__ == "__main__":
    main()
