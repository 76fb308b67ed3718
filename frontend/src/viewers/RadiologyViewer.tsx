// Hosts a radiology ViewerAdapter in a <div> and draws the toolbar and the readout.
import { type KeyboardEvent, type MouseEvent, type ReactNode, useEffect, useRef, useState } from 'react';

import type { Item } from '../api/items';
import { publishViewState } from '../testHook';
import { CornerstoneAdapter } from './radiology/CornerstoneAdapter';
import { EMPTY_VIEW_STATE, type PixelProbe, type ViewState, type ViewerAdapter } from './ViewerAdapter';
import { presetsFor } from './windowing';

const KEY_STEPS: Readonly<Record<string, number>> = {
  ArrowUp: -1,
  ArrowLeft: -1,
  ArrowDown: 1,
  ArrowRight: 1,
  PageUp: -10,
  PageDown: 10,
};

export interface RadiologyViewerProps {
  readonly item: Item;
  /** Called with the adapter once its first slice is drawn, and with null when it goes. */
  readonly onReady?: (adapter: ViewerAdapter | null) => void;
  /** Extra toolbar content (the annotation tools). */
  readonly toolbar?: ReactNode;
}

export function RadiologyViewer({ item, onReady, toolbar }: RadiologyViewerProps) {
  const element = useRef<HTMLDivElement>(null);
  const adapter = useRef<ViewerAdapter | null>(null);
  const [view, setView] = useState<ViewState>(EMPTY_VIEW_STATE);
  const [probe, setProbe] = useState<PixelProbe | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const ready = useRef(onReady);
  ready.current = onReady;

  useEffect(() => {
    const target = element.current;
    if (!target) return undefined;
    const viewer = new CornerstoneAdapter(target);
    adapter.current = viewer;
    const unsubscribe = viewer.subscribe((state) => {
      setView(state);
      publishViewState(state);
    });
    viewer
      .load(item)
      .then(() => {
        if (adapter.current === viewer) ready.current?.(viewer);
      })
      .catch((error: unknown) => setFailure(String(error)));
    return () => {
      ready.current?.(null);
      unsubscribe();
      viewer.destroy();
      adapter.current = null;
      publishViewState(null);
    };
  }, [item]);

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const viewer = adapter.current;
    if (!viewer) return;
    const step = KEY_STEPS[event.key];
    if (step !== undefined) viewer.scrollSlices(step);
    else if (event.key === 'Home') viewer.setSlice(0);
    else if (event.key === 'End') viewer.setSlice(view.sliceCount - 1);
    else if (event.key === '0') viewer.resetView();
    else if (event.key === 'a') viewer.setAutoWindow();
    else return;
    event.preventDefault();
  };

  const onMouseMove = (event: MouseEvent<HTMLDivElement>) => {
    const viewer = adapter.current;
    if (!viewer || !view.rendered) return;
    const box = event.currentTarget.getBoundingClientRect();
    setProbe(viewer.probe(event.clientX - box.left, event.clientY - box.top));
  };

  const presets = presetsFor(item);
  const units = item.pixel.units ?? '';
  return (
    <div className="viewer">
      <div className="toolbar" role="toolbar" aria-label="Window presets">
        {presets.map((p) => (
          <button
            key={p.name}
            type="button"
            data-preset={p.name}
            onClick={() => adapter.current?.setWindow(p)}
            title={`W ${p.width} / L ${p.center}`}
          >
            {p.label}
          </button>
        ))}
        <button type="button" data-preset="auto" onClick={() => adapter.current?.setAutoWindow()}>
          Auto
        </button>
        <button type="button" onClick={() => adapter.current?.resetView()}>
          Reset view
        </button>
        <span className="muted hint">
          drag: window/level · wheel or ↑↓: slices · middle drag: pan · right drag: zoom
        </span>
      </div>
      {toolbar}
      <div
        id="viewport"
        className="viewport"
        ref={element}
        tabIndex={0}
        onKeyDown={onKeyDown}
        onMouseMove={onMouseMove}
        onMouseLeave={() => setProbe(null)}
        data-rendered={view.rendered ? 'true' : 'false'}
      />
      <div className="readout" aria-live="polite">
        <span id="slice-readout">
          Slice {view.sliceCount ? view.sliceIndex + 1 : '–'} / {view.sliceCount || '–'}
          {view.sliceOffsetMm !== null ? ` · ${view.sliceOffsetMm.toFixed(1)} mm` : ''}
        </span>
        <span id="window-readout">
          {view.window ? `W ${Math.round(view.window.width)} / L ${Math.round(view.window.center)}` : ''}
        </span>
        <span id="zoom-readout">{`Zoom ${view.zoom.toFixed(2)}×`}</span>
        <span id="probe-readout">
          {probe
            ? `(${probe.index[0]}, ${probe.index[1]}, ${probe.index[2]}) = ${
                probe.value === null ? '…' : formatValue(probe.value)
              } ${units}`
            : ''}
        </span>
        <span className="muted">
          {view.loadedCount < view.sliceCount ? `loading ${view.loadedCount}/${view.sliceCount}` : ''}
        </span>
      </div>
      {failure || view.error ? (
        <p className="error" role="alert">
          {failure ?? view.error}
        </p>
      ) : null}
    </div>
  );
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
