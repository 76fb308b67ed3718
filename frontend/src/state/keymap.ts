// The annotation keyboard map (shown on `?`). Pure: the component maps keys to actions here.
import type { DrawTool } from '../viewers/ViewerAdapter';

export type KeyAction =
  | { readonly type: 'tool'; readonly tool: DrawTool }
  | { readonly type: 'undo' }
  | { readonly type: 'redo' }
  | { readonly type: 'delete' }
  | { readonly type: 'deselect' }
  | { readonly type: 'help' }
  | { readonly type: 'brushSize'; readonly delta: number }
  | { readonly type: 'class'; readonly hotkey: string };

export const TOOL_KEYS: Readonly<Record<string, DrawTool>> = {
  v: 'navigate',
  b: 'box',
  p: 'polygon',
  l: 'polyline',
  k: 'point',
  r: 'brush',
  e: 'eraser',
};

export interface KeyLike {
  readonly key: string;
  readonly ctrlKey: boolean;
  readonly metaKey: boolean;
  readonly shiftKey: boolean;
  readonly altKey: boolean;
}

export function actionForKey(event: KeyLike, hotkeys: ReadonlySet<string>): KeyAction | null {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (mod && !event.altKey) {
    if (key === 'z') return event.shiftKey ? { type: 'redo' } : { type: 'undo' };
    if (key === 'y') return { type: 'redo' };
    return null;
  }
  if (event.altKey) return null;
  if (event.key === '?') return { type: 'help' };
  if (event.key === '[' || event.key === ']') return { type: 'brushSize', delta: event.key === ']' ? 1 : -1 };
  if (key === 'Delete' || key === 'Backspace') return { type: 'delete' };
  if (key === 'Escape') return { type: 'deselect' };
  if (hotkeys.has(key)) return { type: 'class', hotkey: key };
  const tool = TOOL_KEYS[key];
  return tool ? { type: 'tool', tool } : null;
}

/** The rows of the help dialog. */
export const KEY_HELP: readonly (readonly [string, string])[] = [
  ['v', 'navigate: left drag sets the window'],
  ['b', 'box'],
  ['p', 'polygon (freehand: drag around the outline)'],
  ['l', 'polyline (freehand, open)'],
  ['k', 'landmark point'],
  ['r / e', 'brush / eraser on the mask (pick a mask class first)'],
  ['[ / ]', 'smaller / larger brush'],
  ['1 … 9', 'pick the class with that hotkey'],
  ['click a shape', 'select it; drag it or its handles to edit'],
  ['Delete / Backspace', 'delete the selected shape'],
  ['Escape', 'deselect'],
  ['Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y', 'undo / redo'],
  ['↑ ↓, wheel, PageUp/PageDown', 'previous / next slice'],
  ['a / 0', 'automatic window / reset the view'],
  ['?', 'this help'],
];
