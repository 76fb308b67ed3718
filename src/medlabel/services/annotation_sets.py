"""Annotation sets and their immutable revisions.

An **annotation set** is one author's annotations on one item (for one task, once tasks
exist). Its content lives only in **revisions**: every save inserts revision ``n + 1`` with
the whole shape document and the manifests of its masks; nothing is ever updated in place
(a database trigger refuses UPDATE on revisions).

Optimistic concurrency: a save names the revision it builds on (``If-Match: "v<n>"``; 0
for an empty set). If the set has moved on, the save is refused with 409 and the current
revision, and nothing is lost: the earlier save is in the history and the client still
holds its own. ``(set_id, number)`` is unique, so two writers that race past the check
cannot both win. A save identical to the head revision creates nothing (autosave-friendly).

Visibility (blinding): annotators see their own sets and model (pre-annotation) sets;
reviewers, experts, admins and viewers see every set of the items they may see. A person's
set is written by its owner and corrected by reviewers, experts and admins (every revision
records its author, so corrections stay attributable); project admins write model sets.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain import shapes
from medlabel.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from medlabel.domain.geometry import Geometry
from medlabel.domain.labels import LabelSchema, schema_from_dict
from medlabel.domain.names import clean_text
from medlabel.domain.roles import Permission, Role, allows
from medlabel.services import audit
from medlabel.services.access import decide
from medlabel.services.actor import Actor, Clock
from medlabel.services.items import ItemAccess, item_for, visible_item
from medlabel.storage.db import Database
from medlabel.storage.models import (
    AnnotationRevision,
    AnnotationSet,
    Item,
    LabelSchemaVersion,
    Project,
    ProjectMember,
    User,
)

MAX_COMMENT_CHARS = 2000
MAX_DURATION_S = 86_400.0
_MODEL_PART_CHARS = 64


@dataclass(frozen=True)
class SetAccess:
    annotation_set: AnnotationSet
    item_access: ItemAccess

    @property
    def role(self) -> Role:
        return self.item_access.access.role

    @property
    def project_id(self) -> int:
        return self.annotation_set.project_id


class SetNotFound(NotFound):
    def __init__(self, set_id: int) -> None:
        super().__init__(
            f"There is no annotation set {set_id} that you can see.",
            extra={"audit_denied": {"object_type": "annotation_set", "object_id": str(set_id)}},
        )


def sees_all_sets(role: Role) -> bool:
    """Annotators are blind to each other; every other role sees all sets of an item."""
    return role is not Role.ANNOTATOR


def _visible(actor: Actor, role: Role, row: AnnotationSet) -> bool:
    return sees_all_sets(role) or row.owner_model is not None or row.owner_user_id == actor.user_id


def _may_write(actor: Actor, access: SetAccess) -> bool:
    """The owner annotates their set; reviewers, experts and admins may correct anyone's
    (each revision records its author); model sets are changed by project admins."""
    row = access.annotation_set
    if row.owner_model is not None:
        return allows(access.role, Permission.PROJECT_MANAGE)
    if allows(access.role, Permission.REVIEW):
        return True
    return row.owner_user_id == actor.user_id and allows(access.role, Permission.ANNOTATE)


def set_for(session: Session, actor: Actor, set_id: int, *, write: bool = False) -> SetAccess:
    """The set, if the actor may see it (404 otherwise) and, with ``write``, change it."""
    # One query: the set, its item, the project and the actor's membership.
    found = session.execute(
        select(AnnotationSet, Item, Project, ProjectMember.role)
        .join(Item, Item.id == AnnotationSet.item_id)
        .join(Project, Project.id == Item.project_id)
        .outerjoin(
            ProjectMember,
            (ProjectMember.project_id == Project.id)
            & (ProjectMember.user_id == (actor.user_id or 0)),
        )
        .where(AnnotationSet.id == set_id)
    ).first()
    if found is None:
        raise SetNotFound(set_id)
    row, item, project, member = found
    try:
        role = Role(member) if member else None
        target = visible_item(item, decide(project, role, actor, Permission.ITEMS_READ))
    except NotFound as exc:
        raise SetNotFound(set_id) from exc
    if not _visible(actor, target.access.role, row):
        raise SetNotFound(set_id)
    access = SetAccess(annotation_set=row, item_access=target)
    if write and not _may_write(actor, access):
        raise Forbidden(
            f"Annotation set {set_id} belongs to someone else; save your annotations in your "
            "own set (POST /api/items/{item_id}/annotation-sets creates it)."
            if row.owner_model is None
            else f"Only project admins may change the model annotation set {set_id}."
        )
    return access


# ---- views -----------------------------------------------------------------------------


def owner_label(row: AnnotationSet, usernames: Mapping[int, str]) -> dict[str, Any]:
    if row.owner_model is not None:
        name, _, version = row.owner_model.partition("@")
        return {"type": "model", "name": name, "version": version}
    return {
        "type": "user",
        "user_id": row.owner_user_id,
        "username": usernames.get(row.owner_user_id or 0),
    }


def usernames(session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {int(i): str(u) for i, u in rows}


def set_view(row: AnnotationSet, head: int, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "item_id": row.item_id,
        "owner": owner_label(row, names),
        "task_id": row.task_id,
        "revision": head,
        "created_at": _iso(row.created_at),
    }


def revision_meta(rev: AnnotationRevision, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "revision": rev.number,
        "parent": rev.parent_number,
        "restored_from": rev.restored_from,
        "operation": rev.operation,
        "author": {
            "user_id": rev.author_user_id,
            "username": names.get(rev.author_user_id or 0),
        },
        "created_at": _iso(rev.created_at),
        "duration_s": rev.duration_s,
        "comment": rev.comment,
        "schema_version": rev.schema_version,
        "summary": rev.summary,
        "content_sha256": rev.content_sha256,
    }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat(timespec="seconds") + "Z" if ts else None


# ---- reading ---------------------------------------------------------------------------


def head_revision(session: Session, set_id: int) -> AnnotationRevision | None:
    return session.scalar(
        select(AnnotationRevision)
        .where(AnnotationRevision.set_id == set_id)
        .order_by(AnnotationRevision.number.desc())
        .limit(1)
    )


def get_revision(session: Session, set_id: int, number: int) -> AnnotationRevision:
    rev = session.scalar(
        select(AnnotationRevision).where(
            AnnotationRevision.set_id == set_id, AnnotationRevision.number == number
        )
    )
    if rev is None:
        raise NotFound(f"Annotation set {set_id} has no revision {number}.")
    return rev


def history(session: Session, actor: Actor, set_id: int) -> list[dict[str, Any]]:
    set_for(session, actor, set_id)
    revs = list(
        session.scalars(
            select(AnnotationRevision)
            .where(AnnotationRevision.set_id == set_id)
            .order_by(AnnotationRevision.number)
        )
    )
    names = usernames(session, [r.author_user_id for r in revs])
    return [revision_meta(r, names) for r in revs]


def content(
    session: Session, actor: Actor, set_id: int, number: int | None = None
) -> tuple[SetAccess, dict[str, Any]]:
    """The set with the shapes and masks of revision ``number`` (default: the head)."""
    access = set_for(session, actor, set_id)
    head = head_revision(session, set_id)
    head_number = head.number if head else 0
    rev = head if number is None or (head and number == head.number) else None
    if rev is None and number not in (None, 0):
        rev = get_revision(session, set_id, int(number or 0))
    names = usernames(
        session, [access.annotation_set.owner_user_id, rev.author_user_id if rev else None]
    )
    return access, {
        "set": set_view(access.annotation_set, head_number, names),
        **revision_body(access, rev, names),
    }


def revision_body(
    access: SetAccess, rev: AnnotationRevision | None, names: Mapping[int, str]
) -> dict[str, Any]:
    item = access.item_access.item
    if rev is None:
        return {"revision": 0, "annotations": [], "masks": [], "measurements": {}}
    return {
        **revision_meta(rev, names),
        "annotations": rev.shapes,
        "masks": [public_mask(m) for m in rev.masks],
        "measurements": measurements(item.geometry, item.flags, rev.shapes),
    }


def public_mask(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A mask's description without storage internals."""
    return {k: v for k, v in entry.items() if k != "manifest"}


