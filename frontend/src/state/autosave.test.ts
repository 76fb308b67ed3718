import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { type Clock, type KeyValueStorage, type SaveOutcome, type SetApi, type SetHead, AutosaveController, pendingKey } from './autosave';
import { type Shape, shapeFromJson } from './shapes';
import { AnnotationStore } from './store';

const box = (id: string, x = 10, attributes: Shape['attributes'] = {}): Shape => ({
  id,
  kind: 'box',
  label: 'nodule',
  attributes,
  slice: 3,
  min: [x, 10],
  max: [x + 20, 30],
});

/** An in-memory annotation set with the server's concurrency rules. */
class FakeServer implements SetApi {
  revision = 0;
  annotations: unknown[] = [];
  offline = false;
  saves: { base: number; annotations: unknown[]; duration: number | null }[] = [];
  heads = 0;

  async save(_set: number, base: number, annotations: unknown[], duration: number | null): Promise<SaveOutcome> {
    await Promise.resolve();
    if (this.offline) throw new TypeError('Failed to fetch');
    this.saves.push({ base, annotations, duration });
    if (base !== this.revision) return { type: 'conflict', currentRevision: this.revision };
    if (JSON.stringify(annotations) === JSON.stringify(this.annotations)) {
      return { type: 'saved', revision: this.revision, created: false, measurements: {} };
    }
    this.revision += 1;
    this.annotations = annotations;
    return { type: 'saved', revision: this.revision, created: true, measurements: { x: { area_mm2: 1 } } };
  }

  async head(): Promise<SetHead> {
    await Promise.resolve();
    if (this.offline) throw new TypeError('Failed to fetch');
    this.heads += 1;
    return { revision: this.revision, annotations: this.annotations.map(shapeFromJson), measurements: {} };
  }

  /** Someone else saves (another tab, a reviewer). */
  external(annotations: Shape[]): void {
    this.revision += 1;
    this.annotations = annotations.map((s) => JSON.parse(JSON.stringify({ ...s })));
  }

  ids(): string[] {
    return (this.annotations as { id: string }[]).map((a) => a.id);
  }
}

class MemoryStorage implements KeyValueStorage {
  readonly data = new Map<string, string>();
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.data.set(key, value);
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
}

