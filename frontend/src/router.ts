// A tiny history router: the server answers every client route with index.html (SPA
// fallback in src/medlabel/web/app.py), and these patterns pick the page.
import { useSyncExternalStore } from 'react';

export type Route =
  | { readonly page: 'projects' }
  | { readonly page: 'project'; readonly slug: string }
  | { readonly page: 'item'; readonly itemId: number; readonly slug: string | null }
  | { readonly page: 'not-found'; readonly path: string };

export function parseRoute(pathname: string, search = ''): Route {
  if (pathname === '/' || pathname === '') return { page: 'projects' };
  const project = /^\/projects\/([^/]+)\/?$/.exec(pathname);
  if (project) return { page: 'project', slug: decodeURIComponent(project[1]!) };
  const item = /^\/items\/(\d+)\/?$/.exec(pathname);
  if (item) {
    const slug = new URLSearchParams(search).get('project');
    return { page: 'item', itemId: Number(item[1]), slug };
  }
  return { page: 'not-found', path: pathname };
}

export function projectPath(slug: string): string {
  return `/projects/${encodeURIComponent(slug)}`;
}

export function itemPath(itemId: number, slug?: string): string {
  return slug ? `/items/${itemId}?project=${encodeURIComponent(slug)}` : `/items/${itemId}`;
}

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

function snapshot(): string {
  return window.location.pathname + window.location.search;
}

export function navigate(to: string): void {
  if (to === snapshot()) return;
  window.history.pushState(null, '', to);
  for (const listener of listeners) listener();
}

export function useRoute(): Route {
  const location = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(location, 'http://x');
  return parseRoute(url.pathname, url.search);
}
