"""Building items from ingested content.

DICOM instances become items through series assembly (``domain/series.py``), once per
touched series at the end of a job; NIfTI volumes, photos and slides are items on their own.
The levels of a DICOM whole-slide series become one ``slide`` item served from a pyramidal
TIFF built from them (``imaging/dicom_wsi.py``).
An item's ``pixel`` JSON says where its decoded frames are: a list of raw blobs (one per
instance, or one per file) in item order, with their dtype and frame counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain import series as series_domain
from medlabel.domain.audit import AuditEntry, Outcome
from medlabel.domain.errors import MedlabelError
from medlabel.imaging import dicom_wsi
from medlabel.services import audit
from medlabel.services.actor import Clock
from medlabel.storage.models import IngestFile, Instance, Item

if TYPE_CHECKING:
    from medlabel.services.ingest import IngestDeps
    from medlabel.services.ingest_worker import FileResult

CT_WINDOW = [{"name": "soft tissue", "center": 40.0, "width": 400.0}]


def content_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def record_volume(
    s: Session, clock: Clock, project_id: int, result: FileResult
) -> tuple[str, str | None, int | None]:
    """Create the item of a NIfTI volume, photo or slide (or find it: a duplicate)."""
    volume, frames = result.volume, result.frames
    assert volume is not None
    key_source = volume.get("source_sha256") or (frames.sha256 if frames else "")
    key = content_key(volume["format"], key_source)
    existing = s.scalar(select(Item).where(Item.project_id == project_id, Item.content_key == key))
    if existing is not None:
        return "duplicate", "this file was ingested before (same content)", existing.id
    kind = _volume_kind(volume)
    pixel: dict[str, Any] = {"blobs": [], "frames": 0}
    if frames is not None:
        pixel = {
            "dtype": frames.dtype,
            "rows": frames.rows,
            "columns": frames.columns,
            "samples": frames.samples,
            "frames": frames.frames,
            "timepoints": volume.get("timepoints", 1),
            "blobs": [{"sha256": frames.sha256, "frames": frames.frames, "dtype": frames.dtype}],
            "photometric": "RGB" if frames.samples == 3 else "MONOCHROME2",
            "invert": False,
            "windows": [],
        }
    if volume["format"] == "slide":
        pixel["slide"] = volume["slide"]
    reasons = list(result.quarantine_reasons)
    item = Item(
        project_id=project_id,
        study_id=None,
        kind=kind,
        source_format=volume["format"],
        modality={"photo": "XC", "slide": "SM"}.get(
            volume["format"], "MR" if kind == "volume" else ""
        ),
        series_uid=None,
        label=_volume_label(volume),
        content_key=key,
        status="quarantined" if reasons else "ready",
        quarantine_reasons=reasons,
        flags=_volume_flags(volume),
        details={},
        geometry=volume["geometry"],
        pixel=pixel,
        source_sha256=volume.get("source_sha256"),
        created_at=clock(),
    )
    s.add(item)
    s.flush()
    if reasons:
        audit.record(
            s,
            AuditEntry(
                action="deid.quarantine",
                outcome=Outcome.SUCCESS,
                actor_role="system",
                object_type="item",
                object_id=str(item.id),
                project_id=project_id,
                detail={"reasons": reasons},
            ),
            clock,
        )
    return ("quarantined" if reasons else "ingested"), None, item.id


def _volume_kind(volume: dict[str, Any]) -> str:
    if volume["format"] == "slide":
        return series_domain.ItemKind.SLIDE.value
    if volume["format"] == "photo":
        return series_domain.ItemKind.IMAGE.value
    return series_domain.ItemKind.VOLUME.value


def _volume_flags(volume: dict[str, Any]) -> list[str]:
    """Photos have no physical pixel size, nor have slides without microns per pixel:
    their measurements are in pixels."""
    if volume["format"] == "photo":
        return ["no_spacing"]
    if volume["format"] == "slide":
        slide = volume.get("slide") or {}
        if not slide.get("mpp_x") or not slide.get("mpp_y"):
            return ["no_spacing"]
    return []


def _volume_label(volume: dict[str, Any]) -> str:
    return {"nifti": "NIfTI volume", "photo": "Photograph", "slide": "Whole-slide image"}[
        volume["format"]
    ]


# ---- DICOM series ---------------------------------------------------------------------


def build_for_job(deps: IngestDeps, job_id: str, project_id: int) -> None:
    """Re-assemble every series that received instances in this job. A whole-slide series'
    pyramid (``dicom_wsi``) is written to the blob store first, outside any transaction."""
    with deps.db.read() as s:
        touched = sorted(
            set(
                s.scalars(
                    select(Instance.series_uid)
                    .join(IngestFile, IngestFile.job_id == job_id)
                    .where(Instance.project_id == project_id)
                    .where(Instance.blob_sha256.is_not(None))
                )
            )
        )
    for series_uid in touched:
        try:
            slides = prepare_slides(deps, project_id, series_uid)
        except MedlabelError as exc:
            _slide_failed(deps, job_id, series_uid, exc.detail)
            slides = {}
        for attempt in range(2):  # a concurrent job may build the same item first
            try:
                with deps.db.write() as s:
                    build_series(s, deps.clock, project_id, series_uid, slides=slides)
                break
            except IntegrityError:
                if attempt:
                    raise


# ---- DICOM whole-slide images ---------------------------------------------------------


@dataclass(frozen=True)
class SlidePlan:
    key: str  # the item's content key
    members: tuple[Instance, ...]  # pyramid levels, level 0 first
    ignored: tuple[str, ...]  # SOP Instance UIDs of VOLUME instances that fit no level


def _slide_plan(instances: list[Instance]) -> SlidePlan | None:
    levels = [i for i in instances if (i.info or {}).get("wsi")]
    if not levels:
        return None
    by_uid = {i.sop_instance_uid: i for i in levels}
    plan = dicom_wsi.plan_pyramid(
        [(i.sop_instance_uid, dicom_wsi.WsiLevel.from_dict(i.info["wsi"])) for i in levels]
    )
    key = content_key(series_domain.ItemKind.SLIDE.value, "dicom-wsi", *plan.members)
    return SlidePlan(key, tuple(by_uid[k] for k in plan.members), plan.ignored)


def prepare_slides(
    deps: IngestDeps, project_id: int, series_uid: str
) -> dict[str, dicom_wsi.BuiltSlide]:
    """The pyramidal TIFF of the series' whole-slide levels, written and synced, keyed by
    the item's content key; empty when the series has none or its item exists already."""
    with deps.db.read() as s:
        plan = _slide_plan(_series_instances(s, project_id, series_uid))
        if plan is None or _item_by_key(s, project_id, plan.key) is not None:
            return {}
        levels = [
            (m.blob_sha256, dicom_wsi.WsiLevel.from_dict(m.info["wsi"])) for m in plan.members
        ]
    built = dicom_wsi.build_pyramid(deps.blobs, levels)
    deps.blobs.sync()  # durable before the item row names it
    return {plan.key: built}


