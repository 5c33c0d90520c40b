// Drawing the session on a canvas: speech lanes (coach solid blue, client hatched orange, as in
// the sidebar), absences (away, no audio, muted), silences, overlaps, level strips, recording
// pauses, interruptions and a time axis. A canvas, not an element per segment: 2,000 segments redraw in a millisecond or two at
// any zoom, and only the spans inside the window are visited (the lists are sorted). Spans that
// touch on screen are drawn as one bar: the whole call's 2,000 segments are a few hundred bars.

import { clock } from '../format.js';
import { levelIn } from './peaks.js';
import { firstEndingAfter } from './time.js';

const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const TICK_MIN_PX = 84;
const LEVEL_COLUMN_PX = 2;
const ABSENCE_LABELS = { absent: 'away', 'no-audio': 'no audio', muted: 'muted' };

/** The palette of style.css (its custom properties), read once per draw so dark mode follows. */
export function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    coach: v('--coach'), client: v('--client'), text: v('--text'), muted: v('--muted'),
    border: v('--border'), surface: v('--surface'), bg: v('--bg'), danger: v('--danger'), warn: v('--warn'),
  };
}

/** Sizes the canvas to its box at the screen's pixel density: the 2D context in CSS pixels. */
export function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

const tiles = new Map(); // one tile per colouring, made once: every draw of both canvases uses them

function hatch(ctx, colour, background, alpha) {
  const key = `${colour}|${background}|${alpha}`;
  if (!tiles.has(key)) tiles.set(key, hatchTile(colour, background, alpha));
  return ctx.createPattern(tiles.get(key), 'repeat');
}

function hatchTile(colour, background, alpha) {
  const tile = document.createElement('canvas');
  tile.width = 8;
  tile.height = 8;
  const t = tile.getContext('2d');
  t.fillStyle = background;
  t.fillRect(0, 0, 8, 8);
  t.globalAlpha = alpha;
  t.strokeStyle = colour;
  t.lineWidth = 3.5;
  t.beginPath();
  for (const d of [-8, 0, 8]) { // 135° stripes that meet across tiles
    t.moveTo(d, 8);
    t.lineTo(d + 8, 0);
  }
  t.stroke();
  return tile;
}

/**
 * Draws [start, end] of the session over the canvas's width.
 * @param {object} data the payload
 * @param {{start: number, end: number}} range
 * @param {object[]} rows {kind: 'axis'|'lane'|'level'|'between', who, y, h, down}
 * @param {object} levels from peaks.js (may be empty)
 */
