"""Items: listing, reading, and releasing quarantined ones.

Quarantined items (possible burned-in text) are invisible to everyone whose role cannot
release them: they are a 404 like any object one may not see. Releasing is audited with a
reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from medlabel.domain.errors import Conflict, NotFound
from medlabel.domain.names import clean_text
from medlabel.domain.roles import Permission, allows
from medlabel.services import audit
from medlabel.services.access import ProjectAccess, project_for
from medlabel.services.actor import Actor, Clock
from medlabel.storage.models import Instance, Item, Project, Study

ItemStatus = Literal["ready", "quarantined", "superseded", "all"]


@dataclass(frozen=True)
class ItemAccess:
    item: Item
    access: ProjectAccess

    @property
    def can_release(self) -> bool:
        return allows(self.access.role, Permission.QUARANTINE_RELEASE)


class ItemNotFound(NotFound):
    def __init__(self, item_id: int) -> None:
        super().__init__(
            f"There is no item {item_id} that you can see.",
            extra={"audit_denied": {"object_type": "item", "object_id": str(item_id)}},
        )


def item_for(
    session: Session, actor: Actor, item_id: int, permission: Permission = Permission.ITEMS_READ
) -> ItemAccess:
    """Load an item the actor may see; 404 for other projects' and hidden items."""
    row = session.execute(
        select(Item, Project.slug)
        .join(Project, Project.id == Item.project_id)
        .where(Item.id == item_id)
    ).first()
    if row is None:
        raise ItemNotFound(item_id)
    item, slug = row
    try:
        access = project_for(session, actor, slug, permission)
    except NotFound as exc:
        raise ItemNotFound(item_id) from exc
    return visible_item(item, access)


def visible_item(item: Item, access: ProjectAccess) -> ItemAccess:
    """``item`` with the project access already decided; quarantined items stay hidden
    from those who cannot release them."""
    result = ItemAccess(item=item, access=access)
    if item.status == "quarantined" and not result.can_release:
        raise ItemNotFound(item.id)
    return result


def list_items(
    session: Session,
    actor: Actor,
    slug: str,
    *,
    status: ItemStatus,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Item], int, ProjectAccess]:
    access = project_for(session, actor, slug, Permission.ITEMS_READ)
    query = select(Item).where(Item.project_id == access.project.id)
    may_see_quarantine = allows(access.role, Permission.QUARANTINE_RELEASE)
    if status != "all":
        query = query.where(Item.status == status)
    elif not may_see_quarantine:
        query = query.where(Item.status == "ready")
    if status == "quarantined" and not may_see_quarantine:
        query = query.where(Item.id.is_(None))
    if kind:
        query = query.where(Item.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(Item.id).limit(limit).offset(offset)))
    return rows, total, access


def instances(session: Session, actor: Actor, item_id: int) -> tuple[ItemAccess, list[Instance]]:
    """The de-identified DICOM instances of an item, in item order."""
    target = item_for(session, actor, item_id)
    uids = list(target.item.details.get("instances") or [])
    rows = {
        i.sop_instance_uid: i
        for i in session.scalars(
            select(Instance).where(
                Instance.project_id == target.item.project_id, Instance.sop_instance_uid.in_(uids)
            )
        )
    }
    return target, [rows[u] for u in uids if u in rows]


def release(session: Session, actor: Actor, clock: Clock, item_id: int, reason: str) -> Item:
    """Release a quarantined item to annotators (admins; audited with the reason)."""
    target = item_for(session, actor, item_id, Permission.QUARANTINE_RELEASE)
    item = target.item
    if item.status != "quarantined":
        raise Conflict(f"Item {item_id} is not in quarantine (status {item.status}).")
    reason = clean_text(reason, field="reason", max_len=2000, multiline=True)
    item.status, item.released_at, item.released_by = "ready", clock(), actor.user_id
    session.execute(
        update(Instance)
        .where(
            Instance.sop_instance_uid.in_(item.details.get("instances") or []),
            Instance.project_id == item.project_id,
        )
        .values(quarantine_reasons=[])
    )
    audit.record(
        session,
        audit.entry(
            actor,
            "deid.release",
            role=target.access.audit_role,
            object_type="item",
            object_id=item.id,
            project_id=item.project_id,
            reason=reason,
            detail={"reasons": list(item.quarantine_reasons)},
        ),
        clock,
    )
    return item


CT_PRESET_NAMES = ("soft_tissue", "lung", "bone", "brain", "mediastinum", "liver")


def window_presets(item: Item) -> list[str]:
    """Window names the rendered-frame endpoint accepts for this item."""
    if int(item.pixel.get("samples", 1)) == 3 or not item.pixel.get("blobs"):
        return []
    header = [str(w["name"]) for w in item.pixel.get("windows") or []]
    ct = list(CT_PRESET_NAMES) if item.modality == "CT" else []
    return [*header, *(n for n in ct if n not in header), "auto"]


def view(item: Item, study: Study | None = None, project: str | None = None) -> dict[str, Any]:
    """The metadata the viewer needs (no blob names: pixels come from the pixel API).

    Frame values are in modality units (CT: Hounsfield units; the rescale is applied)."""
    pixel = {k: v for k, v in item.pixel.items() if k not in ("blobs",)}
    pixel["rescale_applied"] = item.source_format == "dicom"
    pixel["window_presets"] = window_presets(item)
    return {
        "id": item.id,
        "project": project,
        "kind": item.kind,
        "source_format": item.source_format,
        "modality": item.modality,
        "label": item.label,
        "status": item.status,
        "quarantine_reasons": item.quarantine_reasons,
        "flags": item.flags,
        "details": {k: v for k, v in item.details.items() if k != "instances"},
        "geometry": item.geometry,
        "pixel": pixel,
        "series_uid": item.series_uid,
        "study": None
        if study is None
        else {
            "study_uid": study.study_uid,
            "study_date": study.study_date,
            "description": study.description,
        },
        "instances": len(item.details.get("instances") or []),
    }
