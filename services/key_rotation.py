"""Re-encrypting every secret at rest under the newest TWOFA_ENCRYPTION_KEYS key.

Run after putting a new key first in the list; once it finishes, older keys may be dropped.
Each batch is its own transaction, so a long run holds no lock for long and can be re-run
after an interruption (rotating a token already under the newest key is harmless).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from services import crypto
from services.db import unit_of_work
from services.models import Teammate, WebhookEndpoint

BATCH = 500


@dataclass(frozen=True)
class Target:
    """One model and its encrypted columns."""

    model: type[Any]
    columns: tuple[InstrumentedAttribute[Any], ...]


TARGETS = (
    Target(Teammate, (Teammate.totp_secret_enc, Teammate.totp_pending_secret_enc)),
    Target(WebhookEndpoint, (WebhookEndpoint.secret_enc,)),
)


def count() -> int:
    """How many rows hold at least one encrypted value (the progress bar's total)."""
    total = 0
    with unit_of_work() as session:
        for target in TARGETS:
            total += session.scalar(
                select(func.count()).select_from(target.model).where(_has_secret(target))
            ) or 0
    return total


def rotate_all(progress: Callable[[int], None] | None = None) -> int:
    """Re-encrypt every secret under the newest key; returns the number of rows rewritten."""
    done = 0
    for target in TARGETS:
        for ids in _batches(target):
            with unit_of_work() as session:
                rows = session.scalars(
                    select(target.model).where(target.model.id.in_(ids)).with_for_update()
                ).all()
                for row in rows:
                    for column in target.columns:
                        value = getattr(row, column.key)
                        if value is not None:
                            setattr(row, column.key, crypto.rotate(value))
            done += len(ids)
            if progress:
                progress(len(ids))
    return done


def _has_secret(target: Target) -> Any:
    return or_(*(column.is_not(None) for column in target.columns))


def _batches(target: Target) -> Iterator[list[int]]:
    last = 0
    while True:
        with unit_of_work() as session:
            ids = list(session.scalars(
                select(target.model.id)
                .where(_has_secret(target), target.model.id > last)
                .order_by(target.model.id)
                .limit(BATCH)
            ))
        if not ids:
            return
        yield ids
        last = ids[-1]
