// A client's trends as small SVG charts (docs/library.md): one point per session, oldest on the
// left, evenly spaced (a session is a step, whatever the days between), with the coach's target
// drawn as a dashed line. Coach and client differ by shape as well as colour (circle, square).
// The values and the targets come from the server's answer: nothing is computed or set here.

import { clock, percent, seconds } from './format.js';
import { s } from './review/dom.js';

const W = 320;
const H = 150;
const PAD = { left: 40, right: 12, top: 14, bottom: 26 };
const KIND_CLASSES = 8; // .kind-0 … .kind-7 in library.css

/** The charts of a trends answer, in the order the page shows them. */
export function trendCharts(answer) {
  const points = answer.points;
  const t = answer.targets;
  const f = (p) => p.figures ?? {};
  const byKind = answer.tag_kinds.map((k) => k.id);
  for (const p of points) for (const k of Object.keys(f(p).tags ?? {})) if (!byKind.includes(k)) byKind.push(k);
  const labels = Object.fromEntries(answer.tag_kinds.map((k) => [k.id, k.label]));
  return [
    lineChart('talk_share', 'Talk share, coach', points, [{ role: 'coach', value: (p) => f(p).talk_share_coach }],
      { max: 1, format: (v) => `${percent(v)}%`, target: t.talk_share_coach_max, targetText: `your limit ${percent(t.talk_share_coach_max)}%` }),
    lineChart('median_wait', 'Median wait', points, [{ role: 'coach', value: (p) => f(p).median_wait_s }],
      { format: seconds, target: t.wait_min_s, targetText: `aim: ${t.wait_min_s} s or more` }),
    lineChart('longest_silence', 'Longest silence', points, [{ role: 'silence', value: (p) => f(p).longest_silence_s }],
      { format: seconds }),
    lineChart('longest_turn', 'Longest turn', points, [
      { role: 'coach', value: (p) => f(p).longest_turn_s?.coach },
      { role: 'client', value: (p) => f(p).longest_turn_s?.client },
    ], { format: clock, target: t.turn_max_s, targetText: `coach limit ${clock(t.turn_max_s)}` }),
    lineChart('interruptions', 'Interruptions', points, [
      { role: 'coach', value: (p) => f(p).interruptions?.coach },
      { role: 'client', value: (p) => f(p).interruptions?.client },
    ], { format: String, integer: true }),
    tagChart(points, byKind, labels),
  ];
}

const x = (i, n) => PAD.left + (n <= 1 ? (W - PAD.left - PAD.right) / 2 : (i * (W - PAD.left - PAD.right)) / (n - 1));
const day = (p) => new Date(p.created_at * 1000).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });

/** A line chart of one or two series over the sessions, with an optional target line. */
function lineChart(id, title, points, series, { max, format, target, targetText, integer }) {
  const values = series.flatMap((sr) => points.map(sr.value)).filter((v) => v !== null && v !== undefined);
  let top = max ?? Math.max(...values, target ?? 0, integer ? 4 : 1e-9) * 1.1;
  if (integer) top = Math.ceil(top);
  const y = (v) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const svg = frame(title, points);
  svg.append(
    s('text', { class: 'axis', x: PAD.left - 6, y: y(top) + 4, 'text-anchor': 'end' }, format(top)),
    s('text', { class: 'axis', x: PAD.left - 6, y: y(0) + 4, 'text-anchor': 'end' }, format(0)));
  if (target !== undefined && target !== null && target <= top) {
    svg.append(s('line', { class: 'target', x1: PAD.left, x2: W - PAD.right, y1: y(target), y2: y(target), 'data-testid': 'trend-target' }),
      s('text', { class: 'target-text', x: W - PAD.right, y: y(target) - 4, 'text-anchor': 'end' }, targetText));
  }
  for (const sr of series) {
    const at = points.map((p, i) => [p, i, sr.value(p)]).filter(([, , v]) => v !== null && v !== undefined);
    if (at.length > 1) {
      svg.append(s('polyline', { class: `series ${sr.role}`, points: at.map(([, i, v]) => `${x(i, points.length)},${y(v)}`).join(' ') }));
    }
    for (const [p, i, v] of at) {
      const cx = x(i, points.length);
      const label = `${day(p)}: ${sr.role === 'silence' ? '' : `${sr.role} `}${format(v)}`;
      const mark = sr.role === 'client'
        ? s('rect', { class: `point ${sr.role}`, x: cx - 3.5, y: y(v) - 3.5, width: 7, height: 7 })
        : s('circle', { class: `point ${sr.role}`, cx, cy: y(v), r: 3.8 });
      mark.setAttribute('data-testid', 'trend-point');
      mark.setAttribute('data-session', p.id);
      mark.append(s('title', {}, label));
      svg.append(mark);
    }
  }
  return figure(id, title, svg, series.length > 1 ? series.map((sr) => sr.role) : null);
}

