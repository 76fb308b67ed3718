"""Label schemas: the classes a project annotates, their allowed kinds and attributes.

A schema is immutable; editing a project's schema creates a new *version*. Each class has
a stable ``key`` (used by annotations) and a stable integer ``value`` (its voxel value in
label maps, e.g. NIfTI and DICOM SEG exports). Across all versions of a project a key keeps
its value and a value keeps its key, so annotations made under any version stay meaningful.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from medlabel.domain.errors import InvalidInput
from medlabel.domain.names import KEY_RE, clean_text, fold

MAX_CLASSES = 1000
MAX_ATTRIBUTES = 64
MAX_OPTIONS = 256
MAX_LABEL_VALUE = 65535
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
HOTKEY_RE = re.compile(r"^[a-z0-9]$")


class AnnotationKind(StrEnum):
    BOX = "box"
    POLYGON = "polygon"
    POLYLINE = "polyline"
    POINT = "point"
    MASK = "mask"
    CLASSIFICATION = "classification"


class AttributeType(StrEnum):
    ENUM = "enum"
    BOOL = "bool"
    NUMBER = "number"
    TEXT = "text"


@dataclass(frozen=True)
class CodedConcept:
    """A coded concept as DICOM writes it: (CodeValue, CodingSchemeDesignator, CodeMeaning)."""

    value: str
    scheme: str
    meaning: str

    def to_dict(self) -> dict[str, str]:
        return {"value": self.value, "scheme": self.scheme, "meaning": self.meaning}


@dataclass(frozen=True)
class AttributeSpec:
    key: str
    name: str
    type: AttributeType
    required: bool = False
    options: tuple[str, ...] = ()
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 1000
    default: str | float | bool | None = None

    def check_value(self, value: object, *, where: str) -> None:
        """Raise InvalidInput if ``value`` is not a valid value of this attribute."""
        problem = _attribute_value_problem(self, value)
        if problem:
            raise InvalidInput(
                f"{where}: attribute {self.key!r} {problem}.",
                errors=[{"field": where, "attribute": self.key, "problem": problem}],
            )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
        }
        if self.type is AttributeType.ENUM:
            data["options"] = list(self.options)
        if self.type is AttributeType.NUMBER:
            data.update(unit=self.unit, minimum=self.minimum, maximum=self.maximum)
        if self.type is AttributeType.TEXT:
            data["max_length"] = self.max_length
        if self.default is not None:
            data["default"] = self.default
        return data


def _attribute_value_problem(spec: AttributeSpec, value: object) -> str | None:
    if spec.type is AttributeType.BOOL:
        return None if isinstance(value, bool) else "must be true or false"
    if spec.type is AttributeType.ENUM:
        if isinstance(value, str) and value in spec.options:
            return None
        return f"must be one of {list(spec.options)}"
    if spec.type is AttributeType.TEXT:
        if not isinstance(value, str):
            return "must be a string"
        return (
            None
            if len(value) <= spec.max_length
            else (f"must be at most {spec.max_length} characters")
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a finite number"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be >= {spec.minimum} {spec.unit or ''}".rstrip()
    if spec.maximum is not None and value > spec.maximum:
        return f"must be <= {spec.maximum} {spec.unit or ''}".rstrip()
    return None


@dataclass(frozen=True)
class LabelClass:
    key: str
    name: str
    value: int
    color: str
    kinds: tuple[AnnotationKind, ...]
    hotkey: str | None = None
    description: str = ""
    attributes: tuple[AttributeSpec, ...] = ()
    segmented_property_category: CodedConcept | None = None
    segmented_property_type: CodedConcept | None = None

    def attribute(self, key: str) -> AttributeSpec | None:
        return next((a for a in self.attributes if a.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "value": self.value,
            "color": self.color,
            "kinds": [k.value for k in self.kinds],
            "hotkey": self.hotkey,
            "description": self.description,
            "attributes": [a.to_dict() for a in self.attributes],
            "segmented_property_category": _concept_dict(self.segmented_property_category),
            "segmented_property_type": _concept_dict(self.segmented_property_type),
        }


def _concept_dict(concept: CodedConcept | None) -> dict[str, str] | None:
    return concept.to_dict() if concept else None


@dataclass(frozen=True)
class LabelSchema:
    classes: tuple[LabelClass, ...] = field(default_factory=tuple)

    def by_key(self, key: str) -> LabelClass | None:
        return next((c for c in self.classes if c.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {"classes": [c.to_dict() for c in self.classes]}

    def validate(self) -> LabelSchema:
        """Check the invariants between classes; return self for chaining."""
        if len(self.classes) > MAX_CLASSES:
            raise InvalidInput(f"A schema may have at most {MAX_CLASSES} classes.")
        _unique(self.classes, lambda c: c.key, "key", "classes")
        _unique(self.classes, lambda c: fold(c.name), "name", "classes")
        _unique(self.classes, lambda c: c.value, "value", "classes")
        _unique([c for c in self.classes if c.hotkey], lambda c: c.hotkey, "hotkey", "classes")
        for i, cls in enumerate(self.classes):
            _validate_class(cls, f"classes[{i}]")
        return self

    def changes_from(self, previous: LabelSchema) -> dict[str, list[str]]:
        """Keys of classes added, removed and changed relative to ``previous``."""
        old = {c.key: c for c in previous.classes}
        new = {c.key: c for c in self.classes}
        return {
            "added": sorted(new.keys() - old.keys()),
            "removed": sorted(old.keys() - new.keys()),
            "changed": sorted(k for k in new.keys() & old.keys() if new[k] != old[k]),
        }


def _unique(items: Sequence[Any], key: Any, what: str, field_name: str) -> None:
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise InvalidInput(
                f"{field_name}[{i}] has the same {what} as {field_name}[{seen[k]}] "
                f"({getattr(item, what, k)!r}); each class needs a distinct {what}.",
                errors=[{"field": f"{field_name}[{i}].{what}", "problem": "duplicate"}],
            )
        seen[k] = i


def _validate_class(cls: LabelClass, where: str) -> None:
    if not KEY_RE.fullmatch(cls.key):
        raise InvalidInput(f"{where}.key {cls.key!r} must match {KEY_RE.pattern}.")
    if not 1 <= cls.value <= MAX_LABEL_VALUE:
        raise InvalidInput(f"{where}.value must be between 1 and {MAX_LABEL_VALUE}.")
    if not COLOR_RE.fullmatch(cls.color):
        raise InvalidInput(f"{where}.color {cls.color!r} must be '#RRGGBB'.")
    if cls.hotkey is not None and not HOTKEY_RE.fullmatch(cls.hotkey):
        raise InvalidInput(f"{where}.hotkey must be one lower-case letter or digit.")
    if not cls.kinds:
        raise InvalidInput(f"{where}.kinds must name at least one annotation kind.")
    if len(set(cls.kinds)) != len(cls.kinds):
        raise InvalidInput(f"{where}.kinds lists a kind twice.")
    if len(cls.attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"{where} has more than {MAX_ATTRIBUTES} attributes.")
    _unique(cls.attributes, lambda a: a.key, "key", f"{where}.attributes")
    for j, attr in enumerate(cls.attributes):
        _validate_attribute(attr, f"{where}.attributes[{j}]")


def _validate_attribute(attr: AttributeSpec, where: str) -> None:
    if not KEY_RE.fullmatch(attr.key):
        raise InvalidInput(f"{where}.key {attr.key!r} must match {KEY_RE.pattern}.")
    if attr.type is AttributeType.ENUM:
        if not attr.options:
            raise InvalidInput(f"{where}: an enum attribute needs at least one option.")
        if len(attr.options) > MAX_OPTIONS:
            raise InvalidInput(f"{where}: at most {MAX_OPTIONS} options.")
        if len({fold(o) for o in attr.options}) != len(attr.options):
            raise InvalidInput(f"{where}.options contains duplicates.")
    elif attr.options:
        raise InvalidInput(f"{where}.options is only allowed for enum attributes.")
    if attr.type is AttributeType.NUMBER:
        for bound in (attr.minimum, attr.maximum):
            if bound is not None and not math.isfinite(bound):
                raise InvalidInput(f"{where}: minimum and maximum must be finite numbers.")
        if attr.minimum is not None and attr.maximum is not None and attr.minimum > attr.maximum:
            raise InvalidInput(f"{where}: minimum {attr.minimum} is above maximum {attr.maximum}.")
    elif attr.unit or attr.minimum is not None or attr.maximum is not None:
        raise InvalidInput(f"{where}: unit, minimum and maximum apply to number attributes only.")
    if attr.default is not None:
        attr.check_value(attr.default, where=f"{where}.default")


def check_evolution(new: LabelSchema, history: Iterable[LabelSchema]) -> None:
    """Across a project's history a class key keeps its value and a value keeps its key."""
    key_to_value: dict[str, int] = {}
    value_to_key: dict[int, str] = {}
    for schema in history:
        for cls in schema.classes:
            key_to_value.setdefault(cls.key, cls.value)
            value_to_key.setdefault(cls.value, cls.key)
    for i, cls in enumerate(new.classes):
        if cls.key in key_to_value and key_to_value[cls.key] != cls.value:
            raise InvalidInput(
                f"classes[{i}] ({cls.key!r}) had value {key_to_value[cls.key]} in an earlier "
                f"version; a class keeps its label value forever. Use value "
                f"{key_to_value[cls.key]} or give the class a new key.",
                errors=[{"field": f"classes[{i}].value", "problem": "value_changed"}],
            )
        if cls.value in value_to_key and value_to_key[cls.value] != cls.key:
            raise InvalidInput(
                f"classes[{i}] uses value {cls.value}, which belonged to class "
                f"{value_to_key[cls.value]!r} in an earlier version; values are never reused. "
                "Leave out 'value' to get a fresh one.",
                errors=[{"field": f"classes[{i}].value", "problem": "value_reused"}],
            )


