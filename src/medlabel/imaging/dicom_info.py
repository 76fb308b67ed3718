"""The facts of one DICOM instance that series assembly and display need (``InstanceInfo``).

Read tolerantly: missing or malformed optional attributes become ``None``; only a pixel
module that cannot be used raises. Enhanced multi-frame objects are read through their
shared and per-frame functional groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from medlabel.imaging.dicom_limits import quiet
from medlabel.imaging.dicom_pixel_module import PixelModule, pixel_module
from medlabel.imaging.dicom_values import (
    Orientation,
    Vec3,
    as_dataset,
    as_int,
    as_number,
    as_numbers,
    as_orientation,
    as_pair,
    as_text,
    as_texts,
    as_upper,
    as_vec3,
    as_yes_no,
    first_item,
    get_value,
    is_multi,
    positive,
)

_SHARED_GROUPS, _PER_FRAME_GROUPS = 0x52009229, 0x52009230
_PLANE_POSITION, _PLANE_ORIENTATION, _PIXEL_MEASURES = 0x00209113, 0x00209116, 0x00289110
_VALUE_TRANSFORMATION, _FRAME_VOI_LUT = 0x00289145, 0x00289132
_POSITION, _ORIENTATION, _SPACING, _THICKNESS = 0x00200032, 0x00200037, 0x00280030, 0x00180050
_SLOPE, _INTERCEPT, _CENTER, _WIDTH = 0x00281053, 0x00281052, 0x00281050, 0x00281051


@dataclass(frozen=True)
class InstanceInfo:
    """What series assembly and display need from one DICOM instance.

    Values are plain Python numbers and strings, ``None`` when absent or unparseable.
    ``pixel_spacing`` is DICOM's (row spacing, column spacing) in mm; ``spacing_source``
    says where it came from: ``"PixelSpacing"`` (patient plane), ``"functional-groups"``
    (Pixel Measures of an enhanced object), ``"ImagerPixelSpacing"`` (at the detector, not
    corrected for magnification), ``"ultrasound-region"`` (the first region calibrated in
    cm). Enhanced multi-frame objects give ``per_frame_positions``/``per_frame_orientation``
    (one entry per frame) and their first frame's values in ``image_position``/
    ``image_orientation``; window values come from the top level or, for enhanced objects,
    the shared (else first frame's) functional groups.

    Rescale (Modality LUT): a top-level Rescale Slope/Intercept applies to every frame.
    Without one, each frame of an enhanced object takes the Pixel Value Transformation of
    its own per-frame functional group, each of slope and intercept falling back to the
    shared groups' value when the frame does not carry it. ``per_frame_rescale`` holds one
    ``(slope, intercept)`` per frame when that gives every frame both values and the frames
    do not all agree; it is ``None`` otherwise (a frame without either value leaves no
    partial list). ``rescale_slope``/``rescale_intercept`` are the top-level values, else
    the values every frame agrees on, else the shared (else first frame's) ones; they are
    the rescale of every frame whenever ``per_frame_rescale`` is ``None``. Pixel fields are
    ``None`` for objects without pixel data.
    """

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_uid: str | None
    series_uid: str | None
    frame_of_reference_uid: str | None
    modality: str | None
    rows: int | None
    columns: int | None
    frames: int | None
    samples_per_pixel: int | None
    photometric: str | None
    bits_allocated: int | None
    bits_stored: int | None
    pixel_representation: int | None
    planar_configuration: int | None
    transfer_syntax: str | None
    image_orientation: Orientation | None
    image_position: Vec3 | None
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    slice_thickness: float | None
    per_frame_positions: tuple[Vec3, ...] | None
    per_frame_orientation: tuple[Orientation, ...] | None
    instance_number: int | None
    acquisition_number: int | None
    echo_number: int | None
    temporal_position: int | None
    number_of_temporal_positions: int | None
    image_type: tuple[str, ...]
    rescale_slope: float | None
    rescale_intercept: float | None
    window_centers: tuple[float, ...]
    window_widths: tuple[float, ...]
    burned_in_annotation: str | None
    frame_time_ms: float | None
    # Last and defaulted, so that code (and pickles) from before it keep working.
    per_frame_rescale: tuple[tuple[float, float], ...] | None = None


def instance_info(ds: Dataset) -> InstanceInfo:
    """The facts of ``ds``; tolerant of missing or malformed optional attributes. Raises
    ``InvalidInput``/``Unsupported`` only for a pixel module that cannot be used."""
    with quiet():
        pixels = pixel_module(ds)
        groups = _Groups(ds)
        return InstanceInfo(
            **_identity(ds), **_pixel_facts(pixels), **_plane(ds, groups, pixels),
            **_display(ds, groups), **_rescale(ds, groups, pixels),
        )  # fmt: skip


def _identity(ds: Dataset) -> dict[str, Any]:
    meta = getattr(ds, "file_meta", None)
    return {
        "sop_class_uid": as_text(get_value(ds, 0x00080016)) or as_text(get_value(meta, 0x00020002)),
        "sop_instance_uid": as_text(get_value(ds, 0x00080018)),
        "study_uid": as_text(get_value(ds, 0x0020000D)),
        "series_uid": as_text(get_value(ds, 0x0020000E)),
        "frame_of_reference_uid": as_text(get_value(ds, 0x00200052)),
        "modality": as_upper(get_value(ds, 0x00080060)),
        "transfer_syntax": as_text(get_value(meta, 0x00020010)),
        "instance_number": as_int(get_value(ds, 0x00200013)),
        "acquisition_number": as_int(get_value(ds, 0x00200012)),
        "echo_number": as_int(get_value(ds, 0x00180086)),
        "temporal_position": as_int(get_value(ds, 0x00200100)),
        "number_of_temporal_positions": as_int(get_value(ds, 0x00200105)),
        "image_type": as_texts(get_value(ds, 0x00080008)),
    }


def _pixel_facts(pixels: PixelModule | None) -> dict[str, Any]:
    return {
        "rows": pixels.rows if pixels else None,
        "columns": pixels.columns if pixels else None,
        "frames": pixels.frames if pixels else None,
        "samples_per_pixel": pixels.samples if pixels else None,
        "photometric": pixels.photometric if pixels else None,
        "bits_allocated": pixels.bits_allocated if pixels else None,
        "bits_stored": pixels.bits_stored if pixels else None,
        "pixel_representation": pixels.pixel_representation if pixels else None,
        "planar_configuration": pixels.planar_configuration if pixels else None,
    }


def _plane(ds: Dataset, groups: _Groups, pixels: PixelModule | None) -> dict[str, Any]:
    """Image Plane facts: top level first, then the functional groups."""
    positions = groups.per_frame(_PLANE_POSITION, _POSITION, as_vec3)
    orientations = groups.per_frame(_PLANE_ORIENTATION, _ORIENTATION, as_orientation)
    spacing, source = _spacing(ds, groups)
    thickness = positive(as_number(get_value(ds, _THICKNESS)))
    thickness = thickness or positive(as_number(groups.value(_PIXEL_MEASURES, _THICKNESS)))
    return {
        "image_orientation": as_orientation(get_value(ds, _ORIENTATION))
        or (orientations[0] if orientations else None)
        or as_orientation(groups.value(_PLANE_ORIENTATION, _ORIENTATION)),
        "image_position": as_vec3(get_value(ds, _POSITION))
        or (positions[0] if positions else None)
        or as_vec3(groups.value(_PLANE_POSITION, _POSITION)),
        "pixel_spacing": spacing,
        "spacing_source": source,
        "slice_thickness": thickness,
        "per_frame_positions": positions if _all_frames(positions, pixels) else None,
        "per_frame_orientation": orientations if _all_frames(orientations, pixels) else None,
    }


def _rescale(ds: Dataset, groups: _Groups, pixels: PixelModule | None) -> dict[str, Any]:
    """Rescale Slope/Intercept: the top level's for every frame, else per frame (the
    frame's Pixel Value Transformation, else the shared one); see ``InstanceInfo``."""
    slope, intercept = get_value(ds, _SLOPE), get_value(ds, _INTERCEPT)
    if slope is not None or intercept is not None:
        return {
            "rescale_slope": as_number(slope),
            "rescale_intercept": as_number(intercept),
            "per_frame_rescale": None,
        }
    slopes = groups.per_frame(_VALUE_TRANSFORMATION, _SLOPE, as_number)
    intercepts = groups.per_frame(_VALUE_TRANSFORMATION, _INTERCEPT, as_number)
    per_frame = None
    if slopes and intercepts and _all_frames(slopes, pixels) and _all_frames(intercepts, pixels):
        per_frame = tuple(zip(slopes, intercepts, strict=True))
        if len(set(per_frame)) == 1:  # every frame agrees: one rescale, no list
            return {
                "rescale_slope": per_frame[0][0],
                "rescale_intercept": per_frame[0][1],
                "per_frame_rescale": None,
            }
    return {
        "rescale_slope": as_number(groups.value(_VALUE_TRANSFORMATION, _SLOPE)),
        "rescale_intercept": as_number(groups.value(_VALUE_TRANSFORMATION, _INTERCEPT)),
        "per_frame_rescale": per_frame,
    }


def _display(ds: Dataset, groups: _Groups) -> dict[str, Any]:
    centers, widths = _windows(ds, groups)
    return {
        "window_centers": centers,
        "window_widths": widths,
        "burned_in_annotation": as_yes_no(get_value(ds, 0x00280301)),
        "frame_time_ms": positive(as_number(get_value(ds, 0x00181063))),
    }


class _Groups:
    """The shared and per-frame functional groups of an enhanced multi-frame object."""

    def __init__(self, ds: Dataset) -> None:
        self.shared = first_item(ds, _SHARED_GROUPS)
        frames = get_value(ds, _PER_FRAME_GROUPS)
        self.frames: list[Any] = list(frames) if is_multi(frames) else []

    def value(self, macro: int, tag: int) -> Any:
        """``tag`` in the ``macro`` of the shared groups, else of the first frame."""
        shared = get_value(first_item(self.shared, macro), tag)
        if shared is not None or not self.frames:
            return shared
        return get_value(first_item(as_dataset(self.frames[0]), macro), tag)

    def per_frame(self, macro: int, tag: int, parse: Any) -> tuple[Any, ...] | None:
        """One parsed value per frame (per-frame groups, else the shared one repeated)."""
        if not self.frames:
            return None
        shared = parse(get_value(first_item(self.shared, macro), tag))
        values = []
        for group in self.frames:
            value = parse(get_value(first_item(as_dataset(group), macro), tag))
            value = shared if value is None else value  # not ``or``: 0.0 is a value
            if value is None:
                return None
            values.append(value)
        return tuple(values)


def _all_frames(values: tuple[Any, ...] | None, pixels: PixelModule | None) -> bool:
    return values is not None and pixels is not None and len(values) == pixels.frames


def _spacing(ds: Dataset, groups: _Groups) -> tuple[tuple[float, float] | None, str | None]:
    candidates = (
        (get_value(ds, _SPACING), "PixelSpacing"),
        (groups.value(_PIXEL_MEASURES, _SPACING), "functional-groups"),
        (get_value(ds, 0x00181164), "ImagerPixelSpacing"),
    )
    for raw, source in candidates:
        pair = as_pair(raw)
        if pair is not None:
            return pair, source
    regions = get_value(ds, 0x00186011)
    for item in regions if is_multi(regions) else []:
        region = as_dataset(item)
        units = (as_int(get_value(region, 0x00186024)), as_int(get_value(region, 0x00186026)))
        dx, dy = as_number(get_value(region, 0x0018602C)), as_number(get_value(region, 0x0018602E))
        if units == (3, 3) and dx and dy:  # 3: centimetres
            return (abs(dy) * 10.0, abs(dx) * 10.0), "ultrasound-region"
    return None, None


def _windows(ds: Dataset, groups: _Groups) -> tuple[tuple[float, ...], tuple[float, ...]]:
    centers, widths = get_value(ds, _CENTER), get_value(ds, _WIDTH)
    if centers is None:
        centers = groups.value(_FRAME_VOI_LUT, _CENTER)
        widths = groups.value(_FRAME_VOI_LUT, _WIDTH)
    pairs = [
        (c, w)
        for c, w in zip(as_numbers(centers), as_numbers(widths), strict=False)
        if c is not None and w is not None and w > 0
    ]
    return tuple(c for c, _ in pairs), tuple(w for _, w in pairs)
