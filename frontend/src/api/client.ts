// The typed HTTP client: every JSON call goes through `api` (openapi-fetch over the
// generated `paths`), so a renamed route or field is a type error, not a runtime surprise.
// Browsers authenticate with the session cookie; every state-changing request carries the
// CSRF token from the login or session response (see src/medlabel/web/deps.py).
import createClient, { type Middleware } from 'openapi-fetch';

import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type Session = Schemas['SessionOut'];
export type Project = Schemas['ProjectOut'];

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

let csrfToken: string | null = null;

/** Remember the CSRF token of the current session (null after logout). */
export function setCsrfToken(token: string | null | undefined): void {
  csrfToken = token ?? null;
}

/** An HTTP error from the API, with the problem document's `detail` when there is one. */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, detail: string) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** The CSRF header for a state-changing request made outside openapi-fetch. */
export function csrfHeaders(): Record<string, string> {
  return csrfToken !== null ? { 'X-CSRF-Token': csrfToken } : {};
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (csrfToken !== null && !SAFE_METHODS.has(request.method.toUpperCase())) {
      request.headers.set('X-CSRF-Token', csrfToken);
    }
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });
api.use(csrf);

/** The `detail` of a problem document (RFC 9457), or a generic message. */
export function problemDetail(body: unknown, status: number): string {
  if (typeof body === 'object' && body !== null && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === 'string') return detail;
  }
  return `Request failed with status ${status}.`;
}

/** The data of an openapi-fetch result, or an ApiError. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok && result.data !== undefined) return result.data;
  throw new ApiError(result.response.status, problemDetail(result.error, result.response.status));
}

/** Raw bytes from a GET on the API (pixel routes are binary, outside openapi-fetch). */
export async function getBinary(
  path: string,
  signal?: AbortSignal,
): Promise<{ body: ArrayBuffer; headers: Headers }> {
  const response = await fetch(path, { credentials: 'same-origin', signal: signal ?? null });
  if (!response.ok) {
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    throw new ApiError(response.status, problemDetail(body, response.status));
  }
  return { body: await response.arrayBuffer(), headers: response.headers };
}
