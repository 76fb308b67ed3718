// Frames of one item from the pixel API: single frames on demand and the whole series in
// batches (GET /api/items/{id}/frames/raw?start=&count=), kept as typed arrays.
import { getBinary } from '../../api/client';

export type FrameArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Float32Array;

export type FrameDataType = 'Int8Array' | 'Uint8Array' | 'Int16Array' | 'Uint16Array' | 'Float32Array';

/** Frames per batch request: about 8 MB of int16 512x512 slices. */
const BATCH_BYTES = 8 * 1024 * 1024;

interface Decoded {
  readonly frames: FrameArray[];
}

/** Split a raw response (little-endian values, X-Shape "count,rows,columns", X-Dtype a
 * numpy name) into one typed array per frame. Wider integer and float64 data become
 * Float32Array, which the renderer supports. */
export function decodeFrames(body: ArrayBuffer, shapeHeader: string, dtype: string): Decoded {
  const shape = shapeHeader.split(',').map((s) => Number.parseInt(s, 10));
  if (shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`Unsupported frame shape ${shapeHeader} (monochrome frames only).`);
  }
  const [count, rows, columns] = shape as [number, number, number];
  const n = rows * columns;
  const all = typedView(body, dtype, count * n);
  const frames: FrameArray[] = [];
  for (let f = 0; f < count; f += 1) frames.push(all.slice(f * n, (f + 1) * n));
  return { frames };
}

function typedView(body: ArrayBuffer, dtype: string, length: number): FrameArray {
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!little) throw new Error('This viewer needs a little-endian machine.');
  const view = new DataView(body);
  switch (dtype) {
    case 'int8':
      return new Int8Array(body, 0, length);
    case 'uint8':
      return new Uint8Array(body, 0, length);
    case 'int16':
      return new Int16Array(body, 0, length);
    case 'uint16':
      return new Uint16Array(body, 0, length);
    case 'float32':
      return new Float32Array(body, 0, length);
    case 'int32':
      return Float32Array.from({ length }, (_, x) => view.getInt32(x * 4, true));
    case 'uint32':
      return Float32Array.from({ length }, (_, x) => view.getUint32(x * 4, true));
    case 'float64':
      return Float32Array.from({ length }, (_, x) => view.getFloat64(x * 8, true));
    default:
      throw new Error(`Unsupported pixel type ${dtype}.`);
  }
}

export function dataTypeOf(array: FrameArray): FrameDataType {
  if (array instanceof Int8Array) return 'Int8Array';
  if (array instanceof Uint8Array) return 'Uint8Array';
  if (array instanceof Int16Array) return 'Int16Array';
  if (array instanceof Uint16Array) return 'Uint16Array';
  return 'Float32Array';
}

/** The frames of one item; every frame is fetched at most once. */
export class FrameStore {
  private readonly frames = new Map<number, Promise<FrameArray>>();
  private readonly controller = new AbortController();
  private loaded = 0;

  constructor(
    readonly itemId: number,
    readonly frameCount: number,
    private readonly frameBytes: number,
    private readonly onLoaded: (count: number) => void = () => undefined,
  ) {}

  get loadedCount(): number {
    return this.loaded;
  }

  /** Frame k (fetched alone unless a batch holding it is already under way). */
  frame(k: number): Promise<FrameArray> {
    const known = this.frames.get(k);
    if (known) return known;
    const one = this.fetchRange(k, 1).then((frames) => frames[0]!);
    this.frames.set(k, one);
    this.track(one);
    return one;
  }

  /** Fetch every frame not yet asked for, in batches, starting from `from`, then wrapping. */
  async prefetchAll(from = 0): Promise<void> {
    const perBatch = Math.max(1, Math.floor(BATCH_BYTES / Math.max(1, this.frameBytes)));
    const order = [...range(from, this.frameCount), ...range(0, from)];
    let run: number[] = [];
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      const start = Math.min(...run);
      const count = run.length;
      run = [];
      const batch = this.fetchRange(start, count);
      for (let x = 0; x < count; x += 1) {
        const one = batch.then((frames) => frames[x]!);
        this.frames.set(start + x, one);
        this.track(one);
      }
      await batch;
    };
    for (const k of order) {
      if (this.controller.signal.aborted) return;
      const contiguous = run.length === 0 || k === run[run.length - 1]! + 1;
      if (this.frames.has(k) || !contiguous || run.length >= perBatch) await flush();
      if (!this.frames.has(k)) run.push(k);
    }
    await flush();
  }

  abort(): void {
    this.controller.abort();
  }

  private async fetchRange(start: number, count: number): Promise<FrameArray[]> {
    const path =
      count === 1
        ? `/api/items/${this.itemId}/frames/${start}/raw`
        : `/api/items/${this.itemId}/frames/raw?start=${start}&count=${count}`;
    const { body, headers } = await getBinary(path, this.controller.signal);
    const decoded = decodeFrames(body, headers.get('X-Shape') ?? '', headers.get('X-Dtype') ?? '');
    if (decoded.frames.length !== count) {
      throw new Error(`Asked for ${count} frames from ${start}, got ${decoded.frames.length}.`);
    }
    return decoded.frames;
  }

  private track(frame: Promise<FrameArray>): void {
    frame.then(
      () => {
        this.loaded += 1;
        this.onLoaded(this.loaded);
      },
      () => undefined,
    );
  }
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let k = from; k < to; k += 1) out.push(k);
  return out;
}
