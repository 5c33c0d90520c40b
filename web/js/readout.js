// The coach's live readout, from the indicator stream of docs/indicators.md.
//
// Snapshots carry the whole state at least 4 times a second; speech, silence, presence and
// topology events update it at once in between. The clock and the silence timer run on from
// the last message's session_time, so they tick smoothly between snapshots.

import { Channel } from './signal.js';

const TICK_MS = 100;
const COAST_S = 1; // how far the clock runs on without news before it waits

function clock(t) {
  const s = Math.floor(t);
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function seconds(t) {
  if (t < 10) return `${(Math.floor(t * 10) / 10).toFixed(1)} s`;
  if (t < 60) return `${Math.floor(t)} s`;
  return clock(t);
}

/** The coach's share as a whole percentage, or null when nobody spoke. */
function percent(ratio) {
  return ratio === null || ratio === undefined ? null : Math.round(ratio * 100);
}

export class Readout {
  constructor(root) {
    this.root = root;
    this.base = 0; // session_time of the last message
    this.baseAt = 0; // performance.now() when it arrived
    this.now = 0; // the session time shown, never going back
    this.speaking = new Set();
    this.silenceSince = null;
  }

  el(name) {
    return this.root.querySelector(`[data-testid="${name}"]`);
  }

  open({ session, token }) {
    const channel = new Channel('/ws/indicators', { type: 'hello', session, token });
    channel
      .on('open', () => this.setLink('connecting'))
      .on('reconnecting', () => this.setLink('reconnecting'))
      .on('error', (m) => {
        if (!m.final) return;
        this.setLink('stopped');
        this.el('readout-problem').textContent = m.text;
        this.el('readout-problem').hidden = false;
      })
      .on('snapshot', (m) => this.snapshot(m))
      .on('speech', (m) => this.speech(m))
      .on('silence', (m) => this.silence(m))
      .on('presence', (m) => this.presence(m))
      .on('topology', (m) => this.topology(m.topology));
    this.setLink('connecting');
    channel.open();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  // --- messages --------------------------------------------------------------------

  at(sessionTime) {
    this.base = sessionTime;
    this.baseAt = performance.now();
  }

  snapshot(m) {
    this.setLink('live');
    this.at(m.session_time);
    this.speaking = new Set(m.speaking);
    // current_silence is 0 while anyone speaks, or while a segment is not closed yet.
    const quiet = m.metrics?.current_silence ?? 0;
    this.silenceSince = this.speaking.size || !quiet ? null : m.session_time - quiet;
    for (const [who, state] of Object.entries(m.participants ?? {})) this.presence({ participant: who, state });
    this.topology(m.topology);
    this.shares(m.metrics ?? {});
    this.renderSpeaking();
    this.tick();
  }

  speech(m) {
    this.at(m.session_time);
    if (m.state === 'start') {
      this.speaking.add(m.participant);
      this.silenceSince = null;
    } else {
      this.speaking.delete(m.participant);
    }
    this.renderSpeaking();
    this.tick();
  }

  silence(m) {
    this.at(m.session_time);
    this.speaking.clear();
    this.silenceSince = m.since;
    this.renderSpeaking();
    this.tick();
  }

  presence(m) {
    const el = this.el(`${m.participant}-state`);
    if (!el) return;
    el.textContent = m.state;
    el.dataset.state = m.state;
  }

  topology(topology) {
    if (!topology) return;
    this.el('topology').textContent = topology;
    this.el('topology-hint').textContent = topology === 'relay' ? 'through the server' : 'browser to browser';
  }

  // --- rendering ---------------------------------------------------------------------

  setLink(state) {
    const el = this.el('readout-state');
    el.dataset.state = state;
    el.textContent = state;
  }

  renderSpeaking() {
    const coach = this.speaking.has('coach');
    const client = this.speaking.has('client');
    const who = coach && client ? 'both' : coach ? 'coach' : client ? 'client' : 'nobody';
    this.el('speaking').textContent = who;
    this.el('speaking').dataset.state = who;
  }

  shares(metrics) {
    for (const [scope, ratio] of [['session', metrics.talk_share_coach], ['window', metrics.window_talk_share_coach]]) {
      const coach = percent(ratio);
      this.el(`share-${scope}`).textContent = coach === null ? '—' : `${coach}%`;
      this.el(`share-${scope}-client`).textContent = coach === null ? '—' : `${100 - coach}%`;
      const bar = this.el(`share-${scope}-bar`);
      bar.dataset.empty = coach === null;
      bar.style.setProperty('--share', `${coach ?? 50}%`);
      bar.setAttribute('aria-label', coach === null ? 'Nobody spoke yet' : `Coach ${coach}%, client ${100 - coach}%`);
    }
  }

  tick() {
    if (!this.baseAt) return; // nothing heard yet
    const coast = Math.min((performance.now() - this.baseAt) / 1000, COAST_S);
    this.now = Math.max(this.now, this.base + coast);
    this.el('session-time').textContent = clock(this.now);
    const silence = this.el('silence');
    silence.textContent = this.silenceSince === null ? '—' : seconds(Math.max(0, this.now - this.silenceSince));
    silence.dataset.running = this.silenceSince !== null;
  }
}
