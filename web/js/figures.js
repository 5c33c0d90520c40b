// The sidebar's live figures, from the indicator stream: who speaks, the talk balance, the
// running silence, the wait time, a long monologue, the session clock and the states of the
// connection and the analysis. Only text and data attributes change: every figure has a box of
// fixed width, so nothing moves as the numbers change.

import { clock, percent, seconds, setText } from './format.js';

const MONOLOGUE_SHOWN_S = 60; // a coach turn is shown from this length on

const LINK_TEXT = { connecting: 'connecting', live: 'connected', reconnecting: 'reconnecting', stopped: 'stopped' };

const WITHDRAWN_WORDS = { analysis: 'the analysis', audio: 'audio recording', video: 'video recording' };

export class Figures {
  constructor(root, stream) {
    this.root = root;
    this.stream = stream;
  }

  el(name) {
    return this.root.querySelector(`[data-testid="${name}"]`);
  }

  /** Everything from the stream's state, after a message. */
  render() {
    const s = this.stream;
    const who = s.who();
    const speaking = this.el('speaking');
    speaking.dataset.state = who;
    setText(speaking, who);
    this.el('lamp-coach').dataset.on = String(who === 'coach' || who === 'both');
    this.el('lamp-client').dataset.on = String(who === 'client' || who === 'both');

    const m = s.metrics ?? {};
    this.share('window', m.window_talk_share_coach);
    this.share('session', m.talk_share_coach);

    const last = m.last_wait;
    const median = m.median_wait;
    setText(this.el('last-wait'), typeof last === 'number' ? seconds(last) : '—');
    setText(this.el('median-wait'), typeof median === 'number' ? seconds(median) : '—');
    const waits = Array.isArray(m.wait_times) ? m.wait_times.length : 0;
    this.el('wait-count').title = waits ? `The session's median over ${waits} wait${waits === 1 ? '' : 's'}; 3 s or more is the usual advice` : '';

    const turn = m.current_monologue?.coach ?? 0;
    const long = turn >= MONOLOGUE_SHOWN_S;
    const mono = this.el('monologue');
    mono.dataset.active = String(long);
    setText(mono, long ? clock(turn) : 'under 1 min');

    for (const who of ['coach', 'client']) {
      const el = this.el(`${who}-state`);
      const state = s.participants[who] ?? 'absent';
      el.dataset.state = state;
      setText(el, state === 'no-audio' ? 'no audio' : state);
    }
    if (s.topology) {
      setText(this.el('topology'), s.topology);
      setText(this.el('topology-hint'), s.topology === 'relay' ? 'through the server' : 'browser to browser');
    }
    this.states();
    this.tick();
  }

  share(scope, ratio) {
    const coach = percent(ratio);
    setText(this.el(`share-${scope}`), coach === null ? '—' : `${coach}%`);
    setText(this.el(`share-${scope}-client`), coach === null ? '—' : `${100 - coach}%`);
    const bar = this.el(`share-${scope}-bar`);
    bar.dataset.empty = String(coach === null);
    bar.style.setProperty('--share', `${coach ?? 50}%`);
    bar.setAttribute('aria-label', coach === null ? 'Nobody spoke yet' : `Coach ${coach}%, client ${100 - coach}%`);
  }

  /** The stream's link and what the server reports about analysis and recording. */
  states() {
    const s = this.stream;
    const link = this.el('stream-state');
    link.dataset.state = s.link;
    setText(link, LINK_TEXT[s.link] ?? s.link);
    // A link that stopped, or a recording that stopped (a full disk), is said in words.
    const rec = s.recording;
    const problem = this.el('sidebar-problem');
    const withdrew = Object.entries(rec?.withdrawn ?? {}).filter(([who, scopes]) => who !== 'coach' && scopes.length);
    const said = s.link === 'stopped' ? s.problem : rec?.state === 'failed' ? rec.problem
      : withdrew.length ? `The client withdrew consent to: ${withdrew[0][1].map((x) => WITHDRAWN_WORDS[x] ?? x).join(', ')}.` : '';
    setText(problem, said ?? '');
    problem.hidden = !said;

    // Recording as the server reports it (docs/indicators.md); when it records nothing, whether
    // audio is analysed.
    let state;
    if (s.link !== 'live') state = 'unknown';
    else if (rec?.state === 'on') state = 'recording';
    else if (rec?.state === 'paused' || rec?.state === 'failed') state = rec.state;
    else if (s.analysing()) state = 'analysing';
    else state = 'idle';
    const el = this.el('recording-state');
    el.dataset.state = state;
    setText(el, { unknown: 'not known', recording: 'recording', paused: 'recording paused', failed: 'recording stopped',
                  analysing: 'analysing', idle: 'no audio' }[state]);
    el.title = state === 'recording' ? 'The server is recording and analysing.'
      : state === 'failed' ? (rec.problem ?? 'Recording stopped.') : 'The server is not recording.';
  }

  /** The running figures, several times a second between messages. */
  tick() {
    const s = this.stream;
    const now = s.displayNow();
    setText(this.el('session-time'), now === null ? '—:—' : clock(now));
    const silence = this.el('silence');
    const running = s.silenceSince !== null && now !== null && s.link === 'live';
    silence.dataset.running = String(running);
    setText(silence, running ? seconds(Math.max(0, now - s.silenceSince)) : '—');
  }
}
