import { describe, expect, it } from 'vitest';

import { actionForKey } from './keymap';

const key = (k: string, mods: Partial<{ ctrlKey: boolean; shiftKey: boolean; metaKey: boolean; altKey: boolean }> = {}) => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  shiftKey: false,
  altKey: false,
  ...mods,
});

describe('actionForKey', () => {
  const hotkeys = new Set(['1', '4']);
  it('maps tools, classes, undo and redo', () => {
    expect(actionForKey(key('b'), hotkeys)).toEqual({ type: 'tool', tool: 'box' });
    expect(actionForKey(key('4'), hotkeys)).toEqual({ type: 'class', hotkey: '4' });
    expect(actionForKey(key('7'), hotkeys)).toBeNull();
    expect(actionForKey(key('z', { ctrlKey: true }), hotkeys)).toEqual({ type: 'undo' });
    expect(actionForKey(key('Z', { ctrlKey: true, shiftKey: true }), hotkeys)).toEqual({ type: 'redo' });
    expect(actionForKey(key('y', { metaKey: true }), hotkeys)).toEqual({ type: 'redo' });
    expect(actionForKey(key('?', { shiftKey: true }), hotkeys)).toEqual({ type: 'help' });
    expect(actionForKey(key('Delete'), hotkeys)).toEqual({ type: 'delete' });
    expect(actionForKey(key('a'), hotkeys)).toBeNull(); // the viewer's automatic window
  });
});
