// Our annotation shapes (docs/annotations.md) <-> W3C Web Annotations as Annotorious 3 reads
// and writes them (W3CImageFormat: a FragmentSelector `xywh=pixel:x,y,w,h` for rectangles, an
// SvgSelector `<svg><polygon points="x,y x,y ..."/></svg>` for polygons). Pure: no browser, no
// library.
//
// W3C selectors are in OpenSeadragon image coordinates (pixel EDGES at integers); ours are
// image indices (pixel CENTRES at integers): index = image - 0.5 (./coords.ts).
//
// What is not geometry (label, attributes, instance, note, model, ...) travels with the W3C
// annotation: the label as a `tagging` body, the rest under `medlabel` (Annotorious keeps
// unknown properties), so shape -> W3C -> shape gives back the same object.
import { clampIndex, imageToIndex, indexToImage, type Vec2 } from './coords';

export type Point2 = [number, number];

/** Any annotation of an item's shape document; the viewer draws boxes and polygons on
 * slice 0 and passes the others through untouched. */
export interface Shape {
  readonly id: string;
  readonly kind: string;
  readonly label: string;
  readonly [field: string]: unknown;
}

export interface BoxShape extends Shape {
  readonly kind: 'box';
  readonly slice: number;
  readonly min: Point2;
  readonly max: Point2;
}

export interface PolygonShape extends Shape {
  readonly kind: 'polygon';
  readonly slice: number;
  readonly points: Point2[];
  readonly holes: Point2[][];
}

export function isBox(s: Shape): s is BoxShape {
  return s.kind === 'box' && s.slice === 0 && isPoint2(s.min) && isPoint2(s.max);
}

export function isPolygon(s: Shape): s is PolygonShape {
  return (
    s.kind === 'polygon' &&
    s.slice === 0 &&
    Array.isArray(s.points) &&
    s.points.every(isPoint2) &&
    (s.holes === undefined || (Array.isArray(s.holes) && s.holes.every((h) => Array.isArray(h) && h.every(isPoint2))))
  );
}

/** Shapes the slide viewer shows and edits (the rest are kept as they are). */
export function isDrawable(s: Shape): s is BoxShape | PolygonShape {
  return isBox(s) || isPolygon(s);
}

function isPoint2(p: unknown): p is Point2 {
  return (
    Array.isArray(p) &&
    p.length === 2 &&
    typeof p[0] === 'number' &&
    typeof p[1] === 'number' &&
    Number.isFinite(p[0]) &&
    Number.isFinite(p[1])
  );
}

// --- W3C -------------------------------------------------------------------------------

export interface FragmentSelector {
  readonly type: 'FragmentSelector';
  readonly conformsTo: 'http://www.w3.org/TR/media-frags/';
  readonly value: string;
}

export interface SvgSelector {
  readonly type: 'SvgSelector';
  readonly value: string;
}

export interface W3CBody {
  readonly type?: string;
  readonly purpose?: string;
  readonly value?: unknown;
  readonly [field: string]: unknown;
}

export interface W3CAnnotation {
  readonly '@context'?: string;
  readonly id: string;
  readonly type?: string;
  readonly body?: W3CBody | W3CBody[];
  readonly target:
    | { readonly source?: string; readonly selector: unknown; readonly [field: string]: unknown }
    | string;
  /** our non-geometry fields (attributes, instance, note, ...) */
  readonly medlabel?: Record<string, unknown>;
  readonly [field: string]: unknown;
}

const GEOMETRY_FIELDS = new Set(['id', 'kind', 'label', 'slice', 'min', 'max', 'points', 'holes']);

function fmt(n: number): string {
  // Shortest exact decimal; `-0` would print as "0" anyway.
  return String(n === 0 ? 0 : n);
}

function ringToImage(ring: readonly Point2[]): Point2[] {
  return ring.map((p) => indexToImage(p));
}

function ringPath(ring: readonly Vec2[]): string {
  return ring.map(([x, y], n) => `${n === 0 ? 'M ' : 'L '}${fmt(x)},${fmt(y)}`).join(' ') + ' Z';
}

