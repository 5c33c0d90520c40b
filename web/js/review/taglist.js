// The tags panel: buttons (keys 1–9) that tag the play position, and every tag with what a
// coach changes after the call: its kind, its time (typed, or "move to play position"), a note,
// deletion, and a clip of the moment.
//
// A 2-hour call has hundreds of tags, so a row is light: the time (plays from there), the kind,
// where it came from, the note, its state, and two buttons, Clip and Edit. The fields that change
// a tag are in one editor, shared by every row, that opens inside the selected row (Edit, a
// marker's click, a tag just made). Rows are kept by tag id and refilled only when their tag
// changes, and a field being edited is never overwritten, so saving one tag does not disturb
// typing in another.

import { clock, setText } from '../format.js';
import { download, requestClip } from './clips.js';
import { h } from './dom.js';
import { clamp, clockTenths, parseClock } from './time.js';

const CONFIRM_MS = 4000; // a second click on Delete within this long deletes
const EDITOR_ID = 'tag-editor';
const FIRST_ROWS = 14; // rows drawn with the page: as many as the list's box (32rem) shows
const MORE_ROWS = 40; // then this many a frame, once the page is on screen

export class TagPanel {
  /**
   * @param {HTMLElement} root
   * @param {{tags: import('./tagstate.js').ReviewTags, kinds: object[], clock, api, duration: number,
   *          clipKind: string, onSeek: (t: number) => void}} deps
   */
  constructor(root, { tags, kinds, clock: playClock, api, duration, clipKind, onSeek }) {
    this.tags = tags;
    this.kinds = kinds.slice(0, 9);
    this.clock = playClock;
    this.api = api;
    this.duration = duration;
    this.clipKind = clipKind;
    this.onSeek = onSeek;
    this.rows = new Map(); // tag id -> li
    this.filled = new Map(); // tag id -> what its row shows (a row is refilled only when it changes)
    this.selected = null; // the tag whose row is marked; the editor is open in it unless closed
    this.editing = null; // the tag the editor is open for
    this.shown = FIRST_ROWS; // how many rows (the first in time order) are made so far

    this.waiting = h('span', { class: 'waiting', dataset: { testid: 'tags-waiting', count: '0' } });
    this.count = h('span', { class: 'tag-count', dataset: { testid: 'tag-count' } });
    this.problem = h('p', { class: 'problem', role: 'alert', dataset: { testid: 'tags-problem' }, hidden: true });
    this.list = h('ol', { class: 'review-tags', dataset: { testid: 'tag-list' }, 'aria-label': 'Tags in time order' });
    this.empty = h('p', { class: 'hint', text: 'No tags yet. Pause where something mattered and press a tag button (or its number key).' });
    const add = h('div', { class: 'tag-add', role: 'group', 'aria-label': 'Tag the play position' },
      h('span', { class: 'hint', text: 'Tag the play position:' }),
      this.kinds.map((kind, i) => h('button', {
        type: 'button', class: 'tag-button', 'aria-keyshortcuts': String(i + 1),
        dataset: { testid: `add-tag-${kind.id}`, kind: kind.id }, onclick: () => this.add(kind),
      }, h('kbd', { text: String(i + 1) }), h('span', { text: kind.label }))));
    this.root = root;
    this.editor = this.makeEditor();
    root.append(h('h2', {}, 'Tags', this.count, this.waiting), add, this.problem, this.empty, this.list, this.editor);
    this.delegate();
    tags.onChange(() => this.render());
    this.render();
    /** Resolves when every tag has its row: at once for a short list; a long one's further rows
     * come with more(), a frame's worth at a time. */
    this.complete = new Promise((resolve) => {
      this.completed = resolve;
    });
    if (this.shown >= this.tags.list().length) this.showAll();
  }

  /** The rows not made yet, a frame's worth at a time (the page calls it once it is on screen
   * and its recordings can play: what is out of sight of the list waits for that). */
  more() {
    const step = () => {
      if (this.shown === Infinity) return;
      this.shown += MORE_ROWS;
      if (this.shown >= this.tags.list().length) this.showAll();
      else {
        this.render();
        requestAnimationFrame(() => setTimeout(step, 0)); // after that frame is drawn
      }
    };
    step();
  }

  /** Every row now. */
  showAll() {
    if (this.shown !== Infinity) {
      this.shown = Infinity;
      this.render();
    }
    this.completed();
  }

  add(kind) {
    const id = this.tags.add(kind, this.clock.now());
    this.select(id);
    return id;
  }

