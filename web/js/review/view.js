// The stretch of the call that the detail timeline shows: [start, end] in session seconds.
// The overview, the zoom buttons, the wheel and the play position all move this one window.

import { clamp } from './time.js';

const MIN_WIDTH_S = 10; // closer than this, 2,000 px would show a few words
const DEFAULT_WIDTH_S = 600; // a long call opens on its first 10 minutes
const WHOLE_UNDER_S = 900; // a call up to 15 minutes opens whole
const PAGE_AT = 0.1; // when the play position leaves the window, it comes back this far in

export class View {
  constructor(duration) {
    this.duration = Math.max(duration, 1);
    this.listeners = [];
    this.start = 0;
    this.end = this.duration <= WHOLE_UNDER_S ? this.duration : DEFAULT_WIDTH_S;
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  get width() {
    return this.end - this.start;
  }

  get whole() {
    return this.start <= 0 && this.end >= this.duration;
  }

  /** Shows [start, end], kept inside the call and no narrower than the minimum. */
  set(start, end) {
    const width = clamp(end - start, Math.min(MIN_WIDTH_S, this.duration), this.duration);
    const a = clamp(start, 0, this.duration - width);
    if (a === this.start && a + width === this.end) return;
    this.start = a;
    this.end = a + width;
    for (const fn of this.listeners) fn(this);
  }

  /** Zooms by `factor` (< 1 closer), keeping time `around` where it is on screen. */
  zoom(factor, around = (this.start + this.end) / 2) {
    const width = clamp(this.width * factor, Math.min(MIN_WIDTH_S, this.duration), this.duration);
    const at = (around - this.start) / this.width;
    this.set(around - at * width, around - at * width + width);
  }

  pan(seconds) {
    this.set(this.start + seconds, this.end + seconds);
  }

  showWhole() {
    this.set(0, this.duration);
  }

  /** Brings t into view if it is outside, a little in from the left edge. */
  reveal(t) {
    if (t >= this.start && t <= this.end) return;
    this.set(t - this.width * PAGE_AT, t - this.width * PAGE_AT + this.width);
  }

  /** 0 at the window's start, 1 at its end. */
  fraction(t) {
    return (t - this.start) / this.width;
  }
}
