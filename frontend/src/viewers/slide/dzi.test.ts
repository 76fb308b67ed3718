import { describe, expect, it } from 'vitest';

import { dziTileSource, maxLevel, parseDzi, tileUrl } from './dzi';

// GET /api/items/1/dzi for cmu_small_region.svs
const DESCRIPTOR = {
  Image: {
    xmlns: 'http://schemas.microsoft.com/deepzoom/2008',
    Format: 'jpeg',
    Overlap: '1',
    TileSize: '254',
    Size: { Width: '2220', Height: '2967' },
  },
};

describe('Deep Zoom', () => {
  it('parses the descriptor', () => {
    expect(parseDzi(DESCRIPTOR)).toEqual({ width: 2220, height: 2967, tileSize: 254, overlap: 1, format: 'jpeg' });
    expect(() => parseDzi({})).toThrow();
    expect(() => parseDzi({ Image: { ...DESCRIPTOR.Image, Format: '../x' } })).toThrow();
  });

  it("points OpenSeadragon at the server's tile route", () => {
    const d = parseDzi(DESCRIPTOR);
    const src = dziTileSource(1, d);
    expect(src.Image.Url).toBe('/api/items/1/dzi/');
    // DziTileSource.getTileUrl: tilesUrl + level + '/' + x + '_' + y + '.' + format
    expect(`${src.Image.Url}12/3_7.${src.Image.Format}`).toBe(tileUrl(1, d, 12, 3, 7));
    expect(tileUrl(1, d, 12, 3, 7)).toBe('/api/items/1/dzi/12/3_7.jpeg');
    expect(maxLevel(d)).toBe(12);
  });
});
