"""Statistics of labelmap masks in physical units.

Array convention: a labelmap volume is a numpy array of shape ``(slices, rows, columns)`` =
``(k, j, i)``, dtype ``uint8`` or ``uint16`` (``bool`` is read as label ``1``), C order; 0 is
background, other values are labels (see :mod:`medlabel.domain.masks`). Spacing is
``(di, dj, dk)`` in millimetres, as ``Geometry.spacing_mm``: the distance between the
centres of neighbouring columns, rows and slices.

Conventions of :func:`label_stats` (one flat, JSON-ready dict per label):

- ``voxels``: the number of voxels holding the label.
- ``volume_mm3 = voxels * di * dj * dk``; ``volume_ml = volume_mm3 / 1000`` (1 mL = 1 cm^3).
- ``bbox_min`` / ``bbox_max``: ``[i, j, k]``, the smallest and largest index of a voxel
  holding the label along each axis, both inclusive (voxel centres, index space).
- ``centroid_index``: ``[i, j, k]``, the mean of the voxel-centre indices of the label's
  voxels (index space; map it to millimetres with ``Geometry.index_to_patient``).
- Only when ``intensities`` is given (an array of the volume's shape, e.g. CT in HU):
  ``mean``, ``std`` (population standard deviation, ``ddof=0``), ``min``, ``max`` and
  ``median`` (the mean of the two middle values for an even count) of the intensities of
  the label's voxels, as floats; NaNs in the intensities propagate.
- A label asked for in ``labels`` but absent has ``voxels`` 0, volumes 0.0 and ``None``
  for the bounding box, the centroid and (when asked for) the intensity statistics.

The volume is read in one pass, in chunks of about four million voxels (memory stays
bounded on 79-million-voxel volumes), with ``np.bincount`` over compact label indices to
build per-slice, per-row and per-column label histograms; the bounding boxes and centroids
come from these marginals. The intensities of labelled voxels are grouped by one stable
(radix) sort on the label index, so the cost does not grow with the number of labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput

_CHUNK_VOXELS: int = 1 << 22  # a module variable so tests can shrink it


class LabelStats(TypedDict):
    voxels: int
    volume_mm3: float
    volume_ml: float
    bbox_min: list[int] | None
    bbox_max: list[int] | None
    centroid_index: list[float] | None
    mean: NotRequired[float | None]
    std: NotRequired[float | None]
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    median: NotRequired[float | None]


_NO_INTENSITY: tuple[None, None, None, None, None] = (None, None, None, None, None)


def _check_volume(volume: NDArray[Any]) -> NDArray[Any]:
    if not isinstance(volume, np.ndarray) or volume.ndim != 3:
        shape = getattr(volume, "shape", None)
        raise InvalidInput(
            f"Mask statistics need a (slices, rows, columns) labelmap, not shape {shape}.",
            errors=[{"field": "volume", "problem": "must be a 3D array"}],
        )
    if volume.dtype == np.bool_:
        return volume.view(np.uint8)
    if volume.dtype.name not in ("uint8", "uint16"):
        raise InvalidInput(
            f"A labelmap has dtype uint8 or uint16, not {volume.dtype}; cast it first.",
            errors=[{"field": "volume", "problem": "dtype must be uint8 or uint16"}],
        )
    return volume


def _check_spacing(spacing: Sequence[float], n: int) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) not in (n, 3) or not all(math.isfinite(s) and s > 0 for s in values):
        names = "(di, dj, dk)" if n == 3 else "(di, dj) or (di, dj, dk)"
        raise InvalidInput(
            f"The spacing must be positive millimetre values {names}, not {spacing!r}.",
            errors=[{"field": "spacing_mm", "problem": f"must be {names}, all > 0"}],
        )
    return values


def _check_label(label: object, top: int, field: str) -> int:
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or not 1 <= label <= top:
        raise InvalidInput(
            f"A label is an integer from 1 to {top}, not {label!r} (0 is background).",
            errors=[{"field": field, "problem": f"must be 1..{top}"}],
        )
    return int(label)


def _chunks(shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(slice, first row, end row) blocks of about ``_CHUNK_VOXELS`` voxels."""
    slices, rows, columns = shape
    step = max(1, _CHUNK_VOXELS // max(columns, 1))
    return [(k, r, min(r + step, rows)) for k in range(slices) for r in range(0, rows, step)]


def label_stats(
    volume: NDArray[Any],
    spacing_mm: Sequence[float],
    *,
    intensities: NDArray[Any] | None = None,
    labels: Sequence[int] | None = None,
) -> dict[int, LabelStats]:
    """Per-label count, volume, bounding box, centroid and (optionally) intensity statistics.

    ``labels`` restricts (or extends, with absent labels) the result; by default every
    non-zero label present is reported. Keys are the label values, in increasing order.
    """
    vol = _check_volume(volume)
    di, dj, dk = _check_spacing(spacing_mm, 3)
    if intensities is not None:
        intensities = np.asarray(intensities)
        if intensities.shape != vol.shape or intensities.dtype.kind not in "iuf":
            raise InvalidInput(
                f"Intensities must be a real-valued array of the labelmap's shape {vol.shape}, "
                f"not {intensities.dtype} of shape {intensities.shape}.",
                errors=[{"field": "intensities", "problem": "must match the volume's shape"}],
            )
    top = int(np.iinfo(vol.dtype).max)
    nbins = top + 1
    if labels is None:
        wanted = _present(vol, nbins)
    else:
        wanted = sorted({_check_label(v, top, "labels") for v in labels})
    n_lab = len(wanted)
    if n_lab == 0:
        return {}
    lut = np.zeros(nbins, dtype=np.intp)
    lut[wanted] = np.arange(1, n_lab + 1)
    hist_k, hist_j, hist_i, values, groups = _histograms(vol, lut, n_lab + 1, intensities)
    counts = hist_k.sum(axis=0)
    k_min, k_max, k_sum = _marginal(hist_k)
    j_min, j_max, j_sum = _marginal(hist_j)
    i_min, i_max, i_sum = _marginal(hist_i)
    intensity = _intensity_stats(values, groups, counts) if intensities is not None else {}
    voxel_mm3 = di * dj * dk
    result: dict[int, LabelStats] = {}
    for index, label in enumerate(wanted, start=1):
        n = int(counts[index])
        present = n > 0
        row: LabelStats = {
            "voxels": n,
            "volume_mm3": n * voxel_mm3,
            "volume_ml": n * voxel_mm3 / 1000.0,
            "bbox_min": [int(i_min[index]), int(j_min[index]), int(k_min[index])]
            if present
            else None,
            "bbox_max": [int(i_max[index]), int(j_max[index]), int(k_max[index])]
            if present
            else None,
            "centroid_index": [
                float(i_sum[index]) / n,
                float(j_sum[index]) / n,
                float(k_sum[index]) / n,
            ]
            if present
            else None,
        }
        if intensities is not None:
            found = intensity.get(index) or _NO_INTENSITY
            row["mean"], row["std"], row["min"], row["max"], row["median"] = found
        result[label] = row
    return result


def _histograms(
    vol: NDArray[Any], lut: NDArray[np.intp], width: int, intensities: NDArray[Any] | None
) -> tuple[
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
    list[NDArray[Any]],
    list[NDArray[np.uint16]],
]:
    """One pass: label histograms per slice, row and column (compact label indices), and
    the intensities of labelled voxels with their label indices."""
    slices, rows, columns = vol.shape
    hist_k = np.zeros((slices, width), dtype=np.int64)
    hist_j = np.zeros((rows, width), dtype=np.int64)
    hist_i = np.zeros((columns, width), dtype=np.int64)
    column_key = (np.arange(columns, dtype=np.intp) * width)[None, :]
    values: list[NDArray[Any]] = []
    groups: list[NDArray[np.uint16]] = []
    for k, r0, r1 in _chunks(vol.shape):
        block = vol[k, r0:r1]
        if not block.any():
            continue
        c = lut[block]
        if not c.any():
            continue
        row_key = (np.arange(r1 - r0, dtype=np.intp) * width)[:, None]
        per_row = np.bincount((c + row_key).ravel(), minlength=(r1 - r0) * width)
        per_row = per_row.reshape(r1 - r0, width)
        hist_j[r0:r1] += per_row
        hist_k[k] += per_row.sum(axis=0)
        hist_i += np.bincount((c + column_key).ravel(), minlength=columns * width).reshape(
            columns, width
        )
        if intensities is not None:
            inside = c != 0
            values.append(intensities[k, r0:r1][inside])
            groups.append(c[inside].astype(np.uint16))
    return hist_k, hist_j, hist_i, values, groups


def _present(vol: NDArray[Any], nbins: int) -> list[int]:
    counts = np.zeros(nbins, dtype=np.int64)
    for k, r0, r1 in _chunks(vol.shape):
        counts += np.bincount(vol[k, r0:r1].ravel(), minlength=nbins)
    return [int(v) for v in np.flatnonzero(counts[1:]) + 1]


def _marginal(
    hist: NDArray[np.int64],
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.int64]]:
    """First and last index with a non-zero count, and the index-weighted sum, per label."""
    nonzero = hist > 0
    first = np.argmax(nonzero, axis=0)
    last = hist.shape[0] - 1 - np.argmax(nonzero[::-1], axis=0)
    weighted = np.arange(hist.shape[0], dtype=np.int64) @ hist
    return first, last, weighted


