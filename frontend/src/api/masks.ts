// The mask routes (docs/annotations.md, "Masks") as the brush uses them: one uint8 slice at a
// time, zlib on the wire. Binary, so outside openapi-fetch.
import { ApiError, csrfHeaders, problemDetail } from './client';

export type MaskWrite =
  | { readonly type: 'saved'; readonly revision: number; readonly changedSlices: readonly number[] }
  | { readonly type: 'conflict' }
  | { readonly type: 'refused'; readonly status: number; readonly message: string };

async function deflate(bytes: Uint8Array): Promise<ArrayBuffer> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Response(stream).arrayBuffer();
}

async function inflate(bytes: ArrayBuffer): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function detail(response: Response): Promise<string> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return problemDetail(body, response.status);
}

async function writeOutcome(response: Response, baseRevision: number): Promise<MaskWrite> {
  if (response.ok) {
    const body = (await response.json()) as { revision?: unknown; changed_slices?: unknown };
    return {
      type: 'saved',
      revision: typeof body.revision === 'number' ? body.revision : baseRevision + 1,
      changedSlices: Array.isArray(body.changed_slices) ? body.changed_slices.map(Number) : [],
    };
  }
  if (response.status === 409 || response.status === 412) return { type: 'conflict' };
  return { type: 'refused', status: response.status, message: await detail(response) };
}

function maskPath(setId: number, maskId: string): string {
  return `/api/annotation-sets/${setId}/masks/${encodeURIComponent(maskId)}`;
}

/** Write slice k of a semantic uint8 mask. */
export async function putMaskSlice(
  setId: number,
  maskId: string,
  k: number,
  data: Uint8Array,
  baseRevision: number,
): Promise<MaskWrite> {
  const body = await deflate(data);
  const response = await fetch(`${maskPath(setId, maskId)}?start=${k}&count=1&encoding=zlib&dtype=uint8&type=semantic`, {
    method: 'PUT',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/octet-stream', 'If-Match': `"v${baseRevision}"`, ...csrfHeaders() },
    body,
  });
  return writeOutcome(response, baseRevision);
}

/** Whether the set's head has a mask of this id (asked first: a 404 would be a console error). */
export async function hasMask(setId: number, maskId: string): Promise<boolean> {
  const response = await fetch(`/api/annotation-sets/${setId}`, { credentials: 'same-origin', cache: 'no-store' });
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  const body = (await response.json()) as { masks?: unknown };
  return Array.isArray(body.masks) && body.masks.some((m) => (m as { id?: unknown } | null)?.id === maskId);
}

/** Slices start..start+count-1 of a mask as uint8 (null when the set has no such mask). */
export async function getMaskSlices(
  setId: number,
  maskId: string,
  start: number,
  count: number,
): Promise<Uint8Array | null> {
  const response = await fetch(`${maskPath(setId, maskId)}?start=${start}&count=${count}&encoding=zlib`, {
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (response.status === 404) return null;
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  if (response.headers.get('X-Mask-Dtype') !== 'uint8') {
    throw new ApiError(422, 'Only uint8 masks can be painted here.');
  }
  return inflate(await response.arrayBuffer());
}

/** Fill the slices between the key slices of one value (server-side interpolation). */
export async function interpolateMask(
  setId: number,
  maskId: string,
  value: number,
  baseRevision: number,
): Promise<MaskWrite> {
  const response = await fetch(`${maskPath(setId, maskId)}/interpolate`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'If-Match': `"v${baseRevision}"`, ...csrfHeaders() },
    body: JSON.stringify({ value }),
  });
  return writeOutcome(response, baseRevision);
}
