import { describe, expect, it } from 'vitest';

import { parseItem } from '../api/items';
import { autoWindow, percentile, presetsFor } from './windowing';

function ctItem(rescaleApplied: boolean) {
  return parseItem({
    id: 1,
    kind: 'volume',
    source_format: 'dicom',
    modality: 'CT',
    label: 'CT',
    status: 'ready',
    series_uid: '1.2',
    geometry: null,
    pixel: {
      dtype: 'i2',
      rows: 4,
      columns: 4,
      frames: 2,
      windows: [{ name: 'header 1', center: 40, width: 400 }],
      rescale_applied: rescaleApplied,
      window_presets: ['header 1', 'lung', 'bone', 'auto'],
    },
  });
}

describe('presetsFor', () => {
  it('gives header windows and CT presets with their values, in the item order', () => {
    expect(presetsFor(ctItem(true)).map((p) => [p.name, p.center, p.width])).toEqual([
      ['header 1', 40, 400],
      ['lung', -600, 1500],
      ['bone', 400, 1800],
    ]);
  });

  it('leaves out HU presets when the values are not in modality units', () => {
    expect(presetsFor(ctItem(false)).map((p) => p.name)).toEqual(['header 1']);
  });
});

describe('autoWindow', () => {
  it('spans the 1st to 99th percentile', () => {
    const values = Int16Array.from({ length: 101 }, (_, n) => n * 10 - 500);
    expect(autoWindow(values)).toEqual({ center: 0, width: 980 });
  });

  it('never gives a zero width', () => {
    expect(autoWindow(new Uint8Array(16).fill(7))).toEqual({ center: 7, width: 1 });
    expect(autoWindow(new Float32Array(0))).toEqual({ center: 0.5, width: 1 });
  });

  it('interpolates percentiles like numpy', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([5], 99)).toBe(5);
  });
});
