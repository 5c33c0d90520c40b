// The detail timeline: tags and nudges as markers (buttons: labelled on hover and focus, and
// reachable by Tab), the lanes on a canvas (lanes.js), and the play position. A click plays from
// there; a drag pans; Ctrl+wheel (or a pinch) zooms around the pointer, Shift+wheel pans.

import { clock } from '../format.js';
import { h } from './dom.js';
import { draw } from './lanes.js';
import { clockTenths } from './time.js';

// Rows of the canvas in CSS pixels; the gutter's labels take the same heights.
const ROWS = [
  { kind: 'axis', y: 0, h: 18, label: '' },
  { kind: 'level', who: 'coach', y: 18, h: 22, label: 'level' },
  { kind: 'lane', who: 'coach', y: 40, h: 28, label: 'Coach' },
  { kind: 'between', y: 68, h: 16, label: '' },
  { kind: 'lane', who: 'client', y: 84, h: 28, label: 'Client' },
  { kind: 'level', who: 'client', y: 112, h: 22, down: true, label: 'level' },
];
const HEIGHT = 136;
const DRAG_PX = 4; // a press that moves further than this pans instead of seeking
const WHEEL_ZOOM = 0.0015;

const NUDGE_ABOUT = { talk_balance: 'talk balance', monologue: 'long turn', wait: 'filled silences', client_quiet: 'client quiet' };

/** What each mark means, once, under the lanes. */
function legend() {
  const item = (cls, text) => h('span', { class: 'lg' }, h('span', { class: `lg-mark ${cls}`, 'aria-hidden': 'true' }), text);
  return h('p', { class: 'tl-legend' },
    item('lg-coach', 'coach speaks'), item('lg-client', 'client speaks'), item('lg-silence', 'silence of 3 s or more'),
    item('lg-overlap', 'both at once'), item('lg-paused', 'recording paused'), item('lg-stopped', 'server stopped'),
    item('lg-tag', 'tag'), item('lg-nudge', 'nudge'), item('lg-nudge-done', 'nudge dismissed'));
}

export class Timeline {
  /**
   * @param {HTMLElement} root an empty element
   * @param {{data: object, view: import('./view.js').View, clock: import('./clock.js').PlayClock,
   *          onSeek: (t: number) => void, onTag: (id: string) => void}} deps
   */
  constructor(root, { data, view, clock: playClock, onSeek, onTag }) {
    this.data = data;
    this.view = view;
    this.clock = playClock;
    this.onSeek = onSeek;
    this.onTag = onTag;
    this.levels = {};
    this.markers = new Map(); // tag id -> button

    this.tagRow = h('div', { class: 'tl-markers tl-tagrow', role: 'group', 'aria-label': 'Tags' });
    this.nudgeRow = h('div', { class: 'tl-markers tl-nudgerow', role: 'group', 'aria-label': 'Nudges' });
    this.canvas = h('canvas', { class: 'tl-canvas', role: 'img' });
    this.canvas.style.height = `${HEIGHT}px`;
    this.playhead = h('div', { class: 'tl-playhead', 'aria-hidden': 'true' });
    this.hover = h('div', { class: 'tl-hover', 'aria-hidden': 'true', hidden: true }, h('span'));
    this.track = h('div', { class: 'tl-track' }, this.tagRow, this.nudgeRow, this.canvas, this.playhead, this.hover);
    const gutter = h('div', { class: 'tl-gutter', 'aria-hidden': 'true' },
      h('span', { class: 'g-marks', text: 'Tags' }),
      h('span', { class: 'g-marks', text: 'Nudges' }),
      ROWS.map((r) => {
        const label = h('span', { class: `g-${r.kind} ${r.who ?? ''}`, text: r.label });
        label.style.height = `${r.h}px`;
        return label;
      }));
    root.append(h('div', { class: 'tl', dataset: { testid: 'timeline' } }, gutter, this.track), legend());

    this.tagRow.addEventListener('click', (e) => {
      const marker = e.target.closest('.tag-marker');
      if (marker) this.onTag(marker.dataset.id);
    });
    this.nudgeMarkers = data.nudges.map((n) => this.nudgeMarker(n));
    this.nudgeRow.append(...this.nudgeMarkers);
    this.pointer();
    view.onChange(() => this.requestRender());
    new ResizeObserver(() => this.render()).observe(this.canvas);
  }

  setLevels(levels) {
    this.levels = levels;
    this.requestRender();
  }

  /** Draws at the next frame, once however many changes come before it (a drag, a seek's click
   * that also moves the view: the media are sent on their way first). */
  requestRender() {
    this.renderQueued ||= requestAnimationFrame(() => {
      this.renderQueued = 0;
      this.render();
    });
  }

  // --- markers -------------------------------------------------------------------------

