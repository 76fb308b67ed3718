import { describe, expect, it } from 'vitest';

import { itemPath, parseRoute, projectPath } from './router';

describe('routes', () => {
  it('parses the pages', () => {
    expect(parseRoute('/')).toEqual({ page: 'projects' });
    expect(parseRoute('/projects/demo')).toEqual({ page: 'project', slug: 'demo' });
    expect(parseRoute('/items/12', '?project=demo')).toEqual({ page: 'item', itemId: 12, slug: 'demo' });
    expect(parseRoute('/items/12')).toEqual({ page: 'item', itemId: 12, slug: null });
    expect(parseRoute('/nope')).toEqual({ page: 'not-found', path: '/nope' });
  });

  it('builds paths that parse back', () => {
    expect(parseRoute(projectPath('a b'))).toEqual({ page: 'project', slug: 'a b' });
    const [path, search] = itemPath(3, 'x/y').split('?');
    expect(parseRoute(path!, `?${search}`)).toEqual({ page: 'item', itemId: 3, slug: 'x/y' });
  });
});