def _slide_failed(deps: IngestDeps, job_id: str, series_uid: str, reason: str) -> None:
    """The job's files of a whole-slide series whose pyramid could not be built: rejected."""
    with deps.db.write() as s:
        for row in s.scalars(
            select(IngestFile).where(
                IngestFile.job_id == job_id, IngestFile.series_uid == series_uid
            )
        ):
            if row.outcome in ("ingested", "quarantined"):
                row.outcome, row.reason = "rejected", reason


def _slide_item(
    s: Session, clock: Clock, project_id: int, plan: SlidePlan, built: dicom_wsi.BuiltSlide
) -> Item:
    members = list(plan.members)
    first = members[0]
    reasons = sorted({r for m in members for r in (m.quarantine_reasons or [])})
    description = str(first.info.get("series_description") or "")
    label = f"Whole-slide image {description}".strip()
    info = built.info.to_dict()
    item = Item(
        project_id=project_id,
        study_id=first.study_id,
        kind=series_domain.ItemKind.SLIDE.value,
        source_format="dicom",
        modality=first.info.get("modality") or "SM",
        series_uid=first.series_uid,
        label=label[:200],
        content_key=plan.key,
        status="quarantined" if reasons else "ready",
        quarantine_reasons=reasons,
        flags=[] if built.info.mpp_x else ["no_spacing"],
        details={
            "instances": [m.sop_instance_uid for m in members],
            "ignored_instances": list(plan.ignored),
        },
        geometry=built.info.geometry.to_dict(),
        pixel={"blobs": [], "frames": 0, "slide": info},
        source_sha256=built.source_sha256,
        created_at=clock(),
    )
    s.add(item)
    s.flush()
    _audit_quarantine(s, clock, project_id, item, reasons)
    return item


