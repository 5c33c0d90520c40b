// Tagging: one button per tag kind (keys 1 to 9), and the recent tags with their state
// (waiting, then saved), a short note and undo for 10 s.
//
// A tag lands at the session time of the click minus the coach's lead. It gets its id here
// (crypto.randomUUID) and goes to the outbox (tagqueue.js), which keeps it until the server
// has stored it. The recent list is kept in localStorage too, shared by every window of the
// session, so a reload or a second window shows the same tags.

import { clock, setText } from './format.js';
import { keep, readKeptList } from './kept.js';

const UNDO_MS = 10_000;
const KEEP = 30; // tags remembered locally
const SHOW = 6; // tags listed
const TYPING = 'input, textarea, select, [contenteditable]';

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const round3 = (t) => Math.round(t * 1000) / 1000;

export class Tags {
  /**
   * @param {HTMLElement} root the sidebar
   * @param {object} deps {session, api, queue, stream, settings}
   */
  constructor(root, { session, api, queue, stream, settings }) {
    this.root = root;
    this.api = api;
    this.queue = queue;
    this.stream = stream;
    this.settings = settings;
    this.key = `livecoach.${session}.tags`;
    this.buttons = root.querySelector('[data-testid="tag-buttons"]');
    this.list = root.querySelector('[data-testid="recent-tags"]');
    this.waiting = root.querySelector('[data-testid="tags-waiting"]');
    this.problem = root.querySelector('[data-testid="tags-problem"]');
    this.items = new Map(); // tag id -> its <li>

    settings.onChange(() => this.renderButtons());
    queue.onChange(() => this.render());
    addEventListener('storage', (e) => e.key === this.key && this.render());
    document.addEventListener('keydown', (e) => this.key19(e));
    this.renderButtons();
    this.render();
  }

  // --- the local list --------------------------------------------------------------------

  tags() {
    return readKeptList(this.key);
  }

  /** Changes the list in one read-modify-write, so another window's change is kept. */
  update(fn) {
    const tags = fn(this.tags()).sort((a, b) => a.clicked_at - b.clicked_at).slice(-KEEP);
    const err = keep(this.key, tags);
    if (err) console.warn('the recent tags could not be saved:', err);
    this.render();
  }

  patch(id, change) {
    this.update((tags) => tags.map((t) => (t.id === id ? { ...t, ...change } : t)));
  }

  /** The outbox finished an operation. */
  settled(op, result) {
    if (!['put', 'patch', 'delete'].includes(op.op)) return;
    if (!result.ok) return this.patch(op.id, { failed: `${op.op === 'put' ? 'not saved' : 'not changed'}: ${result.refused}` });
    if (op.op === 'put') this.patch(op.id, { saved: true });
    if (op.op === 'delete') this.patch(op.id, { undoneSaved: true });
  }

  /** Adds the server's tags this window does not know (made in an earlier page, say). */
  async sync() {
    const res = await this.api.get('/tags');
    if (!res.ok || !Array.isArray(res.data?.tags)) return;
    const server = new Map(res.data.tags.map((t) => [t.id, t]));
    this.update((tags) => {
      const known = new Set(tags.map((t) => t.id));
      const merged = tags.map((t) => (server.has(t.id) && !t.saved ? { ...t, saved: true } : t));
      for (const t of server.values()) {
        if (!known.has(t.id)) merged.push({ ...t, made: 0, saved: true });
      }
      return merged;
    });
  }

  // --- making tags -----------------------------------------------------------------------

  /** Tags a moment: `at` is the performance.now() time of the click or key press. */
  make(kind, at = performance.now()) {
    const now = this.stream.sessionNow(at);
    if (now === null) {
      this.say('No session time yet: wait until the sidebar is connected once.');
      return null;
    }
    this.say('');
    const clicked = round3(Math.max(0, now));
    const tag = {
      id: newId(),
      kind: kind.id,
      label: kind.label,
      session_time: round3(Math.max(0, clicked - this.settings.lead)),
      clicked_at: clicked,
      note: '',
    };
    this.update((tags) => [...tags, { ...tag, made: Date.now(), saved: false }]);
    this.queue.add({ op: 'put', id: tag.id, body: tag });
    this.flash(kind.id);
    return tag;
  }

  undo(id) {
    this.patch(id, { undone: true });
    this.queue.add({ op: 'delete', id });
  }

  saveNote(id, note) {
    this.patch(id, { note });
    this.queue.add({ op: 'patch', id, body: { note } });
  }

