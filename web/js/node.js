// Which node a page came from, when several servers share the work (docs/deploy.md, "Several
// nodes"). A page loaded under /n/<node>/ calls the API and opens its websockets under the same
// prefix, so that the proxy sends them to the same node; a page loaded at / uses no prefix (one
// server, or a node reached at its own address). No imports: every page may load it cheaply.

const PREFIX = /^\/n\/[A-Za-z0-9_-]{1,64}(?=\/)/;

/** The prefix of this page's path ("/n/<node>"), or "" for none. */
export const nodePrefix = PREFIX.exec(location.pathname)?.[0] ?? '';

/** This page's path without the node prefix ("/s/<session>/coach"). */
export const pagePath = location.pathname.slice(nodePrefix.length);

/** A server path ("/api/…", "/ws/…", "/s/…") as this page reaches it. */
export const at = (path) => nodePrefix + path;

/** The websocket close code of a session that runs on another node (docs/signalling.md). */
export const MOVED = 4307;

/**
 * The session runs on another node: open this page there. `where` is "/n/<node>" (behind the
 * proxy) or the node's URL ("https://node2.example.org:8443"); anything else is ignored.
 * @returns {boolean} whether the page is going there
 */
export function goToNode(where) {
  if (typeof where !== 'string') return false;
  if (!/^\/n\/[A-Za-z0-9_-]{1,64}$/.test(where) && !/^https?:\/\/[^/?#]+$/.test(where)) return false;
  location.replace(`${where}${pagePath}${location.search}${location.hash}`);
  return true;
}
