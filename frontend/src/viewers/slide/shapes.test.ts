import { describe, expect, it } from 'vitest';

import {
  type BoxShape,
  type PolygonShape,
  type W3CAnnotation,
  isDrawable,
  shapeSelector,
  shapeToW3C,
  upsertShape,
  w3cToShape,
} from './shapes';

const SOURCE = '/api/items/7/dzi';
const OPTS = { width: 2220, height: 2967, defaultLabel: 'tumour' };

const box: BoxShape = {
  id: 'b1',
  kind: 'box',
  label: 'nodule',
  attributes: { solid: true },
  slice: 0,
  min: [100.25, 120.5],
  max: [140.75, 150],
  note: 'check',
};

const polygon: PolygonShape = {
  id: 'p1',
  kind: 'polygon',
  label: 'tumour',
  attributes: {},
  slice: 0,
  points: [
    [200, 200],
    [260, 200],
    [260, 250],
    [200, 250],
  ],
  holes: [],
};

const holed: PolygonShape = {
  ...polygon,
  id: 'p2',
  holes: [
    [
      [210, 210],
      [220, 210],
      [220, 220],
      [210, 220],
    ],
  ],
};

describe('shape -> W3C', () => {
  it('writes a box as a pixel media fragment with edges at integers', () => {
    // index -0.5 is the image's left edge: OSD x = 0.
    const s = shapeSelector({ ...box, min: [-0.5, -0.5], max: [9.5, 4.5] });
    expect(s).toEqual({
      type: 'FragmentSelector',
      conformsTo: 'http://www.w3.org/TR/media-frags/',
      value: 'xywh=pixel:0,0,10,5',
    });
    expect(shapeSelector(box).value).toBe('xywh=pixel:100.75,121,40.5,29.5');
  });

  it('writes a polygon as Annotorious does, and one with holes as an even-odd path', () => {
    expect(shapeSelector(polygon).value).toBe(
      '<svg><polygon points="200.5,200.5 260.5,200.5 260.5,250.5 200.5,250.5" /></svg>',
    );
    expect(shapeSelector(holed).value).toBe(
      '<svg><g><path fill-rule="evenodd" d="M 200.5,200.5 L 260.5,200.5 L 260.5,250.5 ' +
        'L 200.5,250.5 Z M 210.5,210.5 L 220.5,210.5 L 220.5,220.5 L 210.5,220.5 Z" /></g></svg>',
    );
  });

  it('carries the label as a tagging body and the other fields under medlabel', () => {
    const w = shapeToW3C(box, SOURCE);
    expect(w.id).toBe('b1');
    expect(w.body).toEqual([{ type: 'TextualBody', purpose: 'tagging', value: 'nodule' }]);
    expect(w.medlabel).toEqual({ attributes: { solid: true }, note: 'check' });
    expect(w.target).toMatchObject({ source: SOURCE });
  });
});

describe('W3C -> shape', () => {
  it('round-trips boxes and polygons exactly', () => {
    for (const shape of [box, polygon, holed]) {
      expect(w3cToShape(shapeToW3C(shape, SOURCE), OPTS)).toEqual(shape);
    }
  });

  it('round-trips through JSON (what Annotorious hands back)', () => {
    const w = JSON.parse(JSON.stringify(shapeToW3C(holed, SOURCE))) as W3CAnnotation;
    expect(w3cToShape(w, OPTS)).toEqual(holed);
  });

  it('reads what Annotorious draws: a rectangle with the default label', () => {
    const drawn: W3CAnnotation = {
      '@context': 'http://www.w3.org/ns/anno.jsonld',
      id: '0b7a3d1c-9a43-4a3e-8d3e-8f2c7a1e9b55',
      type: 'Annotation',
      body: [],
      target: {
        source: SOURCE,
        selector: {
          type: 'FragmentSelector',
          conformsTo: 'http://www.w3.org/TR/media-frags/',
          value: 'xywh=pixel:7923.5,8754.1,1245.9,830.6',
        },
      },
    };
    const s = w3cToShape(drawn, { width: 20000, height: 20000, defaultLabel: 'tumour' });
    expect(s.kind).toBe('box');
    expect(s.label).toBe('tumour');
    expect(s.id).toBe(drawn.id);
    if (s.kind !== 'box') throw new Error('not a box');
    expect(s.min).toEqual([7923, 8753.6]);
    expect(s.max[0]).toBeCloseTo(7923.5 + 1245.9 - 0.5, 9);
    expect(s.max[1]).toBeCloseTo(8754.1 + 830.6 - 0.5, 9);
  });

  it('clamps into the image and tidies rings', () => {
    const off: W3CAnnotation = {
      id: 'x',
      target: { selector: { type: 'FragmentSelector', value: 'xywh=pixel:-20,10,50,9000' } },
    };
    const s = w3cToShape(off, OPTS) as BoxShape;
    expect(s.min).toEqual([-0.5, 9.5]);
    expect(s.max).toEqual([29.5, 2966.5]);

    // A double-click closes Annotorious polygons with a repeated last vertex.
    const poly: W3CAnnotation = {
      id: 'y',
      body: { purpose: 'tagging', value: 'stroma' },
      target: {
        selector: {
          type: 'SvgSelector',
          value: '<svg><polygon points="1.5,1.5 11.5,1.5 11.5,11.5 11.5,11.5 1.5,1.5" /></svg>',
        },
      },
    };
    expect(w3cToShape(poly, OPTS)).toEqual({
      id: 'y',
      kind: 'polygon',
      label: 'stroma',
      slice: 0,
      points: [
        [1, 1],
        [11, 1],
        [11, 11],
      ],
      holes: [],
    });
  });

  it('refuses what it cannot represent', () => {
    const ellipse: W3CAnnotation = {
      id: 'e',
      target: { selector: { type: 'SvgSelector', value: '<svg><ellipse cx="1" cy="1" rx="2" ry="2"/></svg>' } },
    };
    expect(() => w3cToShape(ellipse, OPTS)).toThrow(/Unsupported/);
    expect(() => w3cToShape({ id: 'n', target: 'x' }, OPTS)).toThrow(/no selector/);
  });
});

describe('helpers', () => {
  it('draws only 2D boxes and polygons on slice 0', () => {
    expect(isDrawable(box)).toBe(true);
    expect(isDrawable(holed)).toBe(true);
    expect(isDrawable({ id: 'c', kind: 'point', label: 'x', point: [1, 2, 0] })).toBe(false);
    expect(isDrawable({ ...box, slice: 1 })).toBe(false);
  });

  it('upserts by id', () => {
    const moved = { ...box, min: [0, 0] as [number, number] };
    expect(upsertShape([box, polygon], moved)).toEqual([moved, polygon]);
    expect(upsertShape([polygon], box)).toEqual([polygon, box]);
  });
});
