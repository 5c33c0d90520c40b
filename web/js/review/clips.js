// A clip of the moment around a tag (docs/review.md: POST /clips), then its download. The
// server cuts it; the page only asks and hands the file to the browser's downloads.

import { at } from '../node.js';
import { h } from './dom.js';

export const BEFORE_S = 30;
export const AFTER_S = 15;

/**
 * Asks for a clip: {ok, url, filename, start_s, end_s, audioOnly} or {ok: false, message}. A
 * video clip the server cannot make (400; 409: no video of that moment) is asked again as audio.
 */
export async function requestClip(api, tagId, kind) {
  const ask = (k) => api.request('POST', '/clips', { tag: tagId, before_s: BEFORE_S, after_s: AFTER_S, kind: k });
  let res = await ask(kind);
  let audioOnly = false;
  if (kind === 'video' && (res.status === 400 || res.status === 409)) {
    res = await ask('audio');
    audioOnly = res.ok;
  }
  // The clip's signed /media/ link, under this page's node prefix as the recordings' (load.js).
  if (res.ok && res.data?.url) return { ok: true, audioOnly, ...res.data, url: at(res.data.url) };
  let message = res.message || `the server answered ${res.status}`;
  if (res.status === 0) message = 'the server cannot be reached';
  else if (res.status === 404 && !res.code) message = 'this server cannot make clips';
  return { ok: false, message };
}

/** Starts the download with an <a download>, as a click on a link would. */
export function download(url, filename) {
  const a = h('a', { href: url, download: filename || '' });
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}
