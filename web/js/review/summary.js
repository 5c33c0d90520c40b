// The summary beside the timeline: the session's figures (summary.metrics, named as in
// docs/metrics.md), the talk balance by quarter, and the longest silences and turns as links
// that play from there. The talk-share bars reuse the sidebar's (style.css .share-bar).

import { clock, percent, seconds } from '../format.js';
import { h } from './dom.js';

function shareBar(ratio, label) {
  const p = percent(ratio);
  const bar = h('span', {
    class: 'share-bar', role: 'img', dataset: { empty: String(p === null) },
    'aria-label': p === null ? `${label}: nobody spoke` : `${label}: coach ${p}%, client ${100 - p}%`,
  }, h('span', { class: 'part coach' }), h('span', { class: 'part client' }));
  bar.style.setProperty('--share', `${p ?? 50}%`);
  return bar;
}

const pair = (m, fmt) => `coach ${fmt(m?.coach ?? 0)} · client ${fmt(m?.client ?? 0)}`;
const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;

const LEAD_IN_S = 2; // a silence plays from a little before it: what led to it

export function renderSummary(root, data, seek) {
  const m = data.summary.metrics ?? {};
  const share = percent(m.talk_share_coach);
  const waits = m.wait_times?.length ?? 0;
  const link = (t, text) => h('button', { type: 'button', class: 'link', onclick: () => seek(t) }, text);
  const rows = [
    ['Talk time', pair(m.talk_time, clock), 'talk-time'],
    ['Median wait', m.median_wait === null || m.median_wait === undefined ? 'no waits'
      : `${seconds(m.median_wait)} over ${count(waits, 'wait', 'waits')} (3 s or more is the usual advice)`, 'median-wait'],
    ['Longest silence', `${seconds(m.longest_silence ?? 0)}; ${count(m.long_silences ?? 0, 'silence', 'silences')} of 2 s or more`, 'longest-silence'],
    ['Interruptions', pair(m.interruptions, String), 'interruptions'],
    ['Both at once', `${count(m.overlaps ?? 0, 'time', 'times')}, ${seconds(m.overlap_time ?? 0)} in all`, 'overlaps'],
    ['Longest turn', pair(m.longest_monologue, clock), 'longest-turn'],
    ['Turn taking', `${count(m.switches ?? 0, 'switch', 'switches')}, ${(m.interactivity_per_min ?? 0).toFixed(1)} a minute`, 'switches'],
    ['Backchannels', pair(m.backchannels, String), 'backchannels'],
    ['Filled silences', String(m.filled_silences ?? 0), 'filled-silences'],
  ];
  root.append(
    h('h2', { text: 'Summary' }),
    h('div', { class: 'share', dataset: { testid: 'sum-share' } },
      h('span', { class: 'share-scope', text: 'Talk share, whole call' }),
      h('span', { class: 'share-coach big', text: share === null ? '—' : `${share}%` }),
      shareBar(m.talk_share_coach, 'Whole call'),
      h('span', { class: 'share-client big', text: share === null ? '—' : `${100 - share}%` })),
    h('dl', { class: 'figures' }, rows.map(([dt, dd, id]) => [h('dt', { text: dt }), h('dd', { text: dd, dataset: { testid: `sum-${id}` } })])),
    h('h3', { text: 'Talk balance by quarter' }),
    h('ol', { class: 'quarters', dataset: { testid: 'quarters' } }, data.summary.quarters.map((q) => {
      const p = percent(q.talk_share_coach);
      return h('li', {},
        link(q.start, `${clock(q.start)}–${clock(q.end)}`),
        shareBar(q.talk_share_coach, `${clock(q.start)} to ${clock(q.end)}`),
        h('span', { class: 'q-share', text: p === null ? 'nobody spoke' : `coach ${p}%` }));
    })),
    h('h3', { text: 'Longest silences' }),
    list(data.summary.longest_silences, (x) => [link(Math.max(0, x.start - LEAD_IN_S), clock(x.start)), ` ${seconds(x.end - x.start)}`], 'longest-silences'),
    h('h3', { text: 'Longest turns' }),
    list(data.summary.longest_turns, (x) => [link(x.start, clock(x.start)), ` ${x.participant} for ${seconds(x.end - x.start)}`], 'longest-turns'));
}

function list(items, row, testid) {
  if (!items.length) return h('p', { class: 'hint', text: 'None.' });
  return h('ol', { class: 'longest', dataset: { testid } }, items.map((x) => h('li', {}, row(x))));
}
