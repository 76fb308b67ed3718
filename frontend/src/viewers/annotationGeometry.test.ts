import { describe, expect, it } from 'vitest';

import type { ShapeGeometry } from '../state/shapes';
import { cleanPath, cleanRing, geometryFromWorld, simplifyChain, worldFromGeometry } from './annotationGeometry';
import type { Geometry } from './geometry';

const axial: Geometry = {
  shape: [512, 512, 12],
  spacing_mm: [0.627, 0.627, 5],
  direction: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  origin_mm: [-160, -170, -300],
  frame_of_reference_uid: null,
};

// Rotated, anisotropic and sheared (gantry tilt): the conversions must still invert exactly.
const c = Math.cos(0.3);
const s = Math.sin(0.3);
const tilted: Geometry = {
  shape: [200, 150, 30],
  spacing_mm: [0.8, 1.1, 2.5],
  direction: [
    [c, s, 0],
    [-s, c, 0],
    [0.1, 0.2, 0.97],
  ],
  origin_mm: [12, -40, 7],
  frame_of_reference_uid: null,
};

const close = (a: readonly number[], b: readonly number[]): void => {
  expect(a.length).toBe(b.length);
  a.forEach((v, n) => expect(v).toBeCloseTo(b[n]!, 3));
};

describe('shape geometry <-> world', () => {
  for (const [name, g] of [
    ['axial', axial],
    ['tilted', tilted],
  ] as const) {
    it(`round-trips box, polygon, polyline and point (${name})`, () => {
      const shapes: ShapeGeometry[] = [
        { kind: 'box', slice: 4, min: [10.25, 20.5], max: [40.75, 60] },
        { kind: 'polygon', slice: 2, points: [[10, 10], [50, 12], [30, 40]], holes: [] },
        { kind: 'polyline', slice: 7, points: [[1, 1], [20, 5], [40, 30]] },
        { kind: 'point', point: [33.5, 44.25, 9] },
      ];
      for (const shape of shapes) {
        const { slice, points } = worldFromGeometry(g, shape);
        const drawn =
          shape.kind === 'box'
            ? { kind: 'box' as const, slice, corners: points }
            : shape.kind === 'point'
              ? { kind: 'point' as const, slice, point: points[0]! }
              : { kind: shape.kind, slice, path: points };
        const back = geometryFromWorld(g, drawn);
        expect(back?.kind).toBe(shape.kind);
        close(JSON.stringify(back).match(/-?[\d.]+(e-?\d+)?/g)!.map(Number), JSON.stringify(shape).match(/-?[\d.]+(e-?\d+)?/g)!.map(Number));
      }
    });
  }

  it('puts box corners in RectangleROI order and on the slice', () => {
    const { points } = worldFromGeometry(axial, { kind: 'box', slice: 3, min: [0, 0], max: [10, 20] });
    close(points[0]!, [-160, -170, -285]);
    close(points[1]!, [-160 + 6.27, -170, -285]);
    close(points[2]!, [-160, -170 + 12.54, -285]);
  });

  it('clamps to the image edge and refuses degenerate shapes', () => {
    const world = worldFromGeometry(axial, { kind: 'box', slice: 0, min: [-5, 500], max: [20, 530] }).points;
    expect(geometryFromWorld(axial, { kind: 'box', slice: 0, corners: world })).toEqual({
      kind: 'box',
      slice: 0,
      min: [-0.5, 500],
      max: [20, 511.5],
    });
    const flat = worldFromGeometry(axial, { kind: 'box', slice: 0, min: [5, 5], max: [5, 9] }).points;
    expect(geometryFromWorld(axial, { kind: 'box', slice: 0, corners: flat })).toBeNull();
  });
});

describe('path clean-up', () => {
  it('drops the closing vertex and duplicates, simplifies collinear runs', () => {
    const ring = cleanRing([
      [0, 0],
      [5, 0],
      [5, 0],
      [10, 0],
      [10, 10],
      [0, 10],
      [0, 0],
    ]);
    expect(ring).toEqual([
      [0, 0],
      [10, 0],
      [10, 10],
      [0, 10],
    ]);
  });

  it('refuses rings without area and paths without length', () => {
    expect(cleanRing([[0, 0], [1, 1], [2, 2]])).toBeNull();
    expect(cleanRing([[0, 0], [1, 0]])).toBeNull();
    expect(cleanPath([[3, 3], [3, 3]])).toBeNull();
    expect(cleanPath([[0, 0], [1, 0.05], [2, 0]])).toEqual([[0, 0], [2, 0]]);
  });

  it('keeps corners beyond epsilon', () => {
    expect(simplifyChain([[0, 0], [5, 1], [10, 0]], 0.5)).toEqual([[0, 0], [5, 1], [10, 0]]);
  });
});
