// RadiologyAdapter on Cornerstone3D 5.14: one StackViewport per adapter, pixels through the
// `medlabel:` image scheme (./imageSource.ts). This file and imageSource.ts are the only
// users of Cornerstone3D in the app.
//
// Mouse: left drag = window/level, middle drag = pan, right drag = zoom, wheel = slices.
import {
  Enums,
  RenderingEngine,
  type StackViewport,
  type Types,
  cache,
  imageLoader,
  init as initCore,
  utilities,
} from '@cornerstonejs/core';
import {
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as initTools,
} from '@cornerstonejs/tools';

import type { Item, Vec3 } from '../../api/items';
import { indexToPatient, patientToIndex, sliceOffsetMm, voxelAt } from '../geometry';
import {
  EMPTY_VIEW_STATE,
  type AnnotationLayer,
  type MaskLayer,
  type PixelProbe,
  type ViewState,
  type ViewerAdapter,
} from '../ViewerAdapter';
import { type Window, type WindowPreset, autoWindow, presetsFor } from '../windowing';
import { CornerstoneAnnotationLayer, addDrawingTools, registerDrawingTools } from './annotationLayer';
import { FrameStore } from './frames';
import { CornerstoneMaskLayer, addMaskTools, registerMaskTools } from './maskLayer';
import { imageIdFor, registerImageSource, registerItem, unregisterItem } from './imageSource';

let initialised: Promise<void> | null = null;

/** Initialise Cornerstone3D and its tools once per page. */
function initCornerstone(): Promise<void> {
  initialised ??= (async () => {
    await initCore();
    initTools();
    for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) addTool(tool);
    registerDrawingTools();
    registerMaskTools();
    registerImageSource();
  })();
  return initialised;
}

let nextId = 0;

export class CornerstoneAdapter implements ViewerAdapter {
  private readonly id = `medlabel-${(nextId += 1)}`;
  private engine: RenderingEngine | null = null;
  private viewport: StackViewport | null = null;
  private item: Item | null = null;
  private frames: FrameStore | null = null;
  private current: ViewState = EMPTY_VIEW_STATE;
  private readonly listeners = new Set<(state: ViewState) => void>();
  private readonly cleanups: (() => void)[] = [];
  private destroyed = false;
  private layer: CornerstoneAnnotationLayer | null = null;
  private maskLayer: CornerstoneMaskLayer | null = null;

  constructor(private readonly element: HTMLDivElement) {}

  /** Drawing and showing annotations; set once load() has set up the viewport. */
  get annotations(): AnnotationLayer | undefined {
    return this.layer ?? undefined;
  }

  /** The label map (brush, eraser); set once load() has set it up. */
  get masks(): MaskLayer | undefined {
    return this.maskLayer ?? undefined;
  }

  async load(item: Item): Promise<void> {
    const geometry = item.geometry;
    if (!geometry || item.pixel.samples !== 1) {
      throw new Error(`Item ${item.id} is not a monochrome image with a geometry.`);
    }
    await initCornerstone();
    if (this.destroyed) return;
    this.item = item;
    const count = item.pixel.frames;
    const bytesPerValue = Number.parseInt(item.pixel.dtype.replace(/^[<>=|]/, '').slice(1), 10) || 2;
    this.frames = new FrameStore(
      item.id,
      count,
      item.pixel.rows * item.pixel.columns * bytesPerValue,
      (loaded) => this.update({ loadedCount: loaded }),
    );
    const start = Math.floor((count - 1) / 2);
    const window = await this.initialWindow(item, this.frames, start);
    if (this.destroyed) return;
    registerItem({ item, frames: this.frames, window });

    this.engine = new RenderingEngine(`${this.id}-engine`);
    this.engine.enableElement({
      viewportId: `${this.id}-viewport`,
      type: Enums.ViewportType.STACK,
      element: this.element,
      defaultOptions: { background: [0, 0, 0] as Types.Point3 },
    });
    this.viewport = this.engine.getViewport(`${this.id}-viewport`) as StackViewport;
    const group = this.setUpTools();
    this.layer = new CornerstoneAnnotationLayer(this.viewport, group, item);
    this.listen();
    this.update({
      itemId: item.id,
      sliceCount: count,
      sliceIndex: start,
      sliceOffsetMm: sliceOffsetMm(geometry, start),
      window,
    });
    const ids = Array.from({ length: count }, (_, k) => imageIdFor(item.id, k));
    await this.viewport.setStack(ids, start);
    this.viewport.setProperties({ voiRange: toRange(window) });
    this.viewport.render();
    void this.prefetch(ids, start);
    await this.setUpMasks(group, ids);
  }

