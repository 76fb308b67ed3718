// Annotating an item: opens your annotation set, keeps its document in an AnnotationStore
// with undo/redo, autosaves it (AutosaveController) and connects the viewer's annotation
// layer, the panels and the keyboard. The viewer is the radiology viewer unless `viewer`
// renders another one (the slide viewer for slides and photos): anything that hands an
// AnnotationHost to `onReady` and shows `toolbar`.
import { useQuery } from '@tanstack/react-query';
import { type ReactNode, useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';

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

  const classes = useMemo(() => new Map((schema?.classes ?? []).map((c) => [c.key, c])), [schema]);
  const latest = useRef({ active, classes, store });
  latest.current = { active, classes, store };

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
    layer?.setTool(tool);
  }, [layer, tool]);

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
          }
        : null,
    );
  }, [session, saveState, snapshot, tool, active, layer]);
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
