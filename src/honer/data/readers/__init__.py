"""The one reader of row files (JSON Lines, JSON lists, CSV/TSV, Parquet), streaming, with
`file:line` on every row: training datasets (`honer.data.sources`) and the curation tools
(`honer data …`) read through it, so both accept the same files and report problems the same way."""
