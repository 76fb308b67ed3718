// The slide viewer's AnnotationLayer (../ViewerAdapter.ts): what the annotation workspace
// (components/AnnotationWorkspace.tsx) talks to, on top of the OsdSlideAdapter. The store's
// shapes go in whole (`setShapes`); the adapter hands back its whole shape list after every
// drawing or edit, and this layer turns the difference into ShapeEvents (created, modified),
// plus Annotorious' selection (selected). Deleting is the workspace's business (Delete key,
// the shape panel): a shape that leaves the store leaves the screen with the next setShapes.
//
// Shapes cross as our JSON (docs/annotations.md); the slide viewer draws boxes and polygons on
// slice 0 only (the others are not shown).
import { type Shape, type ShapeGeometry, shapeToJson, stableKey } from '../../state/shapes';
import type { AnnotationLayer, DrawTool, ShapeEvent, ShapeStyle } from '../ViewerAdapter';
import type { OsdSlideAdapter, SlideTool } from './OsdSlideAdapter';
import { type Shape as SlideShape, isDrawable } from './shapes';

/** The tools the slide viewer has (the workspace offers only these). */
export const SLIDE_TOOLS: readonly DrawTool[] = ['navigate', 'box', 'polygon'];

const TOOL_MAP: Readonly<Partial<Record<DrawTool, SlideTool>>> = {
  navigate: 'pan',
  box: 'rectangle',
  polygon: 'polygon',
};

/** The drawn geometry of a slide shape (a box or polygon on slice 0), or null. */
export function slideGeometry(shape: SlideShape): ShapeGeometry | null {
  if (!isDrawable(shape)) return null;
  if (shape.kind === 'box') {
    return { kind: 'box', slice: 0, min: [shape.min[0], shape.min[1]], max: [shape.max[0], shape.max[1]] };
  }
  return {
    kind: 'polygon',
    slice: 0,
    points: shape.points.map((p): [number, number] => [p[0], p[1]]),
    holes: (shape.holes ?? []).map((h) => h.map((p): [number, number] => [p[0], p[1]])),
  };
}

export class SlideAnnotationLayer implements AnnotationLayer {
  private readonly adapter: OsdSlideAdapter;
  private readonly listeners = new Set<(event: ShapeEvent) => boolean | void>();
  /** what was last handed to the adapter, and its key (nothing is pushed when unchanged) */
  private shown: readonly SlideShape[] = [];
  private shownKey = '';
  private selected: string | null = null;

  constructor(adapter: OsdSlideAdapter) {
    this.adapter = adapter;
    adapter.onShapesChange((next) => this.fromAdapter(next));
    adapter.onSelectionChange((id) => {
      if (id === this.selected) return;
      this.selected = id;
      this.dispatch({ type: 'selected', id });
    });
  }

  setTool(tool: DrawTool): void {
    this.adapter.setTool(TOOL_MAP[tool] ?? 'pan');
  }

  setShapes(shapes: readonly Shape[], style: (shape: Shape) => ShapeStyle, selected: string | null): void {
    const colours: Record<string, string> = {};
    const visible: SlideShape[] = [];
    for (const shape of shapes) {
      const s = style(shape);
      colours[shape.label] = s.color;
      if (s.visible) visible.push(shapeToJson(shape) as unknown as SlideShape);
    }
    const key = stableKey([visible, colours]);
    if (key !== this.shownKey) {
      this.shownKey = key;
      this.shown = visible;
      this.adapter.setActiveLabel({ key: '', colour: '#ffff00' }, colours);
      this.adapter.setShapes(visible);
    }
    if (selected !== this.selected) {
      this.selected = selected;
      this.adapter.select(selected);
    }
  }

  onShapeEvent(listener: (event: ShapeEvent) => boolean | void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  destroy(): void {
    this.listeners.clear();
    this.adapter.onShapesChange(null);
    this.adapter.onSelectionChange(null);
  }

  private dispatch(event: ShapeEvent): boolean {
    let accepted = true;
    for (const listener of this.listeners) if (listener(event) === false) accepted = false;
    return accepted;
  }

  private fromAdapter(next: readonly SlideShape[]): void {
    const before = new Map(this.shown.map((s) => [s.id, s]));
    let rejected = false;
    for (const shape of next) {
      const geometry = slideGeometry(shape);
      if (!geometry) continue;
      const previous = before.get(shape.id);
      if (!previous) {
        if (!this.dispatch({ type: 'created', id: shape.id, geometry })) rejected = true;
      } else {
        const old = slideGeometry(previous);
        if (!old || stableKey(old) !== stableKey(geometry)) {
          if (!this.dispatch({ type: 'modified', id: shape.id, geometry })) rejected = true;
        }
      }
    }
    if (rejected) {
      // Show the store's document again (a refused drawing disappears).
      this.adapter.setShapes(this.shown);
    }
  }
}
