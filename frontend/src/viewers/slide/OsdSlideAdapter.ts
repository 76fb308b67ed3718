// The slide viewer's adapter: OpenSeadragon 6 (Deep Zoom tiles from our DZI endpoint,
// navigator, smooth zoom and pan) with Annotorious 3 on top (rectangles and polygons). The
// ONLY module that imports these two libraries; everything crossing its boundary is ours:
// image indices (pixel centres at integers, level 0) and our shape JSON (./shapes.ts).
//
// Facts behind the settings: shared VIEWER.md section 2 (OSD 6.1.1 + Annotorious 3.8.10 on a
// Deep Zoom pyramid, headless).
import '@annotorious/openseadragon/annotorious-openseadragon.css';
import './slide.css';

import {
  type DrawingStyle,
  type ImageAnnotation,
  type OpenSeadragonAnnotator,
  type W3CImageAnnotation,
  W3CImageFormat,
  createOSDAnnotator,
} from '@annotorious/openseadragon';
import OpenSeadragon from 'openseadragon';

import { api, unwrap } from '../../api/client';
import { imageToIndex, indexToImage, magnification, type Vec2 } from './coords';
import { dziTileSource, dziUrl, parseDzi } from './dzi';
import {
  SHAPE_ID,
  type Shape,
  type W3CAnnotation,
  isDrawable,
  shapeToW3C,
  upsertShape,
  w3cToShape,
} from './shapes';
import type { SlideItem } from './slideItem';

export type SlideTool = 'pan' | 'rectangle' | 'polygon';

export interface ActiveLabel {
  /** the class key of the label schema */
  readonly key: string;
  /** a hex colour, "#rgb" or "#rrggbb" (others show as the fallback yellow) */
  readonly colour: string;
}

export interface SlideViewState {
  readonly itemId: number | null;
  /** set once the tiles for the first view have all been drawn */
  readonly rendered: boolean;
  /** all tiles of the current view are loaded (changes with every zoom and pan) */
  readonly fullyLoaded: boolean;
  readonly tilesLoaded: number;
  /** OSD's viewport zoom relative to the home (fit) view: 1 = the whole image fits */
  readonly zoom: number;
  /** screen (CSS) pixels per level-0 image pixel */
  readonly imageZoom: number;
  /** objective power x imageZoom; null when the item has no objective power */
  readonly magnification: number | null;
  /** the index at the centre of the view */
  readonly centre: readonly [number, number] | null;
  readonly tool: SlideTool;
  readonly shapeCount: number;
  readonly error: string | null;
}

export const EMPTY_SLIDE_STATE: SlideViewState = {
  itemId: null,
  rendered: false,
  fullyLoaded: false,
  tilesLoaded: 0,
  zoom: 1,
  imageZoom: 0,
  magnification: null,
  centre: null,
  tool: 'pan',
  shapeCount: 0,
  error: null,
};

const FALLBACK_COLOUR = '#ffcc00';
const HEX_COLOUR = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

/** OpenSeadragon 6 injects one <style> element (a focus-outline rule for touch screens) unless
 * `document.querySelector('style[data-openseadragon-mobile-css]')` finds one; our CSP
 * (`style-src 'self'`) refuses inline <style>, and Chromium checks even an empty one or one of
 * another type. So we add an inert element named `style` in a namespace of our own: the
 * selector matches it, the browser never treats it as a style sheet. The rule itself is in
 * slide.css. */
function preemptOsdInlineStyle(): void {
  if (document.querySelector('style[data-openseadragon-mobile-css]')) return;
  const marker = document.createElementNS('urn:x-medlabel:inert', 'style');
  marker.setAttribute('data-openseadragon-mobile-css', 'true');
  document.head.appendChild(marker);
}

export class OsdSlideAdapter {
  private readonly element: HTMLElement;
  private viewer: OpenSeadragon.Viewer | null = null;
  private anno: OpenSeadragonAnnotator<ImageAnnotation, W3CImageAnnotation> | null = null;
  private item: SlideItem | null = null;
  private current: SlideViewState = EMPTY_SLIDE_STATE;
  private readonly listeners = new Set<(s: SlideViewState) => void>();
  private shapes: readonly Shape[] = [];
  private shapesListener: ((shapes: readonly Shape[]) => void) | null = null;
  private selectionListener: ((id: string | null) => void) | null = null;
  private activeLabel: ActiveLabel = { key: '', colour: FALLBACK_COLOUR };
  private colours: Readonly<Record<string, string>> = {};
  private destroyed = false;

  constructor(element: HTMLElement) {
    this.element = element;
  }

