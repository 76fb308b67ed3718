"""Shape-based interpolation of one label between key slices of a labelmap.

Array convention: a labelmap volume is a numpy array of shape ``(slices, rows, columns)`` =
``(k, j, i)``, dtype ``uint8`` or ``uint16`` (or ``bool`` for a binary mask, whose only label
is ``1``), C order; 0 is background, other values are labels (see
:mod:`medlabel.domain.masks`).

Method (shape-based interpolation on signed distance maps):

- The *key slices* are the slices that contain the label (or those the caller names; each
  must contain the label). They are sorted; each pair of consecutive key slices ``k0 < k1``
  fills the slices strictly between them.
- For a key slice's shape ``S`` (its pixels equal to the label), the signed distance map is
  ``sdf = edt(not S) - edt(S)`` in millimetres: outside ``S`` the distance from the pixel
  centre to the nearest centre of a pixel of ``S``, inside ``S`` minus the distance to the
  nearest centre of a pixel outside ``S`` (``scipy.ndimage.distance_transform_edt`` with
  ``sampling=(dj, di)``, so anisotropic pixels are measured correctly).
- Slice ``k`` with ``t = (k - k0) / (k1 - k0)`` gets the pixels where
  ``(1 - t) * sdf0 + t * sdf1 < 0`` (strictly). Identical key shapes give that same shape
  on every slice between them. The result always lies within the union of the two key
  shapes' pixels' bounding box, so the distance maps are computed on that box plus a
  background margin of two pixels (exact there: the margin is background all round). The
  image is treated as surrounded by background, so a shape touching the image border has
  its boundary there.
- Only background is written: a pixel that holds another label, or already holds this one,
  is never changed. Other labels, the key slices and all slices outside the key range are
  left exactly as they are. The input is not modified; a new volume is returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage  # type: ignore[import-untyped, unused-ignore]

from medlabel.domain.errors import InvalidInput

_MARGIN = 2
_DTYPES = ("bool", "uint8", "uint16")


def _check_volume(volume: NDArray[Any], label: int) -> int:
    if not isinstance(volume, np.ndarray) or volume.ndim != 3:
        shape = getattr(volume, "shape", None)
        raise InvalidInput(
            f"Interpolation needs a (slices, rows, columns) labelmap, not shape {shape}.",
            errors=[{"field": "volume", "problem": "must be a 3D array"}],
        )
    if volume.dtype.name not in _DTYPES:
        raise InvalidInput(
            f"A labelmap has dtype {', '.join(_DTYPES)}, not {volume.dtype}.",
            errors=[{"field": "volume", "problem": f"dtype must be one of {', '.join(_DTYPES)}"}],
        )
    top = 1 if volume.dtype == np.bool_ else int(np.iinfo(volume.dtype).max)
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or not 1 <= label <= top:
        raise InvalidInput(
            f"The label to interpolate must be an integer from 1 to {top} for a "
            f"{volume.dtype} labelmap, not {label!r} (0 is background).",
            errors=[{"field": "label", "problem": f"must be 1..{top}"}],
        )
    return int(label)


def _check_spacing(spacing: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(s) for s in spacing)
    if len(values) != 2 or not all(math.isfinite(s) and s > 0 for s in values):
        raise InvalidInput(
            f"The in-plane spacing must be two positive millimetre values (di, dj), not "
            f"{tuple(spacing)}.",
            errors=[{"field": "spacing", "problem": "must be (di, dj) > 0"}],
        )
    return values[0], values[1]


def _key_slices(volume: NDArray[Any], label: int, key_slices: Sequence[int] | None) -> list[int]:
    present = np.flatnonzero((volume == label).any(axis=(1, 2)))
    if key_slices is None:
        keys = [int(k) for k in present]
    else:
        keys = []
        for k in key_slices:
            if isinstance(k, bool) or not isinstance(k, int | np.integer):
                raise InvalidInput(
                    f"Key slices are slice indices, not {k!r}.",
                    errors=[{"field": "key_slices", "problem": "must be integers"}],
                )
            if not 0 <= k < volume.shape[0]:
                raise InvalidInput(
                    f"Key slice {k} is outside the volume's {volume.shape[0]} slices "
                    f"(0..{volume.shape[0] - 1}).",
                    errors=[{"field": "key_slices", "problem": f"{k} out of range"}],
                )
        keys = sorted({int(k) for k in key_slices})
        empty = sorted(set(keys) - {int(k) for k in present})
        if empty:
            raise InvalidInput(
                f"Key slice(s) {', '.join(map(str, empty))} have no voxel of label {label}; "
                "draw the label on every key slice or leave the key slices out to use the "
                "slices that have it.",
                errors=[{"field": "key_slices", "problem": f"no label {label} on {empty}"}],
            )
    if len(keys) < 2:
        where = f"only on slice {keys[0]}" if keys else "on no slice"
        raise InvalidInput(
            f"Interpolation needs label {label} drawn on at least two different slices; it is "
            f"{where}. Draw it on another slice, then interpolate the slices in between.",
            errors=[{"field": "key_slices", "problem": "fewer than 2 key slices"}],
        )
    return keys


def _signed_distance(shape: NDArray[np.bool_], sampling: tuple[float, float]) -> NDArray[Any]:
    outside = ndimage.distance_transform_edt(~shape, sampling=sampling)
    inside = ndimage.distance_transform_edt(shape, sampling=sampling)
    return np.asarray(outside - inside, dtype=np.float64)


def interpolate_slices(
    volume: NDArray[Any],
    label: int,
    key_slices: Sequence[int] | None = None,
    spacing: Sequence[float] = (1.0, 1.0),
) -> tuple[NDArray[Any], list[int]]:
    """Fill the slices between key slices of ``label`` by shape-based interpolation.

    ``spacing`` is the in-plane pixel spacing ``(di, dj)`` in mm. Returns a new volume and
    the sorted indices of the slices where at least one voxel was written. Raises
    :class:`InvalidInput` unless the label is on at least two distinct key slices.
    """
    label = _check_volume(volume, label)
    di, dj = _check_spacing(spacing)
    keys = _key_slices(volume, label, key_slices)
    out = volume.copy()
    value = True if volume.dtype == np.bool_ else label
    rows, columns = volume.shape[1:]
    changed: list[int] = []
    for k0, k1 in pairwise(keys):
        if k1 - k0 < 2:
            continue
        s0 = volume[k0] == label
        s1 = volume[k1] == label
        either = s0 | s1
        r_any = np.flatnonzero(either.any(axis=1))
        c_any = np.flatnonzero(either.any(axis=0))
        r_lo, r_hi = max(int(r_any[0]) - _MARGIN, 0), min(int(r_any[-1]) + _MARGIN + 1, rows)
        c_lo, c_hi = max(int(c_any[0]) - _MARGIN, 0), min(int(c_any[-1]) + _MARGIN + 1, columns)
        box = np.s_[r_lo:r_hi, c_lo:c_hi]
        # Pad with background so the distances are exact even where the box meets the
        # image border.
        pad = ((1, 1), (1, 1))
        d0 = _signed_distance(np.pad(s0[box], pad), (dj, di))[1:-1, 1:-1]
        d1 = _signed_distance(np.pad(s1[box], pad), (dj, di))[1:-1, 1:-1]
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            inside = (1.0 - t) * d0 + t * d1 < 0
            target = out[k][box]
            write = inside & (target == 0)
            if write.any():
                target[write] = value
                changed.append(k)
    return out, changed
