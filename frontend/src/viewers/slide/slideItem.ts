// What the slide viewer needs to know about an item (kind `slide` or `image`), read from the
// JSON of GET /api/items/{id}. The app's `Item` (api/items.ts) does not carry the slide block
// (`pixel.slide`) or the item's `flags` yet, and its parser insists on `pixel.dtype`, which a
// slide does not have; so the slide viewer checks the fields it uses here, once.

export interface SlideInfo {
  /** the scanner's objective (e.g. 20 for a 20x scan), or null when the file does not say */
  readonly objectivePower: number | null;
  /** microns per level-0 pixel along x and y, or null */
  readonly mppX: number | null;
  readonly mppY: number | null;
  /** [width, height] of each pyramid level of the file, level 0 first */
  readonly levelDimensions: readonly (readonly [number, number])[];
  readonly vendor: string | null;
}

export interface SlideItem {
  readonly id: number;
  readonly kind: string;
  readonly label: string;
  /** level-0 size in pixels: columns (i) and rows (j) */
  readonly width: number;
  readonly height: number;
  /** mm per pixel along i and j; null for items flagged `no_spacing` (photos, slides
   * without mpp): they are measured in pixels */
  readonly spacingMm: readonly [number, number] | null;
  /** null for photos */
  readonly slide: SlideInfo | null;
}

type Json = Record<string, unknown>;

function obj(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`Unexpected server response: ${what} is not an object.`);
  }
  return value as Json;
}

function positive(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : null;
}

function size(value: unknown, what: string): number {
  const n = positive(value);
  if (n === null || !Number.isInteger(n)) {
    throw new Error(`Unexpected server response: ${what} is not a positive integer.`);
  }
  return n;
}

/** Items the slide viewer shows (the others go to the radiology viewer). */
export function isSlideKind(kind: string): boolean {
  return kind === 'slide' || kind === 'image';
}

function parseSlideInfo(value: unknown): SlideInfo | null {
  if (value === null || value === undefined) return null;
  const s = obj(value, 'pixel.slide');
  const levels = Array.isArray(s.level_dimensions) ? s.level_dimensions : [];
  return {
    objectivePower: positive(s.objective_power),
    mppX: positive(s.mpp_x),
    mppY: positive(s.mpp_y),
    levelDimensions: levels.map((d, n): readonly [number, number] => {
      if (!Array.isArray(d) || d.length !== 2) {
        throw new Error(`Unexpected server response: pixel.slide.level_dimensions[${n}].`);
      }
      return [size(d[0], 'level width'), size(d[1], 'level height')];
    }),
    vendor: typeof s.vendor === 'string' ? s.vendor : null,
  };
}

/** The slide viewer's view of GET /api/items/{id}. */
export function parseSlideItem(value: unknown): SlideItem {
  const it = obj(value, 'item');
  const id = size(it.id, 'item.id');
  const kind = typeof it.kind === 'string' ? it.kind : '';
  const pixel = obj(it.pixel, 'item.pixel');
  const slide = parseSlideInfo(pixel.slide);
  const flags = Array.isArray(it.flags) ? it.flags.filter((f) => typeof f === 'string') : [];
  const geometry = it.geometry === null || it.geometry === undefined ? null : obj(it.geometry, 'geometry');
  const shape = geometry && Array.isArray(geometry.shape) ? geometry.shape : null;
  let width: number;
  let height: number;
  if (shape) {
    width = size(shape[0], 'geometry.shape[0]');
    height = size(shape[1], 'geometry.shape[1]');
  } else if (slide && slide.levelDimensions[0]) {
    [width, height] = slide.levelDimensions[0];
  } else {
    width = size(pixel.columns, 'pixel.columns');
    height = size(pixel.rows, 'pixel.rows');
  }
  let spacingMm: readonly [number, number] | null = null;
  const spacing = geometry && Array.isArray(geometry.spacing_mm) ? geometry.spacing_mm : null;
  if (!flags.includes('no_spacing') && spacing) {
    const di = positive(spacing[0]);
    const dj = positive(spacing[1]);
    if (di !== null && dj !== null) spacingMm = [di, dj];
  }
  if (!flags.includes('no_spacing') && spacingMm === null && slide?.mppX && slide.mppY) {
    spacingMm = [slide.mppX / 1000, slide.mppY / 1000];
  }
  return {
    id,
    kind,
    label: typeof it.label === 'string' ? it.label : '',
    width,
    height,
    spacingMm,
    slide,
  };
}