  /** Show `item`; resolves once the first view's tiles are drawn. */
  async load(item: SlideItem): Promise<void> {
    this.item = item;
    this.update({ ...EMPTY_SLIDE_STATE, itemId: item.id });
    const descriptor = parseDzi(
      unwrap(await api.GET('/api/items/{item_id}/dzi', { params: { path: { item_id: item.id } } })),
    );
    if (this.destroyed) return;
    preemptOsdInlineStyle();
    const viewer = OpenSeadragon({
      element: this.element,
      tileSources: dziTileSource(item.id, descriptor),
      showNavigator: true,
      navigatorPosition: 'BOTTOM_RIGHT',
      navigatorAutoFade: false,
      showNavigationControl: false, // its buttons are images from prefixUrl; ours are React
      maxZoomPixelRatio: 2,
      minZoomImageRatio: 0.5,
      visibilityRatio: 0.5,
      animationTime: 0.6,
      springStiffness: 8,
      zoomPerScroll: 1.25,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false },
      gestureSettingsTouch: { clickToZoom: false, dblClickToZoom: false },
      keyboardNavEnabled: false, // OSD's keys include r = rotate; SlideViewer has its own
    });
    this.viewer = viewer;

    const anno = createOSDAnnotator<ImageAnnotation, W3CImageAnnotation>(viewer, {
      adapter: W3CImageFormat(dziUrl(item.id)),
      drawingEnabled: false,
      drawingMode: 'drag',
      style: (a: ImageAnnotation) => this.styleOf(a),
    });
    this.anno = anno;
    anno.on('createAnnotation', (a) => this.onAnnotatorChange(a as unknown as W3CAnnotation));
    anno.on('updateAnnotation', (a) => this.onAnnotatorChange(a as unknown as W3CAnnotation));
    anno.on('deleteAnnotation', (a) => this.removeShape((a as unknown as W3CAnnotation).id));
    anno.on('selectionChanged', (selected) => this.selectionListener?.(selected[0]?.id ?? null));
    this.pushShapesToAnnotator();

    const refresh = () => this.refreshView();
    viewer.addHandler('animation', refresh);
    viewer.addHandler('animation-finish', refresh);
    viewer.addHandler('resize', refresh);
    viewer.addHandler('tile-loaded', () => {
      this.update({ tilesLoaded: this.current.tilesLoaded + 1 });
    });