  /** Marks a tag's row and opens the editor in it (a marker was clicked, or a tag was just made),
   * and scrolls the list, not the page, to it: the coach keeps watching the timeline. With
   * `focus` (the row's Edit button), the keyboard goes to the editor's first field. */
  select(id, { focus = false } = {}) {
    if (!this.rows.has(id) && this.shown !== Infinity) this.showAll(); // a row not made yet
    if (this.selected && this.selected !== id) this.rows.get(this.selected)?.classList.remove('selected');
    const li = this.rows.get(id);
    this.selected = li ? id : null;
    if (!li) {
      this.close();
      return;
    }
    li.classList.add('selected');
    this.open(id, li);
    const { scrollTop, clientHeight } = this.list;
    if (li.offsetTop < scrollTop) this.list.scrollTop = li.offsetTop;
    else if (li.offsetTop + li.offsetHeight > scrollTop + clientHeight) this.list.scrollTop = li.offsetTop + li.offsetHeight - clientHeight;
    if (focus) this.editor.querySelector('.tr-kind').focus({ preventScroll: true });
  }

  // --- the editor ------------------------------------------------------------------------

  /** The one editor: kind, time, move to the play position, note, delete. */
  makeEditor() {
    this.kindSelect = h('select', { class: 'tr-kind', 'aria-label': 'Kind of tag', dataset: { action: 'kind' } });
    this.atInput = h('input', {
      type: 'text', class: 'tr-at', inputmode: 'decimal', autocomplete: 'off', 'aria-label': 'Time of the tag (m:ss)',
      dataset: { action: 'time' },
    });
    this.noteInput = h('input', {
      type: 'text', class: 'tr-note', maxlength: 500, autocomplete: 'off', placeholder: 'Note', 'aria-label': 'Note on this tag',
      dataset: { action: 'note' },
    });
    this.deleteButton = h('button', { type: 'button', class: 'btn small quiet', dataset: { action: 'delete' } }, 'Delete');
    return h('div', { id: EDITOR_ID, class: 'tr-edit', role: 'group', hidden: true, dataset: { testid: 'tag-editor' } },
      this.kindSelect,
      this.atInput,
      h('button', { type: 'button', class: 'btn small', dataset: { action: 'here' } }, 'Move to play position'),
      h('form', { class: 'tr-note-form' }, this.noteInput),
      this.deleteButton,
      h('button', { type: 'button', class: 'btn small', dataset: { action: 'close' } }, 'Done'));
  }

  /** Opens the editor in a row (between its line and its message). */
  open(id, li) {
    if (this.editing !== id) {
      this.resetDelete();
      this.rows.get(this.editing)?.querySelector('[data-action="edit"]').setAttribute('aria-expanded', 'false');
    }
    this.editing = id;
    if (this.editor.parentNode !== li) li.insertBefore(this.editor, li.querySelector('.tr-msg'));
    this.editor.hidden = false;
    li.querySelector('[data-action="edit"]').setAttribute('aria-expanded', 'true');
    this.fillEditor();
  }

  /** Closes the editor (Done, Esc, Edit again): it waits, hidden, after the list. With `focus`,
   * the keyboard goes back to the row's Edit. */
  close({ focus = false } = {}) {
    const li = this.editing && this.rows.get(this.editing);
    this.editing = null;
    this.resetDelete();
    this.editor.hidden = true;
    this.root.append(this.editor);
    if (li) {
      const edit = li.querySelector('[data-action="edit"]');
      edit.setAttribute('aria-expanded', 'false');
      if (focus) edit.focus({ preventScroll: true });
    }
  }

  /** The editor's fields from its tag; a field with the keyboard in it is left as it is. */
  fillEditor() {
    const tag = this.editing && this.tags.get(this.editing);
    if (!tag) return;
    const kinds = this.kinds.some((k) => k.id === tag.kind) ? this.kinds : [...this.kinds, { id: tag.kind, label: tag.label }];
    const options = JSON.stringify(kinds);
    const kind = this.kindSelect;
    if (kind.dataset.options !== options) {
      kind.dataset.options = options;
      kind.replaceChildren(...kinds.map((k) => h('option', { value: k.id, text: k.label })));
    }
    if (document.activeElement !== kind) kind.value = tag.kind;
    for (const [input, value] of [[this.atInput, clockTenths(tag.session_time)], [this.noteInput, tag.note ?? '']]) {
      if (document.activeElement !== input && input.value !== value) input.value = value;
    }
    this.editor.setAttribute('aria-label', `Edit the tag at ${clock(tag.session_time)}`);
  }

  resetDelete() {
    clearTimeout(this.confirmTimer);
    this.deleteButton.dataset.confirm = 'false';
    setText(this.deleteButton, 'Delete');
  }

  // --- the rows ----------------------------------------------------------------------------

