// Window (center/width) presets and the automatic window, in modality units. Pure.

import type { Item } from '../api/items';

export interface Window {
  readonly center: number;
  readonly width: number;
}

export interface WindowPreset extends Window {
  readonly name: string;
  readonly label: string;
}

// The CT presets of src/medlabel/imaging/render.py (CT_PRESETS), in HU. The item API lists
// their names only; keep the two tables equal.
export const CT_PRESETS: readonly WindowPreset[] = [
  { name: 'soft_tissue', label: 'Soft tissue', center: 40, width: 400 },
  { name: 'lung', label: 'Lung', center: -600, width: 1500 },
  { name: 'bone', label: 'Bone', center: 400, width: 1800 },
  { name: 'brain', label: 'Brain', center: 40, width: 80 },
  { name: 'mediastinum', label: 'Mediastinum', center: 50, width: 350 },
  { name: 'liver', label: 'Liver', center: 30, width: 150 },
];

/** The presets with values that the item offers, in its order ("auto" is computed by the
 * viewer from the pixels and is not in this list). */
export function presetsFor(item: Item): WindowPreset[] {
  const header = new Map(item.pixel.windows.map((w) => [w.name, w]));
  const ct = new Map(CT_PRESETS.map((p) => [p.name, p]));
  const out: WindowPreset[] = [];
  for (const name of item.pixel.window_presets) {
    const h = header.get(name);
    if (h) {
      out.push({ name, label: name, center: h.center, width: h.width });
      continue;
    }
    const p = ct.get(name);
    if (p && item.pixel.rescale_applied) out.push(p);
  }
  return out;
}

/** A window spanning the 1st..99th percentile of a strided subsample (as the server's
 * auto_window does for integer data): lowest percentile -> black, highest -> white. */
export function autoWindow(values: ArrayLike<number>, maxSamples = 65536): Window {
  const n = values.length;
  if (n === 0) return { center: 0.5, width: 1 };
  const step = Math.max(1, Math.ceil(n / maxSamples));
  const sample: number[] = [];
  for (let x = 0; x < n; x += step) {
    const value = values[x]!;
    if (Number.isFinite(value)) sample.push(value);
  }
  if (sample.length === 0) return { center: 0.5, width: 1 };
  sample.sort((a, b) => a - b);
  const lo = percentile(sample, 1);
  const hi = percentile(sample, 99);
  return { center: (lo + hi) / 2, width: Math.max(hi - lo, 1) };
}

/** Linear-interpolated percentile of sorted values (numpy's default method). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error('percentile of no values');
  const pos = ((sorted.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
