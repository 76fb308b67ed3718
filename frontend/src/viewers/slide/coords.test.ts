import { describe, expect, it } from 'vitest';

import {
  clampIndex,
  formatMagnification,
  imageToIndex,
  indexToImage,
  indexToViewport,
  magnification,
  pixelAt,
  scaleBar,
  viewportToIndex,
} from './coords';

describe('OSD image coordinates <-> our index', () => {
  it('puts pixel edges at integers in OSD and centres at integers in ours', () => {
    // The top-left corner of pixel (0, 0) is OSD (0, 0) and index (-0.5, -0.5).
    expect(imageToIndex([0, 0])).toEqual([-0.5, -0.5]);
    // The centre of pixel (0, 0).
    expect(imageToIndex([0.5, 0.5])).toEqual([0, 0]);
    expect(indexToImage([0, 0])).toEqual([0.5, 0.5]);
    // The bottom-right corner of a 2220 x 2967 slide is the end of the valid index range.
    expect(imageToIndex([2220, 2967])).toEqual([2219.5, 2966.5]);
  });

  it('round-trips', () => {
    for (const p of [
      [0, 0],
      [12.25, 7.75],
      [-0.5, 2966.5],
      [1e6 + 0.125, 3],
    ] as const) {
      expect(imageToIndex(indexToImage(p))).toEqual(p);
      expect(indexToImage(imageToIndex(p))).toEqual(p);
    }
  });

  it('scales viewport coordinates by the image width on both axes', () => {
    const width = 2220;
    expect(viewportToIndex([0, 0], width)).toEqual([-0.5, -0.5]);
    expect(viewportToIndex([1, 2967 / 2220], width)[0]).toBeCloseTo(2219.5, 9);
    expect(viewportToIndex([1, 2967 / 2220], width)[1]).toBeCloseTo(2966.5, 9);
    expect(viewportToIndex([0.5, 0.5], width)).toEqual([1109.5, 1109.5]);
    const [vx, vy] = indexToViewport([100, 200], width);
    expect(vx).toBeCloseTo(100.5 / 2220, 12);
    expect(vy).toBeCloseTo(200.5 / 2220, 12);
    const back = viewportToIndex([vx, vy], width);
    expect(back[0]).toBeCloseTo(100, 9);
    expect(back[1]).toBeCloseTo(200, 9);
  });

  it('finds the pixel containing an index and clamps to the valid range', () => {
    expect(pixelAt([0.49, -0.49], 10, 5)).toEqual([0, 0]);
    expect(pixelAt([9.4, 4.4], 10, 5)).toEqual([9, 4]);
    expect(pixelAt([9.6, 0], 10, 5)).toBeNull();
    expect(pixelAt([0, -0.6], 10, 5)).toBeNull();
    expect(clampIndex([-3, 7], 10, 5)).toEqual([-0.5, 4.5]);
    expect(clampIndex([3.25, 2], 10, 5)).toEqual([3.25, 2]);
  });
});

describe('magnification', () => {
  it('is the objective power at level-0 1:1', () => {
    expect(magnification(20, 1)).toBe(20);
    expect(magnification(20, 0.5)).toBe(10);
    expect(magnification(40, 2)).toBe(80);
    expect(magnification(null, 1)).toBeNull();
    expect(magnification(20, 0)).toBeNull();
  });

  it('formats', () => {
    expect(formatMagnification(20)).toBe('20x');
    expect(formatMagnification(19.6)).toBe('20x');
    expect(formatMagnification(2.5)).toBe('2.5x');
    expect(formatMagnification(0.3125)).toBe('0.31x');
  });
});

describe('scale bar', () => {
  it('picks the longest 1-2-5 length that fits', () => {
    // 0.499 um/px at 1:1: 150 px = 74.85 um -> 50 um = 100.2 px.
    const bar = scaleBar(0.000499, 1, 150);
    expect(bar?.um).toBe(50);
    expect(bar?.label).toBe('50 µm');
    expect(bar?.px).toBeCloseTo(50 / 0.499, 9);
  });

  it('switches to mm', () => {
    // zoomed out 1/20: 150 px = 1497 um -> 1 mm.
    const bar = scaleBar(0.000499, 0.05, 150);
    expect(bar?.label).toBe('1 mm');
    expect(bar?.px).toBeCloseTo(1000 / (0.499 / 0.05), 9);
    expect(scaleBar(0.000499, 0.01, 150)?.label).toBe('5 mm');
  });

  it('is absent without spacing', () => {
    expect(scaleBar(null, 1)).toBeNull();
    expect(scaleBar(0.001, 0)).toBeNull();
  });

  it('never exceeds the room it is given', () => {
    for (const zoom of [0.013, 0.1, 0.37, 1, 2.9, 17]) {
      const bar = scaleBar(0.000499, zoom, 120)!;
      expect(bar.px).toBeLessThanOrEqual(120 + 1e-9);
      expect(bar.px).toBeGreaterThan(120 / 2.5 - 1e-9);
    }
  });
});
