// Items as the viewer needs them. The server declares GET /api/items/{id} and the items list
// as free-form objects (`{[key: string]: unknown}` in schema.d.ts), so they are checked here,
// once, at the boundary: the rest of the app only sees these types.
import { api, unwrap } from './client';

export type Vec3 = readonly [number, number, number];

/** Index -> patient mm (LPS); see src/medlabel/domain/geometry.py for the conventions. */
export interface Geometry {
  /** (columns, rows, slices) */
  readonly shape: Vec3;
  /** (di, dj, dk): distance between neighbouring column, row and slice centres */
  readonly spacing_mm: Vec3;
  /** direction[0] along +i (columns), [1] along +j (rows), [2] along +k (slices) */
  readonly direction: readonly [Vec3, Vec3, Vec3];
  /** patient position of the centre of voxel (0, 0, 0) */
  readonly origin_mm: Vec3;
  readonly frame_of_reference_uid: string | null;
}

export interface HeaderWindow {
  readonly name: string;
  readonly center: number;
  readonly width: number;
}

export interface PixelInfo {
  readonly dtype: string;
  readonly rows: number;
  readonly columns: number;
  readonly samples: number;
  readonly frames: number;
  readonly photometric: string;
  readonly invert: boolean;
  readonly units: string | null;
  readonly windows: readonly HeaderWindow[];
  /** frame values are in modality units (the rescale slope/intercept is applied) */
  readonly rescale_applied: boolean;
  /** names the rendered-frame endpoint accepts (header windows, CT presets, "auto") */
  readonly window_presets: readonly string[];
}

export interface Item {
  readonly id: number;
  readonly kind: string;
  readonly source_format: string;
  readonly modality: string | null;
  readonly label: string;
  readonly status: string;
  readonly geometry: Geometry | null;
  readonly pixel: PixelInfo;
  readonly series_uid: string | null;
  /** the slug of the item's project (GET /api/items/{id} names it) */
  readonly project: string | null;
}

export class InvalidResponse extends Error {
  constructor(what: string) {
    super(`Unexpected server response: ${what}.`);
    this.name = 'InvalidResponse';
  }
}

type Json = Record<string, unknown>;

function obj(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidResponse(`${what} is not an object`);
  }
  return value as Json;
}

function num(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidResponse(`${what} is not a finite number`);
  }
  return value;
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new InvalidResponse(`${what} is not a string`);
  return value;
}

function optStr(value: unknown, what: string): string | null {
  return value === null || value === undefined ? null : str(value, what);
}

function vec3(value: unknown, what: string): Vec3 {
  if (!Array.isArray(value) || value.length !== 3) {
    throw new InvalidResponse(`${what} is not a 3-vector`);
  }
  return [num(value[0], what), num(value[1], what), num(value[2], what)];
}

export function parseGeometry(value: unknown): Geometry {
  const g = obj(value, 'geometry');
  const direction = g.direction;
  if (!Array.isArray(direction) || direction.length !== 3) {
    throw new InvalidResponse('geometry.direction is not three vectors');
  }
  return {
    shape: vec3(g.shape, 'geometry.shape'),
    spacing_mm: vec3(g.spacing_mm, 'geometry.spacing_mm'),
    direction: [
      vec3(direction[0], 'geometry.direction[0]'),
      vec3(direction[1], 'geometry.direction[1]'),
      vec3(direction[2], 'geometry.direction[2]'),
    ],
    origin_mm: vec3(g.origin_mm, 'geometry.origin_mm'),
    frame_of_reference_uid: optStr(g.frame_of_reference_uid, 'geometry.frame_of_reference_uid'),
  };
}

function parseWindow(value: unknown): HeaderWindow {
  const w = obj(value, 'window');
  return {
    name: str(w.name, 'window.name'),
    center: num(w.center, 'window.center'),
    width: num(w.width, 'window.width'),
  };
}

export function parsePixel(value: unknown): PixelInfo {
  const p = obj(value, 'pixel');
  const windows = Array.isArray(p.windows) ? p.windows.map(parseWindow) : [];
  const presets = Array.isArray(p.window_presets)
    ? p.window_presets.map((n) => str(n, 'pixel.window_presets[]'))
    : [];
  return {
    // Slides have no decoded frames (they are served as Deep Zoom tiles): no dtype, no size.
    dtype: p.dtype === undefined ? '' : str(p.dtype, 'pixel.dtype'),
    rows: p.rows === undefined ? 0 : num(p.rows, 'pixel.rows'),
    columns: p.columns === undefined ? 0 : num(p.columns, 'pixel.columns'),
    samples: p.samples === undefined ? 1 : num(p.samples, 'pixel.samples'),
    frames: p.frames === undefined ? 1 : num(p.frames, 'pixel.frames'),
    photometric: typeof p.photometric === 'string' ? p.photometric : 'MONOCHROME2',
    invert: p.invert === true,
    units: optStr(p.units, 'pixel.units'),
    windows,
    rescale_applied: p.rescale_applied === true,
    window_presets: presets,
  };
}

export function parseItem(value: unknown): Item {
  const it = obj(value, 'item');
  return {
    id: num(it.id, 'item.id'),
    kind: str(it.kind, 'item.kind'),
    source_format: str(it.source_format, 'item.source_format'),
    modality: optStr(it.modality, 'item.modality'),
    label: typeof it.label === 'string' ? it.label : '',
    status: str(it.status, 'item.status'),
    geometry: it.geometry === null || it.geometry === undefined ? null : parseGeometry(it.geometry),
    pixel: parsePixel(it.pixel),
    series_uid: optStr(it.series_uid, 'item.series_uid'),
    project: optStr(it.project, 'item.project'),
  };
}

export async function fetchItem(id: number): Promise<Item> {
  const result = await api.GET('/api/items/{item_id}', { params: { path: { item_id: id } } });
  return parseItem(unwrap(result));
}

export interface ItemList {
  readonly items: readonly Item[];
  readonly total: number;
}

export async function fetchProjectItems(slug: string): Promise<ItemList> {
  const result = await api.GET('/api/projects/{slug}/items', {
    params: { path: { slug }, query: { limit: 1000 } },
  });
  const page = unwrap(result);
  return { items: page.items.map(parseItem), total: page.total };
}

export function thumbnailUrl(id: number): string {
  return `/api/items/${id}/thumbnail`;
}

export function renderedFrameUrl(id: number, k: number): string {
  return `/api/items/${id}/frames/${k}/rendered?window=auto`;
}

/** Monochrome volumes, stacks and images are shown by the radiology viewer. */
export function isRadiology(item: Item): boolean {
  return item.pixel.samples === 1 && item.geometry !== null && item.kind !== 'slide';
}
