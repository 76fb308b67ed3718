// Read-only slide-viewer state for end-to-end tests and debugging:
// `window.__medlabel.slide` = { state, shapes, indexToClient, clientToIndex } of the slide
// viewer on screen, or null. Coordinates are ours (image index, pixel centres at integers);
// client points are page CSS pixels (what Playwright's mouse uses).
import type { Shape } from './shapes';
import type { SlideViewState } from './OsdSlideAdapter';

export interface SlideTestHook {
  state: SlideViewState;
  shapes: readonly Shape[];
  indexToClient(i: number, j: number): [number, number] | null;
  clientToIndex(x: number, y: number): [number, number] | null;
}

declare module '../../testHook' {
  interface TestHook {
    slide?: SlideTestHook | null;
  }
}

export function publishSlide(hook: SlideTestHook | null): void {
  window.__medlabel ??= { viewer: null };
  window.__medlabel.slide = hook;
}
