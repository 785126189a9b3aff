"""How many teammates a workspace has, and how many of them have 2FA, kept as they change.

The rollout counts answer every policy PUT, which must not grow with the team: the two
numbers that would need a pass over the whole team are kept here, moved by the very
transactions that change them (a teammate added, seeded, removed; 2FA turned on or off).
Each change is one `UPDATE … SET n = n + :delta`, so concurrent changes add up, never
overwrite each other. `recount` recomputes them from the rows (migrations, repairs).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ScalarSelect, case, func, select, update
from sqlalchemy.orm import Session

from services.db import dialect_insert
from services.models import Teammate, WorkspaceCounts, two_factor_enabled_sql


@dataclass(frozen=True)
class Counts:
    teammates: int  # not removed
    enrolled: int  # of them, with 2FA on
    with_keys: int = 0  # of them, with a security key


def start(session: Session, workspace_id: int) -> None:
    """A new workspace's row, before its first teammate."""
    session.add(WorkspaceCounts(workspace_id=workspace_id, teammates=0, enrolled=0, with_keys=0))
    session.flush()


def adjust(session: Session, workspace_id: int, teammates: int = 0, enrolled: int = 0,
           with_keys: int = 0) -> None:
    session.execute(update(WorkspaceCounts)
                    .where(WorkspaceCounts.workspace_id == workspace_id)
                    .values(teammates=WorkspaceCounts.teammates + teammates,
                            enrolled=WorkspaceCounts.enrolled + enrolled,
                            with_keys=WorkspaceCounts.with_keys + with_keys)
                    .execution_options(synchronize_session=False))


def columns(workspace_id: int, allowed_methods: str = "any") -> tuple[ScalarSelect[int], ScalarSelect[int]]:
    """The kept total and compliant count (with 2FA, or with a key under `security_keys`) as
    scalar subqueries, to read in another query's snapshot."""
    kept = WorkspaceCounts.workspace_id == workspace_id
    compliant = WorkspaceCounts.with_keys if allowed_methods == "security_keys" \
        else WorkspaceCounts.enrolled
    return (select(WorkspaceCounts.teammates).where(kept).scalar_subquery(),
            select(compliant).where(kept).scalar_subquery())


def get(session: Session, workspace_id: int) -> Counts:
    row = session.execute(select(WorkspaceCounts.teammates, WorkspaceCounts.enrolled,
                                 WorkspaceCounts.with_keys)
                          .where(WorkspaceCounts.workspace_id == workspace_id)).one_or_none()
    if row is None:  # made by a process older than migration 0006: count it once, keep it
        counts = exact(session, workspace_id)
        session.execute(dialect_insert(session, WorkspaceCounts)
                        .values(workspace_id=workspace_id, teammates=counts.teammates,
                                enrolled=counts.enrolled, with_keys=counts.with_keys)
                        .on_conflict_do_nothing())
        return counts
    return Counts(int(row[0]), int(row[1]), int(row[2]))


def exact(session: Session, workspace_id: int) -> Counts:
    """The same two numbers from the rows themselves (a pass over the team)."""
    row = session.execute(
        select(func.count(), func.count(case((two_factor_enabled_sql(), 1))),
               func.count(Teammate.webauthn_enabled_at))
        .where(Teammate.workspace_id == workspace_id, Teammate.status != "removed")).one()
    return Counts(int(row[0]), int(row[1]), int(row[2]))


def recount(session: Session, workspace_id: int) -> Counts:
    counts = exact(session, workspace_id)
    session.execute(update(WorkspaceCounts)
                    .where(WorkspaceCounts.workspace_id == workspace_id)
                    .values(teammates=counts.teammates, enrolled=counts.enrolled,
                            with_keys=counts.with_keys))
    return counts