def measurements(
    geometry: Mapping[str, Any], flags: Sequence[str], stored: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Lengths, areas, volumes and positions of the shapes, keyed by annotation id."""
    geo = Geometry.from_dict(dict(geometry))
    physical = "no_spacing" not in flags
    out: dict[str, Any] = {}
    for ann in shapes.load_stored(stored):
        out[ann.id] = shapes.measure(ann, geo, physical=physical)
    return out


def item_bulk(session: Session, actor: Actor, item_id: int) -> dict[str, Any]:
    """Every set of the item the actor may see, each with its head revision (one request
    for the viewer)."""
    target = item_for(session, actor, item_id)
    rows = list(
        session.scalars(
            select(AnnotationSet).where(AnnotationSet.item_id == item_id).order_by(AnnotationSet.id)
        )
    )
    rows = [r for r in rows if _visible(actor, target.access.role, r)]
    heads = _heads(session, [r.id for r in rows])
    names = usernames(
        session,
        [r.owner_user_id for r in rows] + [h.author_user_id for h in heads.values()],
    )
    sets = []
    for row in rows:
        head = heads.get(row.id)
        access = SetAccess(annotation_set=row, item_access=target)
        sets.append(
            {
                "set": set_view(row, head.number if head else 0, names),
                **revision_body(access, head, names),
            }
        )
    return {"item_id": item_id, "sets": sets}


def _heads(session: Session, set_ids: Sequence[int]) -> dict[int, AnnotationRevision]:
    if not set_ids:
        return {}
    from sqlalchemy import func

    latest = (
        select(AnnotationRevision.set_id, func.max(AnnotationRevision.number).label("n"))
        .where(AnnotationRevision.set_id.in_(set_ids))
        .group_by(AnnotationRevision.set_id)
        .subquery()
    )
    revs = session.scalars(
        select(AnnotationRevision).join(
            latest,
            (AnnotationRevision.set_id == latest.c.set_id)
            & (AnnotationRevision.number == latest.c.n),
        )
    )
    return {r.set_id: r for r in revs}


# ---- creating sets ---------------------------------------------------------------------


def _model_key(model: Mapping[str, Any]) -> str:
    name = clean_text(str(model.get("name", "")), field="model.name", max_len=_MODEL_PART_CHARS)
    version = clean_text(
        str(model.get("version", "")), field="model.version", max_len=_MODEL_PART_CHARS
    )
    if not name or not version or "@" in name:
        raise InvalidInput(
            "A model needs a name (without '@') and a version, e.g. "
            '{"name": "totalsegmentator", "version": "2.4.0"}.'
        )
    return f"{name}@{version}"


def open_set(
    session: Session,
    actor: Actor,
    clock: Clock,
    item_id: int,
    *,
    model: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The caller's set on the item (or a model's set), created if missing.

    Returns the set view and whether it was created now."""
    if model is not None:
        target = item_for(session, actor, item_id, Permission.PROJECT_MANAGE)
        owner_model: str | None = _model_key(model)
        owner_user = None
        scope = f"model:{owner_model}|task:-"
    else:
        target = item_for(session, actor, item_id, Permission.ANNOTATE)
        if actor.user_id is None:
            raise InvalidInput("Annotation sets belong to a person or a model.")
        owner_model, owner_user = None, actor.user_id
        scope = f"user:{actor.user_id}|task:-"
    item = target.item
    if item.status != "ready":
        raise Conflict(
            f"Item {item_id} is {item.status}; only ready items can be annotated"
            + (" (release it first)." if item.status == "quarantined" else ".")
        )
    existing = session.scalar(
        select(AnnotationSet).where(
            AnnotationSet.item_id == item_id, AnnotationSet.scope_key == scope
        )
    )
    created = False
    if existing is None:
        row = AnnotationSet(
            project_id=item.project_id,
            item_id=item_id,
            owner_user_id=owner_user,
            owner_model=owner_model,
            task_id=None,
            scope_key=scope,
            created_at=clock(),
            created_by=actor.user_id,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            created = True
            audit.record(
                session,
                audit.entry(
                    actor,
                    "annotation_set.create",
                    role=target.access.audit_role,
                    object_type="annotation_set",
                    object_id=row.id,
                    project_id=item.project_id,
                    detail={"item_id": item_id, "owner": "model" if owner_model else "user"},
                ),
                clock,
            )
        except IntegrityError:  # created concurrently by another request: use that one
            row = session.scalars(
                select(AnnotationSet).where(
                    AnnotationSet.item_id == item_id, AnnotationSet.scope_key == scope
                )
            ).one()
        existing = row
    head = head_revision(session, existing.id)
    names = usernames(session, [existing.owner_user_id])
    return set_view(existing, head.number if head else 0, names), created


# ---- saving ----------------------------------------------------------------------------


# Parsed schema versions (immutable), per database engine, keyed by project, version and
# creation time (so a reused id of a deleted project can never return a stale schema).
_SCHEMAS: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[int, int, Any], LabelSchema]] = (
    weakref.WeakKeyDictionary()
)
_SCHEMAS_LOCK = threading.Lock()
_SCHEMA_CACHE_SIZE = 256


