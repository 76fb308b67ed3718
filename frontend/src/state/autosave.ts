// Autosave of one annotation set: a debounced whole-document PUT with If-Match of the last
// known revision (docs/annotations.md, "Saving: optimistic concurrency").
//
//   saved    the server has exactly the local document
//   dirty    local changes wait for the debounce
//   saving   a PUT is in flight
//   conflict the server moved on (409): its head is being fetched and merged with ours
//   offline  the network failed: retries with backoff; the document waits in storage
//   invalid  the document breaks the schema (a required attribute is empty): not sent
//   error    the server refused the document (422, 403 ...): shown, sent again on the next edit
//
// The unsaved document is kept in storage (localStorage, keyed by set id) from the first
// change until the server has it, so a reload restores unsaved work and saves it. Pure: the
// network, the clock and the storage are injected, so vitest drives it with fakes.
import type { ShapeProblem } from './labels';
import { mergeDocuments } from './merge';
import { type Shape, sameDocument, shapeFromJson, shapeToJson } from './shapes';
import type { AnnotationStore, ChangeSource } from './store';

export type SaveStatus = 'saved' | 'dirty' | 'saving' | 'conflict' | 'offline' | 'invalid' | 'error';

/** Sizes per annotation id from the server (length_mm, area_mm2, ...). */
export type Measurements = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

export interface SetHead {
  readonly revision: number;
  readonly annotations: readonly Shape[];
  readonly measurements: Measurements;
}

export type SaveOutcome =
  | { readonly type: 'saved'; readonly revision: number; readonly created: boolean; readonly measurements: Measurements }
  | { readonly type: 'conflict'; readonly currentRevision: number | null }
  | { readonly type: 'refused'; readonly status: number; readonly message: string }
  /** network failure or a server error worth retrying (5xx) */
  | { readonly type: 'unreachable'; readonly message: string };

export interface SetApi {
  save(setId: number, baseRevision: number, annotations: unknown[], durationS: number | null): Promise<SaveOutcome>;
  head(setId: number): Promise<SetHead>;
}

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface AutosaveState {
  readonly status: SaveStatus;
  /** the server revision our document builds on */
  readonly revision: number;
  readonly message: string | null;
  readonly problems: readonly ShapeProblem[];
  readonly measurements: Measurements;
  /** the last merge after a conflict: the revision merged in and the ids where ours won */
  readonly merged: { readonly revision: number; readonly kept: readonly string[] } | null;
  /** unsaved work was found in storage at start */
  readonly restored: boolean;
  readonly saves: number;
}

export interface AutosaveOptions {
  readonly setId: number;
  readonly store: AnnotationStore;
  readonly api: SetApi;
  readonly clock: Clock;
  readonly storage?: KeyValueStorage | null;
  readonly debounceMs?: number;
  readonly maxBackoffMs?: number;
  readonly validate?: (shapes: readonly Shape[]) => ShapeProblem[];
}

interface Pending {
  readonly v: 1;
  readonly setId: number;
  readonly baseRevision: number;
  readonly base: unknown[];
  readonly annotations: unknown[];
}

export function pendingKey(setId: number): string {
  return `medlabel.annotations.pending.${setId}`;
}

export class AutosaveController {
  private base: { revision: number; shapes: readonly Shape[] } = { revision: 0, shapes: [] };
  private current: AutosaveState = {
    status: 'saved',
    revision: 0,
    message: null,
    problems: [],
    measurements: {},
    merged: null,
    restored: false,
    saves: 0,
  };
  private timer: unknown = null;
  private inFlight = false;
  private exclusiveBusy = false;
  private deferredSave = false;
  private exclusiveTail: Promise<void> = Promise.resolve();
  private again = false;
  private failures = 0;
  private dirtySince: number | null = null;
  private disposed = false;
  private readonly listeners = new Set<(state: AutosaveState) => void>();
  private readonly unsubscribe: () => void;
  private readonly debounceMs: number;
  private readonly maxBackoffMs: number;

