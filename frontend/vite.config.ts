import react from '@vitejs/plugin-react';
import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

/** Make @annotorious/openseadragon 3.8.10 run under our CSP (no 'unsafe-eval', no inline
 * styles; src/medlabel/web/middleware.py), by patching its bundle at build time:
 *
 * - Annotorious draws with pixi.js 7, bundled inside it; pixi compiles its uniform uploads
 *   with `new Function` and refuses to start where eval is blocked. Patched exactly as
 *   @pixi/unsafe-eval patches pixi itself (which cannot reach the bundled copy): no eval
 *   check, and our own eval-free uniform upload (src/viewers/slide/pixiSyncUniforms.ts).
 * - Its Svelte components set `style` ATTRIBUTES (the shape being drawn or edited gets our
 *   colours that way), which `style-src 'self'` blocks; the same text set through the CSSOM
 *   (`element.style.cssText`) is allowed.
 *
 * The build fails if the code it patches is not found as expected (an Annotorious upgrade:
 * re-check, and re-run tests/e2e/test_slide_viewer.py, which fails on any CSP violation). */
function annotoriousUnderCsp(): Plugin {
  const target = /[\\/]@annotorious[\\/]openseadragon[\\/]dist[\\/]annotorious-openseadragon\.es\.js$/;
  const sync = decodeURIComponent(new URL('./src/viewers/slide/pixiSyncUniforms.ts', import.meta.url).pathname);
  // [pattern, replacement, expected number of matches]
  const patches: [RegExp, string, number][] = [
    [
      /systemCheck\(\) \{\s*if \(!\w+\(\)\)\s*throw new Error\("Current environment does not allow unsafe-eval[^"]*"\);\s*\}/g,
      'systemCheck() {}',
      1,
    ],
    [
      /syncUniforms\(t, e, i\) \{\s*\(t\.syncUniforms\[this\.shader\.program\.id\] \|\| this\.createSyncGroups\(t\)\)\(e\.uniformData, t\.uniforms, this\.renderer, i\);\s*\}/g,
      'syncUniforms(t, e) { __medlabelSyncUniforms(t, this.shader.program.uniformData, e.uniformData, t.uniforms, this.renderer); }',
      1,
    ],
    [
      // Svelte's attr() helper (two bundled copies of the runtime)
      /e == null \? r\.removeAttribute\(t\) : r\.getAttribute\(t\) !== e && r\.setAttribute\(t, e\);/g,
      't === "style" && e != null ? (r.style.cssText = e) : e == null ? r.removeAttribute(t) : r.getAttribute(t) !== e && r.setAttribute(t, e);',
      2,
    ],
    [
      // the presence label (other users' names)
      /l\.setAttribute\("style", `transform: translateX\(-\$\{p \/ 2\}px\)`\)/g,
      '(l.style.transform = `translateX(-${p / 2}px)`)',
      1,
    ],
  ];
  return {
    name: 'medlabel:annotorious-under-csp',
    enforce: 'pre',
    transform(code, id) {
      if (!target.test(id.split('?')[0] ?? '')) return null;
      let out = code;
      for (const [pattern, replacement, expected] of patches) {
        const found = out.match(pattern)?.length ?? 0;
        if (found !== expected) {
          throw new Error(
            `annotoriousUnderCsp: expected ${expected} match(es) of /${pattern.source.slice(0, 48)}.../, found ${found}`,
          );
        }
        out = out.replace(pattern, replacement);
      }
      const header = `import { syncUniforms as __medlabelSyncUniforms } from ${JSON.stringify(sync)};\n`;
      return { code: header + out, map: null };
    },
  };
}

// Served by FastAPI at "/" (see src/medlabel/web/app.py). Facts behind these settings:
// shared VIEWER.md section 1 (Cornerstone3D 5.14 with Vite 8).
export default defineConfig({
  base: '/',
  plugins: [react(), annotoriousUnderCsp()],
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 6000, // Cornerstone3D + vtk.js is one large chunk (about 1 MB gzip)
  },
  worker: { format: 'es' }, // Cornerstone's workers are ES-module workers
  optimizeDeps: { exclude: ['@cornerstonejs/dicom-image-loader'] }, // dev server only
  server: { proxy: { '/api': 'http://127.0.0.1:8000' } }, // `npm run dev` next to `make demo`
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
