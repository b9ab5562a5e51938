"""The policy database: one row per finished training run, in a local SQLite file.

It answers "what learning rate and schedule worked for runs like this one?". The file lives under
the user's cache folder (`$HONER_LR_DB`, else `lr_runs.sqlite` in `honer.paths.cache_dir()`). Writes use SQLite's WAL journal and a busy timeout, so several
training processes can record at once; a corrupt or locked file raises `PolicyDatabaseError`
with the path and the fix, and `train` reports it as a warning instead of failing the run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from honer.errors import HonerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    adapter TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    learning_rate REAL NOT NULL,
    policy TEXT NOT NULL,
    policy_params TEXT NOT NULL,
    steps INTEGER NOT NULL,
    final_train_loss REAL,
    final_eval_loss REAL,
    wall_time_s REAL NOT NULL,
    output_dir TEXT NOT NULL
)
"""


class PolicyDatabaseError(HonerError):
    """The database file cannot be read or written."""


@dataclass(frozen=True)
class RunRecord:
    model: str
    dataset_fingerprint: str
    adapter: str
    batch_size: int
    learning_rate: float
    policy: str
    steps: int
    final_train_loss: float | None
    final_eval_loss: float | None
    wall_time_s: float
    output_dir: str = ""
    policy_params: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


def default_path() -> Path:
    if os.environ.get("HONER_LR_DB"):
        return Path(os.environ["HONER_LR_DB"])
    from honer.paths import cache_dir

    return cache_dir() / "lr_runs.sqlite"


class PolicyDatabase:
    def __init__(self, path: str | Path | None = None, timeout_s: float = 30.0) -> None:
        self.path = Path(path) if path else default_path()
        self.timeout_s = timeout_s

    def _connect(self) -> sqlite3.Connection:
        """Open (and on first use create) the database, waiting out other writers.

        Switching to WAL and creating the table take a write lock that SQLite may refuse at once
        ("database is locked") while another process does the same, without calling the busy
        handler, so opening retries until `timeout_s`.
        """
        deadline = time.monotonic() + self.timeout_s
        while True:
            conn = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=self.timeout_s)
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(SCHEMA)
                return conn
            except sqlite3.OperationalError as err:
                if conn is not None:
                    conn.close()
                if "locked" in str(err) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise self._open_error(err) from None
            except (sqlite3.Error, OSError) as err:
                if conn is not None:
                    conn.close()
                raise self._open_error(err) from None

    def _open_error(self, err: Exception) -> PolicyDatabaseError:
        return PolicyDatabaseError(
            f"{self.path}: cannot open the LR policy database ({err}). If the file is corrupt, "
            "move it away (a new one is created); set HONER_LR_DB to use another file."
        )

    def record(self, run: RunRecord) -> None:
        row = asdict(run)
        row["policy_params"] = json.dumps(row["policy_params"], sort_keys=True, default=str)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn = self._connect()
        try:
            with conn:
                conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(row.values()))
        except sqlite3.Error as err:
            raise PolicyDatabaseError(f"{self.path}: cannot record the run ({err}).") from None
        finally:
            conn.close()

    def runs(self, model: str | None = None) -> list[RunRecord]:
        """Past runs, newest first; `model` filters by a substring of the model name."""
        conn = self._connect()
        try:
            query = "SELECT * FROM runs"
            args: list[Any] = []
            if model:
                query += " WHERE model LIKE ?"
                args.append(f"%{model}%")
            conn.row_factory = sqlite3.Row
            rows = conn.execute(query + " ORDER BY created DESC, id DESC", args).fetchall()
        except sqlite3.Error as err:
            raise PolicyDatabaseError(f"{self.path}: cannot read past runs ({err}).") from None
        finally:
            conn.close()
        out = []
        for r in rows:
            d = dict(r)
            d.pop("id")
            d["policy_params"] = json.loads(d["policy_params"])
            out.append(RunRecord(**d))
        return out

    def best(self, model: str | None = None, adapter: str | None = None) -> RunRecord | None:
        """The comparable run with the lowest final eval loss (train loss when none has eval)."""
        candidates = [r for r in self.runs(model) if adapter is None or r.adapter == adapter]

        def key(r: RunRecord) -> tuple[int, float]:
            if r.final_eval_loss is not None:
                return (0, r.final_eval_loss)
            return (1, r.final_train_loss if r.final_train_loss is not None else float("inf"))

        return min(candidates, key=key, default=None)
