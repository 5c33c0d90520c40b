// Fetching the review payload (docs/review.md) and saying, in one sentence, why it could not be
// shown: the page never stays blank.

import { at } from '../node.js';

const SENTENCES = {
  'unknown-session': 'There is no such session. Check that you opened the whole link.',
  'bad-token': 'This link’s key is not accepted for this session. Open the review from your own coach link for this session.',
  forbidden: 'This is the client’s link. Only the coach’s link opens the review.',
};

export const BROKEN_LINK = 'This link is not complete. Open the whole link you were given, including the part after “#”.';

/** {ok: true, data} or {ok: false, text, retry}: retry when trying again may help. ``pending`` is
 * the fetch of a request already sent (review.html's inline script's), else it is asked for now. */
export async function loadReview(api, pending = null) {
  const res = pending ? await api.receive(pending) : await api.get('/review');
  if (res.ok) {
    const d = res.data;
    if (d && d.version === 1 && d.session && d.segments && d.summary && Array.isArray(d.recordings)) {
      return { ok: true, data: { ...d, recordings: d.recordings.map(reachable) } };
    }
    return { ok: false, retry: false, text: 'The server’s answer is not a review this page can read. The page may be older than the server: reload it.' };
  }
  if (SENTENCES[res.code]) return { ok: false, retry: false, text: SENTENCES[res.code] };
  if (res.status === 0) {
    return { ok: false, retry: true, text: 'The server cannot be reached. Check your connection, then try again.' };
  }
  if (res.status === 404) return { ok: false, retry: false, text: 'This server cannot show reviews.' };
  return { ok: false, retry: true, text: `The server could not load this session (${res.message || `error ${res.status}`}). Try again in a moment.` };
}

/** A recording whose media links (/media/…, signed) go under this page's node prefix, as its API
 * calls do: behind the proxy of several nodes they then reach the session's node at once, not
 * after a redirect (the server checks the signature on the path without the prefix). */
export function reachable(r) {
  const out = { ...r };
  for (const key of ['url', 'peaks_url']) {
    if (typeof r[key] === 'string' && r[key].startsWith('/media/')) out[key] = at(r[key]);
  }
  return out;
}
