// What a page's link says: the session id from the path /s/<session>/<page>, the token from the
// fragment. A module of its own, importing only node.js (no imports of its own), so that a page
// that needs only this (the review, the sidebar window) does not load the call's modules with it.

import { pagePath } from './node.js';

/** The session id from the path [/n/<node>]/s/<session>/<page>, the token from the fragment. */
export function readLink() {
  const [, prefix, session] = pagePath.split('/');
  return {
    session: prefix === 's' && session ? decodeURIComponent(session) : '',
    token: location.hash.slice(1),
  };
}
