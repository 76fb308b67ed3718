// Pure coordinate conversions for the slide viewer. No browser, no library.
//
// Ours (everywhere in medlabel): image index (i, j) = (column, row) of LEVEL 0, pixel CENTRES at
// integers, so pixel (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5] and the valid range
// on an axis of n pixels is -0.5 .. n - 0.5 (docs/annotations.md).
//
// OpenSeadragon's "image" coordinates are level-0 pixels with pixel EDGES at integers: the
// top-left corner of pixel (0, 0) is (0, 0) and its centre is (0.5, 0.5). So
// index = image - 0.5. Annotorious reports shapes in these image coordinates too.
//
// OpenSeadragon's "viewport" coordinates (one image, placed at x = 0 with width 1): the image
// spans x in [0, 1] and y in [0, height / width]; both axes are scaled by the image WIDTH.

export type Vec2 = readonly [number, number];

/** OSD image coordinates -> our index. */
export function imageToIndex(xy: Vec2): [number, number] {
  return [xy[0] - 0.5, xy[1] - 0.5];
}

/** Our index -> OSD image coordinates. */
export function indexToImage(ij: Vec2): [number, number] {
  return [ij[0] + 0.5, ij[1] + 0.5];
}

/** OSD viewport coordinates -> our index, for an image of `width` level-0 pixels. */
export function viewportToIndex(v: Vec2, width: number): [number, number] {
  return imageToIndex([v[0] * width, v[1] * width]);
}

/** Our index -> OSD viewport coordinates. */
export function indexToViewport(ij: Vec2, width: number): [number, number] {
  const [x, y] = indexToImage(ij);
  return [x / width, y / width];
}

/** The pixel (integers) containing an index, or null outside a width x height image. */
export function pixelAt(ij: Vec2, width: number, height: number): [number, number] | null {
  const i = Math.round(ij[0]) + 0; // + 0: no -0
  const j = Math.round(ij[1]) + 0;
  return i >= 0 && i < width && j >= 0 && j < height ? [i, j] : null;
}

/** Clamp an index into the valid range -0.5 .. n - 0.5 on each axis. */
export function clampIndex(ij: Vec2, width: number, height: number): [number, number] {
  return [
    Math.min(Math.max(ij[0], -0.5), width - 0.5),
    Math.min(Math.max(ij[1], -0.5), height - 0.5),
  ];
}

/** The optical magnification shown: the objective's power times screen pixels per level-0
 * pixel (CSS pixels). A 20x scan shown 1:1 is 20x; zoomed out to half size, 10x. */
export function magnification(objectivePower: number | null, imageZoom: number): number | null {
  if (objectivePower === null || !(imageZoom > 0)) return null;
  return objectivePower * imageZoom;
}

/** "20x", "2.5x", "0.31x". */
export function formatMagnification(m: number): string {
  if (m >= 10) return `${Math.round(m)}x`;
  if (m >= 1) return `${Number(m.toFixed(1))}x`;
  return `${Number(m.toPrecision(2))}x`;
}

export interface ScaleBar {
  /** the bar's length on screen, CSS pixels */
  readonly px: number;
  /** its length in micrometres */
  readonly um: number;
  /** e.g. "50 µm", "1 mm" */
  readonly label: string;
}

const NICE = [1, 2, 5];

/** The longest 1/2/5 x 10^n length that fits in `maxPx` screen pixels, for pixels of
 * `mmPerPixel` shown at `imageZoom` screen pixels per image pixel; null without spacing. */
export function scaleBar(mmPerPixel: number | null, imageZoom: number, maxPx = 150): ScaleBar | null {
  if (mmPerPixel === null || !(mmPerPixel > 0) || !(imageZoom > 0) || !(maxPx > 0)) return null;
  const umPerScreenPx = (mmPerPixel * 1000) / imageZoom;
  const maxUm = umPerScreenPx * maxPx;
  let exponent = Math.floor(Math.log10(maxUm));
  let best: number | null = null;
  while (best === null) {
    const decade = 10 ** exponent;
    for (const n of NICE) if (n * decade <= maxUm * (1 + 1e-12)) best = n * decade;
    exponent -= 1;
  }
  const um = Number(best.toPrecision(12));
  return { px: um / umPerScreenPx, um, label: formatLength(um) };
}

function formatLength(um: number): string {
  if (um >= 1000) return `${Number((um / 1000).toPrecision(12))} mm`;
  if (um >= 1) return `${Number(um.toPrecision(12))} µm`;
  return `${Number((um * 1000).toPrecision(12))} nm`;
}
