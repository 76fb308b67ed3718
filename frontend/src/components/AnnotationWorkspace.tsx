// Annotating an item: opens your annotation set, keeps its document in an AnnotationStore
// with undo/redo, autosaves it (AutosaveController) and connects the viewer's annotation
// layer, the panels and the keyboard. The viewer is the radiology viewer unless `viewer`
// renders another one (the slide viewer for slides and photos): anything that hands an
// AnnotationHost to `onReady` and shows `toolbar`.
import { useQuery } from '@tanstack/react-query';
import { type ReactNode, useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';

import { getMaskSlices, hasMask, interpolateMask, putMaskSlice } from '../api/masks';
import { annotationSetApi, fetchLabelSchema, fetchSetHead, openAnnotationSet } from '../api/annotations';
import type { Item } from '../api/items';
import { type AutosaveState, AutosaveController, type Clock } from '../state/autosave';
import { actionForKey } from '../state/keymap';
import { type LabelSchema, allowsKind, defaultAttributes, documentProblems } from '../state/labels';
import { type Shape, shapeToJson, sliceOf, withGeometry } from '../state/shapes';
import { AnnotationStore, type StoreSnapshot } from '../state/store';
import { publishAnnotations } from '../state/testHook';
import { RadiologyViewer } from '../viewers/RadiologyViewer';
import type { AnnotationHost, DrawTool, ShapeEvent } from '../viewers/ViewerAdapter';
import { ALL_TOOLS, KeymapDialog, LabelsPanel, ShapeList, ShapePanel, ToolsBar } from './AnnotationPanels';

const browserClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => window.setTimeout(callback, ms),
  clearTimeout: (handle) => window.clearTimeout(handle as number),
};

interface Session {
  readonly setId: number;
  readonly store: AnnotationStore;
  readonly saver: AutosaveController;
}

function browserStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/** Open the set, read its head and start the store and the autosave (once per item). */
function useAnnotationSession(itemId: number, schema: LabelSchema | undefined) {
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<string | null>(null);
  const schemaRef = useRef(schema);
  schemaRef.current = schema;
  const ready = schema !== undefined;

  useEffect(() => {
    if (!ready) return undefined;
    let cancelled = false;
    let started: Session | null = null;
    (async () => {
      const setId = await openAnnotationSet(itemId);
      const head = await fetchSetHead(setId);
      if (cancelled) return;
      const store = new AnnotationStore();
      const saver = new AutosaveController({
        setId,
        store,
        api: annotationSetApi,
        clock: browserClock,
        storage: browserStorage(),
        validate: (shapes) => (schemaRef.current ? documentProblems(shapes, schemaRef.current) : []),
      });
      saver.start(head);
      started = { setId, store, saver };
      setSession(started);
    })().catch((e: unknown) => {
      if (!cancelled) setError(e instanceof Error ? e.message : String(e));
    });
    return () => {
      cancelled = true;
      const s = started;
      if (s) {
        // Unsaved work is in localStorage already; try to send it before letting go.
        void s.saver.flush().finally(() => s.saver.dispose());
      }
      setSession(null);
    };
  }, [itemId, ready]);

  useEffect(() => {
    if (!session) return undefined;
    const online = (): void => void session.saver.flush();
    window.addEventListener('online', online);
    return () => window.removeEventListener('online', online);
  }, [session]);

  return { session, error };
}

/** The label map the brush paints (one semantic uint8 mask per set). */
const MASK_ID = 'labelmap';

