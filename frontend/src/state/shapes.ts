// The annotation model of the shape document (docs/annotations.md), in our image-index
// coordinates: i = column, j = row, k = slice; voxel centres at integers. Pure: no browser,
// no viewer library. Shapes are immutable values; the store replaces them whole.

export type Point2 = readonly [number, number];
export type Point3 = readonly [number, number, number];
export type AttributeValue = string | number | boolean;
export type Attributes = Readonly<Record<string, AttributeValue>>;

/** Geometry of a drawn shape: what a viewer produces and shows (no id, no label). */
export type ShapeGeometry =
  | { readonly kind: 'box'; readonly slice: number; readonly min: Point2; readonly max: Point2 }
  | {
      readonly kind: 'polygon';
      readonly slice: number;
      readonly points: readonly Point2[];
      readonly holes: readonly (readonly Point2[])[];
    }
  | { readonly kind: 'polyline'; readonly slice: number; readonly points: readonly Point2[] }
  | { readonly kind: 'point'; readonly point: Point3 };

export type DrawnKind = ShapeGeometry['kind'];

export interface ShapeCommon {
  readonly id: string;
  readonly label: string;
  readonly attributes: Attributes;
  /** fields we do not edit but must keep (instance, model, note, time_spent_s, scope ...) */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export type Shape = ShapeCommon &
  (
    | ShapeGeometry
    | { readonly kind: 'classification'; readonly scope: string; readonly slice?: number }
    | { readonly kind: 'box3d'; readonly min: Point3; readonly max: Point3 }
  );

export type Kind = Shape['kind'];

const KNOWN = new Set(['id', 'kind', 'label', 'attributes', 'slice', 'min', 'max', 'points', 'holes', 'point', 'scope']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nums(value: unknown, n: number): number[] {
  if (!Array.isArray(value) || value.length !== n || !value.every((v) => typeof v === 'number')) {
    throw new Error(`expected ${n} numbers, got ${JSON.stringify(value)}`);
  }
  return value as number[];
}

function ring(value: unknown): Point2[] {
  if (!Array.isArray(value)) throw new Error('expected a list of points');
  return value.map((p) => nums(p, 2) as unknown as Point2);
}

/** A shape of the server's JSON (canonical or what we sent). Throws on what it cannot read. */
export function shapeFromJson(value: unknown): Shape {
  if (!isObject(value)) throw new Error('an annotation is not an object');
  const id = String(value.id);
  const label = String(value.label);
  const attributes = (isObject(value.attributes) ? value.attributes : {}) as Attributes;
  const extraEntries = Object.entries(value).filter(([k]) => !KNOWN.has(k));
  const common: ShapeCommon = extraEntries.length
    ? { id, label, attributes, extra: Object.fromEntries(extraEntries) }
    : { id, label, attributes };
  switch (value.kind) {
    case 'box': {
      if (value.slice === undefined || value.slice === null) {
        return { ...common, kind: 'box3d', min: nums(value.min, 3) as unknown as Point3, max: nums(value.max, 3) as unknown as Point3 };
      }
      return {
        ...common,
        kind: 'box',
        slice: Number(value.slice),
        min: nums(value.min, 2) as unknown as Point2,
        max: nums(value.max, 2) as unknown as Point2,
      };
    }
    case 'polygon':
      return {
        ...common,
        kind: 'polygon',
        slice: Number(value.slice),
        points: ring(value.points),
        holes: Array.isArray(value.holes) ? value.holes.map(ring) : [],
      };
    case 'polyline':
      return { ...common, kind: 'polyline', slice: Number(value.slice), points: ring(value.points) };
    case 'point':
      return { ...common, kind: 'point', point: nums(value.point, 3) as unknown as Point3 };
    case 'classification':
      return {
        ...common,
        kind: 'classification',
        scope: typeof value.scope === 'string' ? value.scope : 'item',
        ...(typeof value.slice === 'number' ? { slice: value.slice } : {}),
      };
    default:
      throw new Error(`unknown annotation kind ${JSON.stringify(value.kind)}`);
  }
}

/** The JSON the server stores (docs/annotations.md, "The kinds"). */
export function shapeToJson(shape: Shape): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: shape.id,
    kind: shape.kind === 'box3d' ? 'box' : shape.kind,
    label: shape.label,
    attributes: { ...shape.attributes },
  };
  switch (shape.kind) {
    case 'box':
      Object.assign(out, { slice: shape.slice, min: [...shape.min], max: [...shape.max] });
      break;
    case 'box3d':
      Object.assign(out, { min: [...shape.min], max: [...shape.max] });
      break;
    case 'polygon':
      Object.assign(out, {
        slice: shape.slice,
        points: shape.points.map((p) => [...p]),
        holes: shape.holes.map((h) => h.map((p) => [...p])),
      });
      break;
    case 'polyline':
      Object.assign(out, { slice: shape.slice, points: shape.points.map((p) => [...p]) });
      break;
    case 'point':
      out.point = [...shape.point];
      break;
    case 'classification':
      out.scope = shape.scope;
      if (shape.slice !== undefined) out.slice = shape.slice;
      break;
  }
  return { ...out, ...(shape.extra ?? {}) };
}

/** The geometry part of a drawable shape, or null (classification, 3D box). */
export function geometryOf(shape: Shape): ShapeGeometry | null {
  switch (shape.kind) {
    case 'box':
      return { kind: 'box', slice: shape.slice, min: shape.min, max: shape.max };
    case 'polygon':
      return { kind: 'polygon', slice: shape.slice, points: shape.points, holes: shape.holes };
    case 'polyline':
      return { kind: 'polyline', slice: shape.slice, points: shape.points };
    case 'point':
      return { kind: 'point', point: shape.point };
    default:
      return null;
  }
}

/** The slice a shape lies on (a point: its nearest slice), or null. */
export function sliceOf(shape: Shape): number | null {
  if (shape.kind === 'point') return Math.round(shape.point[2]);
  if ('slice' in shape && typeof shape.slice === 'number') return shape.slice;
  return null;
}

/** Replace the geometry of a shape, keeping id, label, attributes and extras. */
export function withGeometry(shape: Shape, geometry: ShapeGeometry): Shape {
  const { id, label, attributes, extra } = shape;
  return extra ? { id, label, attributes, extra, ...geometry } : { id, label, attributes, ...geometry };
}

/** A stable key of a value (sorted object keys): equal keys = equal shapes. */
export function stableKey(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

export function shapeKey(shape: Shape): string {
  return stableKey(shapeToJson(shape));
}

export function sameShape(a: Shape | undefined, b: Shape | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return shapeKey(a) === shapeKey(b);
}

export function sameDocument(a: readonly Shape[], b: readonly Shape[]): boolean {
  return a.length === b.length && a.every((s, n) => sameShape(s, b[n]));
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A new annotation id (the server allows 1-64 of A-Z a-z 0-9 _ -). */
export function newShapeId(random: () => number = Math.random): string {
  let id = 'a';
  for (let n = 0; n < 15; n += 1) id += ID_CHARS[Math.floor(random() * ID_CHARS.length)];
  return id;
}

/** Whether a string is a valid annotation id for the server. */
export function isValidId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}
