import { describe, expect, it } from 'vitest';

import type { Shape } from './shapes';
import { AnnotationStore } from './store';

const box = (id: string, x = 10): Shape => ({
  id,
  kind: 'box',
  label: 'nodule',
  attributes: {},
  slice: 3,
  min: [x, 10],
  max: [x + 20, 30],
});

describe('AnnotationStore', () => {
  it('undoes and redoes add, update, attribute change and remove', () => {
    const store = new AnnotationStore();
    store.add(box('a'));
    store.add(box('b', 50));
    expect(store.snapshot().selected).toBe('b');
    store.update(box('a', 12));
    store.setAttribute('a', 'solid', true);
    store.remove('b');
    expect(store.snapshot().shapes.map((s) => s.id)).toEqual(['a']);
    expect(store.get('a')?.attributes).toEqual({ solid: true });
    expect(store.snapshot().selected).toBeNull();

    expect(store.undo()).toBe(true); // remove
    expect(store.snapshot().shapes.map((s) => s.id)).toEqual(['a', 'b']);
    store.undo(); // attribute
    expect(store.get('a')?.attributes).toEqual({});
    store.undo(); // update
    expect(store.get('a')).toEqual(box('a'));
    store.undo(); // add b
    store.undo(); // add a
    expect(store.snapshot().shapes).toEqual([]);
    expect(store.snapshot().canUndo).toBe(false);
    expect(store.undo()).toBe(false);

    for (let n = 0; n < 5; n += 1) store.redo();
    expect(store.snapshot().shapes.map((s) => s.id)).toEqual(['a']);
    expect(store.get('a')).toEqual({ ...box('a', 12), attributes: { solid: true } });
    expect(store.snapshot().canRedo).toBe(false);
  });

  it('forgets the redo branch after a new edit and ignores no-op updates', () => {
    const store = new AnnotationStore();
    store.add(box('a'));
    store.undo();
    store.add(box('c'));
    expect(store.snapshot().canRedo).toBe(false);
    const version = store.snapshot().version;
    store.update(box('c'));
    expect(store.snapshot().version).toBe(version);
  });

  it('notifies with the source and keeps history across replace()', () => {
    const store = new AnnotationStore();
    const sources: string[] = [];
    store.subscribe((_s, source) => sources.push(source));
    store.add(box('a'));
    store.replace([box('a'), box('z', 100)]);
    store.undo();
    expect(store.snapshot().shapes.map((s) => s.id)).toEqual(['z']);
    expect(sources).toEqual(['edit', 'edit', 'replace', 'undo']);
  });

  it('refuses a duplicate id', () => {
    const store = new AnnotationStore([box('a')]);
    expect(() => store.add(box('a'))).toThrow();
  });
});
