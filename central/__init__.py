"""The central service: ingest, records, review workflow, auth, statistics, UI."""
