import { describe, expect, it } from 'vitest';

import type { Shape } from '../../state/shapes';
import type { ShapeEvent } from '../ViewerAdapter';
import type { OsdSlideAdapter } from './OsdSlideAdapter';
import { SlideAnnotationLayer } from './slideAnnotationLayer';
import type { Shape as SlideShape } from './shapes';

function fakeAdapter() {
  const calls = { setShapes: [] as (readonly SlideShape[])[], select: [] as (string | null)[], tool: [] as string[] };
  let shapesListener: ((s: readonly SlideShape[]) => void) | null = null;
  let selectionListener: ((id: string | null) => void) | null = null;
  const adapter = {
    onShapesChange: (l: typeof shapesListener) => void (shapesListener = l),
    onSelectionChange: (l: typeof selectionListener) => void (selectionListener = l),
    setShapes: (s: readonly SlideShape[]) => void calls.setShapes.push(s),
    setActiveLabel: () => undefined,
    select: (id: string | null) => void calls.select.push(id),
    setTool: (t: string) => void calls.tool.push(t),
  };
  return {
    adapter: adapter as unknown as OsdSlideAdapter,
    calls,
    emit: (s: readonly SlideShape[]) => shapesListener?.(s),
    pick: (id: string | null) => selectionListener?.(id),
  };
}

const style = () => ({ color: '#e6194b', visible: true });
const box: Shape = { id: 'b1', label: 'fracture', attributes: {}, kind: 'box', slice: 0, min: [1, 2], max: [30, 40] };

describe('SlideAnnotationLayer', () => {
  it('turns a new drawing into created and a moved one into modified', () => {
    const f = fakeAdapter();
    const layer = new SlideAnnotationLayer(f.adapter);
    const events: ShapeEvent[] = [];
    layer.onShapeEvent((e) => void events.push(e));
    layer.setShapes([box], style, null);
    expect(f.calls.setShapes).toHaveLength(1);
    layer.setShapes([box], style, null); // unchanged: not pushed again
    expect(f.calls.setShapes).toHaveLength(1);

    const drawn = { id: 'n1', kind: 'box', label: '', slice: 0, min: [5, 6], max: [7, 8] };
    const moved = { id: 'b1', kind: 'box', label: 'fracture', slice: 0, min: [2, 2], max: [30, 40] };
    f.emit([moved, drawn]);
    expect(events).toEqual([
      { type: 'modified', id: 'b1', geometry: { kind: 'box', slice: 0, min: [2, 2], max: [30, 40] } },
      { type: 'created', id: 'n1', geometry: { kind: 'box', slice: 0, min: [5, 6], max: [7, 8] } },
    ]);
  });

  it('shows the store again when a drawing is refused, and passes selection both ways', () => {
    const f = fakeAdapter();
    const layer = new SlideAnnotationLayer(f.adapter);
    const events: ShapeEvent[] = [];
    layer.onShapeEvent((e) => (events.push(e), e.type !== 'created'));
    layer.setShapes([box], style, null);
    f.emit([{ id: 'b1', kind: 'box', label: 'fracture', slice: 0, min: [1, 2], max: [30, 40] }, { id: 'x', kind: 'box', label: '', slice: 0, min: [0, 0], max: [1, 1] }]);
    expect(f.calls.setShapes).toHaveLength(2);
    expect(f.calls.setShapes[1]!.map((s) => s.id)).toEqual(['b1']);

    f.pick('b1');
    expect(events.at(-1)).toEqual({ type: 'selected', id: 'b1' });
    layer.setShapes([box], style, 'b1'); // the store agrees: nothing to do
    expect(f.calls.select).toEqual([]);
    layer.setShapes([box], style, null);
    expect(f.calls.select).toEqual([null]);
  });

  it('maps the workspace tools to the slide tools', () => {
    const f = fakeAdapter();
    const layer = new SlideAnnotationLayer(f.adapter);
    layer.setTool('box');
    layer.setTool('polygon');
    layer.setTool('navigate');
    layer.setTool('point');
    expect(f.calls.tool).toEqual(['rectangle', 'polygon', 'pan', 'pan']);
  });
});