  key19(e) {
    if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || e.target.closest?.(TYPING)) return;
    const n = '123456789'.indexOf(e.key);
    const kind = this.settings.kinds[n];
    if (n < 0 || !kind) return;
    e.preventDefault();
    this.make(kind, e.timeStamp);
  }

  say(text) {
    setText(this.problem, text);
    this.problem.hidden = !text;
  }

  flash(kindId) {
    const b = this.buttons.querySelector(`[data-kind="${CSS.escape(kindId)}"]`);
    if (!b) return;
    b.classList.remove('flash');
    void b.offsetWidth; // restart the animation
    b.classList.add('flash');
  }

  // --- rendering -------------------------------------------------------------------------

  renderButtons() {
    const kinds = JSON.stringify(this.settings.kinds);
    if (kinds === this.shownKinds) return; // keeps a focused button focused
    this.shownKinds = kinds;
    this.buttons.replaceChildren(...this.settings.kinds.map((kind, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'tag-button';
      b.dataset.kind = kind.id;
      b.dataset.testid = `tag-${kind.id}`;
      b.setAttribute('aria-keyshortcuts', String(i + 1));
      const key = document.createElement('kbd');
      key.textContent = String(i + 1);
      const label = document.createElement('span');
      label.textContent = kind.label;
      b.append(key, label);
      b.addEventListener('click', (e) => this.make(kind, e.timeStamp));
      b.addEventListener('animationend', () => b.classList.remove('flash'));
      return b;
    }));
  }

  render() {
    const waitingIds = this.queue.waitingTags();
    const count = this.tags().filter((t) => waitingIds.has(t.id) && !t.saved).length;
    const pending = waitingIds.size;
    this.waiting.dataset.count = String(pending);
    setText(this.waiting, pending ? `${pending} waiting` : 'all saved');
    this.waiting.title = pending ? `${count} new tags and ${pending - count} changes wait to reach the server${this.queue.lastError ? ` (${this.queue.lastError})` : ''}` : '';
    if (this.queue.stopped) this.say(`Tags cannot be sent: ${this.queue.stopped}`);

    const shown = this.tags().slice(-SHOW).reverse();
    const keep = new Set(shown.map((t) => t.id));
    for (const [id, li] of this.items) {
      if (!keep.has(id) && !li.contains(document.activeElement)) {
        li.remove();
        this.items.delete(id);
      }
    }
    let next = this.list.firstElementChild;
    for (const tag of shown) {
      const li = this.items.get(tag.id) ?? this.item(tag);
      this.fill(li, tag, waitingIds);
      if (li !== next) this.list.insertBefore(li, next);
      else next = next.nextElementSibling;
    }
    this.list.dataset.empty = String(!shown.length);
    this.scheduleUndoExpiry(shown);
  }

  scheduleUndoExpiry(shown) {
    clearTimeout(this.undoTimer);
    const left = shown.filter((t) => !t.undone).map((t) => t.made + UNDO_MS - Date.now()).filter((ms) => ms > 0);
    if (left.length) this.undoTimer = setTimeout(() => this.render(), Math.min(...left) + 50);
  }

  item(tag) {
    const li = document.createElement('li');
    li.dataset.testid = 'recent-tag';
    li.dataset.id = tag.id;
    li.innerHTML = `
      <span class="tag-time"></span>
      <span class="tag-label"></span>
      <span class="tag-state" data-testid="recent-tag-state"></span>
      <span class="tag-actions">
        <button type="button" class="link" data-action="note">Note</button>
        <button type="button" class="link" data-action="undo" data-testid="recent-tag-undo">Undo</button>
      </span>
      <span class="tag-note"></span>
      <form class="note-form" hidden>
        <input type="text" maxlength="500" aria-label="Note for this tag" autocomplete="off">
        <button type="submit" class="btn small">Save</button>
      </form>`;
    const form = li.querySelector('form');
    const input = form.querySelector('input');
    const noteButton = li.querySelector('[data-action="note"]');
    const close = () => {
      form.hidden = true;
      noteButton.focus();
    };
    noteButton.addEventListener('click', () => {
      form.hidden = !form.hidden;
      if (!form.hidden) {
        input.value = this.tags().find((t) => t.id === tag.id)?.note ?? '';
        input.focus();
      }
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveNote(tag.id, input.value.trim());
      close();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      e.stopPropagation(); // not a nudge dismissal
      close();
    });
    li.querySelector('[data-action="undo"]').addEventListener('click', () => {
      this.undo(tag.id);
      noteButton.focus();
    });
    this.items.set(tag.id, li);
    return li;
  }

  fill(li, tag, waitingIds) {
    const state = tag.failed ? 'failed'
      : tag.undone ? (tag.undoneSaved || !waitingIds.has(tag.id) ? 'undone' : 'undoing')
      : tag.saved ? 'saved' : 'waiting';
    li.dataset.state = state;
    setText(li.querySelector('.tag-time'), clock(tag.session_time));
    setText(li.querySelector('.tag-label'), tag.label);
    const noteWaits = tag.saved && !tag.undone && waitingIds.has(tag.id);
    setText(li.querySelector('.tag-state'), state === 'failed' ? tag.failed : noteWaits ? 'note waiting' : state);
    setText(li.querySelector('.tag-note'), tag.note ?? '');
    li.querySelector('.tag-note').hidden = !tag.note;
    li.querySelector('[data-action="undo"]').hidden = Boolean(tag.undone || tag.failed || Date.now() - tag.made > UNDO_MS);
    li.querySelector('[data-action="note"]').hidden = Boolean(tag.undone || tag.failed);
  }
}
