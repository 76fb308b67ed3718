// Read-only state for end-to-end tests and debugging: `window.__medlabel.viewer` is the
// ViewState of the viewer on screen (slice index, window, rendered flag, ...), or null.
import type { ViewState } from './viewers/ViewerAdapter';

export interface TestHook {
  viewer: ViewState | null;
}

declare global {
  interface Window {
    __medlabel?: TestHook;
  }
}

export function publishViewState(state: ViewState | null): void {
  window.__medlabel ??= { viewer: null };
  window.__medlabel.viewer = state;
}