def _intensity_stats(
    values: list[NDArray[Any]], groups: list[NDArray[np.uint16]], counts: NDArray[np.int64]
) -> dict[int, tuple[float, float, float, float, float]]:
    """(mean, std, min, max, median) per compact label index present."""
    if not values:
        return {}
    vals = np.concatenate(values)
    order = np.argsort(np.concatenate(groups), kind="stable")  # radix sort on uint16
    vals = vals[order]
    ends = np.cumsum(counts[1:])
    stats: dict[int, tuple[float, float, float, float, float]] = {}
    for index in np.flatnonzero(counts[1:]) + 1:
        group = vals[ends[index - 1] - counts[index] : ends[index - 1]].astype(np.float64)
        stats[int(index)] = (
            float(group.mean()),
            float(group.std()),
            float(group.min()),
            float(group.max()),
            float(np.median(group)),
        )
    return stats


def slice_areas(volume: NDArray[Any], label: int, spacing: Sequence[float]) -> list[float]:
    """The area in mm^2 of ``label`` on each slice: voxel count x ``di`` x ``dj``.

    ``spacing`` is ``(di, dj)`` or ``(di, dj, dk)`` in mm; one value per slice is returned.
    """
    vol = _check_volume(volume)
    di, dj = _check_spacing(spacing, 2)[:2]
    value = _check_label(label, int(np.iinfo(vol.dtype).max), "label")
    pixel_mm2 = di * dj
    return [int(np.count_nonzero(s == value)) * pixel_mm2 for s in vol]