/** Tags by kind: one stacked bar per session. */
function tagChart(points, kinds, labels) {
  const counts = points.map((p) => p.figures?.tags ?? {});
  const top = Math.max(4, ...counts.map((c) => Object.values(c).reduce((a, b) => a + b, 0)));
  const y = (v) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const svg = frame('Tags by kind', points);
  svg.append(s('text', { class: 'axis', x: PAD.left - 6, y: y(top) + 4, 'text-anchor': 'end' }, String(top)),
    s('text', { class: 'axis', x: PAD.left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0'));
  const step = points.length > 1 ? (W - PAD.left - PAD.right) / (points.length - 1) : 40;
  const bw = Math.max(2, Math.min(18, step * 0.6));
  points.forEach((p, i) => {
    let sum = 0;
    const group = s('g', { 'data-testid': 'trend-point', 'data-session': p.id });
    kinds.forEach((k, j) => {
      const n = counts[i][k] ?? 0;
      if (!n) return;
      group.append(s('rect', { class: `kind-${j % KIND_CLASSES}`, x: x(i, points.length) - bw / 2, y: y(sum + n), width: bw, height: y(sum) - y(sum + n) },
        s('title', {}, `${day(p)}: ${labels[k] ?? k} ${n}`)));
      sum += n;
    });
    if (!sum) group.append(s('rect', { class: 'none', x: x(i, points.length) - bw / 2, y: y(0) - 1, width: bw, height: 1 }, s('title', {}, `${day(p)}: no tags`)));
    svg.append(group);
  });
  const used = kinds.filter((k) => counts.some((c) => c[k]));
  return figure('tags', 'Tags by kind', svg, null, used.map((k) => [`kind-${kinds.indexOf(k) % KIND_CLASSES}`, labels[k] ?? k]));
}

/** The chart's frame: its axes and the first and last sessions' dates. */
function frame(title, points) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}, ${points.length} sessions` });
  svg.append(
    s('line', { class: 'axis-line', x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }),
    s('line', { class: 'axis-line', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom }));
  if (points.length) {
    svg.append(s('text', { class: 'axis', x: x(0, points.length), y: H - 8, 'text-anchor': points.length > 1 ? 'start' : 'middle' }, day(points[0])));
    if (points.length > 1) svg.append(s('text', { class: 'axis', x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, day(points.at(-1))));
  }
  return svg;
}

function figure(id, title, svg, roles, legend = null) {
  const fig = document.createElement('figure');
  fig.className = 'trend';
  fig.dataset.testid = 'trend-chart';
  fig.dataset.figure = id;
  const caption = document.createElement('figcaption');
  caption.textContent = title;
  const keys = legend ?? (roles ? roles.map((r) => [r, r]) : []);
  for (const [cls, text] of keys) {
    const key = document.createElement('span');
    key.className = 'key';
    const swatch = document.createElement('span');
    swatch.className = `swatch ${cls}`;
    key.append(swatch, text);
    caption.append(' ', key);
  }
  fig.append(caption, svg);
  return fig;
}
