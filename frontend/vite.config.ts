import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// Served by FastAPI at "/" (see src/medlabel/web/app.py). Facts behind these settings:
// shared VIEWER.md section 1 (Cornerstone3D 5.14 with Vite 8).
export default defineConfig({
  base: '/',
  plugins: [react()],
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
