// pixi.js 7 uploads shader uniforms through functions it compiles with `new Function`, which
// our CSP (`script-src 'self'`, no 'unsafe-eval') refuses: Annotorious' WebGL layer (pixi.js
// 7.4.3, bundled inside @annotorious/openseadragon) then throws "Current environment does not
// allow unsafe-eval". pixi's own answer is @pixi/unsafe-eval, which swaps in this static
// version; it cannot reach the copy bundled inside Annotorious, so vite.config.ts
// (`pixiWithoutEval`) patches that copy to call this function instead.
//
// Vendored from @pixi/unsafe-eval 7.4.3, lib/syncUniforms.mjs (MIT, (c) 2013-2023 Mathew
// Groves, Chad Engler), unchanged apart from types.
/* eslint-disable @typescript-eslint/no-explicit-any */
type GL = WebGL2RenderingContext;
type Setter = (gl: GL, location: WebGLUniformLocation, cv: any, v: any) => void;

const GLSL_TO_SINGLE_SETTERS: Record<string, Setter> = {
  vec3(gl, location, cv, v) {
    if (cv[0] !== v[0] || cv[1] !== v[1] || cv[2] !== v[2]) {
      cv[0] = v[0];
      cv[1] = v[1];
      cv[2] = v[2];
      gl.uniform3f(location, v[0], v[1], v[2]);
    }
  },
  int: (gl, location, _cv, value) => gl.uniform1i(location, value),
  ivec2: (gl, location, _cv, value) => gl.uniform2i(location, value[0], value[1]),
  ivec3: (gl, location, _cv, value) => gl.uniform3i(location, value[0], value[1], value[2]),
  ivec4: (gl, location, _cv, value) => gl.uniform4i(location, value[0], value[1], value[2], value[3]),
  uint: (gl, location, _cv, value) => gl.uniform1ui(location, value),
  uvec2: (gl, location, _cv, value) => gl.uniform2ui(location, value[0], value[1]),
  uvec3: (gl, location, _cv, value) => gl.uniform3ui(location, value[0], value[1], value[2]),
  uvec4: (gl, location, _cv, value) => gl.uniform4ui(location, value[0], value[1], value[2], value[3]),
  bvec2: (gl, location, _cv, value) => gl.uniform2i(location, value[0], value[1]),
  bvec3: (gl, location, _cv, value) => gl.uniform3i(location, value[0], value[1], value[2]),
  bvec4: (gl, location, _cv, value) => gl.uniform4i(location, value[0], value[1], value[2], value[3]),
  mat2: (gl, location, _cv, value) => gl.uniformMatrix2fv(location, false, value),
  mat4: (gl, location, _cv, value) => gl.uniformMatrix4fv(location, false, value),
};

const GLSL_TO_ARRAY_SETTERS: Record<string, Setter> = {
  float: (gl, location, _cv, value) => gl.uniform1fv(location, value),
  vec2: (gl, location, _cv, value) => gl.uniform2fv(location, value),
  vec3: (gl, location, _cv, value) => gl.uniform3fv(location, value),
  vec4: (gl, location, _cv, value) => gl.uniform4fv(location, value),
  int: (gl, location, _cv, value) => gl.uniform1iv(location, value),
  ivec2: (gl, location, _cv, value) => gl.uniform2iv(location, value),
  ivec3: (gl, location, _cv, value) => gl.uniform3iv(location, value),
  ivec4: (gl, location, _cv, value) => gl.uniform4iv(location, value),
  uint: (gl, location, _cv, value) => gl.uniform1uiv(location, value),
  uvec2: (gl, location, _cv, value) => gl.uniform2uiv(location, value),
  uvec3: (gl, location, _cv, value) => gl.uniform3uiv(location, value),
  uvec4: (gl, location, _cv, value) => gl.uniform4uiv(location, value),
  bool: (gl, location, _cv, value) => gl.uniform1iv(location, value),
  bvec2: (gl, location, _cv, value) => gl.uniform2iv(location, value),
  bvec3: (gl, location, _cv, value) => gl.uniform3iv(location, value),
  bvec4: (gl, location, _cv, value) => gl.uniform4iv(location, value),
  sampler2D: (gl, location, _cv, value) => gl.uniform1iv(location, value),
  samplerCube: (gl, location, _cv, value) => gl.uniform1iv(location, value),
  sampler2DArray: (gl, location, _cv, value) => gl.uniform1iv(location, value),
};

function isSingle(data: any, type: string): boolean {
  return data.type === type && data.size === 1 && !data.isArray;
}

/** @pixi/unsafe-eval's syncUniforms(group, uniformData, ud, uv, renderer). */
export function syncUniforms(group: any, uniformData: any, ud: any, uv: any, renderer: any): void {
  let textureCount = 0;
  const gl: GL = renderer.gl;
  for (const i in group.uniforms) {
    const data = uniformData[i];
    const uvi = uv[i];
    const udi = ud[i];
    const gu = group.uniforms[i];
    if (!data) {
      if (gu.group === true) renderer.shader.syncUniformGroup(uvi);
      continue;
    }
    if (isSingle(data, 'float')) {
      if (uvi !== udi.value) {
        udi.value = uvi;
        gl.uniform1f(udi.location, uvi);
      }
    } else if (isSingle(data, 'bool')) {
      if (uvi !== udi.value) {
        udi.value = uvi;
        gl.uniform1i(udi.location, Number(uvi));
      }
    } else if (isSingle(data, 'sampler2D') || isSingle(data, 'samplerCube') || isSingle(data, 'sampler2DArray')) {
      renderer.texture.bind(uvi, textureCount);
      if (udi.value !== textureCount) {
        udi.value = textureCount;
        gl.uniform1i(udi.location, textureCount);
      }
      textureCount += 1;
    } else if (isSingle(data, 'mat3')) {
      gl.uniformMatrix3fv(udi.location, false, gu.a !== undefined ? uvi.toArray(true) : uvi);
    } else if (isSingle(data, 'vec2')) {
      const cv = udi.value;
      const [x, y] = gu.x !== undefined ? [uvi.x, uvi.y] : [uvi[0], uvi[1]];
      if (cv[0] !== x || cv[1] !== y) {
        cv[0] = x;
        cv[1] = y;
        gl.uniform2f(udi.location, x, y);
      }
    } else if (isSingle(data, 'vec4')) {
      const cv = udi.value;
      const [x, y, z, w] =
        gu.width !== undefined ? [uvi.x, uvi.y, uvi.width, uvi.height] : [uvi[0], uvi[1], uvi[2], uvi[3]];
      if (cv[0] !== x || cv[1] !== y || cv[2] !== z || cv[3] !== w) {
        cv[0] = x;
        cv[1] = y;
        cv[2] = z;
        cv[3] = w;
        gl.uniform4f(udi.location, x, y, z, w);
      }
    } else {
      const setters = data.size === 1 && !data.isArray ? GLSL_TO_SINGLE_SETTERS : GLSL_TO_ARRAY_SETTERS;
      setters[data.type]!.call(null, gl, udi.location, udi.value, uvi);
    }
  }
}