/** The W3C selector of a box or polygon, in OSD image coordinates. */
export function shapeSelector(shape: BoxShape | PolygonShape): FragmentSelector | SvgSelector {
  if (shape.kind === 'box') {
    const [x0, y0] = indexToImage(shape.min);
    const [x1, y1] = indexToImage(shape.max);
    return {
      type: 'FragmentSelector',
      conformsTo: 'http://www.w3.org/TR/media-frags/',
      value: `xywh=pixel:${fmt(x0)},${fmt(y0)},${fmt(x1 - x0)},${fmt(y1 - y0)}`,
    };
  }
  const outer = ringToImage(shape.points);
  const holes = (shape.holes ?? []).map(ringToImage);
  if (holes.length === 0) {
    const points = outer.map(([x, y]) => `${fmt(x)},${fmt(y)}`).join(' ');
    return { type: 'SvgSelector', value: `<svg><polygon points="${points}" /></svg>` };
  }
  // Annotorious' MultiPolygon form: one even-odd path, the outer ring first, then the holes.
  const d = [outer, ...holes].map(ringPath).join(' ');
  return { type: 'SvgSelector', value: `<svg><g><path fill-rule="evenodd" d="${d}" /></g></svg>` };
}

/** A shape as a W3C annotation for Annotorious' W3CImageFormat(source). */
export function shapeToW3C(shape: BoxShape | PolygonShape, source: string): W3CAnnotation {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(shape)) if (!GEOMETRY_FIELDS.has(k)) extra[k] = v;
  return {
    '@context': 'http://www.w3.org/ns/anno.jsonld',
    id: shape.id,
    type: 'Annotation',
    body: [{ type: 'TextualBody', purpose: 'tagging', value: shape.label }],
    target: { source, type: 'SpecificResource', selector: shapeSelector(shape) },
    ...(Object.keys(extra).length ? { medlabel: extra } : {}),
  };
}

const NUMBER = '-?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';
const XYWH = new RegExp(`xywh=(?:pixel:)?(${NUMBER}),(${NUMBER}),(${NUMBER}),(${NUMBER})$`);

export interface ConvertOptions {
  /** level-0 size: coordinates are clamped into the image (-0.5 .. n - 0.5) */
  readonly width: number;
  readonly height: number;
  /** the label of an annotation without a tagging body (one just drawn) */
  readonly defaultLabel: string;
}

function selectorOf(a: W3CAnnotation): { type?: unknown; value?: unknown } | null {
  const target = Array.isArray(a.target) ? (a.target[0] as unknown) : a.target;
  if (typeof target !== 'object' || target === null) return null;
  const sel = (target as { selector?: unknown }).selector;
  const first = Array.isArray(sel) ? (sel[0] as unknown) : sel;
  return typeof first === 'object' && first !== null ? (first as { type?: unknown; value?: unknown }) : null;
}

function labelOf(a: W3CAnnotation): string | null {
  const bodies = a.body === undefined ? [] : Array.isArray(a.body) ? a.body : [a.body];
  const tag = bodies.find((b) => b.purpose === 'tagging' && typeof b.value === 'string');
  return tag ? (tag.value as string) : null;
}

function parsePoints(text: string): Point2[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((p) => p.length > 0)
    .map((pair) => {
      const [x, y] = pair.split(',').map(Number);
      if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y)) {
        throw new Error(`Bad SVG polygon point: ${pair}`);
      }
      return [x, y];
    });
}

/** The rings of an SVG path made of M/L/Z commands (Annotorious' polygon serialisation). */
function parsePathRings(d: string): Point2[][] {
  const rings: Point2[][] = [];
  let ring: Point2[] = [];
  const commands = d.replace(/,/g, ' ').match(/[MLZmlz][^MLZmlz]*/g) ?? [];
  for (const command of commands) {
    const op = command[0]!.toUpperCase();
    const args = command.slice(1).trim().split(/\s+/).filter(Boolean).map(Number);
    if (command[0] !== op) throw new Error('Relative SVG path commands are not supported.');
    if (op === 'M' && ring.length) {
      rings.push(ring);
      ring = [];
    }
    if (op === 'Z') continue;
    for (let n = 0; n + 1 < args.length; n += 2) ring.push([args[n]!, args[n + 1]!]);
  }
  if (ring.length) rings.push(ring);
  return rings;
}

