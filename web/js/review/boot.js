// The review's first step: the answer to the review payload, asked for by review.html's inline
// script before any module loaded (or here, if it did not run), handed over to main.js, which
// imports this module (one instance: the same request). It imports only what reading the answer
// needs, none of the page's drawing.

import { Api } from '../api.js';
import { readLink } from '../link.js';
import { loadReview } from './load.js';

export const link = readLink();
export const api = new Api(link);

/** The review as loadReview answers it; each call asks the server again. */
export const request = () => loadReview(api);

const early = globalThis.livecoachEarly;
const sentEarly = early && early.path === location.pathname && early.token === link.token;

/** The first request, the inline script's or started here; null when the link names no session
 * (main.js says so). Without a token (opened from the library) the coach's login answers. */
export const first = !link.session ? null
  : sentEarly ? loadReview(api, early.review) : request();
