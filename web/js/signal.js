// One JSON websocket to the server: hello first, messages dispatched by `type`, a keep-alive
// ping, and reconnection with backoff. Used for /ws/signal (docs/signalling.md) and for the
// coach's /ws/indicators (docs/indicators.md), which open the same way.

import { MOVED, at, goToNode } from './node.js';

// What a person is told for the errors after which trying again with the same link cannot
// help: the link is refused, or another window has taken over. The other errors that close the
// connection (timeout, too-big, too-many) are followed by a reconnection like any dropped
// connection; the errors that leave it open are for the console.
const FINAL = {
  'bad-hello': 'The page could not open the call. Reload it to try again.',
  'unknown-session': 'This session does not exist (any more).',
  'bad-token': 'This link is not valid (any more).',
  'forbidden': 'This link does not open the coach’s view.',
  'consent-required': 'Joining needs your agreement to the notice. Reload the page to see it again.',
  'replaced': 'This call was opened in another window.',
  'consent-withdrawn': 'You withdrew your consent to the analysis: you have left the call, and this session will not analyse you again.',
};

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
// For this long after a working connection dropped, the channel tries again every BACKOFF_MS[0]
// whatever answers it gets: a server that went away mid-call is most often back, or replaced by
// another node, within seconds (docs/deploy.md, "When a node dies"), and each second of backoff
// is a second more of the call without figures.
const EAGER_MS = 10000;

export class Channel {
  /**
   * @param {string} path  websocket path, e.g. "/ws/signal"
   * @param {object} hello the first message, sent again on every reconnection
   * @param {number} pingMs keep-alive period; 0 for none
   */
  constructor(path, hello, pingMs = 0) {
    this.path = path;
    this.hello = hello;
    this.pingMs = pingMs;
    this.handlers = new Map();
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.lostAt = 0; // when a working connection dropped (0: it works, or never did)
  }

  /** Calls fn(msg) for every message of this type. Besides the server's types, the channel
   * emits `open` (connected, hello sent), `reconnecting` ({delay}) and, for an `error`
   * message, passes {code, message, text, final}. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, msg = {}) {
    for (const fn of this.handlers.get(type) ?? []) fn(msg);
  }

  /** Where the channel connects: under the page's node prefix as it is now (node.js). */
  get url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${at(this.path)}`;
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let pingId = 0;
    let unanswered = false;
    let movedTo = '';
    ws.onopen = () => {
      this.send(this.hello);
      this.emit('open');
      if (!this.pingMs) return;
      this.pinger = setInterval(() => {
        // A ping still unanswered after a whole period: the connection is dead even if the
        // browser has not noticed yet (a sleeping laptop, a dropped Wi-Fi).
        if (unanswered) return this.dropped(ws);
        unanswered = true;
        this.send({ type: 'ping', id: ++pingId });
      }, this.pingMs);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (typeof msg?.type !== 'string') return;
      this.attempt = 0;
      if (msg.type !== 'error') ws.__working = true;
      if (msg.type === 'pong') unanswered = false;
      if (msg.type === 'error') {
        if (msg.code === 'moved') movedTo = msg.to; // and the close (4307) follows
        const final = Object.hasOwn(FINAL, msg.code);
        msg = { ...msg, final, text: final ? FINAL[msg.code] : msg.message };
        if (msg.final) this.closed = true;
      }
      this.emit(msg.type, msg);
    };
    ws.onclose = (event) => {
      // The session runs on another node (docs/signalling.md): behind the same proxy the
      // channel reconnects there at once, and the call goes on; elsewhere the page goes there.
      const moved = event.code === MOVED && ws === this.ws ? goToNode(event.reason || movedTo) : false;
      if (moved === 'away') {
        this.closed = true;
        clearInterval(this.pinger);
        return;
      }
      if (moved === 'here') this.attempt = 0;
      this.dropped(ws, moved === 'here' ? 0 : undefined);
    };
  }

  /** Sends a message if connected; returns whether it was sent. */
  send(msg) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Closes for good: no reconnection. */
  close() {
    this.closed = true;
    clearInterval(this.pinger);
    clearTimeout(this.retry);
    this.ws?.close();
    this.ws = null;
  }

  /** A connection gone: reconnect after the backoff (or after `afterMs`). */
  dropped(ws, afterMs = undefined) {
    if (ws !== this.ws) return; // a socket already given up on
    clearInterval(this.pinger);
    this.ws = null;
    ws.onclose = null;
    ws.close();
    if (this.closed) return;
    if (ws.__working) this.lostAt = Date.now();
    const eager = this.lostAt && Date.now() - this.lostAt < EAGER_MS;
    const delay = afterMs ?? (eager ? BACKOFF_MS[0] : BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)]);
    this.emit('reconnecting', { delay });
    this.retry = setTimeout(() => this.open(), delay);
  }
}
