// The project's label schema as the annotation UI needs it (GET /api/projects/{slug}/schema),
// checked once at the boundary, and the attribute rules the server applies on save.
import type { AttributeValue, Attributes, Kind, Shape } from './shapes';

export type AttributeType = 'enum' | 'bool' | 'number' | 'text';

export interface AttributeSpec {
  readonly key: string;
  readonly name: string;
  readonly type: AttributeType;
  readonly required: boolean;
  readonly options: readonly string[];
  readonly unit: string | null;
  readonly minimum: number | null;
  readonly maximum: number | null;
  readonly maxLength: number | null;
  readonly default: AttributeValue | null;
}

export interface LabelClass {
  readonly key: string;
  readonly name: string;
  readonly color: string;
  readonly hotkey: string | null;
  readonly kinds: readonly string[];
  readonly attributes: readonly AttributeSpec[];
  /** the class's voxel value in semantic masks (0 when the schema gave none) */
  readonly value: number;
}

export interface LabelSchema {
  readonly version: number;
  readonly classes: readonly LabelClass[];
}

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function optNum(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function parseAttribute(value: unknown): AttributeSpec {
  const a = obj(value);
  const type = (['enum', 'bool', 'number', 'text'] as const).find((t) => t === a.type) ?? 'text';
  const dflt = a.default;
  return {
    key: String(a.key ?? a.name ?? ''),
    name: String(a.name ?? a.key ?? ''),
    type,
    required: a.required === true,
    options: Array.isArray(a.options) ? a.options.map(String) : [],
    unit: typeof a.unit === 'string' ? a.unit : null,
    minimum: optNum(a.minimum),
    maximum: optNum(a.maximum),
    maxLength: optNum(a.max_length),
    default:
      typeof dflt === 'string' || typeof dflt === 'number' || typeof dflt === 'boolean' ? dflt : null,
  };
}

export function parseSchema(value: unknown): LabelSchema {
  const s = obj(value);
  const classes = Array.isArray(s.classes) ? s.classes : [];
  return {
    version: typeof s.version === 'number' ? s.version : 0,
    classes: classes.map((c) => {
      const o = obj(c);
      return {
        key: String(o.key ?? ''),
        name: String(o.name ?? o.key ?? ''),
        color: typeof o.color === 'string' ? o.color : '#ffff00',
        hotkey: typeof o.hotkey === 'string' && o.hotkey ? o.hotkey : null,
        kinds: Array.isArray(o.kinds) ? o.kinds.map(String) : [],
        attributes: Array.isArray(o.attributes) ? o.attributes.map(parseAttribute) : [],
        value: typeof o.value === 'number' ? o.value : 0,
      };
    }),
  };
}

/** Whether a class allows a kind (a 3D box is a box). */
export function allowsKind(cls: LabelClass, kind: Kind): boolean {
  return cls.kinds.includes(kind === 'box3d' ? 'box' : kind);
}

/** The attributes a new shape of this class starts with: the schema's defaults. */
export function defaultAttributes(cls: LabelClass | undefined): Attributes {
  const out: Record<string, AttributeValue> = {};
  for (const a of cls?.attributes ?? []) if (a.default !== null) out[a.key] = a.default;
  return out;
}

/** Why a value is not valid for an attribute, or null when it is. */
export function attributeProblem(spec: AttributeSpec, value: AttributeValue | undefined): string | null {
  if (value === undefined) {
    return spec.required && spec.default === null ? 'is required' : null;
  }
  switch (spec.type) {
    case 'bool':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'enum':
      return typeof value === 'string' && spec.options.includes(value)
        ? null
        : `must be one of ${spec.options.join(', ')}`;
    case 'text':
      if (typeof value !== 'string') return 'must be text';
      return spec.maxLength !== null && value.length > spec.maxLength
        ? `must be at most ${spec.maxLength} characters`
        : null;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a number';
      if (spec.minimum !== null && value < spec.minimum) return `must be ≥ ${spec.minimum}`;
      if (spec.maximum !== null && value > spec.maximum) return `must be ≤ ${spec.maximum}`;
      return null;
  }
}

export interface ShapeProblem {
  readonly id: string;
  readonly message: string;
}

/** What the server would refuse about the labels and attributes of a document. */
export function documentProblems(shapes: readonly Shape[], schema: LabelSchema): ShapeProblem[] {
  const problems: ShapeProblem[] = [];
  const byKey = new Map(schema.classes.map((c) => [c.key, c]));
  for (const shape of shapes) {
    const cls = byKey.get(shape.label);
    if (!cls) {
      problems.push({ id: shape.id, message: `has no class (${shape.label || 'none'})` });
      continue;
    }
    if (!allowsKind(cls, shape.kind)) {
      problems.push({ id: shape.id, message: `${cls.name} does not allow a ${shape.kind}` });
    }
    for (const spec of cls.attributes) {
      const problem = attributeProblem(spec, shape.attributes[spec.key]);
      if (problem) problems.push({ id: shape.id, message: `${cls.name}: ${spec.name} ${problem}` });
    }
  }
  return problems;
}
