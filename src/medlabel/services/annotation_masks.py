"""Masks (label maps) of annotation sets: binary transport, per-slice storage, partial
updates, slice interpolation, contours and statistics.

A mask of a set is a label map over the item's index grid, stored per slice: each
non-empty slice is a content-addressed blob (``masks.pack_slice``), and a **manifest** blob
lists the slices of one version of the mask. A revision refers to the manifest only, so
saving one brushed slice of a 300-slice volume writes one slice blob, one small manifest
and one revision row; unchanged slices are shared between revisions by their hash.

Array order is ``(slices, rows, columns)`` = (k, j, i); value 0 is background. A
``semantic`` mask holds label-class values of the schema (classes that allow the ``mask``
kind); an ``instance`` mask holds instance ids 1..65535 of one class (``label``).
``downsample`` (1, 2, 4, ... 256; for large photos and slides) makes the mask grid coarser
than the item's: mask pixel (a, b) covers item pixels ``[a*d, (a+1)*d)`` in each in-plane
axis; slices are never downsampled.

The decoding and storing happen before the short write transaction that checks the base
revision and inserts the new one, so a big upload never holds the database's write lock.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.domain import masks as codec
from medlabel.domain.errors import Conflict, InvalidInput, NotFound
from medlabel.domain.geometry import Geometry
from medlabel.domain.interpolate import interpolate_slices
from medlabel.domain.labels import AnnotationKind, LabelSchema
from medlabel.domain.mask_stats import label_stats
from medlabel.domain.raster import mask_to_polygons
from medlabel.services import annotation_sets as sets
from medlabel.services.actor import Actor, Clock
from medlabel.services.annotation_sets import NewRevision, SetAccess
from medlabel.services.pixels import FrameSource
from medlabel.storage.blobs import BlobStore
from medlabel.storage.db import Database
from medlabel.storage.models import AnnotationRevision

MASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MASK_VOXELS = 1 << 29  # 512 M voxels: e.g. 2000 slices of 512x512
MAX_MASKS_PER_SET = 64
DOWNSAMPLES = tuple(1 << n for n in range(9))
MANIFEST_FORMAT = "medlabel-mask-manifest/1"
DTYPES = ("uint8", "uint16")
ENCODINGS = ("raw", "zlib", "rle")


@dataclass(frozen=True)
class MaskSpec:
    """What a mask is (fixed when it is created)."""

    id: str
    type: str  # semantic | instance
    label: str | None
    dtype: str
    downsample: int
    shape: tuple[int, int, int]  # (slices, rows, columns) of the mask grid

    def entry(self, manifest: str, labels: Sequence[int], nonempty: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "label": self.label,
            "dtype": self.dtype,
            "downsample": self.downsample,
            "shape": list(self.shape),
            "labels": sorted(int(v) for v in labels),
            "nonempty_slices": nonempty,
            "manifest": manifest,
        }


def spec_from_entry(entry: Mapping[str, Any]) -> MaskSpec:
    k, r, c = (int(n) for n in entry["shape"])
    return MaskSpec(
        id=str(entry["id"]),
        type=str(entry["type"]),
        label=entry.get("label"),
        dtype=str(entry["dtype"]),
        downsample=int(entry.get("downsample", 1)),
        shape=(k, r, c),
    )


def check_mask_id(mask_id: str) -> str:
    if not MASK_ID_RE.fullmatch(mask_id):
        raise InvalidInput("A mask id is 1-64 letters, digits, '_' or '-'.")
    return mask_id


def grid_shape(geometry: Mapping[str, Any], downsample: int) -> tuple[int, int, int]:
    columns, rows, slices = (int(n) for n in geometry["shape"])
    return slices, math.ceil(rows / downsample), math.ceil(columns / downsample)


def _find(head: AnnotationRevision | None, mask_id: str) -> dict[str, Any] | None:
    for entry in head.masks if head else []:
        if entry["id"] == mask_id:
            return dict(entry)
    return None


def _mask_classes(schema: LabelSchema) -> dict[str, int]:
    return {c.key: c.value for c in schema.classes if AnnotationKind.MASK in c.kinds}


def resolve_spec(
    existing: Mapping[str, Any] | None,
    mask_id: str,
    geometry: Mapping[str, Any],
    schema: LabelSchema,
    *,
    mask_type: str | None,
    label: str | None,
    dtype: str | None,
    downsample: int | None,
) -> MaskSpec:
    """The spec of an existing mask (parameters given must agree with it) or of a new one."""
    if existing is not None:
        spec = spec_from_entry(existing)
        for name, given, have in (
            ("type", mask_type, spec.type),
            ("label", label, spec.label),
            ("dtype", dtype, spec.dtype),
            ("downsample", downsample, spec.downsample),
        ):
            if given is not None and given != have:
                raise InvalidInput(
                    f"Mask {mask_id!r} has {name} {have!r}; a mask keeps its {name} "
                    f"(you sent {given!r}). Use another mask id for a different {name}."
                )
        return spec
    mask_type = mask_type or "semantic"
    if mask_type not in ("semantic", "instance"):
        raise InvalidInput("A mask's type is 'semantic' (class values) or 'instance' (ids).")
    classes = _mask_classes(schema)
    if not classes:
        raise InvalidInput("No class of the label schema allows the 'mask' kind.")
    if mask_type == "instance":
        if label not in classes:
            raise InvalidInput(
                "An instance mask needs label=<class key> of a class that allows masks; "
                f"these do: {sorted(classes)}."
            )
    elif label is not None:
        raise InvalidInput("A semantic mask holds class values; leave out 'label'.")
    if dtype is None:  # instance ids go up to 65535; class values usually fit a byte
        wide = mask_type == "instance" or max(classes.values()) > 255
        dtype = "uint16" if wide else "uint8"
    if dtype not in DTYPES:
        raise InvalidInput(f"A mask's dtype is one of {list(DTYPES)}.")
    downsample = downsample or 1
    if downsample not in DOWNSAMPLES:
        raise InvalidInput(f"downsample must be one of {list(DOWNSAMPLES)}.")
    shape = grid_shape(geometry, downsample)
    voxels = shape[0] * shape[1] * shape[2]
    if voxels > MAX_MASK_VOXELS:
        raise InvalidInput(
            f"A full-resolution mask of this item would have {voxels:,} voxels (the limit is "
            f"{MAX_MASK_VOXELS:,}); create it with a larger downsample."
        )
    return MaskSpec(mask_id, mask_type, label, dtype, downsample, shape)


def check_values(spec: MaskSpec, schema: LabelSchema, values: Sequence[int]) -> None:
    if spec.type == "instance":
        return  # any id the dtype can hold
    allowed = set(_mask_classes(schema).values())
    wrong = sorted(set(values) - allowed)
    if wrong:
        raise InvalidInput(
            f"Mask {spec.id!r} contains values {wrong[:10]} that are not classes allowing "
            f"masks in this schema version (allowed: {sorted(allowed)}).",
            errors=[{"field": "body", "problem": "unknown_label_values", "values": wrong[:10]}],
        )


# ---- manifests ---------------------------------------------------------------------------


class ManifestCache:
    """Manifests are immutable (content-addressed), so parsed ones are kept in a small LRU."""

    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[str, list[Any]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, blobs: BlobStore, sha: str) -> list[Any]:
        with self._lock:
            hit = self._items.get(sha)
            if hit is not None:
                self._items.move_to_end(sha)
                return hit
        data = json.loads(blobs.read_bytes(sha))
        if data.get("format") != MANIFEST_FORMAT:
            raise InvalidInput("A stored mask manifest has an unknown format.")
        slices: list[Any] = data["slices"]
        with self._lock:
            self._items[sha] = slices
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return slices


MANIFESTS = ManifestCache()


def put_manifest(
    blobs: BlobStore, spec: MaskSpec, slices: Sequence[Any], *, sync: bool = False
) -> str:
    body = json.dumps(
        {
            "format": MANIFEST_FORMAT,
            "shape": list(spec.shape),
            "dtype": spec.dtype,
            "slices": list(slices),
        },
        separators=(",", ":"),
    ).encode()
    return blobs.put_bytes(body, sync=sync)


def _empty_manifest(spec: MaskSpec) -> list[Any]:
    return [None] * spec.shape[0]


def read_slices(
    blobs: BlobStore, spec: MaskSpec, manifest: Sequence[Any], start: int, count: int
) -> np.ndarray:
    """Slices ``start .. start+count-1`` of a mask as one ``(count, rows, columns)`` array."""
    _, rows, columns = spec.shape
    out = np.zeros((count, rows, columns), dtype=spec.dtype)
    for n in range(count):
        cell = manifest[start + n]
        if cell is not None:
            out[n] = codec.unpack_slice(
                blobs.read_bytes(cell[0]), rows=rows, columns=columns, dtype=spec.dtype
            )
    return out


def _check_range(spec: MaskSpec, start: int, count: int | None) -> int:
    slices = spec.shape[0]
    count = slices - start if count is None else count
    if not (0 <= start < slices and 1 <= count <= slices - start):
        raise InvalidInput(
            f"Slices {start}..{start + count - 1} are outside this mask, which has slices "
            f"0..{slices - 1}."
        )
    return count


SYNC_EACH_MAX = 8  # up to this many slices: fsync each file; more: one syncfs for all


def slice_labels(block: np.ndarray) -> list[list[int]]:
    """The label values present on each slice of ``block`` (one pass over the voxels)."""
    return [codec.labels_present(block[n]) for n in range(block.shape[0])]


def store_block(
    blobs: BlobStore,
    spec: MaskSpec,
    old: Sequence[Any],
    start: int,
    block: np.ndarray,
    labels: Sequence[Sequence[int]] | None = None,
    *,
    sync: bool = False,
) -> tuple[list[Any], list[int]]:
    """Pack and store the slices of ``block`` from ``start`` into a copy of manifest
    ``old``; returns the new manifest and the slices whose content changed. With
    ``sync`` each blob is made durable as it is written; otherwise the caller syncs."""
    new = list(old)
    changed: list[int] = []
    per_slice = labels if labels is not None else slice_labels(block)
    for n in range(block.shape[0]):
        k = start + n
        cell = None
        if per_slice[n]:
            packed = codec.pack_slice(block[n])
            assert packed is not None
            sha = blobs.put_bytes(packed, sync=sync)
            cell = [sha, list(per_slice[n])]
        if (cell and cell[0]) != (new[k] and new[k][0]):
            changed.append(k)
        new[k] = cell
    return new, changed


def summarize(manifest: Sequence[Any]) -> tuple[list[int], int]:
    labels: set[int] = set()
    nonempty = 0
    for cell in manifest:
        if cell is not None:
            nonempty += 1
            labels.update(int(v) for v in cell[1])
    return sorted(labels), nonempty


# ---- saving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskWrite:
    mask_id: str
    start: int
    count: int | None
    encoding: str
    body: bytes
    mask_type: str | None = None
    label: str | None = None
    dtype: str | None = None
    downsample: int | None = None
    duration_s: float | None = None
    comment: str | None = None


def save_slices(
    db: Database,
    blobs: BlobStore,
    actor: Actor,
    clock: Clock,
    set_id: int,
    base: int,
    write: MaskWrite,
) -> tuple[SetAccess, AnnotationRevision, bool, list[int]]:
    """Write slices ``start..`` of a mask (creating the mask if new) as a new revision."""
    mask_id = check_mask_id(write.mask_id)
    if write.encoding not in ENCODINGS:
        raise InvalidInput(f"encoding must be one of {list(ENCODINGS)}.")
    with db.read() as s:
        access = sets.set_for(s, actor, set_id, write=True)
        head = sets.head_revision(s, set_id)
        sets.check_base(set_id, head, base)
        version, schema = sets.schema_for(
            s, access.project_id, head.schema_version if head else None
        )
        geometry = dict(access.item_access.item.geometry)
    existing = _find(head, mask_id)
    if existing is None and head is not None and len(head.masks) >= MAX_MASKS_PER_SET:
        raise InvalidInput(f"A set holds at most {MAX_MASKS_PER_SET} masks.")
    spec = resolve_spec(
        existing,
        mask_id,
        geometry,
        schema,
        mask_type=write.mask_type,
        label=write.label,
        dtype=write.dtype,
        downsample=write.downsample,
    )
    if write.dtype is not None and write.dtype != spec.dtype:
        raise InvalidInput(f"Mask {mask_id!r} is {spec.dtype}; send {spec.dtype} data.")
    count = _check_range(spec, write.start, write.count)
    _, rows, columns = spec.shape
    block = codec.decode_block(
        write.body,
        encoding=write.encoding,
        dtype=spec.dtype,
        slices=count,
        rows=rows,
        columns=columns,
        max_voxels=MAX_MASK_VOXELS,
    )
    labels = slice_labels(block)
    check_values(spec, schema, sorted({v for values in labels for v in values}))
    old = MANIFESTS.get(blobs, existing["manifest"]) if existing else _empty_manifest(spec)
    few = count <= SYNC_EACH_MAX
    manifest, changed = store_block(blobs, spec, old, write.start, block, labels, sync=few)
    del block
    return _commit_mask(
        db,
        blobs,
        actor,
        clock,
        access,
        base,
        spec,
        manifest,
        changed,
        operation="mask",
        version=version,
        duration_s=write.duration_s,
        comment=write.comment,
        synced=few,
    )


def _commit_mask(
    db: Database,
    blobs: BlobStore,
    actor: Actor,
    clock: Clock,
    access: SetAccess,
    base: int,
    spec: MaskSpec,
    manifest: list[Any] | None,
    changed: list[int],
    *,
    operation: str,
    version: int,
    duration_s: float | None = None,
    comment: str | None = None,
    synced: bool = False,
) -> tuple[SetAccess, AnnotationRevision, bool, list[int]]:
    """Insert the revision that replaces (or, with ``manifest=None``, removes) the mask.

    ``access`` was checked by the caller in this request; the write transaction only
    re-checks that the head revision has not moved. ``synced``: the slice blobs are
    already durable (else one file-system sync makes them so before the commit)."""
    set_id = access.annotation_set.id
    entry = None
    if manifest is not None:
        sha = put_manifest(blobs, spec, manifest, sync=synced)
        if not synced:
            blobs.sync()
        labels, nonempty = summarize(manifest)
        entry = spec.entry(sha, labels, nonempty)
    duration, text = sets.clean_meta(duration_s, comment)
    with db.write() as s:
        head = sets.head_revision(s, set_id)
        sets.check_base(set_id, head, base)
        masks = [m for m in (head.masks if head else []) if m["id"] != spec.id]
        existed = len(masks) != len(head.masks if head else [])
        if entry is not None:
            masks.append(entry)
            masks.sort(key=lambda m: str(m["id"]))
        summary: dict[str, Any] = {
            "masks_changed" if existed else "masks_added": [spec.id],
            "slices": changed,
        }
        if entry is None:
            summary = {"masks_removed": [spec.id], "slices": changed}
        rev, created = sets.commit_revision(
            s,
            actor,
            clock,
            access,
            head,
            NewRevision(
                operation=operation,
                shapes=list(head.shapes) if head else [],
                masks=masks,
                schema_version=version,
                summary=summary,
                duration_s=duration,
                comment=text,
            ),
        )
    return access, rev, created, changed


def delete_mask(
    db: Database,
    blobs: BlobStore,
    actor: Actor,
    clock: Clock,
    set_id: int,
    base: int,
    mask_id: str,
) -> tuple[SetAccess, AnnotationRevision, bool, list[int]]:
    with db.read() as s:
        access = sets.set_for(s, actor, set_id, write=True)
        head = sets.head_revision(s, set_id)
        sets.check_base(set_id, head, base)
    existing = _find(head, check_mask_id(mask_id))
    if existing is None or head is None:
        raise NotFound(f"Annotation set {set_id} has no mask {mask_id!r} at its head revision.")
    spec = spec_from_entry(existing)
    manifest = MANIFESTS.get(blobs, existing["manifest"])
    changed = [k for k, cell in enumerate(manifest) if cell is not None]
    return _commit_mask(
        db,
        blobs,
        actor,
        clock,
        access,
        base,
        spec,
        None,
        changed,
        operation="mask",
        version=head.schema_version,
    )


# ---- reading -------------------------------------------------------------------------------


def mask_at(
    db: Database, actor: Actor, set_id: int, mask_id: str, revision: int | None
) -> tuple[SetAccess, AnnotationRevision, dict[str, Any]]:
    with db.read() as s:
        access = sets.set_for(s, actor, set_id)
        rev = (
            sets.head_revision(s, set_id)
            if revision is None
            else sets.get_revision(s, set_id, revision)
        )
    entry = _find(rev, check_mask_id(mask_id))
    if rev is None or entry is None:
        where = "its head revision" if revision is None else f"revision {revision}"
        raise NotFound(f"Annotation set {set_id} has no mask {mask_id!r} at {where}.")
    return access, rev, entry


def read_block(
    blobs: BlobStore, entry: Mapping[str, Any], start: int, count: int | None
) -> np.ndarray:
    spec = spec_from_entry(entry)
    count = _check_range(spec, start, count)
    return read_slices(blobs, spec, MANIFESTS.get(blobs, entry["manifest"]), start, count)


def contours(
    blobs: BlobStore, entry: Mapping[str, Any], k: int, item_shape: Sequence[int]
) -> list[dict[str, Any]]:
    """Outlines of each label on slice ``k`` as polygons with holes, in item index
    coordinates (vertices on pixel corners; rasterising them gives the slice back)."""
    spec = spec_from_entry(entry)
    plane = read_block(blobs, entry, k, 1)[0]
    d = spec.downsample
    columns, rows = int(item_shape[0]), int(item_shape[1])
    out = []
    for value in codec.labels_present(plane):
        for outer, holes in mask_to_polygons(plane == value):
            out.append(
                {
                    "value": int(value),
                    "slice": k,
                    "points": _scale(outer, d, columns, rows),
                    "holes": [_scale(h, d, columns, rows) for h in holes],
                }
            )
    return out


def _scale(ring: Sequence[Sequence[float]], d: int, columns: int, rows: int) -> list[list[float]]:
    """Mask-grid corners to item index coordinates. With downsample ``d`` the last mask
    column/row may reach past the image; such vertices are clipped to the image edge
    (-0.5 .. n-0.5), which keeps the axis-parallel rings simple."""
    if d == 1:
        return [[float(x), float(y)] for x, y in ring]
    return [
        [
            min((float(x) + 0.5) * d - 0.5, columns - 0.5),
            min((float(y) + 0.5) * d - 0.5, rows - 0.5),
        ]
        for x, y in ring
    ]


def interpolate(
    db: Database,
    blobs: BlobStore,
    actor: Actor,
    clock: Clock,
    set_id: int,
    base: int,
    mask_id: str,
    *,
    value: int,
    key_slices: Sequence[int] | None = None,
) -> tuple[SetAccess, AnnotationRevision, bool, list[int]]:
    """Fill the slices between key slices of label ``value`` (shape-based interpolation);
    only background voxels are written."""
    with db.read() as s:
        access = sets.set_for(s, actor, set_id, write=True)
        head = sets.head_revision(s, set_id)
        sets.check_base(set_id, head, base)
    geometry = Geometry.from_dict(dict(access.item_access.item.geometry))
    existing = _find(head, check_mask_id(mask_id))
    if existing is None or head is None:
        raise NotFound(f"Annotation set {set_id} has no mask {mask_id!r} at its head revision.")
    spec = spec_from_entry(existing)
    manifest = MANIFESTS.get(blobs, existing["manifest"])
    if value not in summarize(manifest)[0]:
        raise InvalidInput(f"Mask {mask_id!r} has no voxels of value {value} to interpolate.")
    volume = read_slices(blobs, spec, manifest, 0, spec.shape[0])
    di, dj, _ = geometry.spacing_mm
    filled, changed_slices = interpolate_slices(
        volume, value, key_slices, spacing=(di * spec.downsample, dj * spec.downsample)
    )
    new = list(manifest)
    changed: list[int] = []
    for k in changed_slices:
        part, moved = store_block(blobs, spec, new, k, filled[k : k + 1])
        new = part
        changed.extend(moved)
    if not changed:
        raise Conflict("Nothing to interpolate: the slices between the key slices are full.")
    return _commit_mask(
        db,
        blobs,
        actor,
        clock,
        access,
        base,
        spec,
        new,
        changed,
        operation="interpolate",
        version=head.schema_version,
    )


def statistics(
    blobs: BlobStore,
    item_pixel: Mapping[str, Any],
    geometry: Mapping[str, Any],
    flags: Sequence[str],
    entry: Mapping[str, Any],
) -> dict[str, Any]:
    """Per label: voxels, volume (mm3 and mL), bounding box, centroid (index and patient
    mm) and, for single-channel items at full resolution, intensity statistics (modality
    units: HU for CT)."""
    spec = spec_from_entry(entry)
    manifest = MANIFESTS.get(blobs, entry["manifest"])
    filled = [k for k, cell in enumerate(manifest) if cell is not None]
    geo = Geometry.from_dict(dict(geometry))
    physical = "no_spacing" not in flags
    if not filled:
        return {"labels": {}, "units": _units(physical)}
    k0, k1 = filled[0], filled[-1]
    volume = read_slices(blobs, spec, manifest, k0, k1 - k0 + 1)
    intensities = None
    if spec.downsample == 1 and item_pixel.get("blobs") and int(item_pixel.get("samples", 1)) == 1:
        source = FrameSource(dict(item_pixel), blobs)
        intensities = np.stack([source.frame(k) for k in range(k0, k1 + 1)])
    di, dj, dk = geo.spacing_mm if physical else (1.0, 1.0, 1.0)
    if physical:  # a sheared grid (gantry tilt): the voxel is a parallelepiped
        dk *= abs(float(np.linalg.det(np.asarray(geo.direction, dtype=float))))
    d = spec.downsample
    stats = label_stats(volume, (di * d, dj * d, dk), intensities=intensities)
    out: dict[str, Any] = {}
    for value, item in stats.items():
        row: dict[str, Any] = dict(item)
        if not physical or geo.shape[2] == 1:  # no volume: pixels only, or a 2D image
            row.pop("volume_mm3", None)
            row.pop("volume_ml", None)
            if physical:
                row["area_mm2"] = float(row["voxels"]) * di * d * dj * d
        _shift_k(row, k0, d)
        centroid = row.get("centroid_index")
        if centroid is not None and physical:
            row["centroid_mm"] = [float(v) for v in geo.index_to_patient(centroid)]
        out[str(value)] = row
    return {"labels": out, "units": _units(physical)}


def _units(physical: bool) -> dict[str, str]:
    return (
        {"length": "mm", "area": "mm2", "volume": "mL"}
        if physical
        else {"length": "px", "area": "px2", "volume": "voxels"}
    )


def _shift_k(row: dict[str, Any], k0: int, d: int) -> None:
    """Stats of a sub-volume starting at slice ``k0`` of a mask with downsample ``d`` to
    item index coordinates (i, j, k)."""
    for key in ("bbox_min", "bbox_max", "centroid_index"):
        v = row.get(key)
        if v is not None:
            i, j, k = v
            if d != 1:
                i, j = (i + 0.5) * d - 0.5, (j + 0.5) * d - 0.5
            row[key] = [i, j, k + k0]
