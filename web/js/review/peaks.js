// The level strips: each recording's peaks (one byte per 100 ms of the file from its start_s,
// 0 silence … 255 full scale on a dB scale; docs/review.md), fetched once by their signed URL
// and read per screen column as the loudest byte in it.

const STEP_S = 0.1;

/**
 * Each participant's levels: {coach: [{start, bytes}], client: […]}. The server's audio is
 * preferred; a participant without audio peaks falls back to their video's. A strip that cannot
 * be fetched is left out (the lanes still show the speech).
 */
export async function loadLevels(recordings) {
  const levels = {};
  for (const kind of ['audio', 'video']) {
    const wanted = recordings.filter((r) => r.kind === kind && r.peaks_url && !levels[r.participant]);
    const fetched = await Promise.all(wanted.map(async (r) => ({ r, bytes: await fetchBytes(r.peaks_url) })));
    const found = {};
    for (const { r, bytes } of fetched) {
      if (bytes) (found[r.participant] ??= []).push({ start: r.start_s, bytes });
    }
    Object.assign(levels, found);
  }
  return levels;
}

async function fetchBytes(url) {
  try {
    const res = await fetch(url, { cache: 'force-cache' });
    return res.ok ? new Uint8Array(await res.arrayBuffer()) : null;
  } catch {
    return null;
  }
}

/** The loudest level (0–1) of a participant's parts in [a, b); 0 where no file covers it. */
export function levelIn(parts, a, b) {
  let max = 0;
  for (const { start, bytes } of parts) {
    const i0 = Math.max(0, Math.floor((a - start) / STEP_S));
    const i1 = Math.min(bytes.length, Math.ceil((b - start) / STEP_S));
    for (let i = i0; i < i1; i++) if (bytes[i] > max) max = bytes[i];
  }
  return max / 255;
}
