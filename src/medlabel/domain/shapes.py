"""Vector annotations: boxes, polygons, polylines, points and classifications.

An annotation document is ``{"annotations": [...]}`` (other keys are left to the caller).
Every annotation is a JSON object; :func:`parse_annotation` validates one completely and
:meth:`to_dict` gives back its canonical form, so ``parse(to_dict(a)) == a``. Coordinates
are kept exactly as sent (integers become the equal float; nothing is rounded).

Coordinates
    Image-index space of the item: ``(i, j, k)`` = (column, row, slice/frame), integer
    values are pixel *centres*, so the image covers ``[-0.5, n - 0.5]`` on each axis and a
    coordinate exactly on that outer edge is allowed. Coordinates must be JSON numbers
    (not booleans or strings), finite and at most :data:`MAX_COORDINATE` in magnitude.
    ``slice`` is an integer ``0 .. slices - 1``. Masks are not part of documents: they are
    saved through their own binary API.

Common fields
    ``id`` (required, 1-64 of ``A-Z a-z 0-9 _ -``, unique in the document), ``kind``,
    ``label`` (a class key of the schema the save is made under; the class must allow the
    kind), ``attributes`` (an object; keys must be attributes of the class and values valid
    for them; a required attribute without a default must be present; an absent attribute
    that has a default takes it, so stored annotations do not change when a default does),
    ``instance`` (optional integer 1..65535: the object instance, for instance segmentation
    and tracking), ``model`` (optional ``{"name", "version"}`` of the model that produced
    it; the person is known from the request), ``time_spent_s`` (optional, 0..86400) and
    ``note`` (optional multi-line text of at most 2000 characters; blank means none).
    Unknown keys are refused, so a typo such as ``"hole"`` does not silently drop data.

Kinds
    - ``box``: ``{"slice": k, "min": [i, j], "max": [i, j]}`` on one slice/frame, or
      ``{"min": [i, j, k], "max": [i, j, k]}`` (no ``slice``) across slices, which only a
      ``volume`` item with more than one slice has (frames of a cine are time, not space).
      ``min < max`` on every axis.
    - ``polygon``: ``{"slice": k, "points": [[i, j], ...], "holes": [[[i, j], ...], ...]}``,
      valid by the rules of :mod:`medlabel.domain.polygons` (rings close themselves, so the
      first vertex is not repeated; no self-intersection; holes strictly inside, disjoint).
    - ``polyline``: ``{"slice": k, "points": [[i, j], ...]}``, 2 or more points, no two
      consecutive points equal.
    - ``point``: ``{"point": [i, j, k]}``, a landmark (for a point class, the class names the
      landmark). On a volume ``k`` may fall between slices; on other items it must be a whole
      frame number, so ``0`` on a single image.
    - ``classification``: ``{"scope": "item" | "frame" | "study"}``; scope ``frame`` needs,
      and only it allows, ``"slice": k``.

Limits
    :data:`MAX_RING_VERTICES` vertices per polygon ring and per polyline,
    :data:`MAX_HOLES` holes per polygon, :data:`MAX_DOCUMENT_VERTICES` polygon and polyline
    vertices in one document, :data:`MAX_ANNOTATIONS` annotations in one document.

Stored annotations
    :func:`load_stored` reads canonical dicts back without a schema (they were validated
    when saved, under whatever schema version was current then).

Errors
    :class:`InvalidInput` (422) naming the field, e.g. ``annotations[3].points[7]``, in
    ``errors[0]["field"]``, what is wrong in ``errors[0]["problem"]`` and how to fix it in the
    message.

Measurements (:func:`measure`)
    Keys carry their unit: ``_mm``, ``_mm2``, ``_ml`` when ``physical`` (pixel spacing
    known), ``_px``, ``_px2``, ``_px3`` in index units otherwise, and ``units`` is ``"mm"`` or
    ``"px"``. 2D box: ``width``, ``height``, ``area``; 3D box: ``width``, ``height``,
    ``depth`` and ``volume_ml`` (``volume_px3``); polygon: ``area`` (outer ring minus holes)
    and ``perimeter`` (of the outer ring); polyline: ``length``; point: ``position_mm``
    (patient LPS coordinates) or ``position_px`` (the index); classification: ``{}``. In
    plane, the direction vectors are orthonormal, so a step ``(di_px, dj_px)`` is
    ``hypot(di_px * di, dj_px * dj)`` millimetres; the volume of a 3D box is
    ``width * height * depth`` times ``|det(direction)|`` (1 on an orthogonal grid, less
    on a sheared one, e.g. gantry tilt), in mL = 1000 mm^3.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, NoReturn, TypeAlias

import numpy as np

from medlabel.domain import polygons
from medlabel.domain.errors import InvalidInput
from medlabel.domain.geometry import Geometry
from medlabel.domain.labels import AnnotationKind, LabelClass, LabelSchema
from medlabel.domain.names import clean_text

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_RING_VERTICES = 10_000
MAX_HOLES = 100
MAX_DOCUMENT_VERTICES = 200_000
MAX_ANNOTATIONS = 10_000
MAX_COORDINATE = 1e7
MAX_INSTANCE = 65_535
MAX_TIME_SPENT_S = 86_400.0
MAX_NOTE_LENGTH = 2000
MAX_MODEL_TEXT = 128

ITEM_KINDS = frozenset({"volume", "image", "cine", "stack", "photo", "slide"})
VOLUMETRIC_ITEM_KINDS = frozenset({"volume"})  # the third axis is space, not time or order

Vertex: TypeAlias = tuple[float, float]
Ring: TypeAlias = tuple[Vertex, ...]
AttributeValue: TypeAlias = str | int | float | bool

_COMMON_KEYS = frozenset(
    {"id", "kind", "label", "attributes", "instance", "model", "time_spent_s", "note"}
)
_KIND_KEYS: dict[str, frozenset[str]] = {
    "box": frozenset({"slice", "min", "max"}),
    "polygon": frozenset({"slice", "points", "holes"}),
    "polyline": frozenset({"slice", "points"}),
    "point": frozenset({"point"}),
    "classification": frozenset({"scope", "slice"}),
}
_AXES = ("i", "j", "k")
_AXIS_NAMES = ("columns", "rows", "slices")


class Scope(StrEnum):
    ITEM = "item"
    FRAME = "frame"
    STUDY = "study"


@dataclass(frozen=True)
class ModelRef:
    """The model that produced an annotation."""

    name: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class ShapeContext:
    """What a document is validated against: the item's size and kind, and the schema."""

    shape: tuple[int, int, int]  # (columns, rows, slices), as in Geometry.shape
    schema: LabelSchema
    item_kind: str

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.shape
        ):
            raise ValueError(f"shape must be three positive integers, not {self.shape!r}")
        if self.item_kind not in ITEM_KINDS:
            raise ValueError(f"unknown item kind {self.item_kind!r}")