/** Drop a closing vertex that repeats the first, and consecutive duplicates: our rings
 * close themselves (docs/annotations.md, polygon validity 2 and 3). */
function tidyRing(ring: Point2[]): Point2[] {
  const out: Point2[] = [];
  for (const p of ring) {
    const last = out[out.length - 1];
    if (!last || last[0] !== p[0] || last[1] !== p[1]) out.push(p);
  }
  while (out.length > 1) {
    const first = out[0]!;
    const last = out[out.length - 1]!;
    if (first[0] !== last[0] || first[1] !== last[1]) break;
    out.pop();
  }
  return out;
}

function ringToIndex(ring: Point2[], o: ConvertOptions): Point2[] {
  return tidyRing(ring.map((p) => clampIndex(imageToIndex(p), o.width, o.height)));
}

/** A W3C annotation (from Annotorious) as our shape: a box or a polygon on slice 0. */
export function w3cToShape(a: W3CAnnotation, o: ConvertOptions): BoxShape | PolygonShape {
  const selector = selectorOf(a);
  const value = typeof selector?.value === 'string' ? selector.value : null;
  if (!selector || value === null) throw new Error(`Annotation ${a.id} has no selector.`);
  const common = {
    id: a.id,
    label: labelOf(a) ?? o.defaultLabel,
  };
  const extra = a.medlabel ?? {};
  if (selector.type === 'FragmentSelector') {
    const m = XYWH.exec(value);
    if (!m) throw new Error(`Unsupported media fragment: ${value}`);
    const [x, y, w, h] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
    const x0 = Math.min(x, x + w);
    const y0 = Math.min(y, y + h);
    const min = clampIndex(imageToIndex([x0, y0]), o.width, o.height);
    const max = clampIndex(imageToIndex([x0 + Math.abs(w), y0 + Math.abs(h)]), o.width, o.height);
    return { ...common, kind: 'box', ...extra, slice: 0, min, max } as BoxShape;
  }
  if (selector.type === 'SvgSelector') {
    let rings: Point2[][];
    const polygon = /<polygon\b[^>]*\bpoints=["']([^"']*)["']/.exec(value);
    if (polygon) {
      rings = [parsePoints(polygon[1]!)];
    } else {
      const paths = [...value.matchAll(/<path\b[^>]*\bd=["']([^"']*)["']/g)];
      if (paths.length === 0) throw new Error(`Unsupported SVG selector: ${value}`);
      if (paths.length > 1) throw new Error(`Annotation ${a.id} is a multi-polygon: not supported.`);
      rings = parsePathRings(paths[0]![1]!);
    }
    const [outer, ...holes] = rings.map((r) => ringToIndex(r, o));
    if (!outer) throw new Error(`Annotation ${a.id} has an empty polygon.`);
    return {
      ...common,
      kind: 'polygon',
      ...extra,
      slice: 0,
      points: outer,
      holes,
    } as PolygonShape;
  }
  throw new Error(`Unsupported selector type: ${String(selector.type)}`);
}

/** A copy of `shapes` where the shape with `next.id` is replaced (or appended). */
export function upsertShape(shapes: readonly Shape[], next: Shape): Shape[] {
  const at = shapes.findIndex((s) => s.id === next.id);
  if (at < 0) return [...shapes, next];
  return shapes.map((s, n) => (n === at ? next : s));
}

/** Our ids are 1-64 of A-Z a-z 0-9 _ - (Annotorious' UUIDs qualify). */
export const SHAPE_ID = /^[A-Za-z0-9_-]{1,64}$/;
