"""Data-curation tools (`honer data ingest|clean|dedup|stats`): raw HTML/CSV/SQL/text → JSONL,
filters, near-duplicate removal and statistics, streaming. Separate from the training data
pipeline (`honer.data`), which they may use (e.g. to count trained tokens under a config)."""