# ---- the model --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AnnotationBase:
    kind: ClassVar[AnnotationKind]

    id: str
    label: str
    attributes: tuple[tuple[str, AttributeValue], ...] = ()
    instance: int | None = None
    model: ModelRef | None = None
    time_spent_s: float | None = None
    note: str | None = None

    def attribute_dict(self) -> dict[str, AttributeValue]:
        return dict(self.attributes)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form; :func:`parse_annotation` reads it back unchanged."""
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "label": self.label,
            "attributes": self.attribute_dict(),
        }
        data.update(self._shape_dict())
        if self.instance is not None:
            data["instance"] = self.instance
        if self.model is not None:
            data["model"] = self.model.to_dict()
        if self.time_spent_s is not None:
            data["time_spent_s"] = self.time_spent_s
        if self.note is not None:
            data["note"] = self.note
        return data

    def _shape_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def vertex_count(self) -> int:
        """Polygon and polyline vertices (what :data:`MAX_DOCUMENT_VERTICES` counts)."""
        return 0


@dataclass(frozen=True, kw_only=True)
class Box(AnnotationBase):
    kind: ClassVar[AnnotationKind] = AnnotationKind.BOX

    slice: int | None  # None for a 3D box
    min_corner: tuple[float, ...]  # (i, j) or, for a 3D box, (i, j, k)
    max_corner: tuple[float, ...]

    @property
    def is_3d(self) -> bool:
        return self.slice is None

    def _shape_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {} if self.slice is None else {"slice": self.slice}
        data["min"] = list(self.min_corner)
        data["max"] = list(self.max_corner)
        return data


@dataclass(frozen=True, kw_only=True)
class Polygon(AnnotationBase):
    kind: ClassVar[AnnotationKind] = AnnotationKind.POLYGON

    slice: int
    points: Ring
    holes: tuple[Ring, ...] = ()

    def _shape_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "points": [list(p) for p in self.points],
            "holes": [[list(p) for p in hole] for hole in self.holes],
        }

    @property
    def vertex_count(self) -> int:
        return len(self.points) + sum(len(h) for h in self.holes)


@dataclass(frozen=True, kw_only=True)
class Polyline(AnnotationBase):
    kind: ClassVar[AnnotationKind] = AnnotationKind.POLYLINE

    slice: int
    points: Ring

    def _shape_dict(self) -> dict[str, Any]:
        return {"slice": self.slice, "points": [list(p) for p in self.points]}

    @property
    def vertex_count(self) -> int:
        return len(self.points)


@dataclass(frozen=True, kw_only=True)
class Point(AnnotationBase):
    kind: ClassVar[AnnotationKind] = AnnotationKind.POINT

    point: tuple[float, float, float]

    def _shape_dict(self) -> dict[str, Any]:
        return {"point": list(self.point)}


@dataclass(frozen=True, kw_only=True)
class Classification(AnnotationBase):
    kind: ClassVar[AnnotationKind] = AnnotationKind.CLASSIFICATION

    scope: Scope
    slice: int | None = None  # only, and always, for scope "frame"

    def _shape_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"scope": self.scope.value}
        if self.slice is not None:
            data["slice"] = self.slice
        return data


Annotation: TypeAlias = Box | Polygon | Polyline | Point | Classification


# ---- parsing ----------------------------------------------------------------------------


def _fail(field: str, problem: str, fix: str = "") -> NoReturn:
    raise InvalidInput(
        f"{field}: {problem}." + (f" {fix}" if fix else ""),
        errors=[{"field": field, "problem": problem}],
    )


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _number_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {_type_name(value)}, not a number"
    if isinstance(value, float) and math.isnan(value):
        return "is NaN"
    if isinstance(value, float) and math.isinf(value):
        return "is infinite"
    if abs(value) > MAX_COORDINATE:
        shown = f"{value:.6g}" if isinstance(value, float) else "a huge integer"
        return f"is {shown}, beyond the limit of +-{MAX_COORDINATE:.0e}"
    return None


def _coordinates(
    raw: object, field: str, limits: Sequence[int], *, what: str = "a point"
) -> tuple[float, ...]:
    """A point ``[i, j(, k)]`` checked against the image: ``limits`` are the axis sizes."""
    dims = len(limits)
    example = "[" + ", ".join(_AXES[:dims]) + "]"
    if not isinstance(raw, list | tuple) or len(raw) != dims:
        _fail(field, f"must be {what} {example} of {dims} numbers", f"Send e.g. {example}.")
    values: list[float] = []
    for axis, (value, size) in enumerate(zip(raw, limits, strict=True)):
        if type(value) is float and -0.5 <= value <= size - 0.5:  # the common case, fast
            values.append(value)
            continue
        problem = _number_problem(value)
        if problem:
            _fail(
                field,
                f"coordinate {_AXES[axis]} {problem}",
                "Coordinates must be finite numbers in image-index units.",
            )
        number = float(value)  # a finite int or float: _number_problem checked it
        if not -0.5 <= number <= size - 0.5:
            _fail(
                field,
                f"{_AXES[axis]} = {number!r} lies outside the image, whose {size} "
                f"{_AXIS_NAMES[axis]} span {_AXES[axis]} = -0.5 .. {size - 0.5}",
                "Move the point into the image.",
            )
        values.append(number)
    return tuple(values)


def _vertices(raw: object, field: str, ctx: ShapeContext, *, minimum: int) -> Ring:
    if not isinstance(raw, list | tuple):
        _fail(field, f"must be a list of [i, j] points, not {_type_name(raw)}")
    if len(raw) > MAX_RING_VERTICES:
        _fail(
            field,
            f"has {len(raw)} vertices; the limit is {MAX_RING_VERTICES}",
            "Simplify the outline (fewer vertices) or split it.",
        )
    if len(raw) < minimum:
        _fail(
            field,
            f"has {len(raw)} points; at least {minimum} are needed",
            f"Send {minimum} or more [i, j] points.",
        )
    limits = ctx.shape[:2]
    out: list[Vertex] = []
    for n, point in enumerate(raw):
        i, j = _coordinates(point, f"{field}[{n}]", limits)
        out.append((i, j))
    return tuple(out)


def _slice(data: Mapping[str, Any], where: str, ctx: ShapeContext) -> int:
    field = f"{where}.slice"
    if "slice" not in data:
        _fail(
            field,
            "is required",
            f"Give the index (0 .. {ctx.shape[2] - 1}) of the slice or frame it is drawn on.",
        )
    value = data["slice"]
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, f"must be an integer, not {_type_name(value)}")
    if not 0 <= value < ctx.shape[2]:
        _fail(
            field,
            f"is {value}, but the item has {ctx.shape[2]} slice(s)",
            f"Use 0 .. {ctx.shape[2] - 1}.",
        )
    return value


def _text(value: object, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        _fail(field, f"must be a string, not {_type_name(value)}")
    return clean_text(value, field=field, max_len=max_len)


def _label_class(data: Mapping[str, Any], kind: str, where: str, ctx: ShapeContext) -> LabelClass:
    label = data.get("label")
    if not isinstance(label, str):
        _fail(f"{where}.label", f"must be a class key (a string), not {_type_name(label)}")
    cls = ctx.schema.by_key(label)
    if cls is None:
        keys = [c.key for c in ctx.schema.classes]
        shown = ", ".join(keys[:30]) + (", ..." if len(keys) > 30 else "")
        _fail(
            f"{where}.label",
            f"{label[:80]!r} is not a class of this label schema",
            f"Use one of: {shown}." if keys else "The schema has no classes yet.",
        )
    if kind not in cls.kinds:
        allowed = ", ".join(k.value for k in cls.kinds)
        _fail(
            f"{where}.kind",
            f"class {cls.key!r} does not allow {kind} annotations; it allows {allowed}",
            "Change the kind or the label.",
        )
    return cls


def _attributes(raw: object, cls: LabelClass, where: str) -> tuple[tuple[str, AttributeValue], ...]:
    field = f"{where}.attributes"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        _fail(field, f"must be an object, not {_type_name(raw)}")
    for key in raw:
        if not isinstance(key, str) or cls.attribute(key) is None:
            known = ", ".join(a.key for a in cls.attributes)
            _fail(
                f"{field}.{key}",
                f"class {cls.key!r} has no attribute {str(key)[:80]!r}",
                f"Its attributes are: {known}." if known else "It has no attributes.",
            )
    out: list[tuple[str, AttributeValue]] = []
    for spec in cls.attributes:
        if spec.key in raw:
            value = raw[spec.key]
            spec.check_value(value, where=f"{field}.{spec.key}")
            out.append((spec.key, value))
        elif spec.default is not None:
            out.append((spec.key, spec.default))
        elif spec.required:
            _fail(
                f"{field}.{spec.key}",
                f"the required attribute {spec.key!r} of class {cls.key!r} is missing",
                "Give it a value.",
            )
    return tuple(out)


def _model(raw: object, where: str) -> ModelRef | None:
    field = f"{where}.model"
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"name", "version"}:
        _fail(field, 'must be {"name": ..., "version": ...} of the model that produced it')
    return ModelRef(
        name=_text(raw["name"], f"{field}.name", MAX_MODEL_TEXT),
        version=_text(raw["version"], f"{field}.version", MAX_MODEL_TEXT),
    )


def _common(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    instance = data.get("instance")
    if instance is not None:
        if isinstance(instance, bool) or not isinstance(instance, int):
            _fail(f"{where}.instance", f"must be an integer, not {_type_name(instance)}")
        if not 1 <= instance <= MAX_INSTANCE:
            _fail(f"{where}.instance", f"is {instance}; use 1 .. {MAX_INSTANCE}")
        out["instance"] = instance
    out["model"] = _model(data.get("model"), where)
    spent = data.get("time_spent_s")
    if spent is not None:
        if isinstance(spent, bool) or not isinstance(spent, int | float):
            _fail(f"{where}.time_spent_s", f"must be a number, not {_type_name(spent)}")
        if not 0 <= spent <= MAX_TIME_SPENT_S:  # also false for NaN
            _fail(
                f"{where}.time_spent_s",
                f"is {spent!r}; it must be 0 .. {MAX_TIME_SPENT_S:.0f} seconds",
            )
        out["time_spent_s"] = float(spent)
    note = data.get("note")
    if note is not None:
        if not isinstance(note, str):
            _fail(f"{where}.note", f"must be a string, not {_type_name(note)}")
        text = clean_text(
            note, field=f"{where}.note", max_len=MAX_NOTE_LENGTH, min_len=0, multiline=True
        )
        out["note"] = text or None
    return out


def parse_annotation(data: Mapping[str, Any], *, index: int, ctx: ShapeContext) -> Annotation:
    """Validate one annotation object (see the module docstring) or raise InvalidInput."""
    where = f"annotations[{index}]"
    if not isinstance(data, Mapping):
        _fail(where, f"must be an object, not {_type_name(data)}")
    ann_id = data.get("id")
    if not isinstance(ann_id, str) or not ID_RE.fullmatch(ann_id):
        _fail(
            f"{where}.id",
            "is missing" if ann_id is None else f"{str(ann_id)[:80]!r} is not a valid id",
            "Give each annotation an id of 1-64 letters, digits, '_' or '-', unique in the "
            "document.",
        )
    kind = data.get("kind")
    if kind == AnnotationKind.MASK.value:
        _fail(
            f"{where}.kind",
            "masks are not part of annotation documents",
            "Save masks through the binary mask API.",
        )
    if not isinstance(kind, str) or kind not in _KIND_KEYS:
        _fail(
            f"{where}.kind",
            f"must be one of {', '.join(_KIND_KEYS)}, not {str(kind)[:40]!r}",
        )
    unknown = sorted(str(k)[:40] for k in set(data) - _COMMON_KEYS - _KIND_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(_COMMON_KEYS | _KIND_KEYS[kind]))
        _fail(
            f"{where}.{unknown[0]}",
            f"is not a field of a {kind} annotation",
            f"Leave it out; the fields are: {allowed}.",
        )
    cls = _label_class(data, kind, where, ctx)
    common: dict[str, Any] = {
        "id": ann_id,
        "label": cls.key,
        "attributes": _attributes(data.get("attributes"), cls, where),
        **_common(data, where),
    }
    if kind == "box":
        return _box(data, where, ctx, common)
    if kind == "polygon":
        return _polygon(data, where, ctx, common)
    if kind == "polyline":
        return _polyline(data, where, ctx, common)
    if kind == "point":
        return _point(data, where, ctx, common)
    return _classification(data, where, ctx, common)


def _box(data: Mapping[str, Any], where: str, ctx: ShapeContext, common: dict[str, Any]) -> Box:
    raw_min, raw_max = data.get("min"), data.get("max")
    if "slice" in data:
        k = _slice(data, where, ctx)
        limits: tuple[int, ...] = ctx.shape[:2]
    else:
        k = None
        if not isinstance(raw_min, list | tuple) or len(raw_min) != 3:
            _fail(
                f"{where}.slice",
                "is required for a box on one slice",
                'Send "slice": k with 2D corners [i, j], or 3D corners [i, j, k] without a slice.',
            )
        if ctx.item_kind not in VOLUMETRIC_ITEM_KINDS or ctx.shape[2] < 2:
            _fail(
                f"{where}.min",
                f"a 3D box needs a volume with more than one slice; this {ctx.item_kind} "
                f"has {ctx.shape[2]}",
                'Draw a 2D box: "slice": k with corners [i, j].',
            )
        limits = ctx.shape
    lo = _coordinates(raw_min, f"{where}.min", limits, what="a corner")
    hi = _coordinates(raw_max, f"{where}.max", limits, what="a corner")
    for axis, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if not a < b:
            _fail(
                f"{where}.max",
                f"max {_AXES[axis]} ({b!r}) must be greater than min {_AXES[axis]} ({a!r})",
                "A box needs a positive size on every axis; put the smaller corner in min.",
            )
    return Box(slice=k, min_corner=lo, max_corner=hi, **common)


def _polygon(
    data: Mapping[str, Any], where: str, ctx: ShapeContext, common: dict[str, Any]
) -> Polygon:
    k = _slice(data, where, ctx)
    outer = _vertices(data.get("points"), f"{where}.points", ctx, minimum=3)
    raw_holes = data.get("holes")
    if raw_holes is None:
        raw_holes = []
    if not isinstance(raw_holes, list | tuple):
        _fail(f"{where}.holes", f"must be a list of rings, not {_type_name(raw_holes)}")
    if len(raw_holes) > MAX_HOLES:
        _fail(f"{where}.holes", f"has {len(raw_holes)} holes; the limit is {MAX_HOLES}")
    holes = tuple(
        _vertices(h, f"{where}.holes[{n}]", ctx, minimum=3) for n, h in enumerate(raw_holes)
    )
    fix = "Correct the outline and send it again."
    rings = [(f"{where}.points", outer)]
    rings += [(f"{where}.holes[{n}]", h) for n, h in enumerate(holes)]
    for field, ring in rings:
        issue = polygons.ring_issue(ring)
        if issue:
            _fail(field if issue.vertex is None else f"{field}[{issue.vertex}]", issue.message, fix)
    issue = polygons.holes_issue(outer, holes)
    if issue:
        _fail(f"{where}.holes" if issue.ring is None else f"{where}.holes[{issue.ring}]",
              issue.message, fix)  # fmt: skip
    return Polygon(slice=k, points=outer, holes=holes, **common)


def _polyline(
    data: Mapping[str, Any], where: str, ctx: ShapeContext, common: dict[str, Any]
) -> Polyline:
    k = _slice(data, where, ctx)
    points = _vertices(data.get("points"), f"{where}.points", ctx, minimum=2)
    for n in range(1, len(points)):
        if points[n] == points[n - 1]:
            _fail(
                f"{where}.points[{n}]",
                f"points {n - 1} and {n} are the same point",
                "Remove one of them.",
            )
    return Polyline(slice=k, points=points, **common)


def _point(data: Mapping[str, Any], where: str, ctx: ShapeContext, common: dict[str, Any]) -> Point:
    i, j, k = _coordinates(data.get("point"), f"{where}.point", ctx.shape)
    if ctx.item_kind not in VOLUMETRIC_ITEM_KINDS and k != int(k):
        _fail(
            f"{where}.point",
            f"k = {k!r} falls between frames; on this {ctx.item_kind} k is a whole frame number",
            "Round k to the frame the point is on (0 on a single image).",
        )
    return Point(point=(i, j, k), **common)


def _classification(
    data: Mapping[str, Any], where: str, ctx: ShapeContext, common: dict[str, Any]
) -> Classification:
    raw = data.get("scope")
    if not isinstance(raw, str) or raw not in {s.value for s in Scope}:
        _fail(
            f"{where}.scope",
            f"must be one of item, frame, study, not {str(raw)[:40]!r}",
        )
    scope = Scope(raw)
    k: int | None = None
    if scope is Scope.FRAME:
        k = _slice(data, where, ctx)
    elif "slice" in data:
        _fail(
            f"{where}.slice",
            f"is only allowed with scope 'frame', not {scope.value!r}",
            "Leave it out, or use scope 'frame'.",
        )
    return Classification(scope=scope, slice=k, **common)


def parse_document(data: Mapping[str, Any], ctx: ShapeContext) -> tuple[Annotation, ...]:
    """Validate ``{"annotations": [...]}``: every annotation, the limits and unique ids."""
    if not isinstance(data, Mapping):
        _fail("document", f'must be an object {{"annotations": [...]}}, not {_type_name(data)}')
    raw = data.get("annotations")
    if not isinstance(raw, list | tuple):
        _fail("annotations", f"must be a list, not {_type_name(raw)}")
    if len(raw) > MAX_ANNOTATIONS:
        _fail(
            "annotations",
            f"holds {len(raw)} annotations; the limit is {MAX_ANNOTATIONS}",
            "Split the work across items or documents.",
        )
    total = sum(_raw_vertex_count(item) for item in raw)  # before any expensive check
    if total > MAX_DOCUMENT_VERTICES:
        _fail(
            "annotations",
            f"hold {total} polygon and polyline vertices; the limit is {MAX_DOCUMENT_VERTICES}",
            "Simplify the outlines.",
        )
    seen: dict[str, int] = {}
    out: list[Annotation] = []
    for index, item in enumerate(raw):
        ann = parse_annotation(item, index=index, ctx=ctx)
        if ann.id in seen:
            _fail(
                f"annotations[{index}].id",
                f"{ann.id!r} is also the id of annotations[{seen[ann.id]}]",
                "Ids must be unique within a document.",
            )
        seen[ann.id] = index
        out.append(ann)
    return tuple(out)


def _raw_vertex_count(item: object) -> int:
    if not isinstance(item, Mapping):
        return 0
    count = 0
    for key in ("points", "holes"):
        value = item.get(key)
        if not isinstance(value, list | tuple):
            continue
        if key == "points":
            count += len(value)
        else:
            count += sum(len(h) for h in value if isinstance(h, list | tuple))
    return count


# ---- reading stored annotations (tolerant: trust what was validated on write) ----------------


def load_stored(stored: Sequence[Mapping[str, Any]]) -> tuple[Annotation, ...]:
    """Annotations from their stored canonical dicts (:meth:`to_dict` output), without a
    schema: what was saved under any schema version stays readable."""
    return tuple(annotation_from_stored(data) for data in stored)


def annotation_from_stored(data: Mapping[str, Any]) -> Annotation:
    model = data.get("model")
    spent = data.get("time_spent_s")
    common: dict[str, Any] = {
        "id": str(data["id"]),
        "label": str(data["label"]),
        "attributes": tuple((str(k), v) for k, v in (data.get("attributes") or {}).items()),
        "instance": data.get("instance"),
        "model": ModelRef(name=str(model["name"]), version=str(model["version"]))
        if model
        else None,
        "time_spent_s": None if spent is None else float(spent),
        "note": data.get("note"),
    }
    kind = data["kind"]
    slice_ = None if data.get("slice") is None else int(data["slice"])
    if kind == "box":
        return Box(
            slice=slice_,
            min_corner=tuple(float(v) for v in data["min"]),
            max_corner=tuple(float(v) for v in data["max"]),
            **common,
        )
    if kind == "polygon":
        return Polygon(
            slice=int(data["slice"]),
            points=_stored_ring(data["points"]),
            holes=tuple(_stored_ring(h) for h in data.get("holes") or ()),
            **common,
        )
    if kind == "polyline":
        return Polyline(slice=int(data["slice"]), points=_stored_ring(data["points"]), **common)
    if kind == "point":
        i, j, k = (float(v) for v in data["point"])
        return Point(point=(i, j, k), **common)
    if kind == "classification":
        return Classification(scope=Scope(data["scope"]), slice=slice_, **common)
    raise ValueError(f"unknown stored annotation kind {kind!r}")


def _stored_ring(points: Sequence[Sequence[float]]) -> Ring:
    return tuple((float(p[0]), float(p[1])) for p in points)


# ---- measurements and differences -----------------------------------------------------------


def measure(
    annotation: Annotation, geometry: Geometry, *, physical: bool
) -> dict[str, float | str | list[float]]:
    """Sizes of an annotation; see the module docstring for the keys and units."""
    unit = "mm" if physical else "px"
    di, dj, dk = geometry.spacing_mm if physical else (1.0, 1.0, 1.0)
    out: dict[str, float | str | list[float]] = {"units": unit}
    if isinstance(annotation, Box):
        lo, hi = annotation.min_corner, annotation.max_corner
        width, height = (hi[0] - lo[0]) * di, (hi[1] - lo[1]) * dj
        out[f"width_{unit}"] = width
        out[f"height_{unit}"] = height
        if annotation.is_3d:
            depth = (hi[2] - lo[2]) * dk
            out[f"depth_{unit}"] = depth
            if physical:
                shear = abs(float(np.linalg.det(np.asarray(geometry.direction, dtype=float))))
                out["volume_ml"] = width * height * depth * shear / 1000.0
            else:
                out["volume_px3"] = width * height * depth
        else:
            out[f"area_{unit}2"] = width * height
    elif isinstance(annotation, Polygon):
        out[f"area_{unit}2"] = polygons.polygon_area(annotation.points, annotation.holes) * di * dj
        out[f"perimeter_{unit}"] = polygons.ring_perimeter(annotation.points, scale=(di, dj))
    elif isinstance(annotation, Polyline):
        out[f"length_{unit}"] = polygons.polyline_length(annotation.points, scale=(di, dj))
    elif isinstance(annotation, Point):
        if physical:
            out["position_mm"] = [float(v) for v in geometry.index_to_patient(annotation.point)]
        else:
            out["position_px"] = [float(v) for v in annotation.point]
    else:
        return {}
    return out


def diff_documents(old: Sequence[Annotation], new: Sequence[Annotation]) -> dict[str, list[str]]:
    """Ids added, removed and changed (any field differs) from ``old`` to ``new``, sorted."""
    before = {a.id: a for a in old}
    after = {a.id: a for a in new}
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in after.keys() & before.keys() if after[k] != before[k]),
    }
