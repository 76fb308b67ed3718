"""Appending to and verifying the hash-chained audit trail.

:func:`record` must be called inside the same transaction as the change it describes, so
the change and its record commit or roll back together (fail closed). Appends are
serialised: on PostgreSQL with a transaction-scoped advisory lock, on SQLite by the
``BEGIN IMMEDIATE`` write lock every write transaction already holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medlabel.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    ChainReport,
    Outcome,
    seal,
    verify_chain,
)
from medlabel.services.actor import Actor, Clock
from medlabel.storage.models import AuditEvent

_ADVISORY_LOCK_KEY = 0x6D65646C  # "medl"


def entry(
    actor: Actor,
    action: str,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    role: str | None = None,
    object_type: str | None = None,
    object_id: object | None = None,
    project_id: int | None = None,
    before_hash: str | None = None,
    after_hash: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Build an entry for ``actor``; ``role`` defaults to the actor's site-level role."""
    return AuditEntry(
        action=action,
        outcome=outcome,
        actor_user_id=actor.user_id,
        actor_role=role or actor.site_role,
        session_id_hash=actor.session_id_hash,
        client_ip=actor.client_ip,
        user_agent_hash=actor.user_agent_hash,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        project_id=project_id,
        before_hash=before_hash,
        after_hash=after_hash,
        reason=reason,
        detail=dict(detail or {}),
    )


def record(session: Session, audit_entry: AuditEntry, clock: Clock) -> AuditRecord:
    """Append one event to the chain inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.row_hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    rec = seal(seq, clock(), prev_hash, audit_entry)
    e = rec.entry
    session.add(
        AuditEvent(
            seq=rec.seq,
            ts_utc=rec.ts_utc,
            actor_user_id=e.actor_user_id,
            actor_role=e.actor_role,
            session_id_hash=e.session_id_hash,
            client_ip=e.client_ip,
            user_agent_hash=e.user_agent_hash,
            action=e.action,
            outcome=int(e.outcome),
            object_type=e.object_type,
            object_id=e.object_id,
            project_id=e.project_id,
            before_hash=e.before_hash,
            after_hash=e.after_hash,
            reason=e.reason,
            detail=dict(e.detail),
            prev_hash=rec.prev_hash,
            row_hash=rec.row_hash,
        )
    )
    session.flush()
    return rec


def to_record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        ts_utc=row.ts_utc,
        prev_hash=row.prev_hash,
        row_hash=row.row_hash,
        entry=AuditEntry(
            action=row.action,
            outcome=Outcome(row.outcome),
            actor_user_id=row.actor_user_id,
            actor_role=row.actor_role,
            session_id_hash=row.session_id_hash,
            client_ip=row.client_ip,
            user_agent_hash=row.user_agent_hash,
            object_type=row.object_type,
            object_id=row.object_id,
            project_id=row.project_id,
            before_hash=row.before_hash,
            after_hash=row.after_hash,
            reason=row.reason,
            detail=row.detail or {},
        ),
    )


def _iter_records(session: Session, batch: int = 2000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield to_record(row)
        last = rows[-1].seq


def verify(session: Session, anchors: Mapping[int, str] | None = None) -> ChainReport:
    """Recompute the whole chain; names the first broken record."""
    return verify_chain(_iter_records(session), anchors)


def head(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.row_hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def list_events(
    session: Session,
    *,
    project_id: int | None = None,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
) -> list[AuditRecord]:
    query = select(AuditEvent).where(AuditEvent.seq > after_seq)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    rows = session.scalars(query.order_by(AuditEvent.seq).limit(limit)).all()
    return [to_record(r) for r in rows]
