import { describe, expect, it } from 'vitest';

import type { Geometry, Vec3 } from '../api/items';
import {
  imageCoordsToIndex,
  imagePlane,
  indexToImageCoords,
  indexToPatient,
  patientToIndex,
  sliceOffsetMm,
  slicePosition,
  voxelAt,
} from './geometry';

// The chest CT the e2e test ingests (pyradiomics lung2, slices 20..31).
const CT: Geometry = {
  shape: [512, 512, 12],
  spacing_mm: [0.626953, 0.626953, 5.0],
  direction: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  origin_mm: [-170.5, -324.5, -260.0],
  frame_of_reference_uid: '1.2.3',
};

// Anisotropic in plane, rotated about z by 30 degrees, slices stepping off the normal
// (gantry tilt of 20 degrees) and stacked towards the feet.
const c = Math.cos(Math.PI / 6);
const s = Math.sin(Math.PI / 6);
const tilt = (20 * Math.PI) / 180;
const SHEARED: Geometry = {
  shape: [64, 48, 10],
  spacing_mm: [0.5, 0.8, 2.5],
  direction: [
    [c, s, 0],
    [-s, c, 0],
    [0, Math.sin(tilt), -Math.cos(tilt)],
  ],
  origin_mm: [10, -20, 30],
  frame_of_reference_uid: null,
};

function close(a: readonly number[], b: readonly number[], digits = 9): void {
  expect(a.length).toBe(b.length);
  a.forEach((value, n) => expect(value).toBeCloseTo(b[n]!, digits));
}

describe('indexToPatient', () => {
  it('puts voxel (0, 0, 0) at the origin', () => {
    close(indexToPatient(CT, [0, 0, 0]), CT.origin_mm);
  });

  it('steps along columns, rows and slices by the spacing', () => {
    close(indexToPatient(CT, [1, 0, 0]), [-170.5 + 0.626953, -324.5, -260]);
    close(indexToPatient(CT, [0, 1, 0]), [-170.5, -324.5 + 0.626953, -260]);
    close(indexToPatient(CT, [0, 0, 3]), [-170.5, -324.5, -245]);
  });

  it('follows rotated and sheared directions', () => {
    close(indexToPatient(SHEARED, [2, 0, 0]), [10 + c, -20 + s, 30]);
    close(indexToPatient(SHEARED, [0, 0, 1]), [
      10,
      -20 + 2.5 * Math.sin(tilt),
      30 - 2.5 * Math.cos(tilt),
    ]);
  });
});

describe('patientToIndex', () => {
  const points: Vec3[] = [
    [0, 0, 0],
    [511, 511, 11],
    [100.25, 37.5, 4.75],
    [-0.5, -0.5, -0.5],
  ];
  for (const g of [CT, SHEARED]) {
    it(`inverts indexToPatient (${g === CT ? 'axial CT' : 'sheared'})`, () => {
      for (const ijk of points) close(patientToIndex(g, indexToPatient(g, ijk)), ijk, 6);
    });
  }

  it('refuses a degenerate geometry', () => {
    const flat: Geometry = { ...CT, direction: [CT.direction[0], CT.direction[0], CT.direction[2]] };
    expect(() => patientToIndex(flat, [0, 0, 0])).toThrow(/singular/);
  });
});

describe('slices', () => {
  it('positions slice k at origin + k*dk*direction[2]', () => {
    close(slicePosition(CT, 5), [-170.5, -324.5, -235]);
    close(slicePosition(SHEARED, 2), indexToPatient(SHEARED, [0, 0, 2]));
  });

  it('measures the slice offset along the normal (tilt shortens it)', () => {
    expect(sliceOffsetMm(CT, 11)).toBeCloseTo(55, 9);
    // normal = u x v = +z; direction[2] points to -z, tilted: |offset| = k*dk*cos(tilt)
    expect(sliceOffsetMm(SHEARED, 4)).toBeCloseTo(-4 * 2.5 * Math.cos(tilt), 9);
  });
});

describe('Cornerstone image coordinates', () => {
  it('are our index shifted by half a pixel (corner vs centre)', () => {
    expect(indexToImageCoords([0, 0])).toEqual([0.5, 0.5]);
    expect(indexToImageCoords([511, 3])).toEqual([511.5, 3.5]);
    expect(imageCoordsToIndex([0, 0])).toEqual([-0.5, -0.5]);
    expect(imageCoordsToIndex(indexToImageCoords([7.25, 9]))).toEqual([7.25, 9]);
  });
});

describe('voxelAt', () => {
  it('rounds to the containing voxel and refuses points outside', () => {
    expect(voxelAt(CT, [0.49, 510.6, 10.5])).toEqual([0, 511, 11]);
    expect(voxelAt(CT, [-0.51, 0, 0])).toBeNull();
    expect(voxelAt(CT, [0, 511.5, 0])).toBeNull();
    expect(voxelAt(CT, [0, 0, 11.6])).toBeNull();
  });
});

describe('imagePlane', () => {
  it('maps the geometry to DICOM Image Plane attributes', () => {
    const plane = imagePlane(SHEARED, 3, 'fallback');
    expect(plane.rows).toBe(48);
    expect(plane.columns).toBe(64);
    expect(plane.pixelSpacing).toEqual([0.8, 0.5]); // (row spacing, column spacing)
    expect(plane.rowPixelSpacing).toBe(0.8);
    expect(plane.columnPixelSpacing).toBe(0.5);
    expect(plane.rowCosines).toEqual(SHEARED.direction[0]);
    expect(plane.columnCosines).toEqual(SHEARED.direction[1]);
    close(plane.imagePositionPatient, indexToPatient(SHEARED, [0, 0, 3]));
    expect(plane.frameOfReferenceUID).toBe('fallback');
    expect(imagePlane(CT, 0, 'fallback').frameOfReferenceUID).toBe('1.2.3');
  });

  it('reproduces indexToPatient the way Cornerstone combines the plane attributes', () => {
    // Cornerstone: world = IPP + x*colSpacing*rowCosines + y*rowSpacing*columnCosines,
    // with (x, y) image coordinates of a pixel centre = index + 0.5.
    const ijk: Vec3 = [12, 30, 7];
    const plane = imagePlane(SHEARED, ijk[2], 'f');
    const [x, y] = indexToImageCoords([ijk[0], ijk[1]]);
    const world = [0, 1, 2].map(
      (a) =>
        plane.imagePositionPatient[a]! +
        (x - 0.5) * plane.columnPixelSpacing * plane.rowCosines[a]! +
        (y - 0.5) * plane.rowPixelSpacing * plane.columnCosines[a]!,
    );
    close(world, indexToPatient(SHEARED, ijk));
  });
});
