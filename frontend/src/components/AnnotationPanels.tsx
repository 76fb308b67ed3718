// The panels around the viewer while annotating: classes, tools, the selected shape's
// attributes and measurements, the list of shapes, the save status and the key map.
import type { AutosaveState } from '../state/autosave';
import { KEY_HELP } from '../state/keymap';
import { type AttributeSpec, type LabelClass, type LabelSchema, allowsKind, attributeProblem } from '../state/labels';
import { type AttributeValue, type Shape, sliceOf } from '../state/shapes';
import type { DrawTool } from '../viewers/ViewerAdapter';

export function LabelsPanel(props: {
  schema: LabelSchema;
  active: string | null;
  hidden: ReadonlySet<string>;
  counts: ReadonlyMap<string, number>;
  onPick: (key: string) => void;
  onToggle: (key: string) => void;
}) {
  return (
    <section className="panel" aria-label="Classes">
      <h3>Classes</h3>
      <ul id="labels" className="plain" role="radiogroup" aria-label="Active class">
        {props.schema.classes.map((c) => (
          <li key={c.key} data-class={c.key} className={c.key === props.active ? 'active' : ''}>
            <button
              type="button"
              role="radio"
              className="class-pick"
              aria-checked={c.key === props.active}
              onClick={() => props.onPick(c.key)}
            >
              <span className="swatch" ref={(el) => el?.style.setProperty('background', c.color)} />
              {c.name}
              {c.hotkey ? <kbd>{c.hotkey}</kbd> : null}
              <span className="muted"> {props.counts.get(c.key) ?? 0}</span>
            </button>
            <input
              type="checkbox"
              aria-label={`Show ${c.name}`}
              checked={!props.hidden.has(c.key)}
              onChange={() => props.onToggle(c.key)}
            />
          </li>
        ))}
      </ul>
      {props.schema.classes.length === 0 ? <p className="muted">The project has no classes yet.</p> : null}
    </section>
  );
}

const TOOLS: readonly (readonly [DrawTool, string, string])[] = [
  ['navigate', 'Navigate', 'v'],
  ['box', 'Box', 'b'],
  ['polygon', 'Polygon', 'p'],
  ['polyline', 'Polyline', 'l'],
  ['point', 'Point', 'k'],
  ['brush', 'Brush', 'r'],
  ['eraser', 'Eraser', 'e'],
];

/** Every drawing tool (the radiology viewer has them all). */
export const ALL_TOOLS: readonly DrawTool[] = TOOLS.map(([tool]) => tool);

export function ToolsBar(props: {
  /** the tools the viewer has (default: all) */
  tools?: readonly DrawTool[];
  tool: DrawTool;
  onTool: (tool: DrawTool) => void;
  canUndo: boolean;
  canRedo: boolean;
  onUndo: () => void;
  onRedo: () => void;
  onHelp: () => void;
  status: AutosaveState;
}) {
  return (
    <div className="toolbar" role="toolbar" aria-label="Annotation tools">
      {TOOLS.filter(([tool]) => !props.tools || props.tools.includes(tool)).map(([tool, name, key]) => (
        <button
          key={tool}
          type="button"
          data-tool={tool}
          aria-pressed={props.tool === tool}
          className={props.tool === tool ? 'active' : ''}
          title={`${name} (${key})`}
          onClick={() => props.onTool(tool)}
        >
          {name}
        </button>
      ))}
      <button id="undo" type="button" disabled={!props.canUndo} onClick={props.onUndo} title="Undo (Ctrl+Z)">
        Undo
      </button>
      <button id="redo" type="button" disabled={!props.canRedo} onClick={props.onRedo} title="Redo (Ctrl+Shift+Z)">
        Redo
      </button>
      <button type="button" onClick={props.onHelp} title="Keyboard (?)">
        ?
      </button>
      <SaveStatusBadge state={props.status} />
    </div>
  );
}

const STATUS_TEXT: Readonly<Record<AutosaveState['status'], string>> = {
  saved: 'saved',
  dirty: 'unsaved changes',
  saving: 'saving…',
  conflict: 'merging a newer version…',
  offline: 'offline: retrying',
  invalid: 'not saved',
  error: 'not saved',
};

export function SaveStatusBadge({ state }: { state: AutosaveState }) {
  return (
    <span
      id="save-status"
      className={`save-status ${state.status}`}
      data-status={state.status}
      data-revision={state.revision}
      role="status"
      title={state.message ?? ''}
    >
      {STATUS_TEXT[state.status]}
      {state.status === 'saved' ? ` · rev ${state.revision}` : ''}
      {state.message && (state.status === 'invalid' || state.status === 'error') ? `: ${state.message}` : ''}
    </span>
  );
}