const MASK_STATUS: Readonly<Record<string, string>> = {
  loading: 'loading…',
  saved: 'saved',
  saving: 'saving…',
  error: 'not saved',
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

const EMPTY_SNAPSHOT: StoreSnapshot = { shapes: [], selected: null, canUndo: false, canRedo: false, version: 0 };
const noop = (): (() => void) => () => undefined;

/** What a workspace's viewer gets: where to hand its AnnotationHost, and the toolbar to show. */
export interface WorkspaceViewerProps {
  readonly onReady: (host: AnnotationHost | null) => void;
  readonly toolbar: ReactNode;
}

export interface AnnotationWorkspaceProps {
  readonly item: Item;
  readonly slug: string;
  /** renders the viewer (default: the radiology viewer of `item`) */
  readonly viewer?: (props: WorkspaceViewerProps) => ReactNode;
  /** the drawing tools the viewer has (default: all) */
  readonly tools?: readonly DrawTool[];
}

export function AnnotationWorkspace({ item, slug, viewer, tools = ALL_TOOLS }: AnnotationWorkspaceProps) {
  const schemaQuery = useQuery({ queryKey: ['projects', slug, 'schema'], queryFn: () => fetchLabelSchema(slug) });
  const schema = schemaQuery.data;
  const { session, error } = useAnnotationSession(item.id, schema);
  const store = session?.store ?? null;
  const saver = session?.saver ?? null;

  const snapshot = useSyncExternalStore(
    store ? (cb) => store.subscribe(cb) : noop,
    () => (store ? store.snapshot() : EMPTY_SNAPSHOT),
  );
  const saveState = useSyncExternalStore<AutosaveState | null>(
    saver ? (cb) => saver.subscribe(cb) : noop,
    () => (saver ? saver.state() : null),
  );

  const [adapter, setAdapter] = useState<AnnotationHost | null>(null);
  const [tool, setTool] = useState<DrawTool>('navigate');
  const [active, setActive] = useState<string | null>(null);
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const [help, setHelp] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const layer = adapter?.annotations ?? null;
  const masks = adapter?.masks ?? null;
  const [brushSize, setBrushSize] = useState(10);
  const [maskState, setMaskState] = useState<{ status: string; saves: number; message: string | null }>({
    status: 'none',
    saves: 0,
    message: null,
  });
  /** what the server has of each slice (the baseline a stroke is compared with) */
  const maskSaved = useRef<Map<number, Uint8Array>>(new Map());

  const classes = useMemo(() => new Map((schema?.classes ?? []).map((c) => [c.key, c])), [schema]);
  const latest = useRef({ active, classes, store });
  latest.current = { active, classes, store };
  const activeClass = active ? classes.get(active) : undefined;
  const maskValue = activeClass && activeClass.kinds.includes('mask') && activeClass.value > 0 ? activeClass.value : null;

  // The label map: load the saved slices, show each mask class in its colour.
  useEffect(() => {
    if (!masks || !session || !schema) return undefined;
    let cancelled = false;
    for (const c of schema.classes) if (c.kinds.includes('mask')) masks.setColor(c.value, c.color);
    setMaskState((m) => ({ ...m, status: 'loading' }));
    (async () => {
      const data = (await hasMask(session.setId, MASK_ID))
        ? await getMaskSlices(session.setId, MASK_ID, 0, masks.sliceCount)
        : null;
      if (cancelled) return;
      const n = masks.rows * masks.columns;
      const saved = new Map<number, Uint8Array>();
      for (let k = 0; k < masks.sliceCount; k += 1) {
        const slice = data ? data.slice(k * n, (k + 1) * n) : new Uint8Array(n);
        if (data) masks.setSlice(k, slice);
        saved.set(k, slice);
      }
      maskSaved.current = saved;
      setMaskState((m) => ({ ...m, status: 'saved', message: null }));
    })().catch((e: unknown) => {
      if (!cancelled) setMaskState((m) => ({ ...m, status: 'error', message: String(e) }));
    });
    return () => {
      cancelled = true;
    };
  }, [masks, session, schema]);

  // A finished stroke: save the slices that differ from the server's.
  useEffect(() => {
    if (!masks || !session) return undefined;
    const saveChanged = async (): Promise<void> => {
      const changed: number[] = [];
      for (let k = 0; k < masks.sliceCount; k += 1) {
        const now = masks.getSlice(k);
        const before = maskSaved.current.get(k);
        if (!before || !sameBytes(now, before)) changed.push(k);
      }
      if (!changed.length) return;
      setMaskState((m) => ({ ...m, status: 'saving' }));
      try {
        for (const k of changed) {
          const data = masks.getSlice(k);
          const outcome = await session.saver.exclusive(async (revision) => {
            const result = await putMaskSlice(session.setId, MASK_ID, k, data, revision);
            return { revision: result.type === 'saved' ? result.revision : null, value: result };
          });
          if (outcome.type !== 'saved') {
            throw new Error(outcome.type === 'conflict' ? 'The set changed elsewhere; reload to paint.' : outcome.message);
          }
          maskSaved.current.set(k, data);
        }
        setMaskState((m) => ({ status: 'saved', saves: m.saves + 1, message: null }));
      } catch (e) {
        setMaskState((m) => ({ ...m, status: 'error', message: e instanceof Error ? e.message : String(e) }));
      }
    };
    return masks.onStrokeEnd(() => void saveChanged());
  }, [masks, session]);

  useEffect(() => {
    if (masks && maskValue !== null) masks.setValue(maskValue);
  }, [masks, maskValue]);

  useEffect(() => {
    masks?.setBrushSize(brushSize);
  }, [masks, brushSize]);

  const interpolate = useCallback(async () => {
    if (!masks || !session) return;
    if (maskValue === null) {
      setNotice('Pick a class that allows masks first.');
      return;
    }
    setMaskState((m) => ({ ...m, status: 'saving' }));
    try {
      const outcome = await session.saver.exclusive(async (revision) => {
        const result = await interpolateMask(session.setId, MASK_ID, maskValue, revision);
        return { revision: result.type === 'saved' ? result.revision : null, value: result };
      });
      if (outcome.type !== 'saved') {
        throw new Error(outcome.type === 'conflict' ? 'Nothing to fill, or the set changed elsewhere.' : outcome.message);
      }
      for (const k of outcome.changedSlices) {
        const data = await getMaskSlices(session.setId, MASK_ID, k, 1);
        if (!data) continue;
        masks.setSlice(k, data);
        maskSaved.current.set(k, data);
      }
      setMaskState((m) => ({ status: 'saved', saves: m.saves + 1, message: null }));
    } catch (e) {
      setMaskState((m) => ({ ...m, status: 'error', message: e instanceof Error ? e.message : String(e) }));
    }
  }, [masks, session, maskValue]);

  // Gestures in the viewer become store commands.
  useEffect(() => {
    if (!layer || !store) return undefined;
    return layer.onShapeEvent((event: ShapeEvent) => {
      const { active: key, classes: byKey } = latest.current;
      switch (event.type) {
        case 'created': {
          const cls = key ? byKey.get(key) : undefined;
          if (!cls) {
            setNotice('Pick a class first (its hotkey or the list on the right).');
            return false;
          }
          if (!allowsKind(cls, event.geometry.kind)) {
            setNotice(`${cls.name} does not allow a ${event.geometry.kind}.`);
            return false;
          }
          setNotice(null);
          store.add({ id: event.id, label: cls.key, attributes: defaultAttributes(cls), ...event.geometry });
          return true;
        }
        case 'modified': {
          const shape = store.get(event.id);
          if (shape) store.update(withGeometry(shape, event.geometry));
          return true;
        }
        case 'selected':
          store.select(event.id);
          return true;
      }
    });
  }, [layer, store]);

  // The store's shapes are what the viewer shows.
  useEffect(() => {
    if (!layer || !schema) return;
    layer.setShapes(
      snapshot.shapes,
      (shape) => ({
        color: classes.get(shape.label)?.color ?? '#ffff00',
        visible: !hidden.has(shape.label),
      }),
      snapshot.selected,
    );
  }, [layer, schema, classes, snapshot, hidden]);

  useEffect(() => {
    // The brush paints only with a class that allows masks.
    layer?.setTool(tool === 'brush' && maskValue === null ? 'navigate' : tool);
    if (tool === 'brush' && maskValue === null) setNotice('Pick a class that allows masks to paint.');
  }, [layer, tool, maskValue]);

  const problems = useMemo(
    () => (schema ? documentProblems(snapshot.shapes, schema) : []),
    [schema, snapshot.shapes],
  );
  const problemIds = useMemo(() => new Set(problems.map((p) => p.id)), [problems]);

  useEffect(() => {
    publishAnnotations(
      session && saveState
        ? {
            setId: session.setId,
            status: saveState.status,
            revision: saveState.revision,
            message: saveState.message,
            restored: saveState.restored,
            merged: saveState.merged,
            shapes: snapshot.shapes.map(shapeToJson),
            selected: snapshot.selected,
            canUndo: snapshot.canUndo,
            canRedo: snapshot.canRedo,
            tool,
            activeClass: active,
            layerReady: layer !== null,
            maskStatus: masks ? maskState.status : 'none',
            maskSaves: maskState.saves,
            brushSize,
          }
        : null,
    );
  }, [session, saveState, snapshot, tool, active, layer, masks, maskState, brushSize]);
  useEffect(() => () => publishAnnotations(null), []);

  const pickClass = useCallback(
    (key: string) => {
      setActive(key);
      setNotice(null);
      // Picking a class while a shape is selected relabels it, when the class allows its kind.
      const selected = store && snapshot.selected ? store.get(snapshot.selected) : undefined;
      const cls = classes.get(key);
      if (store && selected && cls && allowsKind(cls, selected.kind) && selected.label !== key) {
        store.update({ ...selected, label: key, attributes: { ...defaultAttributes(cls), ...selected.attributes } });
      }
    },
    [store, snapshot.selected, classes],
  );

  const goTo = useCallback(
    (shape: Shape) => {
      store?.select(shape.id);
      const k = sliceOf(shape);
      if (k !== null) adapter?.setSlice(k);
    },
    [store, adapter],
  );

  // The keyboard, anywhere on the page except in form fields.
  useEffect(() => {
    const hotkeys = new Map((schema?.classes ?? []).filter((c) => c.hotkey).map((c) => [c.hotkey!, c.key]));
    const onKey = (event: KeyboardEvent): void => {
      const target = event.target as HTMLElement | null;
      if (target && (target.closest('input, select, textarea') || target.isContentEditable)) return;
      const action = actionForKey(event, new Set(hotkeys.keys()));
      if (!action) return;
      switch (action.type) {
        case 'tool':
          if (!tools.includes(action.tool)) return;
          setTool(action.tool);
          break;
        case 'class': {
          const key = hotkeys.get(action.hotkey);
          if (key) pickClass(key);
          break;
        }
        case 'undo':
          store?.undo();
          break;
        case 'redo':
          store?.redo();
          break;
        case 'delete':
          if (store && snapshot.selected) store.remove(snapshot.selected);
          else return;
          break;
        case 'deselect':
          if (help) setHelp(false);
          else store?.select(null);
          break;
        case 'help':
          setHelp((h) => !h);
          break;
        case 'brushSize':
          setBrushSize((size) => Math.max(1, Math.min(100, size + action.delta * 2)));
          break;
      }
      event.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [schema, store, snapshot.selected, pickClass, help, tools]);

  const selectedShape = snapshot.selected && store ? (store.get(snapshot.selected) ?? null) : null;
  const counts = useMemo(() => {
    const m = new Map<string, number>();
    for (const s of snapshot.shapes) m.set(s.label, (m.get(s.label) ?? 0) + 1);
    return m;
  }, [snapshot.shapes]);

  const toolbar =
    saveState && store ? (
      <ToolsBar
        tools={tools}
        tool={tool}
        onTool={setTool}
        canUndo={snapshot.canUndo}
        canRedo={snapshot.canRedo}
        onUndo={() => store.undo()}
        onRedo={() => store.redo()}
        onHelp={() => setHelp((h) => !h)}
        status={saveState}
      />
    ) : (
      <div className="toolbar muted">{error ? null : 'Opening your annotations…'}</div>
    );

  return (
    <div className="workspace">
      <div className="workspace-main">
        {viewer ? (
          viewer({ onReady: setAdapter, toolbar })
        ) : (
          <RadiologyViewer item={item} onReady={setAdapter} toolbar={toolbar} />
        )}
        {masks && saveState ? (
          <div className="toolbar" id="mask-tools" data-status={maskState.status}>
            <span>
              Mask: brush {brushSize} px ([ / ]) · {MASK_STATUS[maskState.status] ?? maskState.status}
            </span>
            <button id="interpolate" type="button" onClick={() => void interpolate()} title="Fill the slices between painted ones">
              Interpolate
            </button>
            {maskState.message ? <span className="error">{maskState.message}</span> : null}
          </div>
        ) : null}
        {notice ? (
          <p className="notice" role="status" id="annotation-notice">
            {notice}
          </p>
        ) : null}
        {error ? (
          <p className="error" role="alert">
            Annotations unavailable: {error}
          </p>
        ) : null}
        {schemaQuery.isError ? (
          <p className="error" role="alert">
            {schemaQuery.error.message}
          </p>
        ) : null}
        {saveState?.merged ? (
          <p className="muted" id="merge-notice">
            Merged with revision {saveState.merged.revision} saved elsewhere
            {saveState.merged.kept.length ? `; kept your version of ${saveState.merged.kept.length} shape(s)` : ''}.
          </p>
        ) : null}
        {saveState?.restored ? (
          <p className="muted" id="restore-notice">
            Restored unsaved changes from this browser.
          </p>
        ) : null}
      </div>
      {schema && store ? (
        <aside className="workspace-side">
          <LabelsPanel
            schema={schema}
            active={active}
            hidden={hidden}
            counts={counts}
            onPick={pickClass}
            onToggle={(key) =>
              setHidden((h) => {
                const next = new Set(h);
                if (next.has(key)) next.delete(key);
                else next.add(key);
                return next;
              })
            }
          />
          <ShapePanel
            shape={selectedShape}
            schema={schema}
            measurements={selectedShape ? saveState?.measurements[selectedShape.id] : undefined}
            onAttribute={(key, value) => selectedShape && store.setAttribute(selectedShape.id, key, value)}
            onLabel={(label) => selectedShape && store.setLabel(selectedShape.id, label)}
            onDelete={() => selectedShape && store.remove(selectedShape.id)}
          />
          <ShapeList
            shapes={snapshot.shapes}
            schema={schema}
            selected={snapshot.selected}
            problems={problemIds}
            onSelect={goTo}
          />
        </aside>
      ) : null}
      {help ? <KeymapDialog onClose={() => setHelp(false)} /> : null}
    </div>
  );
}