    await new Promise<void>((resolve, reject) => {
      viewer.addOnceHandler('open-failed', (event) => {
        const message = `The slide could not be opened: ${String(event.message)}`;
        this.update({ error: message });
        reject(new Error(message));
      });
      viewer.addOnceHandler('open', () => {
        const tiled = viewer.world.getItemAt(0);
        const onLoaded = (loaded: boolean) => {
          this.update({ fullyLoaded: loaded, ...(loaded ? { rendered: true } : {}) });
          this.refreshView();
          if (loaded) resolve();
        };
        tiled.addHandler('fully-loaded-change', (e) => onLoaded(e.fullyLoaded));
        this.refreshView();
        if (tiled.getFullyLoaded()) onLoaded(true);
      });
    });
  }

  /** Fit the image: undo zoom and pan. */
  resetView(): void {
    this.viewer?.viewport.goHome();
  }

  /** Zoom by `factor` about the centre (smoothly). */
  zoomBy(factor: number): void {
    const viewer = this.viewer;
    if (!viewer) return;
    viewer.viewport.zoomBy(factor);
    viewer.viewport.applyConstraints();
  }

  /** Show level-0 pixels 1:1 on screen (the objective's magnification). */
  zoomToNative(): void {
    const viewer = this.viewer;
    if (!viewer) return;
    viewer.viewport.zoomTo(viewer.viewport.imageToViewportZoom(1));
  }

  setTool(tool: SlideTool): void {
    const anno = this.anno;
    if (!anno) return;
    anno.cancelSelected();
    if (tool === 'pan') {
      anno.setDrawingEnabled(false);
    } else {
      anno.setDrawingTool(tool);
      // VIEWER.md pitfall 1: a polygon's first vertex must be a plain click.
      anno.setDrawingMode(tool === 'polygon' ? 'click' : 'drag');
      anno.setDrawingEnabled(true);
    }
    this.update({ tool });
  }

  setActiveLabel(label: ActiveLabel, colours: Readonly<Record<string, string>> = {}): void {
    this.activeLabel = label;
    this.colours = colours;
    this.anno?.setStyle((a: ImageAnnotation) => this.styleOf(a));
  }

  /** Replace the shapes shown (boxes and polygons on slice 0; the others are kept as they
   * are and handed back with every change). */
  setShapes(shapes: readonly Shape[]): void {
    this.shapes = shapes;
    this.update({ shapeCount: shapes.length });
    this.pushShapesToAnnotator();
  }

  getShapes(): readonly Shape[] {
    return this.shapes;
  }

  /** Called with the whole new shape list after each drawing, edit or deletion. */
  onShapesChange(listener: ((shapes: readonly Shape[]) => void) | null): void {
    this.shapesListener = listener;
  }

  /** Called with the id of the shape the user selects (null: none). */
  onSelectionChange(listener: ((id: string | null) => void) | null): void {
    this.selectionListener = listener;
  }

  /** Select a shape (editable), or none. */
  select(id: string | null): void {
    const anno = this.anno;
    if (!anno) return;
    const current = anno.getSelected()[0]?.id ?? null;
    if (current === id) return;
    if (id === null || !anno.getAnnotationById(id)) anno.cancelSelected();
    else anno.setSelected(id, true);
  }

  /** Delete the selected shape, if any. */
  deleteSelected(): void {
    const anno = this.anno;
    if (!anno) return;
    const selected = anno.getSelected();
    for (const a of selected) {
      anno.removeAnnotation(a.id);
      this.removeShape(a.id);
    }
  }

  cancelDrawing(): void {
    this.anno?.cancelDrawing();
    this.anno?.cancelSelected();
  }

  state(): SlideViewState {
    return this.current;
  }

  /** Our index (fractional, level 0) of a point in CSS pixels relative to the element. */
  canvasToIndex(x: number, y: number): [number, number] | null {
    const viewer = this.viewer;
    if (!viewer || viewer.world.getItemCount() === 0) return null;
    const p = viewer.viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(x, y));
    return imageToIndex([p.x, p.y]);
  }

  /** The element point (CSS pixels) of an index. */
  indexToCanvas(ij: Vec2): [number, number] | null {
    const viewer = this.viewer;
    if (!viewer || viewer.world.getItemCount() === 0) return null;
    const [x, y] = indexToImage(ij);
    const p = viewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
    return [p.x, p.y];
  }

  subscribe(listener: (s: SlideViewState) => void): () => void {
    this.listeners.add(listener);
    listener(this.current);
    return () => this.listeners.delete(listener);
  }

  destroy(): void {
    this.destroyed = true;
    this.listeners.clear();
    this.shapesListener = null;
    this.selectionListener = null;
    try {
      this.anno?.destroy();
    } finally {
      this.anno = null;
      this.viewer?.destroy();
      this.viewer = null;
    }
  }

  // --- internals -------------------------------------------------------------------------

  private update(patch: Partial<SlideViewState>): void {
    this.current = { ...this.current, ...patch };
    for (const listener of this.listeners) listener(this.current);
  }

  private refreshView(): void {
    const viewer = this.viewer;
    if (!viewer || viewer.world.getItemCount() === 0) return;
    const vp = viewer.viewport;
    const zoom = vp.getZoom(true);
    const imageZoom = vp.viewportToImageZoom(zoom);
    const c = vp.viewportToImageCoordinates(vp.getCenter(true));
    this.update({
      zoom: zoom / vp.getHomeZoom(),
      imageZoom,
      magnification: magnification(this.item?.slide?.objectivePower ?? null, imageZoom),
      centre: imageToIndex([c.x, c.y]),
    });
  }

  private labelOf(a: ImageAnnotation): string | null {
    const tag = a.bodies.find((b) => b.purpose === 'tagging' && typeof b.value === 'string');
    if (tag) return tag.value as string;
    return this.shapes.find((s) => s.id === a.id)?.label ?? null;
  }

  private styleOf(a: ImageAnnotation): DrawingStyle {
    const label = this.labelOf(a);
    const colour =
      (label !== null ? this.colours[label] : undefined) ??
      (label === null || label === this.activeLabel.key ? this.activeLabel.colour : FALLBACK_COLOUR);
    // Annotorious (pixi.js) takes #hex or rgb()/rgba() colours only.
    const c = (HEX_COLOUR.test(colour) ? colour : FALLBACK_COLOUR) as `#${string}`;
    return { fill: c, fillOpacity: 0.2, stroke: c, strokeOpacity: 1, strokeWidth: 2 };
  }

  private pushShapesToAnnotator(): void {
    const anno = this.anno;
    const item = this.item;
    if (!anno || !item) return;
    const source = dziUrl(item.id);
    const w3c = this.shapes.filter(isDrawable).map((s) => shapeToW3C(s, source));
    anno.setAnnotations(w3c as unknown as W3CImageAnnotation[], true);
  }

  private onAnnotatorChange(a: W3CAnnotation): void {
    const item = this.item;
    if (!item) return;
    if (!SHAPE_ID.test(a.id)) {
      this.update({ error: `Annotorious made an id our server refuses: ${a.id}` });
      return;
    }
    const previous = this.shapes.find((s) => s.id === a.id);
    try {
      const converted = w3cToShape(a, {
        width: item.width,
        height: item.height,
        defaultLabel: previous?.label ?? this.activeLabel.key,
      });
      this.emit(upsertShape(this.shapes, { ...previous, ...converted }));
    } catch (error) {
      this.update({ error: String(error) });
    }
  }

  private removeShape(id: string): void {
    if (!this.shapes.some((s) => s.id === id)) return;
    this.emit(this.shapes.filter((s) => s.id !== id));
  }

  private emit(shapes: Shape[]): void {
    this.shapes = shapes;
    this.update({ shapeCount: shapes.length });
    this.shapesListener?.(shapes);
  }
}
