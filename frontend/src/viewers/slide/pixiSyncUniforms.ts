// Uniform upload for the pixi.js 7 renderer bundled inside @annotorious/openseadragon, without
// `new Function`.
//
// pixi 7 generates one upload function per shader with `new Function`, which our CSP
// (`script-src 'self'`, no 'unsafe-eval') refuses, so Annotorious' WebGL layer would not start.
// vite.config.ts (`annotoriousUnderCsp`) patches the bundled renderer to call
// `syncUniforms` below instead. It is our own table-driven uploader, written from the WebGL 2
// API and the shape of pixi's uniform data (per uniform: `type`, `size`, `isArray`; per
// program: `location` and a cached `value`):
//
// - a uniform without program data but marked `group` is a nested uniform group: pixi's
//   shader system syncs it;
// - samplers get consecutive texture units (the texture is bound to the unit);
// - scalars and vectors are uploaded only when they changed (the cache is the program's
//   `value`); matrices and arrays are uploaded every time;
// - pixi passes some values as objects: a Point `{x, y}` for vec2, a Rectangle
//   `{x, y, width, height}` for vec4, a Matrix (with `a`) for mat3 (`toArray(true)`).
/* eslint-disable @typescript-eslint/no-explicit-any */
type GL = WebGL2RenderingContext;
type Family = 'float' | 'int' | 'uint' | 'matrix';

/** GLSL type -> (value family, components per element; matrices: the dimension). */
const GLSL: Record<string, readonly [Family, number]> = {
  float: ['float', 1],
  vec2: ['float', 2],
  vec3: ['float', 3],
  vec4: ['float', 4],
  int: ['int', 1],
  ivec2: ['int', 2],
  ivec3: ['int', 3],
  ivec4: ['int', 4],
  bool: ['int', 1],
  bvec2: ['int', 2],
  bvec3: ['int', 3],
  bvec4: ['int', 4],
  sampler2D: ['int', 1],
  samplerCube: ['int', 1],
  sampler2DArray: ['int', 1],
  uint: ['uint', 1],
  uvec2: ['uint', 2],
  uvec3: ['uint', 3],
  uvec4: ['uint', 4],
  mat2: ['matrix', 2],
  mat3: ['matrix', 3],
  mat4: ['matrix', 4],
};

const SAMPLERS = new Set(['sampler2D', 'samplerCube', 'sampler2DArray']);

/** A single (non-array) value as numbers, whatever pixi object carries it. */
function flatten(type: string, value: any): ArrayLike<number> {
  if (typeof value === 'number' || typeof value === 'boolean') return [Number(value)];
  if (type === 'vec2' && value.x !== undefined) return [value.x, value.y];
  if (type === 'vec4' && value.width !== undefined) {
    return [value.x, value.y, value.width, value.height];
  }
  if (type === 'mat3' && value.a !== undefined) return value.toArray(true);
  return value;
}

function upload(gl: GL, location: WebGLUniformLocation, family: Family, n: number, v: any): void {
  const g = gl as any;
  if (family === 'matrix') {
    g[`uniformMatrix${n}fv`](location, false, v);
  } else {
    const suffix = family === 'float' ? 'fv' : family === 'int' ? 'iv' : 'uiv';
    g[`uniform${n}${suffix}`](location, v);
  }
}

/** Returns whether ``cache`` already holds ``values`` (and stores them if not). */
function cached(holder: { value: any }, values: ArrayLike<number>): boolean {
  if (values.length === 1) {
    if (holder.value === values[0]) return true;
    holder.value = values[0];
    return false;
  }
  const cache = holder.value;
  let same = cache != null && cache.length === values.length;
  for (let k = 0; same && k < values.length; k++) same = cache[k] === values[k];
  if (same) return true;
  if (cache != null && cache.length === values.length) {
    for (let k = 0; k < values.length; k++) cache[k] = values[k];
  } else {
    holder.value = Array.from(values);
  }
  return false;
}

/** Called as pixi's generated function would be: (group, program uniform data, the
 * program's per-uniform cache and locations, the group's values, renderer). */
export function syncUniforms(group: any, uniformData: any, ud: any, uv: any, renderer: any): void {
  const gl: GL = renderer.gl;
  let unit = 0;
  for (const name in group.uniforms) {
    const data = uniformData[name];
    const value = uv[name];
    if (!data) {
      if (group.uniforms[name].group === true) renderer.shader.syncUniformGroup(value);
      continue;
    }
    const slot = ud[name];
    const single = data.size === 1 && !data.isArray;
    if (single && SAMPLERS.has(data.type)) {
      renderer.texture.bind(value, unit);
      if (!cached(slot, [unit])) gl.uniform1i(slot.location, unit);
      unit += 1;
      continue;
    }
    const spec = GLSL[data.type];
    if (spec === undefined) continue; // a type WebGL 2 has no uniform upload for
    const [family, n] = spec;
    if (!single) {
      upload(gl, slot.location, family, n, value);
    } else if (family === 'matrix') {
      upload(gl, slot.location, family, n, flatten(data.type, value));
    } else {
      const values = flatten(data.type, value);
      if (!cached(slot, values)) upload(gl, slot.location, family, n, values);
    }
  }
}
