// The annotation-set and label-schema routes as the annotation UI uses them. The set routes
// are free-form objects on the server, so their bodies are checked here, at the boundary.
import type { Measurements, SaveOutcome, SetApi, SetHead } from '../state/autosave';
import { type LabelSchema, parseSchema } from '../state/labels';
import { shapeFromJson } from '../state/shapes';
import { ApiError, api, problemDetail, unwrap } from './client';

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function measurements(value: unknown): Measurements {
  return obj(value) as Measurements;
}

/** Open (or find) your own annotation set on an item; returns its id. */
export async function openAnnotationSet(itemId: number): Promise<number> {
  const result = await api.POST('/api/items/{item_id}/annotation-sets', {
    params: { path: { item_id: itemId } },
    body: {},
  });
  const body = obj(unwrap(result));
  if (typeof body.id !== 'number') throw new ApiError(result.response.status, 'The server returned no set id.');
  return body.id;
}

export async function fetchSetHead(setId: number): Promise<SetHead> {
  const result = await api.GET('/api/annotation-sets/{set_id}', {
    params: { path: { set_id: setId } },
    // the head must never come from the HTTP cache after a conflict
    cache: 'no-store',
  });
  if (!result.response.ok) {
    throw new ApiError(result.response.status, problemDetail(result.error, result.response.status));
  }
  const body = obj(result.data);
  const annotations = Array.isArray(body.annotations) ? body.annotations.map(shapeFromJson) : [];
  return {
    revision: typeof body.revision === 'number' ? body.revision : 0,
    annotations,
    measurements: measurements(body.measurements),
  };
}

/** A 422's message with the field it names, e.g. "annotations[0].points: ...". */
function refusal(error: unknown, status: number): string {
  return problemDetail(error, status);
}

export async function saveShapes(
  setId: number,
  baseRevision: number,
  annotations: unknown[],
  durationS: number | null,
): Promise<SaveOutcome> {
  const result = await api.PUT('/api/annotation-sets/{set_id}/annotations', {
    params: { path: { set_id: setId }, header: { 'if-match': `"v${baseRevision}"` } },
    body: {
      annotations: annotations as Json[],
      ...(durationS !== null ? { duration_s: Math.round(durationS * 10) / 10 } : {}),
    },
  });
  const status = result.response.status;
  if (result.response.ok) {
    const body = obj(result.data);
    return {
      type: 'saved',
      revision: typeof body.revision === 'number' ? body.revision : baseRevision + 1,
      created: body.created !== false,
      measurements: measurements(body.measurements),
    };
  }
  if (status === 409) {
    const current = obj(result.error).current_revision;
    return { type: 'conflict', currentRevision: typeof current === 'number' ? current : null };
  }
  if (status >= 500 || status === 408 || status === 429) {
    return { type: 'unreachable', message: refusal(result.error, status) };
  }
  return { type: 'refused', status, message: refusal(result.error, status) };
}

export const annotationSetApi: SetApi = {
  save: saveShapes,
  head: fetchSetHead,
};

export async function fetchLabelSchema(slug: string): Promise<LabelSchema> {
  const result = await api.GET('/api/projects/{slug}/schema', { params: { path: { slug } } });
  return parseSchema(unwrap(result));
}
