// The one interface the rest of the app uses to show an item. Implementations own an
// element and a viewer library (Cornerstone3D for radiology; OpenSeadragon + Annotorious
// for slides and photos: ./slide/OsdSlideAdapter.ts, hosted by SlideViewer) and are the ONLY modules importing those libraries.
//
// Coordinates at this boundary are ours: image-index (i = column, j = row, k = slice), voxel
// centres at integers, patient mm via the item's geometry (see ./geometry.ts). Canvas
// coordinates are CSS pixels relative to the adapter's element.
import type { Item, Vec3 } from '../api/items';
import type { Shape, ShapeGeometry } from '../state/shapes';
import type { Window, WindowPreset } from './windowing';

export interface ViewState {
  readonly itemId: number | null;
  /** k of the slice shown */
  readonly sliceIndex: number;
  readonly sliceCount: number;
  /** distance of the shown slice from slice 0 along the slice normal, in mm */
  readonly sliceOffsetMm: number | null;
  /** the window in modality units (HU for CT) */
  readonly window: Window | null;
  /** set once the first image has been drawn */
  readonly rendered: boolean;
  /** images drawn so far (a test and debugging aid) */
  readonly renderCount: number;
  /** slices already in memory (prefetch progress) */
  readonly loadedCount: number;
  /** the canvas scale: 1 = the whole image fits */
  readonly zoom: number;
  readonly error: string | null;
}

export interface PixelProbe {
  /** the voxel (integers) under the point */
  readonly index: Vec3;
  readonly patientMm: Vec3;
  /** the stored value in modality units, null while the slice is not loaded */
  readonly value: number | null;
}

/** What the annotation workspace needs of a viewer: its annotation layer and a way to show
 * a shape's slice. Every ViewerAdapter is one; the slide viewer hands out its own. */
export interface AnnotationHost {
  /** Drawing and showing annotations, where the viewer supports them. */
  readonly annotations?: AnnotationLayer;
  /** Painting a label map (brush, eraser), where the viewer supports it. */
  readonly masks?: MaskLayer;
  setSlice(k: number): void;
}

export interface ViewerAdapter extends AnnotationHost {
  /** Show `item`; resolves once its first slice is drawn. */
  load(item: Item): Promise<void>;
  setSlice(k: number): void;
  /** Move by `delta` slices, clamped to the stack. */
  scrollSlices(delta: number): void;
  setWindow(window: Window): void;
  /** The automatic window of the shown slice (1st..99th percentile). */
  setAutoWindow(): void;
  presets(): readonly WindowPreset[];
  /** Fit the image and undo zoom and pan. */
  resetView(): void;
  state(): ViewState;
  /** Our index of a canvas point (fractional; k is the shown slice), or null off-image. */
  canvasToIndex(x: number, y: number): Vec3 | null;
  /** The canvas point of an index (its slice need not be shown). */
  indexToCanvas(ijk: Vec3): [number, number];
  probe(x: number, y: number): PixelProbe | null;
  /** Called after every change of ViewState; returns the unsubscribe function. */
  subscribe(listener: (state: ViewState) => void): () => void;
  destroy(): void;
  /** Drawing and showing annotations, where the viewer supports them. */
  readonly annotations?: AnnotationLayer;
}

/** What the primary mouse button does. */
export type DrawTool = 'navigate' | 'box' | 'polygon' | 'polyline' | 'point' | 'brush' | 'eraser';

export interface ShapeStyle {
  readonly color: string;
  readonly visible: boolean;
}

/** A user's gesture on the shapes, in our coordinates (never a library object). */
export type ShapeEvent =
  /** a new shape was drawn; the listener returns false to discard it */
  | { readonly type: 'created'; readonly id: string; readonly geometry: ShapeGeometry }
  /** a shape was moved or reshaped */
  | { readonly type: 'modified'; readonly id: string; readonly geometry: ShapeGeometry }
  | { readonly type: 'selected'; readonly id: string | null };

export interface AnnotationLayer {
  setTool(tool: DrawTool): void;
  /** Show exactly these shapes (those without a 2D geometry are skipped). */
  setShapes(
    shapes: readonly Shape[],
    style: (shape: Shape) => ShapeStyle,
    selected: string | null,
  ): void;
  onShapeEvent(listener: (event: ShapeEvent) => boolean | void): () => void;
}

/** A semantic label map over the item's slices (uint8, rows x columns per slice). */
export interface MaskLayer {
  readonly rows: number;
  readonly columns: number;
  readonly sliceCount: number;
  /** The value the brush paints (a class's mask value). */
  setValue(value: number): void;
  /** Display colour of a value. */
  setColor(value: number, color: string): void;
  setBrushSize(px: number): void;
  /** A copy of slice k. */
  getSlice(k: number): Uint8Array;
  /** Replace slice k (e.g. loaded from the server) and redraw. */
  setSlice(k: number, data: Uint8Array): void;
  /** Called when a brush or eraser stroke ends. */
  onStrokeEnd(listener: () => void): () => void;
}

export const EMPTY_VIEW_STATE: ViewState = {
  itemId: null,
  sliceIndex: 0,
  sliceCount: 0,
  sliceOffsetMm: null,
  window: null,
  rendered: false,
  renderCount: 0,
  loadedCount: 0,
  zoom: 1,
  error: null,
};