  render() {
    const all = this.tags.list();
    const list = all.length > this.shown ? all.slice(0, this.shown) : all;
    const w = this.tags.waiting();
    this.waiting.dataset.count = String(w.count);
    setText(this.waiting, w.count ? `${w.count} waiting` : 'all saved');
    this.waiting.title = w.count && w.error ? `Changes wait to reach the server (${w.error}); they are kept in this browser.` : '';
    const problem = w.stopped ? `Tags cannot be sent: ${w.stopped}` : this.tags.problem;
    setText(this.problem, problem);
    this.problem.hidden = !problem;
    this.empty.hidden = all.length > 0;
    setText(this.count, all.length ? String(all.length) : '');

    // Moving a row takes the keyboard out of it: the editor's field gets it back.
    const focused = this.editor.contains(document.activeElement) ? document.activeElement : null;
    const keep = new Set(list.map((t) => t.id));
    for (const [id, li] of this.rows) {
      if (!keep.has(id)) {
        li.remove();
        this.rows.delete(id);
        this.filled.delete(id);
        if (this.editing === id) this.close();
        if (this.selected === id) this.selected = null;
      }
    }
    const waiting = this.tags.queue.waitingTags(); // read once, not once per row
    let next = this.list.firstElementChild;
    const made = document.createDocumentFragment(); // new rows at the end go in at once
    for (const tag of list) {
      const li = this.rows.get(tag.id) ?? this.row(tag.id);
      this.fill(li, tag, this.tags.state(tag.id, waiting));
      if (next === null) { // past the rows there were: the rest in order at the end
        if (li.parentNode) this.list.append(made, li);
        else made.append(li);
      } else if (li !== next) {
        this.list.insertBefore(li, next);
      } else {
        next = next.nextElementSibling;
      }
    }
    this.list.append(made);
    if (this.editing) this.fillEditor();
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
  }

  /** One row, cloned from a prototype; its events are delegated. */
  row(id) {
    this.prototype ??= h('li', { dataset: { testid: 'tag-row' } },
      h('div', { class: 'tr-head' },
        h('button', { type: 'button', class: 'tr-time link', dataset: { action: 'play' } }),
        h('span', { class: 'tr-kind-name' }),
        h('span', { class: 'tr-origin' }),
        h('span', { class: 'tr-note-text' }),
        h('span', { class: 'tr-state', dataset: { testid: 'tag-state' } }),
        h('button', { type: 'button', class: 'btn small', dataset: { action: 'clip' } }, 'Clip'),
        h('button', { type: 'button', class: 'btn small', 'aria-expanded': 'false', 'aria-controls': EDITOR_ID, dataset: { action: 'edit' } }, 'Edit')),
      h('p', { class: 'tr-msg', role: 'status' }));
    const li = this.prototype.cloneNode(true);
    li.dataset.id = id;
    this.rows.set(id, li);
    return li;
  }

  /** Every row's controls, and the editor's, handled once for the whole list. */
  delegate() {
    const target = (e) => {
      const el = e.target.closest('[data-action]');
      const li = el?.closest('li[data-id]');
      return li && this.tags.get(li.dataset.id) ? { el, li, id: li.dataset.id, action: el.dataset.action } : null;
    };
    this.list.addEventListener('click', (e) => {
      const t = target(e);
      if (!t) return;
      if (t.action === 'play') this.onSeek(this.tags.get(t.id).session_time);
      else if (t.action === 'edit') {
        if (this.editing === t.id) this.close({ focus: true });
        else this.select(t.id, { focus: true });
      } else if (t.action === 'close') this.close({ focus: true });
      else if (t.action === 'here') this.tags.move(t.id, this.clock.now());
      else if (t.action === 'clip') this.clip(t.id, t.li, t.el);
      else if (t.action === 'delete') this.confirmDelete(t.id, t.li);
    });
    this.list.addEventListener('change', (e) => {
      const t = target(e);
      if (!t) return;
      if (t.action === 'kind') {
        const k = this.kinds.find((x) => x.id === t.el.value);
        if (k) this.tags.setKind(t.id, k);
      } else if (t.action === 'time') {
        this.retime(t);
      } else if (t.action === 'note') {
        this.saveNote(t);
      }
    });
    this.list.addEventListener('submit', (e) => {
      e.preventDefault();
      const t = target({ target: e.target.querySelector('[data-action="note"]') });
      if (t) this.saveNote(t);
    });
    this.list.addEventListener('keydown', (e) => {
      const t = target(e);
      if (!t) return;
      if (e.key === 'Enter' && t.action === 'time') t.el.blur();
      if (e.key !== 'Escape' || !this.editor.contains(t.el)) return;
      if (t.action === 'time' || t.action === 'note') { // gives up the edit: the stored value comes back before the blur could save it
        const tag = this.tags.get(t.id);
        t.el.value = t.action === 'time' ? clockTenths(tag.session_time) : tag.note ?? '';
        t.el.blur();
      } else { // Esc elsewhere in the editor closes it
        this.close({ focus: true });
      }
    });
  }

