"""Prometheus metrics: per-process series (requests, verification outcomes, task durations)
and installation-wide series read from the database at scrape time."""
