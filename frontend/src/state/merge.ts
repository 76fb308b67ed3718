// Three-way merge of shape documents by annotation id, for a save that met a newer revision
// (409). `base` is the revision our local edits started from, `local` our unsaved document,
// `remote` the server's head. Nothing is lost:
// - an id we did not touch takes the server's version (or its deletion);
// - an id we touched (added, changed, deleted) keeps our version;
// - deleted on one side and edited on the other: the edit is kept.
import { type Shape, sameShape } from './shapes';

export interface MergeResult {
  readonly shapes: Shape[];
  /** ids where both sides changed and ours was kept */
  readonly conflicts: string[];
}

export function mergeDocuments(
  base: readonly Shape[],
  local: readonly Shape[],
  remote: readonly Shape[],
): MergeResult {
  const b = new Map(base.map((s) => [s.id, s]));
  const l = new Map(local.map((s) => [s.id, s]));
  const r = new Map(remote.map((s) => [s.id, s]));
  const conflicts: string[] = [];

  const pick = (id: string): Shape | undefined => {
    const [bs, ls, rs] = [b.get(id), l.get(id), r.get(id)];
    const localChanged = !sameShape(bs, ls);
    const remoteChanged = !sameShape(bs, rs);
    if (!localChanged) return rs;
    if (!remoteChanged) return ls;
    if (sameShape(ls, rs)) return ls;
    if (!ls) return rs; // we deleted, they edited: keep the edit
    if (!rs) return ls; // they deleted, we edited: keep the edit
    conflicts.push(id);
    return ls;
  };

  const shapes: Shape[] = [];
  const seen = new Set<string>();
  // The server's order first, then what only we have, in our order.
  for (const id of [...r.keys(), ...l.keys()]) {
    if (seen.has(id)) continue;
    seen.add(id);
    const shape = pick(id);
    if (shape) shapes.push(shape);
  }
  return { shapes, conflicts };
}
