// The review's first step, loaded before the rest of the page (review.html runs it as an async
// module of its own, first in the head): it asks for the review payload and the coach's
// settings at once, so that the request is on its way while main.js's modules still load, and
// hands the answer over to main.js, which imports this module (one instance: the same request).
// It imports only what the request needs, none of the page's drawing.

import { Api } from '../api.js';
import { readLink } from '../link.js';
import { loadReview } from './load.js';

export const link = readLink();
export const api = new Api(link);

/** [review, settings] as loadReview and Api.get answer them; each call asks the server again. */
export const request = () => Promise.all([loadReview(api), api.get('/settings')]);

/** The first request, started here; null when the link is not complete (main.js says so). */
export const first = link.session && link.token ? request() : null;
