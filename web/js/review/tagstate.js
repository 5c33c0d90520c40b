// The session's tags while reviewing: made, re-kinded, moved, noted and deleted here at once,
// and sent through the sidebar's outbox (../tagqueue.js), which keeps each operation in
// localStorage until the server has answered it. Ids are made here (crypto.randomUUID), so a
// retry never stores a tag twice; a reload while operations wait replays them on the loaded tags.

import { OpQueue } from '../tagqueue.js';
import { round3 } from './time.js';

export class ReviewTags {
  /**
   * @param {import('../api.js').Api} api
   * @param {string} session
   * @param {object[]} tags the payload's tags
   */
  constructor(api, session, tags) {
    this.listeners = [];
    this.failed = new Map(); // tag id -> why the server refused its last operation
    this.problem = '';
    this.byId = new Map(tags.map((t) => [t.id, { ...t }]));
    this.queue = new OpQueue(api, session, (op, result) => this.settled(op, result));
    for (const op of this.queue.ops()) this.apply(op); // changes not yet stored
    this.queue.onChange(() => this.changed());
    this.queue.flush();
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  /** The tags in time order. */
  list() {
    return [...this.byId.values()].sort((a, b) => a.session_time - b.session_time || a.created_at - b.created_at);
  }

  get(id) {
    return this.byId.get(id);
  }

  /** 'waiting' (an operation is queued), 'saved', or 'failed'; `waiting` from queue.waitingTags(). */
  state(id, waiting = this.queue.waitingTags()) {
    if (this.failed.has(id)) return 'failed';
    return waiting.has(id) ? 'waiting' : 'saved';
  }

  /** How many tags have an operation waiting, and why sending stopped or is slow. */
  waiting() {
    return { count: this.queue.waitingTags().size, stopped: this.queue.stopped, error: this.queue.lastError };
  }

  /** A new tag at session time t (the play position: in review there is no reaction lead). */
  add(kind, t) {
    const at = round3(Math.max(0, t));
    const body = { kind: kind.id, label: kind.label, session_time: at, clicked_at: at, note: '', origin: 'review' };
    const id = crypto.randomUUID();
    this.send({ op: 'put', id, body });
    return id;
  }

  setKind(id, kind) {
    this.send({ op: 'patch', id, body: { kind: kind.id, label: kind.label } });
  }

  move(id, t) {
    this.send({ op: 'patch', id, body: { session_time: round3(Math.max(0, t)) } });
  }

  setNote(id, note) {
    this.send({ op: 'patch', id, body: { note } });
  }

  remove(id) {
    this.send({ op: 'delete', id });
  }

  send(op) {
    this.failed.delete(op.id);
    this.apply(op);
    this.queue.add(op); // notifies through queue.onChange
  }

  /** What an operation does to the local list (also for operations replayed after a reload). */
  apply(op) {
    if (op.op === 'put' && !this.byId.has(op.id)) {
      this.byId.set(op.id, {
        id: op.id, original_session_time: op.body.session_time, created_at: Date.now() / 1000, origin: 'live',
        ...op.body,
      });
    } else if (op.op === 'patch' && this.byId.has(op.id)) {
      this.byId.set(op.id, { ...this.byId.get(op.id), ...op.body });
    } else if (op.op === 'delete') {
      this.byId.delete(op.id);
    }
  }

  settled(op, result) {
    if (result.ok || !['put', 'patch', 'delete'].includes(op.op)) return;
    const what = { put: 'not saved', patch: 'change not saved', delete: 'not deleted' }[op.op];
    this.failed.set(op.id, `${what}: ${result.refused}`);
    this.problem = `A tag was ${what}: ${result.refused}`; // shown even when the tag is gone (a delete)
    this.changed();
  }
}