function AttributeInput(props: {
  spec: AttributeSpec;
  value: AttributeValue | undefined;
  onChange: (value: AttributeValue | undefined) => void;
}) {
  const { spec, value } = props;
  const id = `attr-${spec.key}`;
  const problem = attributeProblem(spec, value);
  let input;
  switch (spec.type) {
    case 'enum':
      input = (
        <select id={id} value={typeof value === 'string' ? value : ''} onChange={(e) => props.onChange(e.target.value || undefined)}>
          <option value="">—</option>
          {spec.options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
      break;
    case 'bool':
      input = (
        <select
          id={id}
          value={value === true ? 'true' : value === false ? 'false' : ''}
          onChange={(e) => props.onChange(e.target.value === '' ? undefined : e.target.value === 'true')}
        >
          <option value="">—</option>
          <option value="true">yes</option>
          <option value="false">no</option>
        </select>
      );
      break;
    case 'number':
      input = (
        <input
          id={id}
          type="number"
          value={typeof value === 'number' ? value : ''}
          min={spec.minimum ?? undefined}
          max={spec.maximum ?? undefined}
          step="any"
          onChange={(e) => props.onChange(e.target.value === '' ? undefined : Number(e.target.value))}
        />
      );
      break;
    case 'text':
      input = (
        <input
          id={id}
          type="text"
          value={typeof value === 'string' ? value : ''}
          maxLength={spec.maxLength ?? undefined}
          onChange={(e) => props.onChange(e.target.value === '' ? undefined : e.target.value)}
        />
      );
      break;
  }
  return (
    <label htmlFor={id} className={problem ? 'attr invalid' : 'attr'} data-attribute={spec.key}>
      <span>
        {spec.name}
        {spec.unit ? ` (${spec.unit})` : ''}
        {spec.required ? <abbr title="required"> *</abbr> : null}
      </span>
      {input}
      {problem && value !== undefined ? <span className="error">{problem}</span> : null}
    </label>
  );
}

function formatMeasure(key: string, value: unknown): string | null {
  if (typeof value !== 'number') return null;
  const name = key.replace(/_(mm3|mm2|mm|ml|px3|px2|px)$/, '');
  const unit = key.slice(name.length + 1).replace('mm2', 'mm²').replace('mm3', 'mm³').replace('ml', 'mL');
  return `${name.replace(/_/g, ' ')} ${value.toFixed(value >= 100 ? 0 : 1)} ${unit}`;
}

export function ShapePanel(props: {
  shape: Shape | null;
  schema: LabelSchema;
  measurements: Readonly<Record<string, unknown>> | undefined;
  onAttribute: (key: string, value: AttributeValue | undefined) => void;
  onLabel: (label: string) => void;
  onDelete: () => void;
}) {
  const { shape } = props;
  if (!shape) {
    return (
      <section className="panel" aria-label="Selected shape" id="shape-panel">
        <h3>Selected</h3>
        <p className="muted">Nothing selected. Draw a shape or click one.</p>
      </section>
    );
  }
  const cls: LabelClass | undefined = props.schema.classes.find((c) => c.key === shape.label);
  const choices = props.schema.classes.filter((c) => allowsKind(c, shape.kind));
  const measures = Object.entries(props.measurements ?? {})
    .map(([k, v]) => formatMeasure(k, v))
    .filter((t): t is string => t !== null);
  const slice = sliceOf(shape);
  return (
    <section className="panel" aria-label="Selected shape" id="shape-panel" data-id={shape.id}>
      <h3>
        {shape.kind}
        {slice !== null ? ` · slice ${slice + 1}` : ''}
      </h3>
      <label htmlFor="shape-class">
        <span>Class</span>
        <select id="shape-class" value={shape.label} onChange={(e) => props.onLabel(e.target.value)}>
          {cls ? null : <option value={shape.label}>{shape.label}</option>}
          {choices.map((c) => (
            <option key={c.key} value={c.key}>
              {c.name}
            </option>
          ))}
        </select>
      </label>
      {(cls?.attributes ?? []).map((spec) => (
        <AttributeInput
          key={spec.key}
          spec={spec}
          value={shape.attributes[spec.key]}
          onChange={(v) => props.onAttribute(spec.key, v)}
        />
      ))}
      <p id="measurements" className="muted">
        {measures.length ? measures.join(' · ') : 'measurements after the next save'}
      </p>
      <button type="button" onClick={props.onDelete}>
        Delete
      </button>
    </section>
  );
}

export function ShapeList(props: {
  shapes: readonly Shape[];
  schema: LabelSchema;
  selected: string | null;
  problems: ReadonlySet<string>;
  onSelect: (shape: Shape) => void;
}) {
  const names = new Map(props.schema.classes.map((c) => [c.key, c.name]));
  return (
    <section className="panel" aria-label="Shapes">
      <h3>Shapes ({props.shapes.length})</h3>
      <ul id="shapes" className="plain">
        {props.shapes.map((s) => {
          const slice = sliceOf(s);
          return (
            <li
              key={s.id}
              data-id={s.id}
              data-kind={s.kind}
              className={[s.id === props.selected ? 'active' : '', props.problems.has(s.id) ? 'invalid' : ''].join(' ')}
            >
              <button type="button" onClick={() => props.onSelect(s)}>
                {names.get(s.label) ?? s.label} · {s.kind}
                {slice !== null ? ` · ${slice + 1}` : ''}
                {props.problems.has(s.id) ? ' ⚠' : ''}
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

export function KeymapDialog({ onClose }: { onClose: () => void }) {
  return (
    <div id="keymap" role="dialog" aria-label="Keyboard shortcuts" className="dialog">
      <h3>Keyboard</h3>
      <table>
        <tbody>
          {KEY_HELP.map(([keys, what]) => (
            <tr key={keys}>
              <td>
                <kbd>{keys}</kbd>
              </td>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={onClose}>
        Close
      </button>
    </div>
  );
}
