"""Getting rows into honer's JSON Lines, and reading them back, for the `honer data` commands.

Readers stream `Record`s from raw sources (`html`, `text`, `sql_*`) and from the row files
training accepts (`rowfiles`: JSON Lines, JSON, CSV/TSV, Parquet); `output` writes JSON Lines
atomically; `records.Tally` counts what a command kept and rejected; `fields` finds a row's
text and answers by its shape. `run.ingest` ties them together for `honer data ingest`.
"""

from honer.curate.ingest.run import IngestOptions, ingest
from honer.data.readers.records import Record, Tally

__all__ = ["IngestOptions", "Record", "Tally", "ingest"]
