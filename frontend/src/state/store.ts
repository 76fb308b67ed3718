// The annotation document of one set: its shapes, the selection and an undo/redo stack of
// commands. Every edit is a command (add, update, remove; an attribute or label change is an
// update) and every command can be undone. Pure: no browser, no network.
import { type AttributeValue, type Shape, sameDocument, sameShape } from './shapes';

export type Command =
  | { readonly type: 'add'; readonly shape: Shape; readonly index: number }
  | { readonly type: 'remove'; readonly shape: Shape; readonly index: number }
  | { readonly type: 'update'; readonly before: Shape; readonly after: Shape };

export interface StoreSnapshot {
  readonly shapes: readonly Shape[];
  readonly selected: string | null;
  readonly canUndo: boolean;
  readonly canRedo: boolean;
  /** increases with every change of the shapes (not of the selection) */
  readonly version: number;
}

export type ChangeSource = 'edit' | 'undo' | 'redo' | 'replace' | 'select';

export class AnnotationStore {
  private shapes: readonly Shape[];
  private selected: string | null = null;
  private readonly undoStack: Command[] = [];
  private readonly redoStack: Command[] = [];
  private version = 0;
  private snapshotCache: StoreSnapshot | null = null;
  private readonly listeners = new Set<(snapshot: StoreSnapshot, source: ChangeSource) => void>();

  constructor(
    shapes: readonly Shape[] = [],
    private readonly historyLimit = 500,
  ) {
    this.shapes = shapes;
  }

  snapshot(): StoreSnapshot {
    this.snapshotCache ??= {
      shapes: this.shapes,
      selected: this.selected,
      canUndo: this.undoStack.length > 0,
      canRedo: this.redoStack.length > 0,
      version: this.version,
    };
    return this.snapshotCache;
  }

  get(id: string): Shape | undefined {
    return this.shapes.find((s) => s.id === id);
  }

  subscribe(listener: (snapshot: StoreSnapshot, source: ChangeSource) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  add(shape: Shape, select = true): void {
    if (this.get(shape.id)) throw new Error(`an annotation with id ${shape.id} exists already`);
    this.run({ type: 'add', shape, index: this.shapes.length });
    if (select) this.setSelected(shape.id, 'edit');
  }

  update(next: Shape): void {
    const before = this.get(next.id);
    if (!before || sameShape(before, next)) return;
    this.run({ type: 'update', before, after: next });
  }

  setAttribute(id: string, key: string, value: AttributeValue | undefined): void {
    const before = this.get(id);
    if (!before) return;
    const attributes = { ...before.attributes };
    if (value === undefined) delete attributes[key];
    else attributes[key] = value;
    this.update({ ...before, attributes });
  }

  setLabel(id: string, label: string): void {
    const before = this.get(id);
    if (before && before.label !== label) this.update({ ...before, label });
  }

  remove(id: string): void {
    const index = this.shapes.findIndex((s) => s.id === id);
    if (index < 0) return;
    this.run({ type: 'remove', shape: this.shapes[index]!, index });
  }

  select(id: string | null): void {
    this.setSelected(id !== null && this.get(id) ? id : null, 'select');
  }

  undo(): boolean {
    const command = this.undoStack.pop();
    if (!command) return false;
    this.apply(inverse(command));
    this.redoStack.push(command);
    this.changed('undo');
    return true;
  }

  redo(): boolean {
    const command = this.redoStack.pop();
    if (!command) return false;
    this.apply(command);
    this.undoStack.push(command);
    this.changed('redo');
    return true;
  }

  /** Replace the whole document (a merge, a restore): not an edit, the history stays and its
   * commands apply by id to the new document. */
  replace(shapes: readonly Shape[]): void {
    if (sameDocument(this.shapes, shapes)) return;
    this.shapes = shapes;
    if (this.selected !== null && !this.get(this.selected)) this.selected = null;
    this.changed('replace');
  }

  private run(command: Command): void {
    this.apply(command);
    this.undoStack.push(command);
    if (this.undoStack.length > this.historyLimit) this.undoStack.shift();
    this.redoStack.length = 0;
    this.changed('edit');
  }

  private apply(command: Command): void {
    const shapes = [...this.shapes];
    const at = (id: string): number => shapes.findIndex((s) => s.id === id);
    switch (command.type) {
      case 'add': {
        if (at(command.shape.id) >= 0) shapes.splice(at(command.shape.id), 1);
        shapes.splice(Math.min(command.index, shapes.length), 0, command.shape);
        break;
      }
      case 'remove': {
        const n = at(command.shape.id);
        if (n >= 0) shapes.splice(n, 1);
        if (this.selected === command.shape.id) this.selected = null;
        break;
      }
      case 'update': {
        const n = at(command.after.id);
        if (n >= 0) shapes[n] = command.after;
        else shapes.push(command.after); // deleted meanwhile (a merge): the edit brings it back
        break;
      }
    }
    this.shapes = shapes;
  }

  private setSelected(id: string | null, source: ChangeSource): void {
    if (this.selected === id) return;
    this.selected = id;
    this.snapshotCache = null;
    this.emit(source);
  }

  private changed(source: ChangeSource): void {
    this.version += 1;
    this.snapshotCache = null;
    this.emit(source);
  }

  private emit(source: ChangeSource): void {
    const snapshot = this.snapshot();
    for (const listener of this.listeners) listener(snapshot, source);
  }
}

function inverse(command: Command): Command {
  switch (command.type) {
    case 'add':
      return { type: 'remove', shape: command.shape, index: command.index };
    case 'remove':
      return { type: 'add', shape: command.shape, index: command.index };
    case 'update':
      return { type: 'update', before: command.after, after: command.before };
  }
}
