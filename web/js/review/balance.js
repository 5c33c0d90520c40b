// What the coach saw live: the talk balance of the last 5 minutes as the sidebar showed it
// (the once-a-second samples), the coach's nudge threshold, each nudge where it fired, and for
// each nudge the talk balance in the 3 minutes after it beside the 3 minutes before, counted
// from the speech segments (the same count as metrics.py), so a coach sees whether it helped.

import { clock, percent } from '../format.js';
import { h, s } from './dom.js';
import { coachShare } from './time.js';

const W = 1000; // the chart's own units; it stretches to its box
const EFFECT_S = 180;
const ABOUT = {
  talk_balance: 'your share of the talk over the threshold',
  monologue: 'a long turn of yours',
  wait: 'silences filled quickly',
  client_quiet: 'your client quiet a while',
};

const y = (share) => 100 - share * 100;

/**
 * An SVG path through the defined samples; a null (nobody spoke yet) breaks the line. At most
 * two points per unit of the chart's width, its lowest and highest, in time order: a 2-hour
 * call's 7,200 samples draw the same line from some 2,000 points.
 */
function path(ts, values, duration) {
  const r = (v) => Math.round(v * 10) / 10;
  let d = '';
  let pen = false;
  let column = -1;
  let n = 0; // samples in this column so far
  let lowX = 0; // where the column's lowest share is, and its highest
  let lowY = 0;
  let highX = 0;
  let highY = 0;
  const flush = () => {
    if (!n) return;
    const lowFirst = lowX <= highX;
    d += `${pen ? 'L' : 'M'}${r(lowFirst ? lowX : highX)} ${r(lowFirst ? lowY : highY)}`;
    if (lowX !== highX) d += `L${r(lowFirst ? highX : lowX)} ${r(lowFirst ? highY : lowY)}`;
    pen = true;
    n = 0;
  };
  for (let i = 0; i < ts.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      flush();
      pen = false;
      continue;
    }
    const x = (ts[i] / duration) * W;
    if (Math.floor(x) !== column) {
      flush();
      column = Math.floor(x);
    }
    const py = y(v);
    if (!n || py > lowY) { // y grows downwards: the lowest share
      lowX = x;
      lowY = py;
    }
    if (!n || py < highY) {
      highX = x;
      highY = py;
    }
    n += 1;
  }
  flush();
  return d;
}

/** The sample shown at time t (the last one at or before it). */
function sampleAt(samples, t) {
  let lo = 0;
  let hi = samples.t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (samples.t[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? samples.share_window[lo - 1] : null;
}

export class Balance {
  /**
   * @param {HTMLElement} root
   * @param {{data: object, threshold: number, clock, onSeek: (t: number) => void}} deps
   */
  constructor(root, { data, threshold, clock: playClock, onSeek }) {
    this.clock = playClock;
    this.onSeek = onSeek;
    this.duration = data.session.duration_s || 1;
    const samples = data.samples;
    const pct = Math.round(threshold * 100);

    root.append(
      h('h2', { text: 'What you saw live' }),
      h('p', { class: 'hint' },
        'Your share of the talk over the last 5 minutes, as the sidebar showed it, with ',
        h('span', { class: 'key-threshold', text: `your ${pct}% nudge threshold` }), ' and each nudge.'));
    if (!samples.t.length) {
      root.append(h('p', { class: 'hint', text: 'No live figures were kept for this session.' }));
    }

    const svg = s('svg', { viewBox: `0 0 ${W} 100`, preserveAspectRatio: 'none', 'aria-hidden': 'true' },
      s('rect', { class: 'bal-over', x: 0, y: 0, width: W, height: y(threshold) }),
      s('line', { class: 'bal-half', x1: 0, x2: W, y1: 50, y2: 50 }),
      s('line', { class: 'bal-threshold', x1: 0, x2: W, y1: y(threshold), y2: y(threshold) }),
      s('path', { class: 'bal-session', d: path(samples.t, samples.share_session, this.duration) }),
      s('path', { class: 'bal-window', d: path(samples.t, samples.share_window, this.duration) }));
    this.playhead = h('div', { class: 'bal-playhead' });
    const label = (text, share, cls) => {
      const el = h('span', { class: `bal-label ${cls}`, text });
      el.style.top = `${y(share)}%`;
      return el;
    };
    const marks = data.nudges.map((n) => {
      const dismissed = n.dismissed_at !== null && n.dismissed_at !== undefined;
      const el = h('span', { class: 'bal-nudge', dataset: { dismissed: String(dismissed), testid: 'balance-nudge' } });
      el.style.left = `${(n.session_time / this.duration) * 100}%`;
      el.style.top = `${y(sampleAt(samples, n.session_time) ?? threshold)}%`;
      return el;
    });
    const chart = h('div', {
      class: 'bal-chart', dataset: { testid: 'balance-chart' }, role: 'img',
      'aria-label': `Your talk share over the last 5 minutes through the call, against your ${pct}% threshold. Click to play from a moment.`,
    }, svg, label('100%', 1, ''), label(`${pct}%`, threshold, 'thr'), label('50%', 0.5, ''), marks, this.playhead);
    chart.addEventListener('click', (e) => {
      const box = svg.getBoundingClientRect();
      onSeek(((e.clientX - box.left) / box.width) * this.duration);
    });
    root.append(chart, h('p', { class: 'legend-line' },
      h('span', { class: 'swatch coach' }), 'last 5 minutes ',
      h('span', { class: 'swatch session-line' }), 'whole call so far ',
      h('span', { class: 'swatch nudge-open' }), 'nudge ',
      h('span', { class: 'swatch nudge-done' }), 'nudge you dismissed'));
    root.append(this.effects(data));
  }

  effects(data) {
    if (!data.nudges.length) return h('p', { class: 'hint', text: 'No nudges in this session.' });
    return h('ol', { class: 'nudge-effects', dataset: { testid: 'nudge-effects' } }, data.nudges.map((n) => {
      const t = n.session_time;
      const before = percent(coachShare(data.segments, Math.max(0, t - EFFECT_S), t));
      const after = percent(coachShare(data.segments, t, Math.min(this.duration, t + EFFECT_S)));
      const dismissed = n.dismissed_at !== null && n.dismissed_at !== undefined
        ? `dismissed after ${Math.max(0, Math.round(n.dismissed_at - t))} s` : 'not dismissed';
      let change = '';
      if (before !== null && after !== null) {
        const d = after - before;
        change = d === 0 ? ' (no change)' : ` (${Math.abs(d)} point${Math.abs(d) === 1 ? '' : 's'} ${d < 0 ? 'less' : 'more'})`;
      }
      const fmt = (p) => (p === null ? 'nobody spoke' : `${p}%`);
      return h('li', { dataset: { testid: 'nudge-effect', id: n.id } },
        h('button', { type: 'button', class: 'link', onclick: () => this.onSeek(t), 'aria-label': `Play from ${clock(t)}` }, clock(t)),
        ' ', h('strong', { text: n.text }), ` · ${ABOUT[n.kind] ?? n.kind} · ${dismissed}. `,
        h('span', { class: 'effect', text: `Your share of the talk: ${fmt(before)} in the 3 min before, ${fmt(after)} in the 3 min after${change}.` }));
    }));
  }

  tick() {
    this.playhead.style.left = `${(this.clock.now() / this.duration) * 100}%`;
  }
}
