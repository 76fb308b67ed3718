// Hosts the slide adapter (OpenSeadragon + Annotorious, ./slide/OsdSlideAdapter.ts) for items
// of kind `slide` and `image`: toolbar, keys, magnification, scale bar and readout.
//
// Controlled: `shapes` is the item's shape document (our JSON, docs/annotations.md); every
// drawing, edit or deletion calls `onShapesChange` with the whole new list. Boxes and
// polygons on slice 0 are shown and editable; other kinds are passed through untouched.
// Saving is the caller's business.
import { type KeyboardEvent, type MouseEvent, useEffect, useRef, useState } from 'react';

import { type ActiveLabel, EMPTY_SLIDE_STATE, OsdSlideAdapter, type SlideTool, type SlideViewState } from './slide/OsdSlideAdapter';
import { formatMagnification, pixelAt, scaleBar } from './slide/coords';
import type { Shape } from './slide/shapes';
import type { SlideItem } from './slide/slideItem';
import { publishSlide } from './slide/testHook';

export type { ActiveLabel, SlideTool } from './slide/OsdSlideAdapter';
export type { Shape } from './slide/shapes';
export type { SlideItem } from './slide/slideItem';
export { parseSlideItem, isSlideKind } from './slide/slideItem';

export interface SlideViewerProps {
  item: SlideItem;
  shapes: readonly Shape[];
  onShapesChange: (shapes: readonly Shape[]) => void;
  /** the class new shapes get, and its colour */
  activeLabel: ActiveLabel;
  /** colours of the other classes (by key), for shapes already there */
  labelColours?: Readonly<Record<string, string>>;
}

const TOOL_KEYS: Readonly<Record<string, SlideTool>> = { v: 'pan', b: 'rectangle', p: 'polygon' };
const SCALE_BAR_MAX_PX = 160;

