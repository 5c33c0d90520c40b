// How the sidebar writes times and shares. Figures sit in fixed-width, tabular-number boxes,
// so these keep their length steady as the values change.

/** A session clock: m:ss, or h:mm:ss from an hour on. */
export function clock(t) {
  const s = Math.max(0, Math.floor(t));
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A duration: tenths under 10 s, whole seconds under a minute, then a clock. */
export function seconds(t) {
  if (t < 10) return `${(Math.floor(Math.max(0, t) * 10) / 10).toFixed(1)} s`;
  if (t < 60) return `${Math.floor(t)} s`;
  return clock(t);
}

/** A ratio as a whole percentage, or null when it is not defined (nobody spoke). */
export function percent(ratio) {
  return ratio === null || ratio === undefined ? null : Math.round(ratio * 100);
}

/** Sets an element's text only when it changes (no needless layout or mutation events). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
