// The sidebar's outbox: tag operations (put, patch, delete) and nudge dismissals, kept in
// localStorage per session until the server has answered each with a success
// (docs/sidebar.md). Every operation is idempotent on the server (the tag's id is made in the
// browser), so sending one twice, from a retry or from a second window of the same session,
// stores nothing twice. Operations go in order, one at a time: a tag's note or undo never
// overtakes the tag itself.

import { keep, readKeptList } from './kept.js';

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];

// Answers after which sending the same request again cannot help: drop the operation.
const REFUSED = new Set([400, 404, 409, 413, 422]);
// The link itself is refused: keep everything, stop trying until the page is reopened.
const DEAD = new Set(['bad-token', 'forbidden', 'unknown-session']);

function request(op) {
  const tag = `/tags/${encodeURIComponent(op.id)}`;
  switch (op.op) {
    case 'put': return ['PUT', tag, op.body];
    case 'patch': return ['PATCH', tag, op.body];
    case 'delete': return ['DELETE', tag, undefined];
    case 'dismiss': return ['POST', `/nudges/${encodeURIComponent(op.id)}/dismiss`, op.body];
    default: return null;
  }
}

export class OpQueue {
  /**
   * @param {import('./api.js').Api} api
   * @param {string} session
   * @param {(op: object, result: object) => void} onSettled an operation left the queue:
   *   result.ok, or result.refused with the server's message
   */
  constructor(api, session, onSettled) {
    this.api = api;
    this.key = `livecoach.${session}.ops`;
    this.onSettled = onSettled;
    this.listeners = [];
    this.attempt = 0;
    this.busy = false;
    this.stopped = ''; // why sending stopped for good (the link is refused)
    this.lastError = '';
    addEventListener('storage', (e) => e.key === this.key && this.changed());
    addEventListener('online', () => this.retryNow());
  }

  /** Calls fn() whenever the queue changes, here or in another window of the session. */
  onChange(fn) {
    this.listeners.push(fn);
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  ops() {
    return readKeptList(this.key);
  }

  write(ops) {
    const err = keep(this.key, ops);
    if (err) console.warn('the tag queue could not be saved:', err);
    this.changed();
  }

  /** Queues an operation ({op, id, body}) and starts sending. */
  add(op) {
    // Read, change and write in one task: another window's change is never overwritten.
    this.write([...this.ops(), { ...op, oid: crypto.randomUUID() }]);
    this.flush();
  }

  remove(oid) {
    this.write(this.ops().filter((o) => o.oid !== oid));
  }

  /** The tags with an operation still waiting. */
  waitingTags() {
    return new Set(this.ops().filter((o) => o.op !== 'dismiss').map((o) => o.id));
  }

  has(op, id) {
    return this.ops().some((o) => o.op === op && o.id === id);
  }

  /** Sends at once, forgetting the backoff: the connection is back. */
  retryNow() {
    this.attempt = 0;
    this.flush();
  }

  async flush() {
    if (this.busy || this.stopped) return;
    this.busy = true;
    clearTimeout(this.timer);
    this.timer = null;
    try {
      for (;;) {
        const op = this.ops()[0];
        if (!op) break;
        const req = request(op);
        if (!req) {
          this.remove(op.oid);
          continue;
        }
        const res = await this.api.request(...req);
        if (res.ok) {
          this.attempt = 0;
          this.lastError = '';
          this.remove(op.oid);
          this.onSettled(op, { ok: true, data: res.data });
        } else if (DEAD.has(res.code)) {
          this.stopped = res.message || res.code;
          this.changed();
          break;
        } else if (REFUSED.has(res.status) && res.code) {
          // A JSON refusal from this API (without a code, a 404 is a server that lacks the API).
          this.remove(op.oid);
          this.onSettled(op, { ok: false, refused: res.message || res.code });
        } else {
          this.lastError = res.status ? `the server answered ${res.status}` : 'the server cannot be reached';
          const delay = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)];
          this.timer = setTimeout(() => this.flush(), delay);
          this.changed();
          break;
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
