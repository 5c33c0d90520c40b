// The review's keys. Space plays and pauses wherever the focus is (Enter still presses a
// focused button); nothing fires while the coach types in a field.

import { TYPING } from './dom.js';

/**
 * @param {{toggle: () => void, seekBy: (s: number) => void, stepTag: (dir: number) => void,
 *          addTag: (index: number) => void, zoom: (dir: number) => void, whole: () => void}} actions
 */
export function bindKeys(actions) {
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.target.closest?.(TYPING)) return;
    const digit = '123456789'.indexOf(e.key);
    if (digit >= 0) {
      if (!e.repeat) actions.addTag(digit);
    } else if (e.key === ' ') {
      if (!e.repeat) actions.toggle();
    } else if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      actions.seekBy(e.key === 'ArrowLeft' ? -5 : 5);
    } else if (e.key === '[' || e.key === ']') {
      actions.stepTag(e.key === '[' ? -1 : 1);
    } else if (e.key === '-' || e.key === '+' || e.key === '=') {
      actions.zoom(e.key === '-' ? 1 : -1);
    } else if (e.key === '0') {
      actions.whole();
    } else {
      return;
    }
    e.preventDefault();
  });
}
