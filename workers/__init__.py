"""Processes around the domain: Celery app and tasks, the outbox relay, the CLI."""
