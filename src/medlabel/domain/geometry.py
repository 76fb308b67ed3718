"""Item geometry: how image-index coordinates map to patient millimetres.

Conventions (the same as DICOM's Image Plane module, in the patient coordinate system LPS:
+x to the patient's Left, +y Posterior, +z Superior):

- An index is ``(i, j, k)`` = (column, row, slice/frame). Integer indices are voxel
  *centres*; sub-voxel floats are allowed for vector shapes.
- ``direction[0]`` is the unit vector along increasing column index ``i`` (DICOM's "row
  direction cosines", the first three values of ImageOrientationPatient), ``direction[1]``
  along increasing row index ``j`` (the "column direction cosines", the last three values),
  ``direction[2]`` along increasing slice index ``k`` (the slice normal as the slices are
  ordered; it is ``+-direction[0] x direction[1]`` for an orthogonal grid, and steps off the
  normal for a sheared one, e.g. CT acquired with gantry tilt).
- ``spacing_mm`` is ``(di, dj, dk)``: the distance between centres of neighbouring columns,
  rows and slices. Note DICOM's PixelSpacing is ``(row spacing, column spacing)`` = ``(dj, di)``.
- ``origin_mm`` is the patient position of the centre of voxel ``(0, 0, 0)``
  (ImagePositionPatient of the first slice).

``patient = origin + i*di*direction[0] + j*dj*direction[1] + k*dk*direction[2]``.

NIfTI affines map to RAS; :func:`from_nifti_affine` converts by negating the first two
patient axes. 2D images (photos, X-rays without a patient frame) get an identity direction
and an origin of 0; their ``frame_of_reference_uid`` is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medlabel.domain.errors import InvalidInput

Vec3 = tuple[float, float, float]
_ORTHO_TOLERANCE = 1e-3
_MIN_NORMAL_COMPONENT = 0.5  # slices may be tilted (CT gantry tilt) up to 60 degrees
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, int, int]
    spacing_mm: Vec3
    direction: tuple[Vec3, Vec3, Vec3]
    origin_mm: Vec3
    frame_of_reference_uid: str | None = None

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(n) < 1 for n in self.shape):
            raise InvalidInput(
                f"A geometry's shape must be three positive sizes, not {self.shape}."
            )
        if any(not math.isfinite(s) or s <= 0 for s in self.spacing_mm):
            raise InvalidInput(
                f"Spacing must be positive finite millimetres, not {self.spacing_mm}."
            )
        if any(not math.isfinite(v) for v in self.origin_mm):
            raise InvalidInput("The origin must be finite.")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise InvalidInput("The direction must be three finite 3-vectors.")
        if not np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=_ORTHO_TOLERANCE):
            raise InvalidInput("Direction vectors must have unit length.")
        if abs(float(np.dot(d[0], d[1]))) > _ORTHO_TOLERANCE:
            raise InvalidInput("The row and column directions must be orthogonal.")
        if abs(float(np.dot(np.cross(d[0], d[1]), d[2]))) < _MIN_NORMAL_COMPONENT:
            raise InvalidInput("The slice direction lies (almost) within the image plane.")

    # -- matrices ---------------------------------------------------------------------

    def index_to_patient_matrix(self) -> NDArray[np.float64]:
        """4x4 affine from homogeneous (i, j, k, 1) to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction, dtype=float).T * np.asarray(self.spacing_mm)
        m[:3, 3] = self.origin_mm
        return m

    def patient_to_index_matrix(self) -> NDArray[np.float64]:
        return np.asarray(np.linalg.inv(self.index_to_patient_matrix()), dtype=np.float64)

    # -- points -----------------------------------------------------------------------

    def index_to_patient(self, ijk: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
        """Map one index ``(i, j, k)`` or an ``(N, 3)`` array of them to LPS millimetres."""
        points = np.asarray(ijk, dtype=float)
        m = self.index_to_patient_matrix()
        return np.asarray(points @ m[:3, :3].T + m[:3, 3], dtype=np.float64)

    def patient_to_index(self, xyz: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
        """Map LPS millimetres (one point or ``(N, 3)``) to fractional indices."""
        points = np.asarray(xyz, dtype=float)
        m = self.patient_to_index_matrix()
        return np.asarray(points @ m[:3, :3].T + m[:3, 3], dtype=np.float64)

    def contains_index(self, ijk: Sequence[float]) -> bool:
        """True if the point lies within the image (voxel centres +- half a voxel)."""
        return all(-0.5 <= float(c) <= n - 0.5 for c, n in zip(ijk, self.shape, strict=True))

    # -- measures ---------------------------------------------------------------------

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    @property
    def is_orthogonal(self) -> bool:
        """False for sheared grids, e.g. CT with gantry tilt (slices step off the normal)."""
        d = np.asarray(self.direction, dtype=float)
        return bool(abs(float(np.dot(np.cross(d[0], d[1]), d[2]))) > 1 - _ORTHO_TOLERANCE)

    @property
    def slice_normal(self) -> Vec3:
        """The unit normal of the image planes, ``direction[0] x direction[1]``."""
        n = np.cross(self.direction[0], self.direction[1])
        return (float(n[0]), float(n[1]), float(n[2]))

    # -- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing_mm),
            "direction": [list(v) for v in self.direction],
            "origin_mm": list(self.origin_mm),
            "frame_of_reference_uid": self.frame_of_reference_uid,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        d = data["direction"]
        return cls(
            shape=(int(data["shape"][0]), int(data["shape"][1]), int(data["shape"][2])),
            spacing_mm=_vec(data["spacing_mm"]),
            direction=(_vec(d[0]), _vec(d[1]), _vec(d[2])),
            origin_mm=_vec(data["origin_mm"]),
            frame_of_reference_uid=data.get("frame_of_reference_uid"),
        )


def _vec(values: Sequence[float] | NDArray[Any]) -> Vec3:
    return (float(values[0]), float(values[1]), float(values[2]))


def planar(
    columns: int, rows: int, frames: int = 1, pixel_spacing_mm: tuple[float, float] | None = None
) -> Geometry:
    """A 2D image (or a stack of frames) without a patient frame of reference.

    ``pixel_spacing_mm`` is ``(di, dj)``; without it, spacing is 1 (pixel units), which a
    measurement must then report as pixels, not millimetres.
    """
    di, dj = pixel_spacing_mm or (1.0, 1.0)
    return Geometry(
        shape=(columns, rows, frames),
        spacing_mm=(di, dj, 1.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        origin_mm=(0.0, 0.0, 0.0),
    )


def from_dicom(
    columns: int,
    rows: int,
    slices: int,
    *,
    image_orientation: Sequence[float],
    first_position: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step_mm: Vec3 | None,
    frame_of_reference_uid: str | None,
) -> Geometry:
    """Geometry of a DICOM stack from its Image Plane attributes.

    ``pixel_spacing`` is DICOM's ``(row spacing, column spacing)``; ``slice_step_mm`` is the
    vector from the first slice's position to the second's (None for a single slice, which
    then gets the plane normal and a spacing of 1 mm unless the caller knows better).
    """
    row_dir = np.asarray(image_orientation[:3], dtype=float)
    col_dir = np.asarray(image_orientation[3:6], dtype=float)
    row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
    if slice_step_mm is None:
        normal, step = np.cross(row_dir, col_dir), 1.0
    else:
        vec = np.asarray(slice_step_mm, dtype=float)
        step = float(np.linalg.norm(vec))
        if step == 0:
            raise InvalidInput("Two slices share the same position; the series cannot be a volume.")
        normal = vec / step
    return Geometry(
        shape=(columns, rows, slices),
        spacing_mm=(float(pixel_spacing[1]), float(pixel_spacing[0]), step),
        direction=(_vec(row_dir), _vec(col_dir), _vec(normal)),
        origin_mm=_vec(first_position),
        frame_of_reference_uid=frame_of_reference_uid,
    )


def from_nifti_affine(
    affine: Sequence[Sequence[float]] | NDArray[Any], shape: Sequence[int]
) -> Geometry:
    """Geometry from a NIfTI (RAS) voxel-to-world affine, converted to LPS.

    The affine's columns give the step per voxel along i, j, k; their lengths are the
    spacing. Shears are refused (they are not a rigid grid).
    """
    a = _LPS_FROM_RAS @ np.asarray(affine, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise InvalidInput("The NIfTI affine must be a finite 4x4 matrix.")
    steps = a[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    if np.any(spacing <= 0):
        raise InvalidInput("The NIfTI affine has a zero-length voxel axis.")
    direction = steps / spacing
    dims = [int(n) for n in shape[:3]] + [1] * (3 - len(shape[:3]))
    return Geometry(
        shape=(dims[0], dims[1], dims[2]),
        spacing_mm=_vec(spacing),
        direction=(_vec(direction[:, 0]), _vec(direction[:, 1]), _vec(direction[:, 2])),
        origin_mm=_vec(a[:3, 3]),
    )


def to_nifti_affine(geometry: Geometry) -> NDArray[np.float64]:
    """The RAS affine a NIfTI file of this item needs (inverse of :func:`from_nifti_affine`)."""
    return np.asarray(_LPS_FROM_RAS @ geometry.index_to_patient_matrix(), dtype=np.float64)