  retime({ el, li, id }) {
    const t = parseClock(el.value);
    if (t === null) {
      this.say(li, 'Write the time as m:ss or h:mm:ss, with tenths if you like (12:34.5).');
      el.value = clockTenths(this.tags.get(id).session_time);
      return;
    }
    this.say(li, '');
    this.tags.move(id, clamp(t, 0, this.duration));
  }

  saveNote({ el, id }) {
    const value = el.value.trim();
    if (value !== (this.tags.get(id)?.note ?? '')) this.tags.setNote(id, value);
  }

  confirmDelete(id, li) {
    const button = this.deleteButton;
    if (button.dataset.confirm === 'true') {
      // The keyboard goes on to the next row (or the one before), not to the page's top.
      const keyboard = this.editor.contains(document.activeElement);
      const after = li.nextElementSibling ?? li.previousElementSibling;
      this.resetDelete();
      this.tags.remove(id);
      if (keyboard) after?.querySelector('[data-action="edit"]')?.focus({ preventScroll: true });
      return;
    }
    button.dataset.confirm = 'true';
    button.textContent = 'Delete? Click again';
    clearTimeout(this.confirmTimer);
    this.confirmTimer = setTimeout(() => this.resetDelete(), CONFIRM_MS);
  }

  /** A row's text and state; nothing is touched when its tag has not changed since. */
  fill(li, tag, state) {
    const clip = li.querySelector('[data-action="clip"]');
    const failed = state === 'failed' ? this.tags.failed.get(tag.id) ?? '' : '';
    const shown = `${tag.session_time}|${tag.original_session_time}|${tag.kind}|${tag.label}|${tag.origin}|${state}|${failed}|${tag.note ?? ''}`;
    if (this.filled.get(tag.id) !== shown) {
      this.filled.set(tag.id, shown);
      li.dataset.state = state;
      li.dataset.time = String(tag.session_time);
      const time = li.querySelector('.tr-time');
      setText(time, clockTenths(tag.session_time));
      time.setAttribute('aria-label', `Play from ${clock(tag.session_time)}`);
      setText(li.querySelector('.tr-kind-name'), this.kinds.find((k) => k.id === tag.kind)?.label ?? (tag.label || tag.kind));
      const moved = Math.abs(tag.session_time - tag.original_session_time) > 0.0005;
      const origin = tag.origin === 'review' ? 'added in review' : 'tagged live';
      setText(li.querySelector('.tr-origin'), moved ? `${origin}, moved from ${clockTenths(tag.original_session_time)}` : origin);
      setText(li.querySelector('.tr-note-text'), tag.note ?? '');
      setText(li.querySelector('.tr-state'), state === 'failed' ? failed : state);
      clip.title = state === 'saved' ? '30 s before the tag to 15 s after' : 'A clip can be made once the tag is saved';
      li.querySelector('[data-action="edit"]').setAttribute('aria-label', `Edit the tag at ${clock(tag.session_time)}`);
    }
    const disabled = state !== 'saved' || clip.dataset.busy === 'true';
    if (clip.disabled !== disabled) clip.disabled = disabled;
  }

  say(li, text, link) {
    const msg = li.querySelector('.tr-msg');
    msg.classList.toggle('bad', Boolean(text) && !link);
    msg.replaceChildren(...[text, link].filter(Boolean));
  }

  async clip(id, li, button) {
    button.dataset.busy = 'true';
    button.disabled = true;
    button.textContent = 'Clipping…';
    this.say(li, '');
    const res = await requestClip(this.api, id, this.clipKind);
    button.dataset.busy = 'false';
    button.textContent = 'Clip';
    this.render();
    if (!res.ok) {
      this.say(li, `No clip: ${res.message}`);
      return;
    }
    const span = Number.isFinite(res.start_s) && Number.isFinite(res.end_s) ? ` (${clock(res.start_s)}–${clock(res.end_s)})` : '';
    const link = h('a', { href: res.url, download: res.filename || '', dataset: { testid: 'clip-link' } }, `Download the clip again${span}`);
    this.say(li, `${res.audioOnly ? 'Audio clip (the server cuts no video clips) made' : 'Clip made'} and downloading. `, link);
    download(res.url, res.filename);
  }
}
