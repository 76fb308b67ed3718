// Pure coordinate conversions between our image-index coordinates and patient millimetres,
// and between our indices and Cornerstone3D's image coordinates. No browser, no library.
//
// Our index (i, j, k) = (column, row, slice); integer indices are voxel CENTRES, and
//   patient = origin + i*di*direction[0] + j*dj*direction[1] + k*dk*direction[2]
// (src/medlabel/domain/geometry.py). Cornerstone's "world" coordinates are the same patient
// millimetres (LPS). Cornerstone's 2D "image" coordinates put (0, 0) at the top-left CORNER
// of the top-left pixel, so a pixel centre is at (i + 0.5, j + 0.5) there.
import type { Geometry, Vec3 } from '../api/items';

export type { Geometry, Vec3 };

function add(a: Vec3, b: Vec3): Vec3 {
  return [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
}

function scale(a: Vec3, s: number): Vec3 {
  return [a[0] * s, a[1] * s, a[2] * s];
}

/** Patient mm of a (possibly fractional) index. */
export function indexToPatient(g: Geometry, ijk: Vec3): Vec3 {
  const [di, dj, dk] = g.spacing_mm;
  const [u, v, w] = g.direction;
  return add(
    add(add(g.origin_mm, scale(u, ijk[0] * di)), scale(v, ijk[1] * dj)),
    scale(w, ijk[2] * dk),
  );
}

/** The 3x3 matrix whose columns are the index steps in patient mm (row-major). */
function stepMatrix(g: Geometry): number[][] {
  const [di, dj, dk] = g.spacing_mm;
  const [u, v, w] = g.direction;
  return [0, 1, 2].map((r) => [u[r]! * di, v[r]! * dj, w[r]! * dk]);
}

function invert3(m: number[][]): number[][] {
  const [a, b, c] = m[0]!;
  const [d, e, f] = m[1]!;
  const [g, h, i] = m[2]!;
  const A = e! * i! - f! * h!;
  const B = -(d! * i! - f! * g!);
  const C = d! * h! - e! * g!;
  const det = a! * A + b! * B + c! * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) {
    throw new Error('The geometry is degenerate: its index-to-patient matrix is singular.');
  }
  return [
    [A / det, -(b! * i! - c! * h!) / det, (b! * f! - c! * e!) / det],
    [B / det, (a! * i! - c! * g!) / det, -(a! * f! - c! * d!) / det],
    [C / det, -(a! * h! - b! * g!) / det, (a! * e! - b! * d!) / det],
  ];
}

/** The (fractional) index of a patient position; exact inverse of indexToPatient, also
 * for sheared grids (gantry tilt). */
export function patientToIndex(g: Geometry, p: Vec3): Vec3 {
  const inv = invert3(stepMatrix(g));
  const d: Vec3 = [p[0] - g.origin_mm[0], p[1] - g.origin_mm[1], p[2] - g.origin_mm[2]];
  const row = (r: number): number => inv[r]![0]! * d[0] + inv[r]![1]! * d[1] + inv[r]![2]! * d[2];
  return [row(0), row(1), row(2)];
}

/** ImagePositionPatient of slice k: the centre of its first voxel. */
export function slicePosition(g: Geometry, k: number): Vec3 {
  return indexToPatient(g, [0, 0, k]);
}

/** Signed distance in mm of slice k from slice 0 along the slice normal (for the readout). */
export function sliceOffsetMm(g: Geometry, k: number): number {
  const [u, v] = g.direction;
  const normal: Vec3 = [
    u[1] * v[2] - u[2] * v[1],
    u[2] * v[0] - u[0] * v[2],
    u[0] * v[1] - u[1] * v[0],
  ];
  const p = slicePosition(g, k);
  const o = g.origin_mm;
  return (p[0] - o[0]) * normal[0] + (p[1] - o[1]) * normal[1] + (p[2] - o[2]) * normal[2];
}

/** Our in-plane index (voxel centre at integers) -> Cornerstone image coordinates. */
export function indexToImageCoords(ij: readonly [number, number]): [number, number] {
  return [ij[0] + 0.5, ij[1] + 0.5];
}

/** Cornerstone image coordinates -> our in-plane index. */
export function imageCoordsToIndex(xy: readonly [number, number]): [number, number] {
  return [xy[0] - 0.5, xy[1] - 0.5];
}

/** The voxel containing a fractional index, or null outside the grid. */
export function voxelAt(g: Geometry, ijk: Vec3): Vec3 | null {
  const rounded: Vec3 = [Math.round(ijk[0]), Math.round(ijk[1]), Math.round(ijk[2])];
  for (let a = 0; a < 3; a += 1) {
    const n = g.shape[a]!;
    if (!(rounded[a]! >= 0 && rounded[a]! <= n - 1)) return null;
  }
  return rounded;
}

/** Cornerstone's imagePlaneModule for slice k (DICOM Image Plane semantics). */
export interface ImagePlane {
  readonly frameOfReferenceUID: string;
  readonly rows: number;
  readonly columns: number;
  readonly imagePositionPatient: Vec3;
  /** along +i, i.e. DICOM "row direction cosines" */
  readonly rowCosines: Vec3;
  /** along +j, i.e. DICOM "column direction cosines" */
  readonly columnCosines: Vec3;
  readonly imageOrientationPatient: readonly number[];
  /** DICOM order: [row spacing (dj), column spacing (di)] */
  readonly pixelSpacing: readonly [number, number];
  readonly rowPixelSpacing: number;
  readonly columnPixelSpacing: number;
  readonly sliceThickness: number;
  readonly sliceLocation: number;
}

export function imagePlane(g: Geometry, k: number, fallbackFrameOfReference: string): ImagePlane {
  const [di, dj, dk] = g.spacing_mm;
  const [u, v] = g.direction;
  return {
    frameOfReferenceUID: g.frame_of_reference_uid ?? fallbackFrameOfReference,
    rows: g.shape[1],
    columns: g.shape[0],
    imagePositionPatient: slicePosition(g, k),
    rowCosines: u,
    columnCosines: v,
    imageOrientationPatient: [...u, ...v],
    pixelSpacing: [dj, di],
    rowPixelSpacing: dj,
    columnPixelSpacing: di,
    sliceThickness: dk,
    sliceLocation: sliceOffsetMm(g, k),
  };
}
