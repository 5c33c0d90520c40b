// The play controls: play/pause, 5 s back and forward, previous and next tag, the speed, the
// play position, the zoom, and what stops the sound (a file that will not load, the browser's
// autoplay rule). Each button names its key.

import { clock, setText } from '../format.js';
import { h } from './dom.js';
import { clockTenths } from './time.js';

export const SPEEDS = [1, 1.25, 1.5, 2];
const ZOOM_STEP = 2;

export class Transport {
  /**
   * @param {HTMLElement} root
   * @param {{clock, view, duration: number, seekBy: (s: number) => void, stepTag: (dir: number) => void,
   *          toggle: () => void}} deps
   */
  constructor(root, { clock: playClock, view, duration, seekBy, stepTag, toggle }) {
    this.clock = playClock;
    this.view = view;
    const button = (text, title, keys, onclick, testid) => h('button', {
      type: 'button', class: 'btn small', title, 'aria-keyshortcuts': keys, onclick, dataset: { testid },
    }, text);

    this.play = button('Play', 'Play or pause (Space)', 'Space', toggle, 'play');
    this.play.classList.add('primary', 'play');
    this.time = h('output', { class: 'play-time', dataset: { testid: 'play-time', time: '0' }, 'aria-live': 'off' }, '0:00.0');
    this.speed = h('select', { dataset: { testid: 'speed' }, 'aria-label': 'Playback speed' },
      SPEEDS.map((s) => h('option', { value: String(s), text: `${s}×` })));
    this.speed.addEventListener('change', () => playClock.setRate(Number(this.speed.value)));
    this.range = h('span', { class: 'view-range', dataset: { testid: 'view-range' } });
    this.problem = h('p', { class: 'problem', role: 'alert', dataset: { testid: 'media-problem' }, hidden: true });
    this.note = h('p', { class: 'hint transport-note', dataset: { testid: 'transport-note' }, hidden: true });
    this.loading = h('span', { class: 'loading-media', role: 'status', hidden: true }, 'Loading the recording…');

    root.append(
      h('div', { class: 'transport', role: 'group', 'aria-label': 'Playback' },
        button('‹ Tag', 'Previous tag ([)', '[', () => stepTag(-1), 'prev-tag'),
        button('−5 s', 'Back 5 seconds (←)', 'ArrowLeft', () => seekBy(-5), 'back'),
        this.play,
        button('+5 s', 'Forward 5 seconds (→)', 'ArrowRight', () => seekBy(5), 'forward'),
        button('Tag ›', 'Next tag (])', ']', () => stepTag(1), 'next-tag'),
        h('span', { class: 'time-box' }, this.time, h('span', { class: 'duration', text: ` / ${clock(duration)}` })),
        h('label', { class: 'inline' }, 'Speed ', this.speed),
        this.loading,
        h('span', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
          button('−', 'Zoom out', '-', () => view.zoom(ZOOM_STEP), 'zoom-out'),
          button('+', 'Zoom in', '+', () => view.zoom(1 / ZOOM_STEP, this.zoomCentre()), 'zoom-in'),
          button('Whole call', 'Show the whole call', '0', () => view.showWhole(), 'zoom-whole'),
          this.range)),
      this.problem, this.note);
    view.onChange(() => this.renderRange());
    this.renderRange();
  }

  /** Zooming in keeps the play position on screen when it is. */
  zoomCentre() {
    const t = this.clock.now();
    return t >= this.view.start && t <= this.view.end ? t : undefined;
  }

  renderRange() {
    setText(this.range, this.view.whole ? 'whole call' : `${clock(this.view.start)}–${clock(this.view.end)}`);
  }

  say(text) {
    setText(this.problem, text);
    this.problem.hidden = !text;
  }

  /** A plain remark (no recording, say), not a problem. */
  remark(text) {
    setText(this.note, text);
    this.note.hidden = !text;
  }

  tick() {
    const t = this.clock.now();
    this.time.dataset.time = t.toFixed(3);
    setText(this.time, clockTenths(t));
    setText(this.play, this.clock.playing ? 'Pause' : 'Play');
    this.loading.hidden = !this.clock.held;
  }
}
