"""In-process helpers for tests that drive a rollout on their own stack: a workspace with a
seeded team and an enrolled admin, the flip, and the rollout's counts."""

from __future__ import annotations

from tests.twofactor import enroll_in_session


def workspace_with_team(size: int, slug: str, name: str) -> tuple[int, int, list[str]]:
    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        ws, admin = workspaces.create(session, slug, name, f"admin@{slug}.test",
                                      "admin-password-123")
        workspaces.seed(session, ws, size, "member-password")
        session.flush()
        enroll_in_session(session, admin.id)  # an admin has 2FA before requiring it
    return ws.id, admin.id, [f"member-{i:05d}@{slug}.test" for i in range(1, size + 1)]


def require_2fa(workspace_id: int, actor_id: int) -> None:
    from services.db import unit_of_work
    from services.models import Workspace
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        policy.set_policy(session, ws, True, actor_id)


def rollout(workspace_id: int) -> dict[str, int]:
    from services.db import unit_of_work
    from services.models import Workspace
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        return dict(policy.rollout(session, ws).__dict__)
