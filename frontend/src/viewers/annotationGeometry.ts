// Pure conversions between drawn shapes in Cornerstone's world coordinates (patient mm) and
// our shapes in image-index coordinates (docs/annotations.md, "Coordinates"), plus the
// clean-up a freehand path needs before the server accepts it. No browser, no library.
import type { Point2, ShapeGeometry } from '../state/shapes';
import { type Geometry, type Vec3, indexToPatient, patientToIndex } from './geometry';

/** Coordinates are rounded to this many index units (a thousandth of a pixel). */
const QUANTUM = 1e-3;

function quantise(x: number): number {
  return Math.round(x / QUANTUM) * QUANTUM;
}

/** Clamp an in-plane index to the image: the valid range is -0.5 .. n - 0.5. */
export function clampToImage(g: Geometry, ij: readonly [number, number]): Point2 {
  const clamp = (v: number, n: number): number => quantise(Math.max(-0.5, Math.min(n - 0.5, v)));
  return [clamp(ij[0], g.shape[0]), clamp(ij[1], g.shape[1])];
}

function inPlane(g: Geometry, world: Vec3): Point2 {
  const ijk = patientToIndex(g, world);
  return clampToImage(g, [ijk[0], ijk[1]]);
}

function distanceToSegment(p: Point2, a: Point2, b: Point2): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const length2 = dx * dx + dy * dy;
  const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/** Douglas-Peucker on an open chain; keeps both ends. */
export function simplifyChain(points: readonly Point2[], epsilon: number): Point2[] {
  if (points.length <= 2) return [...points];
  let worst = 0;
  let at = 0;
  const first = points[0]!;
  const last = points[points.length - 1]!;
  for (let n = 1; n < points.length - 1; n += 1) {
    const d = distanceToSegment(points[n]!, first, last);
    if (d > worst) {
      worst = d;
      at = n;
    }
  }
  if (worst <= epsilon) return [first, last];
  const left = simplifyChain(points.slice(0, at + 1), epsilon);
  const right = simplifyChain(points.slice(at), epsilon);
  return [...left.slice(0, -1), ...right];
}

function same(a: Point2, b: Point2): boolean {
  return a[0] === b[0] && a[1] === b[1];
}

function dedupe(points: readonly Point2[]): Point2[] {
  const out: Point2[] = [];
  for (const p of points) if (!out.length || !same(out[out.length - 1]!, p)) out.push(p);
  return out;
}

/** A closed ring as the server wants it: no repeated closing vertex, no consecutive
 * duplicates, simplified within `epsilon` pixels; null when fewer than 3 vertices remain. */
export function cleanRing(points: readonly Point2[], epsilon = 0.2): Point2[] | null {
  let ring = dedupe(points);
  while (ring.length > 1 && same(ring[0]!, ring[ring.length - 1]!)) ring = ring.slice(0, -1);
  if (ring.length < 3) return null;
  // Split at the vertex farthest from the first, simplify both chains, join.
  let far = 1;
  let best = -1;
  for (let n = 1; n < ring.length; n += 1) {
    const d = Math.hypot(ring[n]![0] - ring[0]![0], ring[n]![1] - ring[0]![1]);
    if (d > best) {
      best = d;
      far = n;
    }
  }
  const a = simplifyChain(ring.slice(0, far + 1), epsilon);
  const b = simplifyChain([...ring.slice(far), ring[0]!], epsilon);
  const joined = dedupe([...a.slice(0, -1), ...b.slice(0, -1)]);
  if (joined.length < 3) return null;
  const area = joined.reduce((sum, p, n) => {
    const q = joined[(n + 1) % joined.length]!;
    return sum + p[0] * q[1] - q[0] * p[1];
  }, 0);
  return Math.abs(area) > 1e-6 ? joined : null;
}

/** An open path as the server wants it: at least 2 points, no consecutive duplicates. */
export function cleanPath(points: readonly Point2[], epsilon = 0.2): Point2[] | null {
  const path = simplifyChain(dedupe(points), epsilon);
  return path.length >= 2 ? dedupe(path) : null;
}

export type DrawnWorld =
  | { readonly kind: 'box'; readonly slice: number; readonly corners: readonly Vec3[] }
  | { readonly kind: 'polygon' | 'polyline'; readonly slice: number; readonly path: readonly Vec3[] }
  | { readonly kind: 'point'; readonly slice: number; readonly point: Vec3 };

/** Our shape geometry of something drawn in world coordinates, or null when it is not a
 * shape the server would take (a zero-size box, a polygon without area ...). */
export function geometryFromWorld(g: Geometry, drawn: DrawnWorld): ShapeGeometry | null {
  switch (drawn.kind) {
    case 'box': {
      if (drawn.corners.length < 2) return null;
      const ij = drawn.corners.map((c) => inPlane(g, c));
      const is = ij.map((p) => p[0]);
      const js = ij.map((p) => p[1]);
      const min: Point2 = [Math.min(...is), Math.min(...js)];
      const max: Point2 = [Math.max(...is), Math.max(...js)];
      if (!(max[0] > min[0] && max[1] > min[1])) return null;
      return { kind: 'box', slice: drawn.slice, min, max };
    }
    case 'polygon': {
      const points = cleanRing(drawn.path.map((p) => inPlane(g, p)));
      return points ? { kind: 'polygon', slice: drawn.slice, points, holes: [] } : null;
    }
    case 'polyline': {
      const points = cleanPath(drawn.path.map((p) => inPlane(g, p)));
      return points ? { kind: 'polyline', slice: drawn.slice, points } : null;
    }
    case 'point': {
      const [i, j] = inPlane(g, drawn.point);
      return { kind: 'point', point: [i, j, drawn.slice] };
    }
  }
}

/** World coordinates to draw a shape with: the four corners of a box (top-left, top-right,
 * bottom-left, bottom-right, as Cornerstone's RectangleROI keeps them), a path, a point. */
export function worldFromGeometry(g: Geometry, shape: ShapeGeometry): { slice: number; points: Vec3[] } {
  const at = (ij: Point2, k: number): Vec3 => indexToPatient(g, [ij[0], ij[1], k]);
  switch (shape.kind) {
    case 'box': {
      const [i0, j0] = shape.min;
      const [i1, j1] = shape.max;
      const k = shape.slice;
      return { slice: k, points: [at([i0, j0], k), at([i1, j0], k), at([i0, j1], k), at([i1, j1], k)] };
    }
    case 'polygon':
    case 'polyline':
      return { slice: shape.slice, points: shape.points.map((p) => at(p, shape.slice)) };
    case 'point': {
      const k = Math.round(shape.point[2]);
      return { slice: k, points: [indexToPatient(g, shape.point)] };
    }
  }
}