# ---- DICOM series: assembly --------------------------------------------------------------


def _record(inst: Instance) -> series_domain.SliceRecord:
    r = inst.info["record"]
    return series_domain.SliceRecord(
        key=inst.sop_instance_uid,
        series_uid=inst.series_uid,
        rows=r["rows"],
        columns=r["columns"],
        frames=r["frames"] or 1,
        samples_per_pixel=r["samples_per_pixel"] or 1,
        orientation=tuple(r["orientation"]) if r["orientation"] else None,
        position=tuple(r["position"]) if r["position"] else None,
        pixel_spacing=tuple(r["pixel_spacing"]) if r["pixel_spacing"] else None,
        frame_of_reference_uid=r["frame_of_reference_uid"],
        instance_number=r["instance_number"],
        acquisition_number=r["acquisition_number"],
        echo_number=r["echo_number"],
        temporal_position=r["temporal_position"],
        per_frame_positions=tuple(tuple(p) for p in r["per_frame_positions"])
        if r["per_frame_positions"]
        else None,
    )


def _series_instances(s: Session, project_id: int, series_uid: str) -> list[Instance]:
    return list(
        s.scalars(
            select(Instance).where(
                Instance.project_id == project_id, Instance.series_uid == series_uid
            )
        )
    )


def _item_by_key(s: Session, project_id: int, key: str) -> Item | None:
    return s.scalar(select(Item).where(Item.project_id == project_id, Item.content_key == key))


def build_series(
    s: Session,
    clock: Clock,
    project_id: int,
    series_uid: str,
    *,
    slides: Mapping[str, dicom_wsi.BuiltSlide] | None = None,
) -> list[Item]:
    """Assemble one series into items; items that no longer match become superseded.

    Whole-slide levels (``info["wsi"]``) become one ``slide`` item, whose pyramid must be
    in ``slides`` (see :func:`prepare_slides`) unless the item exists already; if it is
    not, the series' current slide items are kept as they are.
    """
    instances = _series_instances(s, project_id, series_uid)
    frames_based = [i for i in instances if not (i.info or {}).get("wsi")]
    by_uid = {i.sop_instance_uid: i for i in frames_based}
    assembled = series_domain.assemble([_record(i) for i in frames_based])
    keep: list[Item] = []
    for part in assembled:
        members = [by_uid[k] for k in part.members]
        key = content_key(
            part.kind.value, *part.members, ",".join(map(str, part.frame_order or ()))
        )
        item = _item_by_key(s, project_id, key)
        if item is None:
            item = _new_series_item(s, clock, project_id, part, members, key)
        keep.append(item)
    plan = _slide_plan(instances)
    if plan is not None:
        item = _item_by_key(s, project_id, plan.key)
        if item is None and slides is not None and plan.key in slides:
            item = _slide_item(s, clock, project_id, plan, slides[plan.key])
        if item is not None:
            keep.append(item)
        else:  # not prepared (another job added a level meanwhile): leave slides alone
            keep.extend(
                s.scalars(
                    select(Item).where(
                        Item.project_id == project_id,
                        Item.series_uid == series_uid,
                        Item.kind == series_domain.ItemKind.SLIDE.value,
                    )
                )
            )
    kept_ids = {i.id for i in keep}
    for old in s.scalars(
        select(Item).where(
            Item.project_id == project_id,
            Item.series_uid == series_uid,
            Item.status != "superseded",
        )
    ):
        if old.id not in kept_ids:
            old.status = "superseded"
    return keep