export function draw(canvas, data, range, rows, levels = {}) {
  const { ctx, width } = fit(canvas);
  const c = theme();
  const span = range.end - range.start;
  const x = (t) => ((t - range.start) / span) * width;
  const lanes = rows.filter((r) => r.kind !== 'axis');
  const top = Math.min(...lanes.map((r) => r.y));
  const bottom = Math.max(...lanes.map((r) => r.y + r.h));
  const between = rows.find((r) => r.kind === 'between');
  const fill = { coach: c.coach, client: hatch(ctx, c.client, c.surface, 1) };
  fill.clientBack = c.client;

  // Each visible span once: from the first that ends after the window's start.
  const visible = (spans, fn) => {
    for (let i = firstEndingAfter(spans, range.start); i < spans.length && spans[i][0] < range.end; i++) fn(spans[i]);
  };
  const bar = (a, b, y, h) => {
    const x0 = x(a);
    ctx.fillRect(x0, y, Math.max(1, x(b) - x0), h);
  };
  // The visible spans as bars, each at least 1 px wide, those that touch or overlap on screen
  // joined: the same pixels in a fraction of the fills (and of their raster). Flat [x0, x1, …]
  // from plain loops, no destructuring: the first drawing runs cold, as the page is first shown.
  const bars = (spans) => {
    const out = [];
    for (let i = firstEndingAfter(spans, range.start); i < spans.length && spans[i][0] < range.end; i++) {
      const x0 = x(spans[i][0]);
      const x1 = Math.max(x0 + 1, x(spans[i][1]));
      const last = out.length - 1;
      if (last > 0 && x0 <= out[last]) out[last] = Math.max(out[last], x1);
      else out.push(x0, x1);
    }
    return out;
  };
  const fillBars = (list, y, h) => {
    for (let i = 0; i < list.length; i += 2) ctx.fillRect(list[i], y, list[i + 1] - list[i], h);
  };

  // Silences of 3 s or more: a calm grey across the lanes, their length written between them.
  ctx.fillStyle = c.muted;
  ctx.globalAlpha = 0.13;
  fillBars(bars(data.silences), top, bottom - top);
  ctx.globalAlpha = 1;
  if (between) {
    ctx.fillStyle = c.muted;
    ctx.font = '600 10px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    visible(data.silences, ([a, b]) => {
      if (x(b) - x(a) >= 34) ctx.fillText(`${Math.round(b - a)} s`, (x(a) + x(b)) / 2, between.y + between.h / 2);
    });
  }

  for (const row of rows) {
    if (row.kind === 'level' && levels[row.who]) {
      ctx.fillStyle = c[row.who];
      ctx.globalAlpha = 0.5;
      for (let px = 0; px < width; px += LEVEL_COLUMN_PX) {
        const a = range.start + (px / width) * span;
        const v = levelIn(levels[row.who], a, a + (LEVEL_COLUMN_PX / width) * span);
        if (v <= 0) continue;
        const h = Math.max(1, v * row.h);
        ctx.fillRect(px, row.down ? row.y : row.y + row.h - h, LEVEL_COLUMN_PX - 0.5, h);
      }
      ctx.globalAlpha = 1;
    } else if (row.kind === 'lane') {
      ctx.fillStyle = c.border;
      ctx.globalAlpha = 0.35;
      ctx.fillRect(0, row.y, width, row.h);
      ctx.globalAlpha = 1;
      const speech = bars(data.segments[row.who] ?? []);
      ctx.fillStyle = fill[row.who];
      fillBars(speech, row.y, row.h);
      if (row.who === 'client') { // the hatch's edges, so short segments still read as orange
        ctx.fillStyle = fill.clientBack;
        fillBars(speech, row.y, 2);
        fillBars(speech, row.y + row.h - 2, 2);
      }
      drawAbsences(data.absences?.[row.who] ?? [], row);
    }
  }

  // Both at once: a dark bar between the lanes.
  if (between) {
    ctx.fillStyle = c.text;
    fillBars(bars(data.overlaps), between.y + between.h * 0.2, between.h * 0.6);
  }

  // Out of the call, unheard (their audio stopped coming: a dropped network) or muted: the
  // lane hatched grey (lighter for a mute), labelled where there is room.
  function drawAbsences(spans, row) {
    for (const [a, b, state] of spans) {
      if (b < range.start || a > range.end) continue;
      ctx.fillStyle = hatch(ctx, c.muted, 'rgba(0,0,0,0)', state === 'muted' ? 0.25 : 0.6);
      bar(a, b, row.y, row.h);
      if (x(b) - x(a) > 60) {
        ctx.fillStyle = c.text;
        ctx.font = '600 11px system-ui, sans-serif';
        ctx.textAlign = 'left';
        ctx.textBaseline = 'middle';
        ctx.fillText(ABSENCE_LABELS[state] ?? state, Math.max(x(a), 0) + 4, row.y + row.h / 2);
      }
    }
  }

  // Recording paused: hatched grey over everything, labelled.
  const paused = hatch(ctx, c.muted, 'rgba(0,0,0,0)', 0.45);
  for (const [a, bEnd] of data.pauses) {
    const b = bEnd ?? data.session.duration_s;
    if (b < range.start || a > range.end) continue;
    ctx.fillStyle = paused;
    bar(a, b, top, bottom - top);
    if (x(b) - x(a) > 90) {
      ctx.fillStyle = c.text;
      ctx.font = '600 11px system-ui, sans-serif';
      ctx.textAlign = 'left';
      ctx.textBaseline = 'top';
      ctx.fillText('recording paused', Math.max(x(a), 0) + 4, top + 2);
    }
  }

  // The server stopped here (a worker restarted): a dashed line in the danger colour.
  ctx.strokeStyle = c.danger;
  ctx.lineWidth = 2;
  ctx.setLineDash([4, 3]);
  for (const t of data.interruptions) {
    if (t < range.start || t > range.end) continue;
    ctx.beginPath();
    ctx.moveTo(x(t), top);
    ctx.lineTo(x(t), bottom);
    ctx.stroke();
  }
  ctx.setLineDash([]);

  const axis = rows.find((r) => r.kind === 'axis');
  if (axis) drawAxis(ctx, c, range, width, axis);
}

function drawAxis(ctx, c, range, width, row) {
  const span = range.end - range.start;
  const step = TICK_STEPS.find((s) => (s / span) * width >= TICK_MIN_PX) ?? TICK_STEPS.at(-1);
  ctx.fillStyle = c.muted;
  ctx.strokeStyle = c.border;
  ctx.lineWidth = 1;
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  for (let t = Math.ceil(range.start / step) * step; t <= range.end; t += step) {
    const x = Math.round(((t - range.start) / span) * width) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, row.y + row.h - 6);
    ctx.lineTo(x, row.y + row.h);
    ctx.stroke();
    if (x < width - 30) ctx.fillText(clock(t), x + 3, row.y + 1);
  }
}