def next_free_value(used: Iterable[int]) -> int:
    return max(used, default=0) + 1


# ---- reading stored schemas (tolerant: trust what was validated on write) -------------


def schema_from_dict(data: Mapping[str, Any]) -> LabelSchema:
    return LabelSchema(classes=tuple(_class_from_dict(c) for c in data.get("classes", [])))


def _concept_from_dict(data: Mapping[str, Any] | None) -> CodedConcept | None:
    if not data:
        return None
    return CodedConcept(
        value=str(data["value"]), scheme=str(data["scheme"]), meaning=str(data["meaning"])
    )


def _class_from_dict(data: Mapping[str, Any]) -> LabelClass:
    return LabelClass(
        key=data["key"],
        name=data["name"],
        value=int(data["value"]),
        color=data["color"],
        kinds=tuple(AnnotationKind(k) for k in data["kinds"]),
        hotkey=data.get("hotkey"),
        description=data.get("description", ""),
        attributes=tuple(attribute_from_dict(a) for a in data.get("attributes", [])),
        segmented_property_category=_concept_from_dict(data.get("segmented_property_category")),
        segmented_property_type=_concept_from_dict(data.get("segmented_property_type")),
    )


def attribute_from_dict(data: Mapping[str, Any]) -> AttributeSpec:
    return AttributeSpec(
        key=data["key"],
        name=data["name"],
        type=AttributeType(data["type"]),
        required=bool(data.get("required", False)),
        options=tuple(data.get("options") or ()),
        unit=data.get("unit"),
        minimum=data.get("minimum"),
        maximum=data.get("maximum"),
        max_length=int(data.get("max_length", 1000)),
        default=data.get("default"),
    )


def clean_class_name(name: str, where: str) -> str:
    return clean_text(name, field=f"{where}.name", max_len=128)