  constructor(private readonly options: AutosaveOptions) {
    this.debounceMs = options.debounceMs ?? 800;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.unsubscribe = options.store.subscribe((_snapshot, source) => this.onStoreChange(source));
  }

  /** Begin with the server's head; restores (and saves) unsaved work from storage. */
  start(head: SetHead): void {
    const pending = this.readPending();
    this.base = { revision: head.revision, shapes: head.annotations };
    this.update({ revision: head.revision, measurements: head.measurements });
    if (!pending) {
      this.options.store.replace(head.annotations);
      this.update({ status: 'saved' });
      return;
    }
    const local = pending.annotations.map(shapeFromJson);
    const merged =
      pending.baseRevision === head.revision
        ? local
        : mergeDocuments(pending.base.map(shapeFromJson), local, head.annotations).shapes;
    this.options.store.replace(merged);
    this.cancelTimer();
    this.update({ restored: true });
    if (sameDocument(merged, head.annotations)) {
      this.clearPending();
      this.update({ status: 'saved' });
      return;
    }
    this.dirtySince = this.options.clock.now();
    this.persist();
    this.update({ status: 'dirty' });
    void this.save();
  }

  state(): AutosaveState {
    return this.current;
  }

  subscribe(listener: (state: AutosaveState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Save now (the debounce skipped), e.g. before leaving or when the network is back. */
  flush(): Promise<void> {
    this.cancelTimer();
    return this.save();
  }

  /**
   * Run another write that moves the set's revision (a mask write, an interpolation) between
   * shape saves: it waits for a shape save in flight, gets the current revision and returns
   * the new one (or null when nothing changed). Writes run one at a time, in order, and the
   * shape saves go on from the new revision.
   */
  exclusive<T>(write: (revision: number) => Promise<{ readonly revision: number | null; readonly value: T }>): Promise<T> {
    const run = async (): Promise<T> => {
      while (this.inFlight) {
        await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, 25));
      }
      this.exclusiveBusy = true;
      try {
        const { revision, value } = await write(this.base.revision);
        if (revision !== null && revision > this.base.revision) {
          this.base = { ...this.base, revision };
          this.update({ revision });
        }
        return value;
      } finally {
        this.exclusiveBusy = false;
        if (this.deferredSave && !this.disposed) {
          this.deferredSave = false;
          void this.save();
        }
      }
    };
    const result = this.exclusiveTail.then(run);
    this.exclusiveTail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  dispose(): void {
    this.disposed = true;
    this.cancelTimer();
    this.unsubscribe();
    this.listeners.clear();
  }

  private onStoreChange(source: ChangeSource): void {
    if (source === 'select' || this.disposed) return;
    const shapes = this.options.store.snapshot().shapes;
    if (sameDocument(shapes, this.base.shapes)) {
      this.cancelTimer();
      this.clearPending();
      this.dirtySince = null;
      if (!this.inFlight) this.update({ status: 'saved', problems: [], message: null });
      return;
    }
    this.dirtySince ??= this.options.clock.now();
    this.persist();
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.current.status !== 'offline' && this.current.status !== 'conflict') {
      this.update({ status: 'dirty' });
    }
    this.schedule(this.debounceMs);
  }