def schema_for(session: Session, project_id: int, version: int | None) -> tuple[int, LabelSchema]:
    """The project's label schema ``version`` (default: the one in force now). Schema
    versions are immutable, so parsed ones are cached."""
    query = select(LabelSchemaVersion.version, LabelSchemaVersion.created_at).where(
        LabelSchemaVersion.project_id == project_id
    )
    if version is None:
        query = query.order_by(LabelSchemaVersion.version.desc()).limit(1)
    else:
        query = query.where(LabelSchemaVersion.version == version)
    found = session.execute(query).first()
    if found is None:
        if version is None:
            raise InvalidInput(
                "This project has no label schema yet; an admin must define the classes "
                "(PUT /api/projects/{slug}/schema) before anything can be annotated."
            )
        raise InvalidInput(f"The project has no label schema version {version}.")
    number = int(found[0])
    key = (project_id, number, found[1])
    engine = session.get_bind()
    with _SCHEMAS_LOCK:
        cache = _SCHEMAS.setdefault(engine, OrderedDict())
        cached = cache.get(key)
    if cached is None:
        body = session.scalar(
            select(LabelSchemaVersion.body).where(
                LabelSchemaVersion.project_id == project_id,
                LabelSchemaVersion.version == number,
            )
        )
        cached = schema_from_dict(body or {})
        with _SCHEMAS_LOCK:
            cache[key] = cached
            while len(cache) > _SCHEMA_CACHE_SIZE:
                cache.popitem(last=False)
    return number, cached