const clock: Clock = {
  now: () => Date.now(),
  setTimeout: (f, ms) => setTimeout(f, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

function setUp(server: FakeServer, storage = new MemoryStorage(), validate?: (s: readonly Shape[]) => { id: string; message: string }[]) {
  const store = new AnnotationStore();
  const saver = new AutosaveController({ setId: 7, store, api: server, clock, storage, debounceMs: 800, ...(validate ? { validate } : {}) });
  return { store, saver, storage };
}

async function startWith(server: FakeServer, saver: AutosaveController): Promise<void> {
  saver.start(await server.head());
  await vi.advanceTimersByTimeAsync(0);
}

describe('AutosaveController', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shares the revision with other writes (masks): exclusive() runs between shape saves', async () => {
    const server = new FakeServer();
    const { store, saver } = setUp(server);
    await startWith(server, saver);
    const seen: number[] = [];
    const mask = saver.exclusive(async (revision) => {
      seen.push(revision);
      await Promise.resolve();
      server.revision += 1; // the mask write moves the set's revision
      return { revision: server.revision, value: 'ok' };
    });
    await expect(mask).resolves.toBe('ok');
    expect(seen).toEqual([0]);
    expect(saver.state().revision).toBe(1);
    store.add(box('a'));
    await vi.advanceTimersByTimeAsync(900);
    // The shape save builds on the mask write's revision: no conflict.
    expect(server.saves.map((s) => s.base)).toEqual([1]);
    expect(saver.state()).toMatchObject({ status: 'saved', revision: 2 });
    await saver.exclusive(async (revision) => {
      seen.push(revision);
      return { revision: null, value: null };
    });
    expect(seen).toEqual([0, 2]);
  });

  it('debounces: one PUT 800 ms after the last change, with If-Match of the last revision', async () => {
    const server = new FakeServer();
    const { store, saver } = setUp(server);
    await startWith(server, saver);
    store.add(box('a'));
    expect(saver.state().status).toBe('dirty');
    await vi.advanceTimersByTimeAsync(500);
    store.update(box('a', 12));
    await vi.advanceTimersByTimeAsync(500);
    expect(server.saves).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(400);
    expect(server.saves).toHaveLength(1);
    expect(server.saves[0]!.base).toBe(0);
    expect(server.saves[0]!.duration).toBeCloseTo(1.3, 5);
    expect(saver.state()).toMatchObject({ status: 'saved', revision: 1 });
    expect(saver.state().measurements).toEqual({ x: { area_mm2: 1 } });

    store.undo(); // back to the first box: a change to save on revision 1
    await vi.advanceTimersByTimeAsync(800);
    expect(server.saves[1]!.base).toBe(1);
    expect(saver.state()).toMatchObject({ status: 'saved', revision: 2 });
  });

  it('does not send a document with a missing required attribute', async () => {
    const server = new FakeServer();
    const validate = (shapes: readonly Shape[]) =>
      shapes.filter((s) => s.attributes.solid === undefined).map((s) => ({ id: s.id, message: 'Solid is required' }));
    const { store, saver } = setUp(server, new MemoryStorage(), validate);
    await startWith(server, saver);
    store.add(box('a'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.saves).toHaveLength(0);
    expect(saver.state()).toMatchObject({ status: 'invalid', message: 'Solid is required' });
    store.setAttribute('a', 'solid', true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.saves).toHaveLength(1);
    expect(saver.state().status).toBe('saved');
  });

  it('merges on 409 and saves the merge on top of the new head, losing neither side', async () => {
    const server = new FakeServer();
    const { store, saver } = setUp(server);
    await startWith(server, saver);
    store.add(box('a'));
    store.add(box('b', 40));
    await vi.advanceTimersByTimeAsync(800);
    expect(server.revision).toBe(1);

    // Meanwhile somebody else edits b and adds c; we edit a and add d.
    server.external([box('a'), box('b', 44), box('c', 70)]);
    store.update(box('a', 15));
    store.add(box('d', 90));
    await vi.advanceTimersByTimeAsync(800);

    expect(server.heads).toBe(2);
    expect(server.revision).toBe(3);
    expect(server.saves.at(-1)!.base).toBe(2);
    expect(server.ids()).toEqual(['a', 'b', 'c', 'd']);
    const stored = server.annotations.map(shapeFromJson);
    expect(stored.find((s) => s.id === 'a')).toEqual(box('a', 15));
    expect(stored.find((s) => s.id === 'b')).toEqual(box('b', 44));
    expect(store.snapshot().shapes.map((s) => s.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(saver.state()).toMatchObject({ status: 'saved', revision: 3, merged: { revision: 2, kept: [] } });
  });

  it('retries with backoff while offline and keeps the document in storage until saved', async () => {
    const server = new FakeServer();
    const { store, saver, storage } = setUp(server);
    await startWith(server, saver);
    server.offline = true;
    store.add(box('a'));
    expect(storage.getItem(pendingKey(7))).toContain('"a"');
    await vi.advanceTimersByTimeAsync(800);
    expect(saver.state().status).toBe('offline');
    await vi.advanceTimersByTimeAsync(1000); // 1st retry
    await vi.advanceTimersByTimeAsync(2000); // 2nd retry
    expect(saver.state().status).toBe('offline');
    expect(server.saves).toHaveLength(0);
    server.offline = false;
    await vi.advanceTimersByTimeAsync(4000); // 3rd retry succeeds
    expect(saver.state().status).toBe('saved');
    expect(server.ids()).toEqual(['a']);
    expect(storage.getItem(pendingKey(7))).toBeNull();
  });

  it('restores unsaved work after a reload and saves it, merged with what the server got meanwhile', async () => {
    const server = new FakeServer();
    const storage = new MemoryStorage();
    const first = setUp(server, storage);
    await startWith(server, first.saver);
    first.store.add(box('a'));
    await vi.advanceTimersByTimeAsync(800); // saved as revision 1
    server.offline = true;
    first.store.add(box('b', 40));
    await vi.advanceTimersByTimeAsync(800);
    expect(first.saver.state().status).toBe('offline');
    first.saver.dispose(); // the page goes away

    server.offline = false;
    server.external([box('a', 11)]); // revision 2 from elsewhere

    const second = setUp(server, storage);
    await startWith(server, second.saver);
    await vi.advanceTimersByTimeAsync(0);
    expect(second.saver.state()).toMatchObject({ status: 'saved', restored: true, revision: 3 });
    expect(server.ids()).toEqual(['a', 'b']);
    expect(server.annotations.map(shapeFromJson)[0]).toEqual(box('a', 11));
    expect(storage.getItem(pendingKey(7))).toBeNull();
  });

  it('shows a refusal and sends again after the next edit', async () => {
    const server = new FakeServer();
    const { store, saver } = setUp(server);
    await startWith(server, saver);
    const save = vi
      .spyOn(server, 'save')
      .mockResolvedValueOnce({ type: 'refused', status: 422, message: 'annotations[0].points: bad' });
    store.add(box('a'));
    await vi.advanceTimersByTimeAsync(800);
    expect(saver.state()).toMatchObject({ status: 'error', message: 'annotations[0].points: bad' });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(save).toHaveBeenCalledTimes(1);
    store.update(box('a', 11));
    await vi.advanceTimersByTimeAsync(800);
    expect(saver.state().status).toBe('saved');
  });

  it('an edit undone back to the saved document is clean again', async () => {
    const server = new FakeServer();
    const { store, saver, storage } = setUp(server);
    await startWith(server, saver);
    store.add(box('a'));
    store.undo();
    expect(saver.state().status).toBe('saved');
    expect(storage.getItem(pendingKey(7))).toBeNull();
    await vi.advanceTimersByTimeAsync(2000);
    expect(server.saves).toHaveLength(0);
  });
});
