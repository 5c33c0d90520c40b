// The whole call in one strip, with the detail timeline's window on it: drag the window to move
// it, click elsewhere to play from there (the window follows). Tags show as ticks, so a
// 2-hour call's busy stretches are easy to find.

import { clock } from '../format.js';
import { h } from './dom.js';
import { draw, theme } from './lanes.js';

const ROWS = [
  { kind: 'lane', who: 'coach', y: 8, h: 14 },
  { kind: 'lane', who: 'client', y: 24, h: 14 },
];
const HEIGHT = 40;

export class Overview {
  constructor(root, { data, view, clock: playClock, onSeek }) {
    this.data = data;
    this.view = view;
    this.clock = playClock;
    this.onSeek = onSeek;
    this.tags = [];
    this.canvas = h('canvas', { class: 'ov-canvas', role: 'img', 'aria-label': `The whole session, ${clock(data.session.duration_s)}` });
    this.canvas.style.height = `${HEIGHT}px`;
    this.window = h('div', { class: 'ov-window', title: 'Drag to move the detailed view' });
    this.playhead = h('div', { class: 'ov-playhead', 'aria-hidden': 'true' });
    this.box = h('div', { class: 'ov', dataset: { testid: 'overview' } }, this.canvas, this.window, this.playhead);
    root.append(this.box);
    this.pointer();
    view.onChange(() => this.placeWindow());
    new ResizeObserver(() => this.render()).observe(this.canvas);
  }

  setTags(tags) {
    this.tags = tags;
    this.render();
  }

  get whole() {
    return { start: 0, end: this.data.session.duration_s || 1 };
  }

  render() {
    if (!this.canvas.clientWidth) return;
    draw(this.canvas, this.data, this.whole, ROWS);
    const ctx = this.canvas.getContext('2d');
    const w = this.canvas.clientWidth;
    ctx.fillStyle = theme().text;
    for (const t of this.tags) ctx.fillRect((t.session_time / this.whole.end) * w - 0.5, 0, 1.5, 7);
    this.placeWindow();
  }

  placeWindow() {
    const d = this.whole.end;
    this.window.style.left = `${(this.view.start / d) * 100}%`;
    this.window.style.width = `${(this.view.width / d) * 100}%`;
    this.window.hidden = this.view.whole;
  }

  tick() {
    this.playhead.style.left = `${(this.clock.now() / this.whole.end) * 100}%`;
  }

  timeAt(clientX) {
    const box = this.canvas.getBoundingClientRect();
    return ((clientX - box.left) / box.width) * this.whole.end;
  }

  pointer() {
    let drag = null;
    this.box.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      if (e.target === this.window) {
        drag = { x: e.clientX, start: this.view.start };
        this.box.setPointerCapture(e.pointerId);
        return;
      }
      this.onSeek(this.timeAt(e.clientX));
    });
    this.box.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const seconds = ((e.clientX - drag.x) / this.canvas.clientWidth) * this.whole.end;
      this.view.set(drag.start + seconds, drag.start + seconds + this.view.width);
    });
    const end = () => {
      drag = null;
    };
    this.box.addEventListener('pointerup', end);
    this.box.addEventListener('pointercancel', end);
  }
}