def content_hash(shapes_doc: Sequence[Mapping[str, Any]], masks: Sequence[Any]) -> str:
    canonical = json.dumps(
        {"annotations": list(shapes_doc), "masks": list(masks)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def diff_shapes(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> dict[str, list[str]]:
    before = {str(a["id"]): a for a in old}
    after = {str(a["id"]): a for a in new}
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in after.keys() & before.keys() if after[k] != before[k]),
    }


def check_base(set_id: int, head: AnnotationRevision | None, base: int) -> None:
    current = head.number if head else 0
    if base != current:
        raise StaleRevision(set_id, base, current)


class StaleRevision(Conflict):
    def __init__(self, set_id: int, base: int, current: int) -> None:
        super().__init__(
            f"Annotation set {set_id} is at revision {current}, but your save was based on "
            f"revision {base}. Nothing was overwritten: load revision {current} (GET "
            f"/api/annotation-sets/{set_id}), merge your change and save again with "
            f'If-Match: "v{current}".',
            extra={"current_revision": current},
        )
        self.current = current


@dataclass(frozen=True)
class NewRevision:
    operation: str
    shapes: list[dict[str, Any]]
    masks: list[dict[str, Any]]
    schema_version: int
    summary: dict[str, Any]
    duration_s: float | None = None
    comment: str = ""
    restored_from: int | None = None


def clean_meta(duration_s: float | None, comment: str | None) -> tuple[float | None, str]:
    if duration_s is not None and not 0 <= duration_s <= MAX_DURATION_S:
        raise InvalidInput(f"duration_s must be between 0 and {MAX_DURATION_S:.0f} seconds.")
    text = (
        clean_text(comment, field="comment", max_len=MAX_COMMENT_CHARS, multiline=True)
        if comment
        else ""
    )
    return duration_s, text


def commit_revision(
    session: Session,
    actor: Actor,
    clock: Clock,
    access: SetAccess,
    head: AnnotationRevision | None,
    new: NewRevision,
) -> tuple[AnnotationRevision, bool]:
    """Insert revision head+1 (or return the head unchanged if the content is identical)
    and its audit record, in the caller's transaction. Returns (revision, created)."""
    row = access.annotation_set
    digest = content_hash(new.shapes, new.masks)
    if head is not None and head.content_sha256 == digest and new.operation != "restore":
        return head, False
    number = (head.number if head else 0) + 1
    rev = AnnotationRevision(
        set_id=row.id,
        number=number,
        parent_number=head.number if head else 0,
        restored_from=new.restored_from,
        operation=new.operation,
        author_user_id=actor.user_id,
        schema_version=new.schema_version,
        created_at=clock(),
        duration_s=new.duration_s,
        comment=new.comment,
        summary=new.summary,
        shapes=new.shapes,
        masks=new.masks,
        content_sha256=digest,
    )
    try:
        with session.begin_nested():
            session.add(rev)
            session.flush()
    except IntegrityError as exc:  # another save took number n+1 between check and insert
        raise StaleRevision(row.id, number - 1, number) from exc
    audit.record(
        session,
        audit.entry(
            actor,
            f"annotation.{new.operation}",
            role=access.item_access.access.audit_role,
            object_type="annotation_set",
            object_id=row.id,
            project_id=row.project_id,
            before_hash=head.content_sha256 if head else None,
            after_hash=digest,
            detail={
                "item_id": row.item_id,
                "revision": number,
                **{k: len(v) for k, v in new.summary.items() if isinstance(v, list)},
            },
        ),
        clock,
    )
    return rev, True


@dataclass(frozen=True)
class SavedShapes:
    revision: AnnotationRevision
    created: bool
    measurements: dict[str, Any]


def save_shapes(
    db: Database,
    actor: Actor,
    clock: Clock,
    set_id: int,
    *,
    base: int,
    document: Mapping[str, Any],
    schema_version: int | None = None,
    duration_s: float | None = None,
    comment: str | None = None,
) -> SavedShapes:
    """Replace the set's shapes with ``document["annotations"]`` as a new revision.
    Masks carry over from the head revision unchanged.

    One write transaction: with a single server process the CPU is shared anyway, and a
    separate read transaction for the validation costs more than it saves (measured); the
    writers of a process queue fairly on ``Database.write``'s lock."""
    with db.write() as s:
        access = set_for(s, actor, set_id, write=True)
        head = head_revision(s, set_id)
        check_base(set_id, head, base)
        version, schema = schema_for(s, access.project_id, schema_version)
        item = access.item_access.item
        ctx = shapes.ShapeContext(
            shape=tuple(int(n) for n in item.geometry["shape"]),  # type: ignore[arg-type]
            schema=schema,
            item_kind=item.kind,
        )
        parsed = shapes.parse_document(document, ctx)
        new_shapes = [a.to_dict() for a in parsed]
        duration, text = clean_meta(duration_s, comment)
        summary: dict[str, Any] = diff_shapes(head.shapes if head else [], new_shapes)
        rev, created = commit_revision(
            s,
            actor,
            clock,
            access,
            head,
            NewRevision(
                operation="save",
                shapes=new_shapes,
                masks=list(head.masks) if head else [],
                schema_version=version,
                summary=summary,
                duration_s=duration,
                comment=text,
            ),
        )
    geo = Geometry.from_dict(dict(item.geometry))
    physical = "no_spacing" not in item.flags
    measured = {a.id: shapes.measure(a, geo, physical=physical) for a in parsed}
    return SavedShapes(revision=rev, created=created, measurements=measured)


def restore(
    session: Session,
    actor: Actor,
    clock: Clock,
    set_id: int,
    number: int,
    *,
    base: int,
    comment: str | None = None,
) -> tuple[SetAccess, AnnotationRevision]:
    """Make revision ``number``'s content the newest revision (history stays intact)."""
    access = set_for(session, actor, set_id, write=True)
    head = head_revision(session, set_id)
    check_base(set_id, head, base)
    old = get_revision(session, set_id, number)
    _, text = clean_meta(None, comment)
    summary: dict[str, Any] = diff_shapes(head.shapes if head else [], old.shapes)
    summary["masks"] = _mask_changes(head.masks if head else [], old.masks)
    rev, _ = commit_revision(
        session,
        actor,
        clock,
        access,
        head,
        NewRevision(
            operation="restore",
            shapes=list(old.shapes),
            masks=list(old.masks),
            schema_version=old.schema_version,
            summary=summary,
            comment=text or f"restored revision {number}",
            restored_from=number,
        ),
    )
    return access, rev


def _mask_changes(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> dict[str, list[str]]:
    before = {str(m["id"]): m for m in old}
    after = {str(m["id"]): m for m in new}
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(
            k for k in after.keys() & before.keys() if after[k]["manifest"] != before[k]["manifest"]
        ),
    }


def diff(session: Session, actor: Actor, set_id: int, older: int, newer: int) -> dict[str, Any]:
    """What changed between two revisions: shapes by id (with both versions of changed
    ones) and masks by id."""
    set_for(session, actor, set_id)

    def load(number: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if number == 0:
            return [], []
        rev = get_revision(session, set_id, number)
        return list(rev.shapes), list(rev.masks)

    old_shapes, old_masks = load(older)
    new_shapes, new_masks = load(newer)
    changes = diff_shapes(old_shapes, new_shapes)
    before = {str(a["id"]): a for a in old_shapes}
    after = {str(a["id"]): a for a in new_shapes}
    return {
        "from": older,
        "to": newer,
        "added": [after[k] for k in changes["added"]],
        "removed": [before[k] for k in changes["removed"]],
        "changed": [{"before": before[k], "after": after[k]} for k in changes["changed"]],
        "masks": _mask_changes(old_masks, new_masks),
    }
