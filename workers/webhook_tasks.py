"""Webhook delivery tasks (to be filled in)."""
