// Read-only annotation state for end-to-end tests and debugging:
// `window.__medlabel.annotations` (next to `window.__medlabel.viewer`, see ../testHook.ts).
import type { TestHook } from '../testHook';

export interface AnnotationsHook {
  readonly setId: number;
  readonly status: string;
  readonly revision: number;
  readonly message: string | null;
  readonly restored: boolean;
  readonly merged: unknown;
  readonly shapes: readonly unknown[];
  readonly selected: string | null;
  readonly canUndo: boolean;
  readonly canRedo: boolean;
  readonly tool: string;
  readonly activeClass: string | null;
  readonly layerReady: boolean;
  /** the label map: 'none' (no viewer support), 'loading', 'saved', 'saving' or 'error' */
  readonly maskStatus: string;
  readonly maskSaves: number;
  readonly brushSize: number;
}

export function publishAnnotations(state: AnnotationsHook | null): void {
  const hook = (window.__medlabel ??= { viewer: null }) as TestHook & { annotations?: AnnotationsHook | null };
  hook.annotations = state;
}
