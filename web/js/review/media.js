// The recordings as <audio> and <video> elements that follow the play clock (clock.js).
//
// Session time t plays each file at t - start_s; outside its file an element is paused (and a
// video hidden). While playing, the clock follows the first audio that is playing in step, and
// every other element is put back where the clock says when it drifts more than 0.15 s. While
// an element that should play is still loading, the clock holds (up to a few seconds), so the
// two participants never play apart. Videos are muted when the server's audio of the same
// participant exists: that audio is what was analysed, and it runs on the session clock exactly.

import { h } from './dom.js';

const DRIFT_S = 0.15; // resync an element further than this from the clock
const FOLLOW_S = 0.04; // re-anchor the clock to the leading audio beyond this
const PAUSED_SNAP_S = 0.05; // while paused, a seek shows the right frame
const HOLD_MAX_MS = 4000; // an element that cannot load holds the others at most this long
const HAVE_FUTURE_DATA = 3;
const NUDGE_FROM_S = 0.03; // below the resync, a drift beyond this is played away by a rate nudge
const NUDGE_MAX = 0.05; // at most 5 % faster or slower: unheard (pitch is preserved), unseen
const NAMES = { coach: 'coach', client: 'client' };

export class MediaSet {
  /**
   * @param {object[]} recordings the payload's recordings
   * @param {import('./clock.js').PlayClock} clock
   * @param {(text: string) => void} onProblem a sentence for the coach ('' clears it)
   */
  constructor(recordings, clock, onProblem) {
    this.clock = clock;
    this.onProblem = onProblem;
    this.problems = new Map();
    this.onSettle = null; // called when an element has seeked or can play: the clock may go on
    const withAudio = new Set(recordings.filter((r) => r.kind === 'audio' && r.url).map((r) => r.participant));
    this.items = recordings
      .filter((r) => r.url)
      .map((r) => this.make(r, r.kind === 'video' && withAudio.has(r.participant)));
  }

  make(r, muted) {
    const video = r.kind === 'video';
    const who = NAMES[r.participant] ?? r.participant;
    const el = h(video ? 'video' : 'audio', {
      preload: 'auto',
      src: r.url,
      'aria-label': `The ${who}'s ${video ? 'video' : 'audio'}`,
      dataset: { testid: 'media', recording: r.id, participant: r.participant, inside: 'false' },
    });
    if (video) el.playsInline = true;
    el.muted = muted;
    const item = { r, el, video, failed: false, waitingSince: null };
    const settle = () => this.onSettle?.();
    el.addEventListener('seeked', settle);
    el.addEventListener('canplay', settle);
    el.addEventListener('error', () => {
      item.failed = true;
      this.problem(r.id, `The ${who}'s ${video ? 'video' : 'audio'} could not be loaded${el.error?.message ? ` (${el.error.message})` : ''}. Reload the page to try again: its links to the recordings expire after 12 hours.`);
    });
    return item;
  }

  /** Resolves once every element can play (or has failed), or after `ms` at the latest. */
  playable(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        for (const m of this.items) {
          m.el.removeEventListener('canplay', check);
          m.el.removeEventListener('error', check);
        }
        resolve();
      };
      const check = () => {
        if (this.items.every((m) => m.failed || m.el.error || m.el.readyState >= HAVE_FUTURE_DATA)) done();
      };
      const timer = setTimeout(done, ms);
      for (const m of this.items) {
        m.el.addEventListener('canplay', check);
        m.el.addEventListener('error', check);
      }
      check();
    });
  }

  get audios() {
    return this.items.filter((m) => !m.video).map((m) => m.el);
  }

  /** The video elements of one participant (a tile shows whichever covers the play position). */
  videosOf(participant) {
    return this.items.filter((m) => m.video && m.r.participant === participant).map((m) => m.el);
  }

  problem(key, text) {
    if (text) this.problems.set(key, text);
    else this.problems.delete(key);
    this.onProblem([...this.problems.values()].join(' '));
  }

  local(m, t) {
    return t - m.r.start_s;
  }

  inside(m, t) {
    const length = Number.isFinite(m.r.duration_s) ? m.r.duration_s : m.el.duration;
    const local = this.local(m, t);
    return local >= 0 && (!Number.isFinite(length) || local < length);
  }

  /**
   * Puts every element where the clock says; called a few times a second and on every change.
   * An element still seeking is left to finish, unless `seeking`: the clock itself was moved (a
   * click, a key), and the element goes to the new place at once.
   */
  sync({ seeking = false } = {}) {
    const c = this.clock;
    if (c.playing && c.now() >= c.duration) c.pause();
    const live = this.items.filter((m) => !m.failed);
    let t = c.now();
    const running = c.playing && !c.held;
    let leader = null;
    if (running) {
      leader = live.find((m) => !m.video && !m.el.paused && !m.el.seeking && m.el.readyState >= HAVE_FUTURE_DATA
        && this.inside(m, t) && Math.abs(m.el.currentTime - this.local(m, t)) < DRIFT_S);
      const led = leader && leader.r.start_s + leader.el.currentTime;
      if (leader && Math.abs(led - t) > FOLLOW_S) {
        c.anchor(led);
        t = led;
      }
    }
    let waiting = false;
    for (const m of live) {
      const el = m.el;
      const inside = this.inside(m, t);
      el.dataset.inside = String(inside);
      if (m.video) el.hidden = !inside;
      if (!inside) {
        m.waitingSince = null;
        if (!el.paused) el.pause();
        continue;
      }
      const local = this.local(m, t);
      const drift = el.currentTime - local; // > 0: ahead of the clock
      if ((seeking || !el.seeking) && Math.abs(drift) > (running ? DRIFT_S : PAUSED_SNAP_S)) el.currentTime = local;
      const rate = running && m !== leader && Math.abs(drift) > NUDGE_FROM_S && Math.abs(drift) <= DRIFT_S
        ? c.rate * (1 - Math.sign(drift) * Math.min(NUDGE_MAX, Math.abs(drift) / 2)) : c.rate;
      if (el.playbackRate !== rate) el.playbackRate = rate;
      if (!running) {
        if (!el.paused) el.pause();
      } else if (el.paused) {
        el.play().catch((err) => this.refused(err));
      }
      if (c.playing && (el.seeking || el.readyState < HAVE_FUTURE_DATA)) {
        m.waitingSince ??= performance.now();
        if (performance.now() - m.waitingSince < HOLD_MAX_MS) waiting = true;
      } else {
        m.waitingSince = null;
      }
    }
    c.hold(c.playing && waiting);
  }

  refused(err) {
    if (err?.name === 'AbortError') return; // a pause() interrupted play(): expected
    if (err?.name === 'NotAllowedError') {
      this.clock.pause();
      this.problem('play', 'The browser did not allow sound to start by itself: press Play.');
      return;
    }
    this.problem('play', `The recording cannot be played here (${err?.message ?? err}).`);
  }

  /** The coach pressed Play: a refusal from before no longer stands. */
  played() {
    this.problem('play', '');
  }
}
