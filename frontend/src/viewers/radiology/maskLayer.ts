// Painting a semantic label map on the StackViewport: Cornerstone's BrushTool (two instances:
// brush = FILL_INSIDE_CIRCLE, eraser = ERASE_INSIDE_CIRCLE) into a stack labelmap
// segmentation of derived uint8 images, one per slice. The segment index painted is the
// class's mask value, so a slice's voxels are exactly what the mask API stores.
import { type StackViewport, type Types, cache, imageLoader } from '@cornerstonejs/core';
import { BrushTool, Enums as ToolEnums, type ToolGroupManager, addTool, segmentation, utilities as toolUtilities } from '@cornerstonejs/tools';

import type { MaskLayer } from '../ViewerAdapter';

type ToolGroup = NonNullable<ReturnType<typeof ToolGroupManager.getToolGroup>>;

export const BRUSH_TOOL = 'MedlabelBrush';
export const ERASER_TOOL = 'MedlabelEraser';

let registered = false;

export function registerMaskTools(): void {
  if (registered) return;
  registered = true;
  addTool(BrushTool);
}

export function addMaskTools(group: ToolGroup): void {
  group.addToolInstance(BRUSH_TOOL, BrushTool.toolName, { activeStrategy: 'FILL_INSIDE_CIRCLE' });
  group.addToolInstance(ERASER_TOOL, BrushTool.toolName, { activeStrategy: 'ERASE_INSIDE_CIRCLE' });
  group.setToolPassive(BRUSH_TOOL);
  group.setToolPassive(ERASER_TOOL);
}

function rgba(color: string): Types.Color {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (!m) return [255, 255, 0, 160];
  return [Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16), Number.parseInt(m[3]!, 16), 160];
}

export class CornerstoneMaskLayer implements MaskLayer {
  readonly segmentationId: string;
  private labelmapIds: string[] = [];
  private readonly listeners = new Set<() => void>();
  private painting = false;
  private readonly cleanups: (() => void)[] = [];
  private size = 10;

  constructor(
    private readonly viewport: StackViewport,
    private readonly group: ToolGroup,
    readonly rows: number,
    readonly columns: number,
    readonly sliceCount: number,
  ) {
    this.segmentationId = `${viewport.id}-labelmap`;
  }

  async init(imageIds: string[]): Promise<void> {
    const images = imageLoader.createAndCacheDerivedLabelmapImages(imageIds);
    this.labelmapIds = images.map((image) => image.imageId);
    segmentation.addSegmentations([
      {
        segmentationId: this.segmentationId,
        representation: {
          type: ToolEnums.SegmentationRepresentations.Labelmap,
          data: { imageIds: this.labelmapIds },
        },
      },
    ]);
    await segmentation.addLabelmapRepresentationToViewport(this.viewport.id, [
      { segmentationId: this.segmentationId },
    ]);
    segmentation.segmentIndex.setActiveSegmentIndex(this.segmentationId, 1);
    const element = this.viewport.element;
    const down = (event: MouseEvent): void => {
      if (event.button === 0 && this.activeTool()) this.painting = true;
    };
    const up = (): void => {
      if (!this.painting) return;
      this.painting = false;
      // Cornerstone finishes the stroke on the same mouseup; read it after.
      setTimeout(() => {
        for (const listener of this.listeners) listener();
      }, 0);
    };
    element.addEventListener('mousedown', down, true);
    window.addEventListener('mouseup', up);
    this.cleanups.push(() => element.removeEventListener('mousedown', down, true));
    this.cleanups.push(() => window.removeEventListener('mouseup', up));
  }

  /** Activate the brush or eraser on the primary button, or neither (null). */
  setActive(tool: 'brush' | 'eraser' | null): void {
    this.group.setToolPassive(BRUSH_TOOL);
    this.group.setToolPassive(ERASER_TOOL);
    if (tool) {
      this.group.setToolActive(tool === 'brush' ? BRUSH_TOOL : ERASER_TOOL, {
        bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }],
      });
    }
  }

  private activeTool(): boolean {
    const active = this.group.getActivePrimaryMouseButtonTool();
    return active === BRUSH_TOOL || active === ERASER_TOOL;
  }

  setValue(value: number): void {
    if (value >= 1 && value <= 255) segmentation.segmentIndex.setActiveSegmentIndex(this.segmentationId, value);
  }

  setColor(value: number, color: string): void {
    if (value < 1 || value > 255) return;
    segmentation.config.color.setSegmentIndexColor(this.viewport.id, this.segmentationId, value, rgba(color));
  }

  setBrushSize(px: number): void {
    this.size = px;
    toolUtilities.segmentation.setBrushSizeForToolGroup(this.group.id, px);
  }

  brushSize(): number {
    return this.size;
  }

  private scalar(k: number): Types.PixelDataTypedArray {
    const id = this.labelmapIds[k];
    const image = id ? cache.getImage(id) : undefined;
    const data = image?.voxelManager?.getScalarData() as Types.PixelDataTypedArray | undefined;
    if (!data) throw new Error(`No labelmap slice ${k}.`);
    return data;
  }

  getSlice(k: number): Uint8Array {
    return Uint8Array.from(this.scalar(k));
  }

  setSlice(k: number, data: Uint8Array): void {
    this.scalar(k).set(data);
    segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(this.segmentationId, [k]);
  }

  onStrokeEnd(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  destroy(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.listeners.clear();
    try {
      segmentation.removeSegmentation(this.segmentationId);
    } catch {
      // already gone with the viewport
    }
  }
}
