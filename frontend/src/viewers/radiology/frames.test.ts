import { afterEach, describe, expect, it, vi } from 'vitest';

import { FrameStore, dataTypeOf, decodeFrames } from './frames';

describe('decodeFrames', () => {
  it('splits a batch into one typed array per frame', () => {
    const values = Int16Array.from([-1000, 0, 1, 2, 3, 4, 5, 3071]);
    const { frames } = decodeFrames(values.buffer, '2,2,2', 'int16');
    expect(frames.map((f) => Array.from(f))).toEqual([
      [-1000, 0, 1, 2],
      [3, 4, 5, 3071],
    ]);
    expect(dataTypeOf(frames[0]!)).toBe('Int16Array');
  });

  it('reads wide types little-endian into Float32Array', () => {
    const buffer = new ArrayBuffer(8);
    new DataView(buffer).setInt32(0, -70000, true);
    new DataView(buffer).setInt32(4, 123456, true);
    const { frames } = decodeFrames(buffer, '1,1,2', 'int32');
    expect(Array.from(frames[0]!)).toEqual([-70000, 123456]);
    expect(dataTypeOf(frames[0]!)).toBe('Float32Array');
  });

  it('refuses colour frames and unknown types', () => {
    expect(() => decodeFrames(new ArrayBuffer(12), '1,1,2,3', 'uint8')).toThrow(/shape/);
    expect(() => decodeFrames(new ArrayBuffer(4), '1,1,1', 'complex64')).toThrow(/type/);
  });
});

/** A fake pixel API: frame k of a 1x2 uint8 series holds [k, k]. */
function fakeApi(frames: number): string[] {
  const asked: string[] = [];
  vi.stubGlobal('fetch', async (path: string) => {
    asked.push(path);
    const url = new URL(path, 'http://x');
    const single = /\/frames\/(\d+)\/raw$/.exec(url.pathname);
    const start = single ? Number(single[1]) : Number(url.searchParams.get('start'));
    const count = single ? 1 : Number(url.searchParams.get('count'));
    if (start + count > frames) return new Response('{"detail": "no"}', { status: 404 });
    const body = new Uint8Array(count * 2).map((_, x) => start + Math.floor(x / 2));
    return new Response(body, { headers: { 'X-Shape': `${count},1,2`, 'X-Dtype': 'uint8' } });
  });
  return asked;
}

describe('FrameStore', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('fetches each frame once: single frames on demand, the rest in batches', async () => {
    const asked = fakeApi(10);
    const loaded: number[] = [];
    // 2-byte frames and 8 MB batches: one batch per contiguous run.
    const store = new FrameStore(7, 10, 2, (n) => loaded.push(n));
    expect(Array.from(await store.frame(4))).toEqual([4, 4]);
    await store.prefetchAll(4);
    expect(asked).toEqual([
      '/api/items/7/frames/4/raw',
      '/api/items/7/frames/raw?start=5&count=5',
      '/api/items/7/frames/raw?start=0&count=4',
    ]);
    for (let k = 0; k < 10; k += 1) expect(Array.from(await store.frame(k))).toEqual([k, k]);
    expect(asked).toHaveLength(3);
    expect(store.loadedCount).toBe(10);
    expect(loaded.at(-1)).toBe(10);
  });

  it('reports API errors with the problem detail', async () => {
    fakeApi(2);
    const store = new FrameStore(7, 5, 2);
    await expect(store.frame(3)).rejects.toThrow('no');
  });
});
