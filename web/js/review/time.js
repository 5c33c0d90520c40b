// Session times on the review page: rounding, reading a typed time, and the spans helpers
// shared by the timeline, the summary and the nudge effects.

import { clock } from '../format.js';

export const round3 = (t) => Math.round(t * 1000) / 1000;

export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

/** A clock with tenths (m:ss.s or h:mm:ss.s), for times a coach edits to the tenth. */
export function clockTenths(t) {
  const whole = Math.floor(Math.max(0, t) + 1e-6);
  const tenth = Math.floor((Math.max(0, t) - whole) * 10 + 1e-6);
  return `${clock(whole)}.${tenth}`;
}

/** Reads "1:02:03.4", "2:03", "123.5" (seconds) as seconds; null if it is not a time. */
export function parseClock(text) {
  const parts = String(text).trim().split(':');
  if (!parts.length || parts.length > 3) return null;
  let t = 0;
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (!(last ? /^\d+(\.\d*)?$/ : /^\d+$/).test(part)) return null;
    const n = Number(part);
    if (i > 0 && n >= 60) return null;
    t = t * 60 + n;
  }
  return t;
}

/** The first index whose span ends after t, in spans sorted by start that do not overlap. */
export function firstEndingAfter(spans, t) {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid][1] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Seconds of the spans inside [a, b). */
export function covered(spans, a, b) {
  let total = 0;
  for (let i = firstEndingAfter(spans, a); i < spans.length && spans[i][0] < b; i++) {
    total += Math.max(0, Math.min(spans[i][1], b) - Math.max(spans[i][0], a));
  }
  return total;
}

/** The coach's share of the talk in [a, b), as metrics.py counts it; null if nobody spoke. */
export function coachShare(segments, a, b) {
  const coach = covered(segments.coach, a, b);
  const client = covered(segments.client, a, b);
  return coach + client > 0 ? coach / (coach + client) : null;
}
