// The coach's indicator stream (docs/indicators.md) as state, and the session clock.
//
// Snapshots carry the whole state at least 4 times a second; speech, silence, presence, topology
// and nudge events update it at once in between. Listeners get `change` after every message and
// `link` when the connection's state changes.
//
// The session clock is the last message's session_time plus the time elapsed since it arrived.
// For display it coasts at most a second without news; for tags (sessionNow) it runs on
// without limit, and its anchor is kept in localStorage, so a tag made while the server is
// unreachable, even after a reload, still lands at the right session time.

import { Channel } from './signal.js';
import { keep, readKept } from './kept.js';

const COAST_S = 1; // how far the shown clock runs on without news before it waits
const ANCHOR_EVERY_MS = 2000; // how often the clock's anchor is saved
const ANALYSING_S = 2; // audio received within this long (session time) counts as analysing

export class IndicatorStream {
  constructor({ session, token }) {
    this.session = session;
    this.token = token;
    this.handlers = new Map();
    this.link = 'connecting'; // connecting | live | reconnecting | stopped
    this.problem = '';
    this.base = null; // session_time of the last message
    this.baseAt = 0; // performance.now() when it arrived
    this.shown = 0; // the session time shown, never going back by less than a jump
    this.speaking = new Set();
    this.silenceSince = null;
    this.participants = { coach: 'absent', client: 'absent' };
    this.topology = null;
    this.metrics = {};
    this.nudge = null; // the standing nudge, as the server reports it
    this.recording = undefined; // only what the server reports; undefined while it says nothing
    this.audioAt = null; // session time when more audio was last seen received
    this.received = 0;
    this.anchorKey = `livecoach.${session}.clock`;
    this.anchorSaved = 0;
    this.restoreAnchor();
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, arg) {
    for (const fn of this.handlers.get(type) ?? []) fn(arg);
  }

  // A dismissed nudge still standing in the live call: told over this stream, once a connection
  // (the outbox records it over HTTP; this is what makes the live call drop it at once).
  dismissLive(id) {
    if (!this.channel || this.sentDismissals.has(id)) return;
    if (this.channel.send({ type: 'dismiss', id })) this.sentDismissals.add(id);
  }

  open() {
    const channel = new Channel('/ws/indicators', { type: 'hello', session: this.session, token: this.token });
    this.channel = channel;
    this.sentDismissals = new Set();
    channel
      .on('open', () => { this.sentDismissals.clear(); this.setLink('connecting'); })
      .on('reconnecting', () => this.setLink('reconnecting'))
      .on('error', (m) => {
        if (!m.final) return;
        this.problem = m.text;
        this.setLink('stopped');
      })
      .on('snapshot', (m) => this.message(m, () => this.snapshot(m)))
      .on('speech', (m) => this.message(m, () => this.speech(m)))
      .on('silence', (m) => this.message(m, () => this.silence(m)))
      .on('recording', (m) => this.message(m, () => { this.recording = { state: m.state, audio: m.audio, problem: m.problem }; }))
      .on('presence', (m) => this.message(m, () => (this.participants[m.participant] = m.state)))
      .on('topology', (m) => this.message(m, () => (this.topology = m.topology)))
      .on('nudge', (m) => this.message(m, () => (this.nudge = m)));
    channel.open();
    return this;
  }

  // --- the clock -----------------------------------------------------------------------

  /** Session time at `at` (performance.now() time, default now), estimated; null when no
   * time was ever heard. */
  sessionNow(at = performance.now()) {
    if (this.base === null) return null;
    return this.base + (at - this.baseAt) / 1000;
  }

  /** The session time to show: coasts at most COAST_S past the last message. */
  displayNow() {
    if (this.base === null) return null;
    const coast = this.link === 'live' ? Math.min((performance.now() - this.baseAt) / 1000, COAST_S) : 0;
    const t = this.base + coast;
    // Never back by a little (jitter between messages); a real jump back (a new call) shows.
    this.shown = t < this.shown && t > this.shown - 2 ? this.shown : t;
    return this.shown;
  }

  at(sessionTime) {
    this.base = sessionTime;
    this.baseAt = performance.now();
    const wall = Date.now();
    if (wall - this.anchorSaved >= ANCHOR_EVERY_MS) {
      this.anchorSaved = wall;
      keep(this.anchorKey, { t: sessionTime, wall }); // if it fails, the clock still works while the page lives
    }
  }

  restoreAnchor() {
    const a = readKept(this.anchorKey, null);
    if (typeof a?.t !== 'number' || typeof a?.wall !== 'number') return;
    // Date.now() then, performance.now() now: the same instant on the page's own timeline.
    this.base = a.t;
    this.baseAt = performance.now() - Math.max(0, Date.now() - a.wall);
  }

  // --- messages ------------------------------------------------------------------------

  message(m, apply) {
    if (typeof m.session_time === 'number') this.at(m.session_time);
    apply();
    this.emit('change', m);
  }

  snapshot(m) {
    this.setLink('live');
    this.speaking = new Set(m.speaking ?? []);
    // current_silence is 0 while anyone speaks, or while a segment is not closed yet.
    const quiet = m.metrics?.current_silence ?? 0;
    this.silenceSince = this.speaking.size || !quiet ? null : m.session_time - quiet;
    Object.assign(this.participants, m.participants ?? {});
    this.topology = m.topology ?? this.topology;
    this.metrics = m.metrics ?? {};
    if ('nudge' in m) this.nudge = m.nudge;
    if ('recording' in m) this.recording = m.recording;
    const received = Object.values(m.audio ?? {}).reduce((sum, a) => sum + (a?.received_s ?? 0), 0);
    if (received > this.received) this.audioAt = m.session_time;
    this.received = received;
  }

  speech(m) {
    if (m.state === 'start') {
      this.speaking.add(m.participant);
      this.silenceSince = null;
    } else {
      this.speaking.delete(m.participant);
    }
  }

  silence(m) {
    this.speaking.clear();
    this.silenceSince = m.since;
  }

  setLink(state) {
    if (state === this.link) return;
    const back = state === 'live' && this.link !== 'live';
    this.link = state;
    this.emit('link', state);
    if (back) this.emit('back'); // (re)connected: a good moment to send what waits
  }

  // --- derived -------------------------------------------------------------------------

  /** coach, client, both or nobody. */
  who() {
    const coach = this.speaking.has('coach');
    const client = this.speaking.has('client');
    return coach && client ? 'both' : coach ? 'coach' : client ? 'client' : 'nobody';
  }

  /** Whether the server is taking in audio now: its counts grew lately. */
  analysing() {
    return this.link === 'live' && this.audioAt !== null && (this.base ?? 0) - this.audioAt <= ANALYSING_S;
  }
}