  private async setUpMasks(group: ReturnType<CornerstoneAdapter['setUpTools']>, ids: string[]): Promise<void> {
    const item = this.item;
    const viewport = this.viewport;
    if (!item || !viewport || this.destroyed) return;
    try {
      const masks = new CornerstoneMaskLayer(viewport, group, item.pixel.rows, item.pixel.columns, ids.length);
      await masks.init(ids);
      if (this.destroyed) {
        masks.destroy();
        return;
      }
      this.maskLayer = masks;
      const layer = this.layer;
      if (layer) {
        layer.maskTool = (tool) => masks.setActive(tool);
        layer.setTool(layer.currentTool());
      }
      this.update({});
    } catch (error) {
      this.update({ error: `Label map unavailable: ${String(error)}` });
    }
  }

  setSlice(k: number): void {
    const viewport = this.viewport;
    if (!viewport) return;
    const clamped = Math.max(0, Math.min(this.current.sliceCount - 1, Math.round(k)));
    void viewport.setImageIdIndex(clamped);
  }

  scrollSlices(delta: number): void {
    this.setSlice(this.current.sliceIndex + delta);
  }

  setWindow(window: Window): void {
    const viewport = this.viewport;
    if (!viewport) return;
    viewport.setProperties({ voiRange: toRange(window) });
    viewport.render();
  }

  setAutoWindow(): void {
    const viewport = this.viewport;
    if (!viewport) return;
    const image = cache.getImage(viewport.getCurrentImageId());
    if (image) this.setWindow(autoWindow(image.getPixelData()));
  }

  presets(): readonly WindowPreset[] {
    return this.item ? presetsFor(this.item) : [];
  }

  resetView(): void {
    const viewport = this.viewport;
    if (!viewport) return;
    viewport.resetCamera();
    viewport.render();
  }

  state(): ViewState {
    return this.current;
  }

  canvasToIndex(x: number, y: number): Vec3 | null {
    const viewport = this.viewport;
    const geometry = this.item?.geometry;
    if (!viewport || !geometry) return null;
    const world = viewport.canvasToWorld([x, y]);
    const ijk = patientToIndex(geometry, [world[0], world[1], world[2]]);
    // The canvas shows one slice: the in-plane position, on the shown slice.
    return [ijk[0], ijk[1], this.current.sliceIndex];
  }

  indexToCanvas(ijk: Vec3): [number, number] {
    const viewport = this.viewport;
    const geometry = this.item?.geometry;
    if (!viewport || !geometry) return [Number.NaN, Number.NaN];
    const world = indexToPatient(geometry, ijk);
    const point = viewport.worldToCanvas([world[0], world[1], world[2]]);
    return [point[0], point[1]];
  }

  probe(x: number, y: number): PixelProbe | null {
    const item = this.item;
    const geometry = item?.geometry;
    const ijk = this.canvasToIndex(x, y);
    if (!item || !geometry || !ijk) return null;
    const voxel = voxelAt(geometry, ijk);
    if (!voxel) return null;
    const image = cache.getImage(imageIdFor(item.id, voxel[2]));
    const value = image ? (image.getPixelData()[voxel[1] * item.pixel.columns + voxel[0]] ?? null) : null;
    return { index: voxel, patientMm: indexToPatient(geometry, voxel), value };
  }

