// Which node a page came from, when several servers share the work (docs/deploy.md, "Several
// nodes"). A page loaded under /n/<node>/ calls the API and opens its websockets under the same
// prefix, so that the proxy sends them to the same node; a page loaded at / uses no prefix (one
// server, or a node reached at its own address). No imports: every page may load it cheaply.

const PREFIX = /^\/n\/[A-Za-z0-9_-]{1,64}(?=\/)/;

let prefix = PREFIX.exec(location.pathname)?.[0] ?? '';

/** This page's path without the node prefix ("/s/<session>/coach"). */
export const pagePath = location.pathname.slice(prefix.length);

/** The prefix now ("/n/<node>", or "" for none): it changes when the session moves to another
 * node behind the same proxy (goToNode). */
export const nodePrefix = () => prefix;

/** A server path ("/api/…", "/ws/…", "/s/…") as this page reaches it now. */
export const at = (path) => prefix + path;

/** The websocket close code of a session that runs on another node (docs/signalling.md). */
export const MOVED = 4307;

/**
 * The session runs on another node. `where` is "/n/<node>" (behind the proxy) or the node's URL
 * ("https://node2.example.org:8443"); anything else is ignored.
 * - Behind the same proxy the page stays, and the call with it: from now on every request and
 *   websocket goes under the new prefix (the address bar too), so the channels reconnect there
 *   at once and the call goes on on the new node.
 * - Another origin cannot be reached from this page (its requests would be another site's):
 *   the page is opened there, and the person joins again.
 * @returns {'here'|'away'|false} whether the page stays, goes, or ignores it
 */
export function goToNode(where) {
  if (typeof where !== 'string') return false;
  if (/^\/n\/[A-Za-z0-9_-]{1,64}$/.test(where)) {
    prefix = where;
    history.replaceState(history.state, '', `${where}${pagePath}${location.search}${location.hash}`);
    return 'here';
  }
  if (!/^https?:\/\/[^/?#]+$/.test(where)) return false;
  location.replace(`${where}${pagePath}${location.search}${location.hash}`);
  return 'away';
}
