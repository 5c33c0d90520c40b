// The play clock: one session time that every media element follows (media.js), so the two
// participants stay in step even where one file starts later, has ended, or is still loading.
// It runs on performance.now() between anchors; media.js re-anchors it to the audio that is
// actually playing, and holds it while that audio buffers.

import { clamp } from './time.js';

export class PlayClock {
  constructor(duration) {
    this.duration = duration;
    this.base = 0; // session time at `at`
    this.at = performance.now();
    this.playing = false;
    this.held = false; // playing, but waiting for media to load
    this.rate = 1;
    this.listeners = { seek: [], state: [] };
  }

  on(type, fn) {
    this.listeners[type].push(fn);
    return this;
  }

  emit(type) {
    for (const fn of this.listeners[type]) fn(this);
  }

  now() {
    if (!this.playing || this.held) return this.base;
    return Math.min(this.duration, this.base + ((performance.now() - this.at) / 1000) * this.rate);
  }

  anchor(t) {
    this.base = clamp(t, 0, this.duration);
    this.at = performance.now();
  }

  seek(t) {
    this.anchor(t);
    this.emit('seek');
  }

  play() {
    if (this.playing) return;
    if (this.base >= this.duration - 0.05) this.anchor(0); // from the end: start again
    else this.anchor(this.base);
    this.playing = true;
    this.emit('state');
  }

  pause() {
    if (!this.playing) return;
    this.anchor(this.now());
    this.playing = false;
    this.emit('state');
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  setRate(rate) {
    this.anchor(this.now());
    this.rate = rate;
    this.emit('state');
  }

  /** Stops the clock while media loads (true) and lets it run on (false). */
  hold(on) {
    if (on === this.held) return;
    this.anchor(this.now());
    this.held = on;
    this.emit('state');
  }
}
