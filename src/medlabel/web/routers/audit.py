"""Reading and verifying the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from medlabel.domain.audit import AuditRecord
from medlabel.domain.roles import Permission
from medlabel.services import audit
from medlabel.services.access import project_for
from medlabel.services.users import require_site_admin
from medlabel.web.api_models import ResponseModel, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["audit"])


class AuditEventOut(ResponseModel):
    seq: int
    ts_utc: str | None
    action: str
    outcome: int
    actor_user_id: int | None
    actor_role: str | None
    object_type: str | None
    object_id: str | None
    project_id: int | None
    reason: str | None
    detail: dict[str, Any]
    row_hash: str


class ChainReportOut(ResponseModel):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None
    problem: str | None


def _out(rec: AuditRecord) -> AuditEventOut:
    e = rec.entry
    return AuditEventOut(
        seq=rec.seq,
        ts_utc=iso(rec.ts_utc),
        action=e.action,
        outcome=int(e.outcome),
        actor_user_id=e.actor_user_id,
        actor_role=e.actor_role,
        object_type=e.object_type,
        object_id=e.object_id,
        project_id=e.project_id,
        reason=e.reason,
        detail=dict(e.detail),
        row_hash=rec.row_hash,
    )


Limit = Annotated[int, Query(ge=1, le=1000)]
AfterSeq = Annotated[int, Query(ge=0, le=2**63 - 1)]  # larger overflows BIGINT
Action = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z._]+$")]


@router.get("/api/audit", response_model=list[AuditEventOut])
def list_events(
    actor: CurrentActor,
    ctx: Ctx,
    after_seq: AfterSeq = 0,
    limit: Limit = 100,
    action: Action = None,
) -> list[AuditEventOut]:
    """All audit events, oldest first, paged by seq (site admins)."""
    require_site_admin(actor)
    with ctx.db.read() as s:
        return [
            _out(r) for r in audit.list_events(s, after_seq=after_seq, limit=limit, action=action)
        ]


@router.post("/api/audit/verify", response_model=ChainReportOut)
def verify(actor: CurrentActor, ctx: Ctx) -> ChainReportOut:
    """Recompute the hash chain and name the first broken record (site admins; audited)."""
    require_site_admin(actor)
    with ctx.db.read() as s:
        report = audit.verify(s)
    with ctx.db.write() as s:
        audit.record(
            s,
            audit.entry(actor, "audit.verify", detail={"ok": report.ok, "checked": report.checked}),
            ctx.clock,
        )
    return ChainReportOut(**report.__dict__)


@router.get("/api/projects/{slug}/audit", response_model=list[AuditEventOut])
def project_events(
    slug: str,
    actor: CurrentActor,
    ctx: Ctx,
    after_seq: AfterSeq = 0,
    limit: Limit = 100,
    action: Action = None,
) -> list[AuditEventOut]:
    """Audit events of one project (project admins)."""
    with ctx.db.read() as s:
        access = project_for(s, actor, slug, Permission.AUDIT_READ)
        return [
            _out(r)
            for r in audit.list_events(
                s, project_id=access.project.id, after_seq=after_seq, limit=limit, action=action
            )
        ]