export function SlideViewer({ item, shapes, onShapesChange, activeLabel, labelColours }: SlideViewerProps) {
  const element = useRef<HTMLDivElement>(null);
  const adapter = useRef<OsdSlideAdapter | null>(null);
  const lastEmitted = useRef<readonly Shape[] | null>(null);
  const latest = useRef({ shapes, onShapesChange, activeLabel, labelColours });
  latest.current = { shapes, onShapesChange, activeLabel, labelColours };
  const [view, setView] = useState<SlideViewState>(EMPTY_SLIDE_STATE);
  const [cursor, setCursor] = useState<[number, number] | null>(null);
  const [failure, setFailure] = useState<string | null>(null);

  useEffect(() => {
    const target = element.current;
    if (!target) return undefined;
    const viewer = new OsdSlideAdapter(target);
    adapter.current = viewer;
    const publish = () =>
      publishSlide({
        state: viewer.state(),
        shapes: viewer.getShapes(),
        indexToClient: (i, j) => {
          const p = viewer.indexToCanvas([i, j]);
          const box = target.getBoundingClientRect();
          return p ? [box.left + p[0], box.top + p[1]] : null;
        },
        clientToIndex: (x, y) => {
          const box = target.getBoundingClientRect();
          return viewer.canvasToIndex(x - box.left, y - box.top);
        },
      });
    const unsubscribe = viewer.subscribe((state) => {
      setView(state);
      publish();
    });
    viewer.setActiveLabel(latest.current.activeLabel, latest.current.labelColours);
    viewer.setShapes(latest.current.shapes);
    lastEmitted.current = latest.current.shapes;
    viewer.onShapesChange((next) => {
      lastEmitted.current = next;
      publish();
      latest.current.onShapesChange(next);
    });
    setFailure(null);
    viewer.load(item).catch((error: unknown) => setFailure(String(error)));
    return () => {
      unsubscribe();
      viewer.destroy();
      adapter.current = null;
      publishSlide(null);
    };
  }, [item]);

  useEffect(() => {
    // Shapes from outside (loaded, restored, undone): show them. Our own changes come back
    // as the same array and are already on screen.
    if (shapes !== lastEmitted.current) {
      lastEmitted.current = shapes;
      adapter.current?.setShapes(shapes);
    }
  }, [shapes]);

  useEffect(() => {
    adapter.current?.setActiveLabel(activeLabel, labelColours);
  }, [activeLabel, labelColours]);

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const viewer = adapter.current;
    if (!viewer || event.ctrlKey || event.metaKey || event.altKey) return;
    const tool = TOOL_KEYS[event.key];
    if (tool) viewer.setTool(tool);
    else if (event.key === 'Escape') viewer.cancelDrawing();
    else if (event.key === 'Delete' || event.key === 'Backspace') viewer.deleteSelected();
    else if (event.key === '+' || event.key === '=') viewer.zoomBy(1.5);
    else if (event.key === '-') viewer.zoomBy(1 / 1.5);
    else if (event.key === '0') viewer.resetView();
    else if (event.key === '1') viewer.zoomToNative();
    else return;
    event.preventDefault();
    event.stopPropagation();
  };

  const onMouseMove = (event: MouseEvent<HTMLDivElement>) => {
    const viewer = adapter.current;
    if (!viewer || !view.rendered) return;
    const box = event.currentTarget.getBoundingClientRect();
    const ij = viewer.canvasToIndex(event.clientX - box.left, event.clientY - box.top);
    setCursor(ij ? pixelAt(ij, item.width, item.height) : null);
  };

  const bar = scaleBar(item.spacingMm?.[0] ?? null, view.imageZoom, SCALE_BAR_MAX_PX);
  const toolButton = (tool: SlideTool, text: string, key: string) => (
    <button
      type="button"
      data-tool={tool}
      aria-pressed={view.tool === tool}
      title={`${text} (${key})`}
      onClick={() => adapter.current?.setTool(tool)}
    >
      {text}
    </button>
  );
  return (
    <div className="viewer slide-viewer" data-item-id={item.id}>
      <div className="toolbar slide-toolbar" role="toolbar" aria-label="Slide tools">
        {toolButton('pan', 'Pan', 'v')}
        {toolButton('rectangle', 'Rectangle', 'b')}
        {toolButton('polygon', 'Polygon', 'p')}
        <button type="button" onClick={() => adapter.current?.zoomBy(1.5)} title="Zoom in (+)">
          +
        </button>
        <button type="button" onClick={() => adapter.current?.zoomBy(1 / 1.5)} title="Zoom out (-)">
          −
        </button>
        <button type="button" onClick={() => adapter.current?.resetView()} title="Fit (0)">
          Fit
        </button>
        {item.slide?.objectivePower ? (
          <button type="button" onClick={() => adapter.current?.zoomToNative()} title="Level-0 pixels 1:1 (1)">
            {`${formatMagnification(item.slide.objectivePower)} (1:1)`}
          </button>
        ) : null}
        <button type="button" onClick={() => adapter.current?.deleteSelected()} title="Delete the selected shape (Del)">
          Delete
        </button>
        <span className="muted hint">
          <span className="slide-label-swatch" style={{ background: activeLabel.colour }} />
          {activeLabel.key || 'no label'} · wheel: zoom · drag: pan (Pan tool) · polygon: click
          vertices, double-click to close · Esc: cancel
        </span>
      </div>
      <div className="slide-stage">
        <div
          id="slide-viewport"
          className="slide-viewport"
          ref={element}
          tabIndex={0}
          onKeyDownCapture={onKeyDown}
          onMouseMove={onMouseMove}
          onMouseLeave={() => setCursor(null)}
          data-rendered={view.rendered ? 'true' : 'false'}
        />
        <div className="slide-overlay" aria-hidden="true">
          {view.magnification !== null ? (
            <span id="slide-magnification" className="slide-magnification">
              {formatMagnification(view.magnification)}
            </span>
          ) : null}
          {bar ? (
            <span id="slide-scalebar" className="slide-scalebar" data-um={bar.um}>
              <span className="slide-scalebar-bar" style={{ width: `${bar.px}px` }} />
              <span>{bar.label}</span>
            </span>
          ) : null}
        </div>
      </div>
      <div className="readout" aria-live="polite">
        <span id="slide-zoom-readout">{`Zoom ${view.zoom.toFixed(2)}× · ${view.imageZoom.toFixed(3)} screen px/px`}</span>
        <span id="slide-size-readout">{`${item.width} × ${item.height} px`}</span>
        <span id="slide-cursor-readout">{cursor ? `(${cursor[0]}, ${cursor[1]})` : ''}</span>
        <span id="slide-shape-readout">{`${view.shapeCount} shape${view.shapeCount === 1 ? '' : 's'}`}</span>
      </div>
      {failure || view.error ? (
        <p className="error" role="alert">
          {failure ?? view.error}
        </p>
      ) : null}
    </div>
  );
}