  subscribe(listener: (state: ViewState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  destroy(): void {
    this.destroyed = true;
    this.frames?.abort();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.layer?.destroy();
    this.layer = null;
    this.maskLayer?.destroy();
    this.maskLayer = null;
    if (ToolGroupManager.getToolGroup(this.id)) ToolGroupManager.destroyToolGroup(this.id);
    this.engine?.destroy();
    this.engine = null;
    this.viewport = null;
    if (this.item) unregisterItem(this.item.id);
    this.listeners.clear();
  }

  private async initialWindow(item: Item, frames: FrameStore, k: number): Promise<Window> {
    const preset = presetsFor(item)[0];
    if (preset) return { center: preset.center, width: preset.width };
    return autoWindow(await frames.frame(k));
  }

  private setUpTools() {
    const group = ToolGroupManager.createToolGroup(this.id);
    if (!group) throw new Error('Cornerstone could not create a tool group.');
    const viewportId = `${this.id}-viewport`;
    group.addViewport(viewportId, `${this.id}-engine`);
    for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) {
      group.addTool(tool.toolName);
    }
    const { MouseBindings } = ToolEnums;
    group.setToolActive(WindowLevelTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Primary }],
    });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    group.setToolActive(StackScrollTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Wheel }],
    });
    addDrawingTools(group);
    addMaskTools(group);
    return group;
  }

  private listen(): void {
    const on = (name: string, handler: (event: Event) => void): void => {
      this.element.addEventListener(name, handler);
      this.cleanups.push(() => this.element.removeEventListener(name, handler));
    };
    const noMenu = (event: Event): void => event.preventDefault();
    on('contextmenu', noMenu);
    on(Enums.Events.IMAGE_RENDERED, () => this.readViewport(true));
    on(Enums.Events.STACK_NEW_IMAGE, () => this.readViewport(false));
    on(Enums.Events.VOI_MODIFIED, () => this.readViewport(false));
    on(Enums.Events.CAMERA_MODIFIED, () => this.readViewport(false));
    const observer = new ResizeObserver(() => this.engine?.resize(true, true));
    observer.observe(this.element);
    this.cleanups.push(() => observer.disconnect());
  }

  private readViewport(rendered: boolean): void {
    const viewport = this.viewport;
    const geometry = this.item?.geometry;
    if (!viewport || !geometry) return;
    const k = viewport.getCurrentImageIdIndex();
    const range = viewport.getProperties().voiRange;
    const window = range ? fromRange(range) : this.current.window;
    this.update({
      sliceIndex: k,
      sliceOffsetMm: sliceOffsetMm(geometry, k),
      window,
      zoom: viewport.getZoom(),
      ...(rendered ? { rendered: true, renderCount: this.current.renderCount + 1 } : {}),
    });
  }

  private async prefetch(ids: string[], start: number): Promise<void> {
    const frames = this.frames;
    if (!frames) return;
    try {
      await frames.prefetchAll(start);
      // Hand the fetched frames to Cornerstone's cache so scrolling never waits.
      await Promise.all(ids.map((id) => imageLoaderCache(id)));
    } catch (error) {
      if (!this.destroyed) this.update({ error: `Prefetch failed: ${String(error)}` });
    }
  }

  private update(patch: Partial<ViewState>): void {
    this.current = { ...this.current, ...patch };
    for (const listener of this.listeners) listener(this.current);
  }
}

async function imageLoaderCache(imageId: string): Promise<void> {
  await imageLoader.loadAndCacheImage(imageId);
}

function toRange(window: Window): Types.VOIRange {
  return utilities.windowLevel.toLowHighRange(window.width, window.center);
}

function fromRange(range: Types.VOIRange): Window {
  const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
  return { center: windowCenter, width: windowWidth };
}