def _new_series_item(
    s: Session,
    clock: Clock,
    project_id: int,
    part: series_domain.AssembledItem,
    members: list[Instance],
    key: str,
) -> Item:
    first = members[0]
    reasons = sorted({r for m in members for r in (m.quarantine_reasons or [])})
    modality = first.info.get("modality", "")
    description = first.info.get("series_description", "")
    label = description if description.startswith(modality) else f"{modality} {description}"
    label = label.strip()
    if part.label:
        label = f"{label} ({part.label})"
    item = Item(
        project_id=project_id,
        study_id=first.study_id,
        kind=part.kind.value,
        source_format="dicom",
        modality=modality,
        series_uid=part.series_uid,
        label=label[:200],
        content_key=key,
        status="quarantined" if reasons else "ready",
        quarantine_reasons=reasons,
        flags=[*part.flags, *_spacing_flags(first.info["display"].get("spacing_source"))],
        details={
            **part.details,
            "slice_positions_mm": list(part.slice_positions_mm)
            if part.slice_positions_mm
            else None,
            "instances": [m.sop_instance_uid for m in members],
        },
        geometry=part.geometry.to_dict(),
        pixel=_series_pixel(part, members, modality),
        source_sha256=None,
        created_at=clock(),
    )
    s.add(item)
    s.flush()
    _audit_quarantine(s, clock, project_id, item, reasons)
    return item


def _audit_quarantine(
    s: Session, clock: Clock, project_id: int, item: Item, reasons: list[str]
) -> None:
    if reasons:
        audit.record(
            s,
            AuditEntry(
                action="deid.quarantine",
                actor_role="system",
                object_type="item",
                object_id=str(item.id),
                project_id=project_id,
                detail={"reasons": reasons},
            ),
            clock,
        )


def _spacing_flags(source: str | None) -> list[str]:
    """Say where millimetres come from when they are not a patient-plane PixelSpacing."""
    return {
        None: ["no_spacing"],  # measurements are in pixels
        "ImagerPixelSpacing": ["spacing_at_detector"],  # not corrected for magnification
        "ultrasound-region": ["spacing_from_ultrasound_region"],
    }.get(source, [])


def _series_pixel(
    part: series_domain.AssembledItem, members: list[Instance], modality: str
) -> dict[str, Any]:
    blobs = [
        {"sha256": m.frames_sha256, "frames": m.frames, "dtype": m.info["pixels"]["dtype"]}
        for m in members
    ]
    dtypes = {b["dtype"] for b in blobs}
    first = members[0].info
    display = first["display"]
    windows = [
        {"name": f"header {n + 1}", "center": c, "width": w}
        for n, (c, w) in enumerate(
            zip(display["window_centers"], display["window_widths"], strict=False)
        )
    ]
    return {
        "dtype": dtypes.pop() if len(dtypes) == 1 else "float32",
        "rows": first["pixels"]["rows"],
        "columns": first["pixels"]["columns"],
        "samples": first["pixels"]["samples"],
        "frames": sum(int(b["frames"]) for b in blobs),
        "timepoints": 1,
        "blobs": blobs,
        "frame_order": list(part.frame_order) if part.frame_order else None,
        "photometric": "RGB"
        if first["pixels"]["samples"] == 3
        else ("MONOCHROME1" if display["invert"] else "MONOCHROME2"),
        "invert": bool(display["invert"]),
        "units": "HU" if modality == "CT" else "",
        "windows": windows or (CT_WINDOW if modality == "CT" else []),
        "frame_time_ms": display.get("frame_time_ms"),
    }
