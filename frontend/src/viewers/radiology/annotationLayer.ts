// Drawing and showing annotations on a Cornerstone StackViewport. Cornerstone's annotation
// objects never leave this module: shapes come in and events go out in our index
// coordinates (../annotationGeometry.ts does the conversions).
//
// Tools: box = RectangleROI, polygon = PlanarFreehandROI (closed), polyline = a
// PlanarFreehandROI that stays open, point = Probe. A drawn annotation keeps Cornerstone's
// annotationUID as our id (a UUID: valid for the server). Gestures are read back when the
// mouse is released ("reconcile"): new annotations become `created`, changed ones `modified`.
import { type StackViewport, type Types, eventTarget } from '@cornerstonejs/core';
import {
  Enums as ToolEnums,
  PlanarFreehandROITool,
  ProbeTool,
  RectangleROITool,
  type ToolGroupManager,
  WindowLevelTool,
  addTool,
  annotation as csAnnotation,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';

import type { Item } from '../../api/items';
import { type Shape, type ShapeGeometry, geometryOf, stableKey } from '../../state/shapes';
import { type DrawnWorld, geometryFromWorld, worldFromGeometry } from '../annotationGeometry';
import type { Vec3 } from '../geometry';
import type { AnnotationLayer, DrawTool, ShapeEvent, ShapeStyle } from '../ViewerAdapter';
import { parseImageId } from './imageSource';

/** A freehand path that is not closed: our polyline. */
export class PolylineTool extends PlanarFreehandROITool {
  static override toolName = 'MedlabelPolyline';
}

type ToolGroup = NonNullable<ReturnType<typeof ToolGroupManager.getToolGroup>>;
type CsAnnotation = NonNullable<ReturnType<typeof csAnnotation.state.getAnnotation>>;

const TOOL_FOR: Readonly<Record<Exclude<DrawTool, 'navigate' | 'brush' | 'eraser'>, string>> = {
  box: RectangleROITool.toolName,
  polygon: PlanarFreehandROITool.toolName,
  polyline: PolylineTool.toolName,
  point: ProbeTool.toolName,
};

const KIND_OF: Readonly<Record<string, ShapeGeometry['kind']>> = {
  [RectangleROITool.toolName]: 'box',
  [PlanarFreehandROITool.toolName]: 'polygon',
  [PolylineTool.toolName]: 'polyline',
  [ProbeTool.toolName]: 'point',
};

let registered = false;

/** Register the drawing tools with Cornerstone once per page. */
export function registerDrawingTools(): void {
  if (registered) return;
  registered = true;
  for (const tool of [RectangleROITool, PlanarFreehandROITool, PolylineTool, ProbeTool]) addTool(tool);
}

const noText = (): string[] => [];

/** Add the drawing tools to a tool group, all passive (shown and editable, not drawing). */
export function addDrawingTools(group: ToolGroup): void {
  group.addTool(RectangleROITool.toolName, { getTextLines: noText });
  group.addTool(PlanarFreehandROITool.toolName, {
    allowOpenContours: false,
    calculateStats: false,
    getTextLines: noText,
  });
  group.addTool(PolylineTool.toolName, {
    allowOpenContours: true,
    closeContourProximity: 0,
    calculateStats: false,
    getTextLines: noText,
  });
  group.addTool(ProbeTool.toolName, { getTextLines: noText });
  for (const name of Object.values(TOOL_FOR)) group.setToolPassive(name);
  // No text boxes: they capture the mouse and Cornerstone writes them with a `style`
  // attribute, which the app's CSP (style-src 'self') blocks. Sizes are in our panel.
  csAnnotation.config.style.setToolGroupToolStyles(group.id, {
    global: { textBoxVisibility: false } as Record<string, unknown>,
  });
}

/** Remove an annotation, deselecting it first (Cornerstone's selection would keep its id and
 * later fail on it). */
function removeAnnotation(id: string): void {
  if (!csAnnotation.state.getAnnotation(id)) return;
  if (csAnnotation.selection.isAnnotationSelected(id)) csAnnotation.selection.deselectAnnotation(id);
  csAnnotation.state.removeAnnotation(id);
}

interface Known {
  readonly key: string;
  readonly geometry: ShapeGeometry;
}

export class CornerstoneAnnotationLayer implements AnnotationLayer {
  private readonly known = new Map<string, Known>();
  private readonly listeners = new Set<(event: ShapeEvent) => boolean | void>();
  private readonly cleanups: (() => void)[] = [];
  private tool: DrawTool = 'navigate';
  /** Set by the adapter once its label map is ready: activates the brush or eraser. */
  maskTool: ((tool: 'brush' | 'eraser' | null) => void) | null = null;
  private syncing = false;
  private selected: string | null = null;

  constructor(
    private readonly viewport: StackViewport,
    private readonly group: ToolGroup,
    private readonly item: Item,
  ) {
    const later = (): void => {
      setTimeout(() => this.reconcile(), 0);
    };
    const on = (target: EventTarget, name: string, handler: (event: Event) => void): void => {
      target.addEventListener(name, handler);
      this.cleanups.push(() => target.removeEventListener(name, handler));
    };
    on(eventTarget, ToolEnums.Events.ANNOTATION_COMPLETED, later);
    on(window, 'mouseup', later);
    on(eventTarget, ToolEnums.Events.ANNOTATION_SELECTION_CHANGE, () => this.readSelection());
  }

  setTool(tool: DrawTool): void {
    this.tool = tool;
    const { MouseBindings } = ToolEnums;
    const primary = [{ mouseButton: MouseBindings.Primary }];
    for (const name of Object.values(TOOL_FOR)) this.group.setToolPassive(name);
    this.maskTool?.(null);
    if (tool === 'navigate') {
      this.group.setToolActive(WindowLevelTool.toolName, { bindings: primary });
    } else if (tool === 'brush' || tool === 'eraser') {
      this.group.setToolPassive(WindowLevelTool.toolName);
      if (this.maskTool) this.maskTool(tool);
      else this.group.setToolActive(WindowLevelTool.toolName, { bindings: primary });
    } else {
      this.group.setToolPassive(WindowLevelTool.toolName);
      this.group.setToolActive(TOOL_FOR[tool], { bindings: primary });
    }
  }

  currentTool(): DrawTool {
    return this.tool;
  }

  setShapes(shapes: readonly Shape[], style: (shape: Shape) => ShapeStyle, selected: string | null): void {
    this.syncing = true;
    try {
      const wanted = new Map<string, { shape: Shape; geometry: ShapeGeometry }>();
      for (const shape of shapes) {
        const geometry = geometryOf(shape);
        if (geometry) wanted.set(shape.id, { shape, geometry });
      }
      for (const id of [...this.known.keys()]) {
        if (!wanted.has(id)) {
          removeAnnotation(id);
          this.known.delete(id);
        }
      }
      for (const [id, { shape, geometry }] of wanted) {
        const key = stableKey(geometry);
        const existing = csAnnotation.state.getAnnotation(id);
        if (!existing || this.known.get(id)?.key !== key) {
          if (existing) removeAnnotation(id);
          this.addFromGeometry(id, geometry);
          this.known.set(id, { key, geometry });
        }
        const { color, visible } = style(shape);
        csAnnotation.config.style.setAnnotationStyles(id, {
          color,
          colorHighlighted: color,
          colorSelected: '#ffffff',
          lineWidth: 2,
          lineWidthSelected: 3,
          textBoxVisibility: false,
        } as Record<string, unknown>);
        if (csAnnotation.visibility.isAnnotationVisible(id) !== visible) {
          csAnnotation.visibility.setAnnotationVisibility(id, visible);
        }
      }
      this.selected = selected;
      const now = csAnnotation.selection.getAnnotationsSelected();
      if (selected && wanted.has(selected)) {
        const a = csAnnotation.state.getAnnotation(selected);
        if (now.length !== 1 || now[0] !== selected || !a?.isSelected) {
          // Selecting without preserving clears the others (safely, also removed ones).
          csAnnotation.selection.setAnnotationSelected(selected, true, false);
        }
      } else if (now.length) {
        csAnnotation.selection.deselectAnnotation();
      }
    } finally {
      this.syncing = false;
    }
    toolUtilities.triggerAnnotationRenderForViewportIds([this.viewport.id]);
  }

  onShapeEvent(listener: (event: ShapeEvent) => boolean | void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  destroy(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    for (const id of this.known.keys()) removeAnnotation(id);
    for (const a of this.ours()) removeAnnotation(a.annotationUID!);
    this.known.clear();
    this.listeners.clear();
  }

  /** Annotations on this item's images drawn by our tools. */
  private ours(): CsAnnotation[] {
    return csAnnotation.state.getAllAnnotations().filter((a) => {
      const imageId = a.metadata?.referencedImageId;
      const parsed = imageId ? parseImageId(imageId) : null;
      return parsed?.itemId === this.item.id && (a.metadata?.toolName ?? '') in KIND_OF && !!a.annotationUID;
    });
  }

  private emit(event: ShapeEvent): boolean {
    let accepted = true;
    for (const listener of this.listeners) if (listener(event) === false) accepted = false;
    return accepted;
  }

  private readSelection(): void {
    if (this.syncing) return;
    const ids = csAnnotation.selection.getAnnotationsSelected().filter((id) => this.known.has(id));
    const id = ids.length ? ids[ids.length - 1]! : null;
    if (id === this.selected) return;
    this.selected = id;
    this.emit({ type: 'selected', id });
  }

  /** Read back what the user's gesture did to Cornerstone's annotations. */
  private reconcile(): void {
    const geometry = this.item.geometry;
    if (!geometry || this.syncing) return;
    let changed = false;
    for (const a of this.ours()) {
      const id = a.annotationUID!;
      const drawn = this.drawnWorld(a);
      const shape = drawn ? geometryFromWorld(geometry, drawn) : null;
      const known = this.known.get(id);
      if (!known) {
        if (!shape) {
          // Not a shape the server would take (a click without a drag, no area): drop it.
          removeAnnotation(id);
          changed = true;
          continue;
        }
        this.known.set(id, { key: stableKey(shape), geometry: shape });
        if (!this.emit({ type: 'created', id, geometry: shape })) {
          removeAnnotation(id);
          this.known.delete(id);
          changed = true;
        }
        continue;
      }
      if (!shape) {
        // Edited into something invalid: put back what we had.
        removeAnnotation(id);
        this.addFromGeometry(id, known.geometry);
        changed = true;
        continue;
      }
      const key = stableKey(shape);
      if (key !== known.key) {
        this.known.set(id, { key, geometry: shape });
        this.emit({ type: 'modified', id, geometry: shape });
      }
    }
    if (changed) toolUtilities.triggerAnnotationRenderForViewportIds([this.viewport.id]);
  }

  private drawnWorld(a: CsAnnotation): DrawnWorld | null {
    const metadata = a.metadata;
    const kind = metadata ? KIND_OF[metadata.toolName] : undefined;
    const parsed = metadata?.referencedImageId ? parseImageId(metadata.referencedImageId) : null;
    if (!kind || !parsed) return null;
    const slice = parsed.k;
    const data = a.data as {
      handles?: { points?: Types.Point3[] };
      contour?: { polyline?: Types.Point3[]; closed?: boolean };
    };
    const toVec = (p: Types.Point3): Vec3 => [p[0], p[1], p[2]];
    switch (kind) {
      case 'box':
        return { kind, slice, corners: (data.handles?.points ?? []).map(toVec) };
      case 'point': {
        const p = data.handles?.points?.[0];
        return p ? { kind, slice, point: toVec(p) } : null;
      }
      case 'polygon':
      case 'polyline':
        return { kind, slice, path: (data.contour?.polyline ?? []).map(toVec) };
    }
  }

  private addFromGeometry(id: string, shape: ShapeGeometry): void {
    const geometry = this.item.geometry;
    if (!geometry) return;
    const { slice, points } = worldFromGeometry(geometry, shape);
    const metadata = this.viewport.getViewReference({ sliceIndex: slice });
    if (!metadata) return;
    const world = points.map((p) => [p[0], p[1], p[2]] as Types.Point3);
    const toolName =
      shape.kind === 'box'
        ? RectangleROITool.toolName
        : shape.kind === 'polygon'
          ? PlanarFreehandROITool.toolName
          : shape.kind === 'polyline'
            ? PolylineTool.toolName
            : ProbeTool.toolName;
    const contour = shape.kind === 'polygon' || shape.kind === 'polyline';
    const annotation = {
      annotationUID: id,
      highlighted: false,
      invalidated: true,
      isLocked: false,
      isVisible: true,
      metadata: { ...metadata, toolName },
      data: {
        handles: {
          points: contour ? [] : world,
          activeHandleIndex: null,
          textBox: {
            hasMoved: false,
            worldPosition: [0, 0, 0] as Types.Point3,
            worldBoundingBox: {
              topLeft: [0, 0, 0] as Types.Point3,
              topRight: [0, 0, 0] as Types.Point3,
              bottomLeft: [0, 0, 0] as Types.Point3,
              bottomRight: [0, 0, 0] as Types.Point3,
            },
          },
        },
        cachedStats: {},
        label: '',
        ...(contour ? { contour: { polyline: world, closed: shape.kind === 'polygon' } } : {}),
      },
    };
    csAnnotation.state.addAnnotation(annotation as unknown as CsAnnotation, this.viewport.element);
  }
}
