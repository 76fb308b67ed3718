// The Deep Zoom descriptor of GET /api/items/{id}/dzi (the JSON form of a .dzi file) as an
// OpenSeadragon tile source. Pure.
//
// OpenSeadragon derives a DZI's tile folder from the descriptor URL (`.../dzi` -> `.../dzi_files/`)
// unless the descriptor names it in `Image.Url`; our tiles are at
// /api/items/{id}/dzi/{level}/{column}_{row}.jpeg, so we set Url to `/api/items/{id}/dzi/`.
// Tiles load as same-origin <img> requests: the session cookie goes with them.

export interface DziDescriptor {
  readonly width: number;
  readonly height: number;
  readonly tileSize: number;
  readonly overlap: number;
  readonly format: string;
}

function positiveInt(value: unknown, what: string, allowZero = false): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    throw new Error(`Unexpected Deep Zoom descriptor: ${what} is ${JSON.stringify(value)}.`);
  }
  return n;
}

export function parseDzi(value: unknown): DziDescriptor {
  const image = (value as { Image?: Record<string, unknown> } | null)?.Image;
  if (typeof image !== 'object' || image === null) {
    throw new Error('Unexpected Deep Zoom descriptor: no Image.');
  }
  const size = image.Size as Record<string, unknown> | undefined;
  const format = image.Format;
  if (typeof format !== 'string' || !/^[a-z]{2,5}$/.test(format)) {
    throw new Error(`Unexpected Deep Zoom descriptor: Format is ${JSON.stringify(format)}.`);
  }
  return {
    width: positiveInt(size?.Width, 'Size.Width'),
    height: positiveInt(size?.Height, 'Size.Height'),
    tileSize: positiveInt(image.TileSize, 'TileSize'),
    overlap: positiveInt(image.Overlap, 'Overlap', true),
    format,
  };
}

export function dziUrl(itemId: number): string {
  return `/api/items/${itemId}/dzi`;
}

/** The tile-source object OpenSeadragon's DziTileSource configures itself from. */
export function dziTileSource(itemId: number, d: DziDescriptor) {
  return {
    Image: {
      xmlns: 'http://schemas.microsoft.com/deepzoom/2008',
      Url: `${dziUrl(itemId)}/`,
      Format: d.format,
      Overlap: String(d.overlap),
      TileSize: String(d.tileSize),
      Size: { Width: String(d.width), Height: String(d.height) },
    },
  };
}

/** The URL OpenSeadragon will ask for (DziTileSource.getTileUrl), for tests and docs. */
export function tileUrl(itemId: number, d: DziDescriptor, level: number, col: number, row: number): string {
  return `${dziUrl(itemId)}/${level}/${col}_${row}.${d.format}`;
}

/** The highest Deep Zoom level: level-0 pixels 1:1 (level 0 is 1x1). */
export function maxLevel(d: DziDescriptor): number {
  return Math.ceil(Math.log2(Math.max(d.width, d.height)));
}
