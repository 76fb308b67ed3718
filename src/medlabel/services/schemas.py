"""Versioned label schemas of a project.

Saving a schema never changes an existing version: it creates version ``n + 1`` and only
if the caller built on version ``n`` (optimistic concurrency), so two admins editing at the
same time cannot silently overwrite each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain.audit import content_hash
from medlabel.domain.errors import Conflict, NotFound
from medlabel.domain.labels import (
    AnnotationKind,
    AttributeSpec,
    AttributeType,
    CodedConcept,
    LabelClass,
    LabelSchema,
    check_evolution,
    clean_class_name,
    next_free_value,
    schema_from_dict,
)
from medlabel.domain.names import clean_text, slugify_key
from medlabel.domain.roles import Permission
from medlabel.services import audit
from medlabel.services.access import project_for
from medlabel.services.actor import Actor, Clock
from medlabel.storage.models import LabelSchemaVersion


@dataclass(frozen=True)
class SchemaVersionView:
    version: int
    schema: LabelSchema
    comment: str
    created_at: datetime | None
    created_by: int | None


EMPTY = SchemaVersionView(
    version=0, schema=LabelSchema(), comment="no schema yet", created_at=None, created_by=None
)


def _view(row: LabelSchemaVersion) -> SchemaVersionView:
    return SchemaVersionView(
        version=row.version,
        schema=schema_from_dict(row.body),
        comment=row.comment,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def current_version_number(session: Session, project_id: int) -> int:
    return (
        session.scalar(
            select(func.max(LabelSchemaVersion.version)).where(
                LabelSchemaVersion.project_id == project_id
            )
        )
        or 0
    )


def current(session: Session, actor: Actor, slug: str) -> SchemaVersionView:
    access = project_for(session, actor, slug)
    row = session.scalar(
        select(LabelSchemaVersion)
        .where(LabelSchemaVersion.project_id == access.project.id)
        .order_by(LabelSchemaVersion.version.desc())
        .limit(1)
    )
    return _view(row) if row else EMPTY


def get_version(session: Session, actor: Actor, slug: str, version: int) -> SchemaVersionView:
    access = project_for(session, actor, slug)
    row = session.scalar(
        select(LabelSchemaVersion).where(
            LabelSchemaVersion.project_id == access.project.id,
            LabelSchemaVersion.version == version,
        )
    )
    if row is None:
        raise NotFound(
            f"Project {slug!r} has no label schema version {version}; list versions "
            f"with GET /api/projects/{slug}/schema/versions."
        )
    return _view(row)


def list_versions(session: Session, actor: Actor, slug: str) -> list[SchemaVersionView]:
    access = project_for(session, actor, slug)
    rows = session.scalars(
        select(LabelSchemaVersion)
        .where(LabelSchemaVersion.project_id == access.project.id)
        .order_by(LabelSchemaVersion.version)
    )
    return [_view(r) for r in rows]


def build_schema(
    classes: Sequence[Mapping[str, Any]], history: Sequence[LabelSchema]
) -> LabelSchema:
    """Turn submitted class definitions into a validated schema.

    Missing keys are derived from the class name; missing label values are taken from the
    history (same key) or freshly allocated, never reusing a value seen before.
    """
    known = {c.key: c.value for s in history for c in s.classes}
    used = set(known.values()) | {int(c["value"]) for c in classes if c.get("value")}
    built = []
    for i, data in enumerate(classes):
        where = f"classes[{i}]"
        name = clean_class_name(str(data["name"]), where)
        key = data.get("key") or slugify_key(name)
        value = data.get("value") or known.get(key)
        if value is None:
            value = next_free_value(used)
            used.add(value)
        built.append(
            LabelClass(
                key=key,
                name=name,
                value=int(value),
                color=str(data["color"]).lower(),
                kinds=tuple(AnnotationKind(k) for k in data["kinds"]),
                hotkey=data.get("hotkey"),
                description=clean_text(
                    data.get("description") or "",
                    field=f"{where}.description",
                    max_len=4000,
                    min_len=0,
                    multiline=True,
                ),
                attributes=tuple(
                    _attribute(a, f"{where}.attributes[{j}]")
                    for j, a in enumerate(data.get("attributes") or [])
                ),
                segmented_property_category=_concept(
                    data.get("segmented_property_category"), f"{where}.segmented_property_category"
                ),
                segmented_property_type=_concept(
                    data.get("segmented_property_type"), f"{where}.segmented_property_type"
                ),
            )
        )
    schema = LabelSchema(classes=tuple(built)).validate()
    check_evolution(schema, history)
    return schema


def _attribute(data: Mapping[str, Any], where: str) -> AttributeSpec:
    attr_type = AttributeType(data["type"])
    name = clean_text(str(data["name"]), field=f"{where}.name", max_len=128)
    return AttributeSpec(
        key=data.get("key") or slugify_key(name),
        name=name,
        type=attr_type,
        required=bool(data.get("required", False)),
        options=tuple(
            clean_text(o, field=f"{where}.options", max_len=128) for o in data.get("options") or ()
        ),
        unit=clean_text(data["unit"], field=f"{where}.unit", max_len=32)
        if data.get("unit")
        else None,
        minimum=data.get("minimum"),
        maximum=data.get("maximum"),
        max_length=int(data.get("max_length") or 1000),
        # String defaults are text too: no NUL (PostgreSQL refuses it in JSONB) or bidi tricks.
        default=clean_text(
            data["default"], field=f"{where}.default", max_len=100_000, min_len=0, multiline=True
        )
        if isinstance(data.get("default"), str)
        else data.get("default"),
    )


def _concept(data: Mapping[str, Any] | None, where: str) -> CodedConcept | None:
    if not data:
        return None
    return CodedConcept(
        value=clean_text(str(data["value"]), field=f"{where}.value", max_len=64),
        scheme=clean_text(str(data["scheme"]), field=f"{where}.scheme", max_len=16),
        meaning=clean_text(str(data["meaning"]), field=f"{where}.meaning", max_len=64),
    )


def save(
    session: Session,
    actor: Actor,
    clock: Clock,
    slug: str,
    *,
    base_version: int,
    classes: Sequence[Mapping[str, Any]],
    comment: str = "",
) -> SchemaVersionView:
    """Create the next schema version, if ``base_version`` is still the current one."""
    access = project_for(session, actor, slug, Permission.SCHEMA_EDIT)
    project_id = access.project.id
    latest = current_version_number(session, project_id)
    if base_version != latest:
        raise Conflict(
            f"The label schema of {slug!r} is at version {latest}, but your edit was based on "
            f"version {base_version}. Reload the schema, re-apply your change and save again.",
            extra={"current_version": latest},
        )
    history = [
        schema_from_dict(b)
        for b in session.scalars(
            select(LabelSchemaVersion.body)
            .where(LabelSchemaVersion.project_id == project_id)
            .order_by(LabelSchemaVersion.version)
        )
    ]
    schema = build_schema(classes, history)
    comment = clean_text(comment, field="comment", max_len=2000, min_len=0, multiline=True)
    body = schema.to_dict()
    now = clock()
    row = LabelSchemaVersion(
        project_id=project_id,
        version=latest + 1,
        body=body,
        comment=comment,
        created_by=actor.user_id,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent save took this version number
        raise Conflict(
            f"The label schema of {slug!r} changed while you saved; reload and try again."
        ) from exc
    changes = (
        schema.changes_from(history[-1])
        if history
        else {"added": [c.key for c in schema.classes], "removed": [], "changed": []}
    )
    audit.record(
        session,
        audit.entry(
            actor,
            "schema.version.create",
            role=access.audit_role,
            object_type="label_schema",
            object_id=f"{project_id}:v{row.version}",
            project_id=project_id,
            after_hash=content_hash(body),
            detail={"version": row.version, **changes},
        ),
        clock,
    )
    return _view(row)


def latest_versions(session: Session, project_ids: Sequence[int]) -> dict[int, int]:
    """The current schema version of each project (absent: no schema yet)."""
    rows = session.execute(
        select(LabelSchemaVersion.project_id, func.max(LabelSchemaVersion.version))
        .where(LabelSchemaVersion.project_id.in_(project_ids))
        .group_by(LabelSchemaVersion.project_id)
    ).all()
    return {pid: int(v) for pid, v in rows}
