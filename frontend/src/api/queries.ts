// Server state through TanStack Query: one hook per resource the pages use.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';

import { ApiError, type Project, type Session, api, setCsrfToken, unwrap } from './client';
import { type Item, type ItemList, fetchItem, fetchProjectItems } from './items';

export const SESSION_KEY = ['session'] as const;

/** The logged-in session, or null when there is none (401). */
export function useSession() {
  return useQuery<Session | null>({
    queryKey: SESSION_KEY,
    queryFn: async () => {
      const result = await api.GET('/api/auth/session');
      if (result.response.status === 401) {
        setCsrfToken(null);
        return null;
      }
      const session = unwrap(result);
      setCsrfToken(session.csrf_token);
      return session;
    },
    staleTime: Infinity,
    retry: false,
  });
}

export function useLogin() {
  const client = useQueryClient();
  return useMutation<Session, ApiError, { username: string; password: string }>({
    mutationFn: async (body) => unwrap(await api.POST('/api/auth/login', { body })),
    onSuccess: (session) => {
      setCsrfToken(session.csrf_token);
      client.setQueryData(SESSION_KEY, session);
    },
  });
}

export function useLogout() {
  const client = useQueryClient();
  return useMutation<void, ApiError, void>({
    mutationFn: async () => {
      const result = await api.POST('/api/auth/logout');
      if (!result.response.ok && result.response.status !== 401) unwrap(result);
    },
    onSettled: () => {
      setCsrfToken(null);
      // Forget everything the session could read; the login page asks for nothing.
      client.removeQueries({ predicate: (query) => query.queryKey[0] !== SESSION_KEY[0] });
      client.setQueryData(SESSION_KEY, null);
    },
  });
}

export function useProjects() {
  return useQuery<Project[]>({
    queryKey: ['projects'],
    queryFn: async () =>
      unwrap(await api.GET('/api/projects', { params: { query: { sort: 'name' } } })).items,
  });
}

export function useProjectItems(slug: string) {
  return useQuery<ItemList>({
    queryKey: ['projects', slug, 'items'],
    queryFn: () => fetchProjectItems(slug),
  });
}

export function useItem(itemId: number) {
  return useQuery<Item>({
    queryKey: ['items', itemId],
    queryFn: () => fetchItem(itemId),
  });
}
