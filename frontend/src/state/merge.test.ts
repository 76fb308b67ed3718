import { describe, expect, it } from 'vitest';

import { mergeDocuments } from './merge';
import type { Shape } from './shapes';

const pt = (id: string, x: number, label = 'carina'): Shape => ({
  id,
  kind: 'point',
  label,
  attributes: {},
  point: [x, 1, 2],
});

describe('mergeDocuments', () => {
  it('takes theirs where we did not touch, ours where we did, and both additions', () => {
    const base = [pt('a', 1), pt('b', 2), pt('c', 3), pt('d', 4)];
    const local = [pt('a', 10), pt('b', 2), pt('d', 4), pt('mine', 7)]; // edit a, delete c, add mine
    const remote = [pt('a', 1), pt('b', 20), pt('c', 3), pt('theirs', 8)]; // edit b, delete d, add theirs
    const { shapes, conflicts } = mergeDocuments(base, local, remote);
    expect(shapes).toEqual([pt('a', 10), pt('b', 20), pt('theirs', 8), pt('mine', 7)]);
    expect(conflicts).toEqual([]);
  });

  it('keeps the edit when one side deleted and the other edited, ours when both edited', () => {
    const base = [pt('a', 1), pt('b', 2), pt('c', 3)];
    const local = [pt('b', 22), pt('c', 33)]; // delete a, edit b, edit c
    const remote = [pt('a', 11), pt('c', 300)]; // edit a, delete b, edit c
    const { shapes, conflicts } = mergeDocuments(base, local, remote);
    expect(shapes).toEqual([pt('a', 11), pt('c', 33), pt('b', 22)]);
    expect(conflicts).toEqual(['c']);
  });
});