  private schedule(ms: number): void {
    this.cancelTimer();
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = null;
      void this.save();
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private async save(): Promise<void> {
    if (this.disposed) return;
    if (this.exclusiveBusy) {
      this.deferredSave = true;
      return;
    }
    if (this.inFlight) {
      this.again = true;
      return;
    }
    const shapes = this.options.store.snapshot().shapes;
    if (sameDocument(shapes, this.base.shapes)) {
      this.clearPending();
      this.update({ status: 'saved', problems: [], message: null });
      return;
    }
    const problems = this.options.validate?.(shapes) ?? [];
    if (problems.length) {
      this.update({ status: 'invalid', problems, message: problems[0]!.message });
      return;
    }
    this.inFlight = true;
    this.again = false;
    this.update({ status: 'saving', problems: [] });
    const durationS =
      this.dirtySince === null
        ? null
        : Math.min(86_400, Math.max(0, (this.options.clock.now() - this.dirtySince) / 1000));
    let outcome: SaveOutcome;
    try {
      outcome = await this.options.api.save(
        this.options.setId,
        this.base.revision,
        shapes.map(shapeToJson),
        durationS,
      );
    } catch (error) {
      outcome = { type: 'unreachable', message: String(error) };
    }
    this.inFlight = false;
    if (this.disposed) return;
    switch (outcome.type) {
      case 'saved':
        this.failures = 0;
        this.base = { revision: outcome.revision, shapes };
        this.dirtySince = null;
        this.update({
          revision: outcome.revision,
          measurements: outcome.measurements,
          message: null,
          saves: this.current.saves + 1,
        });
        this.afterSave();
        return;
      case 'conflict':
        this.failures = 0;
        await this.resolveConflict();
        return;
      case 'refused':
        this.update({ status: 'error', message: outcome.message });
        if (this.again) this.schedule(this.debounceMs);
        return;
      case 'unreachable':
        this.retryLater(outcome.message);
        return;
    }
  }

  private afterSave(): void {
    if (sameDocument(this.options.store.snapshot().shapes, this.base.shapes)) {
      this.clearPending();
      this.update({ status: 'saved' });
    } else {
      this.dirtySince ??= this.options.clock.now();
      this.persist();
      this.update({ status: 'dirty' });
      this.schedule(this.again ? 0 : this.debounceMs);
    }
    this.again = false;
  }

  private async resolveConflict(): Promise<void> {
    this.update({ status: 'conflict' });
    let head: SetHead;
    try {
      this.inFlight = true;
      head = await this.options.api.head(this.options.setId);
    } catch (error) {
      this.inFlight = false;
      this.retryLater(String(error));
      return;
    } finally {
      this.inFlight = false;
    }
    if (this.disposed) return;
    const local = this.options.store.snapshot().shapes;
    const merged = mergeDocuments(this.base.shapes, local, head.annotations);
    this.base = { revision: head.revision, shapes: head.annotations };
    this.update({
      revision: head.revision,
      measurements: head.measurements,
      merged: { revision: head.revision, kept: merged.conflicts },
    });
    // The merge is not an edit: replace() notifies us, and we save right after.
    this.again = false;
    this.options.store.replace(merged.shapes);
    this.cancelTimer();
    if (sameDocument(merged.shapes, head.annotations)) {
      this.clearPending();
      this.update({ status: 'saved' });
      return;
    }
    this.persist();
    await this.save();
  }

  private retryLater(message: string): void {
    this.failures += 1;
    const delay = Math.min(this.maxBackoffMs, 1000 * 2 ** (this.failures - 1));
    this.update({ status: 'offline', message });
    this.schedule(delay);
  }

  private persist(): void {
    const storage = this.options.storage;
    if (!storage) return;
    const pending: Pending = {
      v: 1,
      setId: this.options.setId,
      baseRevision: this.base.revision,
      base: this.base.shapes.map(shapeToJson),
      annotations: this.options.store.snapshot().shapes.map(shapeToJson),
    };
    try {
      storage.setItem(pendingKey(this.options.setId), JSON.stringify(pending));
    } catch {
      // storage full or disabled: the document stays in memory only
    }
  }

  private readPending(): Pending | null {
    const storage = this.options.storage;
    if (!storage) return null;
    try {
      const text = storage.getItem(pendingKey(this.options.setId));
      if (!text) return null;
      const value = JSON.parse(text) as Partial<Pending>;
      if (
        value.v !== 1 ||
        value.setId !== this.options.setId ||
        typeof value.baseRevision !== 'number' ||
        !Array.isArray(value.base) ||
        !Array.isArray(value.annotations)
      ) {
        return null;
      }
      return value as Pending;
    } catch {
      return null;
    }
  }

  private clearPending(): void {
    try {
      this.options.storage?.removeItem(pendingKey(this.options.setId));
    } catch {
      // nothing to clear
    }
  }

  private update(patch: Partial<AutosaveState>): void {
    this.current = { ...this.current, ...patch };
    for (const listener of this.listeners) listener(this.current);
  }
}