  /** Shows these tags (the list is the review's, in time order); keeps a focused marker. */
  setTags(tags) {
    const keep = new Set(tags.map((t) => t.id));
    for (const [id, b] of this.markers) {
      if (!keep.has(id)) {
        b.remove();
        this.markers.delete(id);
      }
    }
    const made = document.createDocumentFragment(); // new markers go in at once
    for (const tag of tags) {
      let b = this.markers.get(tag.id);
      if (!b) { // cloned, its click handled by the row: a 2-hour call has hundreds
        this.markerPrototype ??= h('button', { type: 'button', class: 'tag-marker', dataset: { testid: 'tag-marker' } });
        b = this.markerPrototype.cloneNode();
        b.dataset.id = tag.id;
        this.markers.set(tag.id, b);
        made.append(b);
      }
      const moved = Math.abs(tag.session_time - tag.original_session_time) > 0.0005;
      const text = `${tag.label} · ${clock(tag.session_time)}${moved ? ` (live ${clock(tag.original_session_time)})` : ''}`;
      b.dataset.time = String(tag.session_time);
      b.dataset.kind = tag.kind;
      b.dataset.origin = tag.origin;
      b.dataset.tip = tag.note ? `${text}: ${tag.note}` : text;
      b.setAttribute('aria-label', `Tag ${text}${tag.note ? `, note: ${tag.note}` : ''}. Play from here.`);
      this.place(b, tag.session_time);
    }
    this.tagRow.append(made);
  }

  nudgeMarker(n) {
    const dismissed = n.dismissed_at !== null && n.dismissed_at !== undefined;
    const after = dismissed ? `dismissed after ${Math.max(0, Math.round(n.dismissed_at - n.session_time))} s` : 'not dismissed';
    const text = `${n.text} (${NUDGE_ABOUT[n.kind] ?? n.kind}) · ${clock(n.session_time)} · ${after}`;
    const b = h('button', {
      type: 'button', class: 'nudge-marker', 'aria-label': `Nudge ${text}. Play from here.`,
      dataset: { testid: 'nudge-marker', id: n.id, time: String(n.session_time), dismissed: String(dismissed), tip: text },
    });
    b.addEventListener('click', () => this.onSeek(n.session_time));
    return b;
  }

  place(el, t) {
    const f = this.view.fraction(t);
    el.hidden = f < 0 || f > 1;
    if (!el.hidden) el.style.left = `${(f * 100).toFixed(3)}%`;
  }

  // --- drawing -------------------------------------------------------------------------

  render() {
    if (!this.canvas.clientWidth) return;
    draw(this.canvas, this.data, this.view, ROWS, this.levels);
    for (const [, b] of this.markers) this.place(b, Number(b.dataset.time));
    for (const b of this.nudgeMarkers) this.place(b, Number(b.dataset.time));
    const inView = (spans) => spans.filter(([a, b]) => (b ?? Infinity) > this.view.start && a < this.view.end).length;
    const silences = inView(this.data.silences);
    const pauses = inView(this.data.pauses);
    const stops = this.data.interruptions.filter((t) => t >= this.view.start && t <= this.view.end).length;
    this.canvas.setAttribute('aria-label', `Speech of the coach and the client from ${clock(this.view.start)} to ${clock(this.view.end)}`
      + `, with ${silences} silence${silences === 1 ? '' : 's'} of 3 s or more`
      + `${pauses ? `, ${pauses} recording pause${pauses === 1 ? '' : 's'}` : ''}`
      + `${stops ? `, ${stops} server stop${stops === 1 ? '' : 's'}` : ''}. Click to play from a moment.`);
    this.tick();
  }

  /** The play position, every frame. */
  tick() {
    this.place(this.playhead, this.clock.now());
  }

  // --- pointer -------------------------------------------------------------------------

  timeAt(clientX) {
    const box = this.canvas.getBoundingClientRect();
    return this.view.start + ((clientX - box.left) / box.width) * this.view.width;
  }

  pointer() {
    const c = this.canvas;
    let press = null;
    c.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      press = { x: e.clientX, start: this.view.start, panned: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener('pointermove', (e) => {
      this.showHover(e.clientX);
      if (!press) return;
      if (!press.panned && Math.abs(e.clientX - press.x) < DRAG_PX) return;
      press.panned = true;
      c.classList.add('panning');
      const seconds = ((press.x - e.clientX) / c.clientWidth) * this.view.width;
      this.view.set(press.start + seconds, press.start + seconds + this.view.width);
    });
    const release = (e) => {
      if (press && !press.panned && e.type === 'pointerup') this.onSeek(this.timeAt(e.clientX));
      press = null;
      c.classList.remove('panning');
    };
    c.addEventListener('pointerup', release);
    c.addEventListener('pointercancel', release);
    c.addEventListener('pointerleave', () => {
      this.hover.hidden = true;
    });
    c.addEventListener('wheel', (e) => {
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        this.view.zoom(Math.exp(e.deltaY * WHEEL_ZOOM * (e.deltaMode ? 30 : 1)), this.timeAt(e.clientX));
      } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        const d = (e.shiftKey ? e.deltaY : 0) + e.deltaX;
        this.view.pan((d / c.clientWidth) * this.view.width * (e.deltaMode ? 30 : 1));
      }
    }, { passive: false });
  }

  showHover(clientX) {
    const t = this.timeAt(clientX);
    this.hover.hidden = false;
    this.place(this.hover, t);
    this.hover.firstChild.textContent = clockTenths(t);
  }
}
