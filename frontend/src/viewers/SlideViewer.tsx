// Hosts the slide adapter (OpenSeadragon + Annotorious, ./slide/OsdSlideAdapter.ts) for items
// of kind `slide` and `image`: zoom buttons and keys, magnification, scale bar and readout.
//
// Annotating is the workspace's business (components/AnnotationWorkspace.tsx): once the first
// view is drawn, `onReady` gets an AnnotationHost whose layer (./slide/slideAnnotationLayer.ts)
// shows the store's boxes and polygons (slice 0) and reports drawings and edits; the
// workspace's toolbar (tools, undo/redo, save status) comes in as `toolbar`. Without
// `onReady` the viewer only shows the image.
import { type KeyboardEvent, type MouseEvent, type ReactNode, useEffect, useRef, useState } from 'react';

import type { AnnotationHost } from './ViewerAdapter';
import { EMPTY_SLIDE_STATE, OsdSlideAdapter, type SlideViewState } from './slide/OsdSlideAdapter';
import { formatMagnification, pixelAt, scaleBar } from './slide/coords';
import { SlideAnnotationLayer } from './slide/slideAnnotationLayer';
import type { SlideItem } from './slide/slideItem';
import { publishSlide } from './slide/testHook';

export type { SlideTool } from './slide/OsdSlideAdapter';
export type { SlideItem } from './slide/slideItem';
export { parseSlideItem, isSlideKind } from './slide/slideItem';
export { SLIDE_TOOLS } from './slide/slideAnnotationLayer';

export interface SlideViewerProps {
  readonly item: SlideItem;
  /** Called with the annotation host once the first view is drawn, and with null when it goes. */
  readonly onReady?: (host: AnnotationHost | null) => void;
  /** Extra toolbar content (the annotation tools). */
  readonly toolbar?: ReactNode;
}

const SCALE_BAR_MAX_PX = 160;

export function SlideViewer({ item, onReady, toolbar }: SlideViewerProps) {
  const element = useRef<HTMLDivElement>(null);
  const adapter = useRef<OsdSlideAdapter | null>(null);
  const ready = useRef(onReady);
  ready.current = onReady;
  const [view, setView] = useState<SlideViewState>(EMPTY_SLIDE_STATE);
  const [cursor, setCursor] = useState<[number, number] | null>(null);
  const [failure, setFailure] = useState<string | null>(null);

  useEffect(() => {
    const target = element.current;
    if (!target) return undefined;
    const viewer = new OsdSlideAdapter(target);
    adapter.current = viewer;
    const layer = new SlideAnnotationLayer(viewer);
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
    setFailure(null);
    viewer
      .load(item)
      .then(() => {
        // A slide has one plane: slice 0 is always shown.
        if (adapter.current === viewer) ready.current?.({ annotations: layer, setSlice: () => undefined });
      })
      .catch((error: unknown) => setFailure(String(error)));
    return () => {
      ready.current?.(null);
      unsubscribe();
      layer.destroy();
      viewer.destroy();
      adapter.current = null;
      publishSlide(null);
    };
  }, [item]);

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const viewer = adapter.current;
    if (!viewer || event.ctrlKey || event.metaKey || event.altKey) return;
    // Tools, Delete, undo and class hotkeys (1-9) are the workspace's (they bubble to it).
    if (event.key === 'Escape') {
      viewer.cancelDrawing();
      return;
    }
    if (event.key === '+' || event.key === '=') viewer.zoomBy(1.5);
    else if (event.key === '-') viewer.zoomBy(1 / 1.5);
    else if (event.key === '0') viewer.resetView();
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
  return (
    <div className="viewer slide-viewer" data-item-id={item.id}>
      <div className="toolbar slide-toolbar" role="toolbar" aria-label="Slide tools">
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
          <button type="button" onClick={() => adapter.current?.zoomToNative()} title="Level-0 pixels 1:1">
            {`${formatMagnification(item.slide.objectivePower)} (1:1)`}
          </button>
        ) : null}
        <span className="muted hint">wheel or + −: zoom · drag: pan (Navigate tool) · 0: fit · polygon: click vertices, double-click to close · Esc: cancel</span>
      </div>
      {toolbar}
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
