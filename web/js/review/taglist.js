// The tags panel: buttons (keys 1–9) that tag the play position, and every tag with what a
// coach changes after the call: its kind, its time (typed, or "move to play position"), a note,
// deletion, and a clip of the moment. Rows are kept by tag id and a field being edited is
// never overwritten, so saving one tag does not disturb typing in another.

import { clock, setText } from '../format.js';
import { download, requestClip } from './clips.js';
import { h } from './dom.js';
import { clamp, clockTenths, parseClock } from './time.js';

const CONFIRM_MS = 4000; // a second click on Delete within this long deletes

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
    this.rows = new Map();

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
    root.append(h('h2', {}, 'Tags', this.count, this.waiting), add, this.problem, this.empty, this.list);
    this.delegate();
    tags.onChange(() => this.render());
    this.render();
  }

  add(kind) {
    const id = this.tags.add(kind, this.clock.now());
    this.select(id);
    return id;
  }

  /** Marks a tag's row (a marker was clicked, or a tag was just made) and scrolls the list, not
   * the page, to it: the coach keeps watching the timeline. */
  select(id) {
    for (const [rid, li] of this.rows) li.classList.toggle('selected', rid === id);
    const li = this.rows.get(id);
    if (!li) return;
    const { scrollTop, clientHeight } = this.list;
    if (li.offsetTop < scrollTop) this.list.scrollTop = li.offsetTop;
    else if (li.offsetTop + li.offsetHeight > scrollTop + clientHeight) this.list.scrollTop = li.offsetTop + li.offsetHeight - clientHeight;
  }

  render() {
    const list = this.tags.list();
    const w = this.tags.waiting();
    this.waiting.dataset.count = String(w.count);
    setText(this.waiting, w.count ? `${w.count} waiting` : 'all saved');
    this.waiting.title = w.count && w.error ? `Changes wait to reach the server (${w.error}); they are kept in this browser.` : '';
    const problem = w.stopped ? `Tags cannot be sent: ${w.stopped}` : this.tags.problem;
    setText(this.problem, problem);
    this.problem.hidden = !problem;
    this.empty.hidden = list.length > 0;
    setText(this.count, list.length ? String(list.length) : '');

    const keep = new Set(list.map((t) => t.id));
    for (const [id, li] of this.rows) {
      if (!keep.has(id)) {
        li.remove();
        this.rows.delete(id);
      }
    }
    const waiting = this.tags.queue.waitingTags(); // read once, not once per row
    let next = this.list.firstElementChild;
    for (const tag of list) {
      const li = this.rows.get(tag.id) ?? this.row(tag.id);
      this.fill(li, tag, this.tags.state(tag.id, waiting));
      if (li !== next) this.list.insertBefore(li, next);
      else next = next.nextElementSibling;
    }
  }

  /** One row, cloned from a prototype (200 rows build in a few ms); its events are delegated. */
  row(id) {
    this.prototype ??= h('li', { dataset: { testid: 'tag-row' } },
      h('div', { class: 'tr-head' },
        h('button', { type: 'button', class: 'tr-time link', dataset: { action: 'play' } }),
        h('select', { class: 'tr-kind', 'aria-label': 'Kind of tag', dataset: { action: 'kind' } }),
        h('span', { class: 'tr-origin' }),
        h('span', { class: 'tr-state', dataset: { testid: 'tag-state' } })),
      h('div', { class: 'tr-edit' },
        h('input', { type: 'text', class: 'tr-at', inputmode: 'decimal', autocomplete: 'off', 'aria-label': 'Time of the tag (m:ss)', dataset: { action: 'time' } }),
        h('button', { type: 'button', class: 'btn small', dataset: { action: 'here' } }, 'Move to play position'),
        h('form', { class: 'tr-note-form' },
          h('input', { type: 'text', class: 'tr-note', maxlength: 500, autocomplete: 'off', placeholder: 'Note', 'aria-label': 'Note on this tag', dataset: { action: 'note' } })),
        h('button', { type: 'button', class: 'btn small', dataset: { action: 'clip' } }, 'Clip'),
        h('button', { type: 'button', class: 'btn small quiet', dataset: { action: 'delete' } }, 'Delete')),
      h('p', { class: 'tr-msg', role: 'status' }));
    const li = this.prototype.cloneNode(true);
    li.dataset.id = id;
    this.rows.set(id, li);
    return li;
  }

  /** Every row's controls, handled once for the whole list. */
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
      else if (t.action === 'here') this.tags.move(t.id, this.clock.now());
      else if (t.action === 'clip') this.clip(t.id, t.li, t.el);
      else if (t.action === 'delete') this.confirmDelete(t.id, t.el);
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
      if (!t || (t.action !== 'time' && t.action !== 'note')) return;
      if (e.key === 'Enter' && t.action === 'time') t.el.blur();
      if (e.key === 'Escape') { // gives up the edit: the stored value comes back before the blur could save it
        const tag = this.tags.get(t.id);
        t.el.value = t.action === 'time' ? clockTenths(tag.session_time) : tag.note ?? '';
        t.el.blur();
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

  confirmDelete(id, button) {
    if (button.dataset.confirm === 'true') {
      this.tags.remove(id);
      return;
    }
    button.dataset.confirm = 'true';
    button.textContent = 'Delete? Click again';
    setTimeout(() => {
      button.dataset.confirm = 'false';
      button.textContent = 'Delete';
    }, CONFIRM_MS);
  }

  fill(li, tag, state) {
    li.dataset.state = state;
    li.dataset.time = String(tag.session_time);
    const time = li.querySelector('.tr-time');
    setText(time, clockTenths(tag.session_time));
    time.setAttribute('aria-label', `Play from ${clock(tag.session_time)}`);

    const kind = li.querySelector('.tr-kind');
    const kinds = this.kinds.some((k) => k.id === tag.kind) ? this.kinds : [...this.kinds, { id: tag.kind, label: tag.label }];
    const options = JSON.stringify(kinds);
    if (kind.dataset.options !== options) {
      kind.dataset.options = options;
      kind.replaceChildren(this.options(kinds, options));
    }
    if (document.activeElement !== kind) kind.value = tag.kind;

    const moved = Math.abs(tag.session_time - tag.original_session_time) > 0.0005;
    const origin = tag.origin === 'review' ? 'added in review' : 'tagged live';
    setText(li.querySelector('.tr-origin'), moved ? `${origin}, moved from ${clockTenths(tag.original_session_time)}` : origin);
    setText(li.querySelector('.tr-state'), state === 'failed' ? this.tags.failed.get(tag.id) : state);

    for (const [sel, value] of [['.tr-at', clockTenths(tag.session_time)], ['.tr-note', tag.note ?? '']]) {
      const input = li.querySelector(sel);
      if (document.activeElement !== input && input.value !== value) input.value = value;
    }
    const clip = li.querySelector('[data-action="clip"]');
    clip.disabled = state !== 'saved' || clip.dataset.busy === 'true';
    clip.title = state === 'saved' ? '30 s before the tag to 15 s after' : 'A clip can be made once the tag is saved';
  }

  /** The kinds as <option>s: made once per set of kinds, cloned for each row. */
  options(kinds, key) {
    if (this.optionsKey !== key) {
      this.optionsKey = key;
      this.optionsMade = document.createDocumentFragment();
      this.optionsMade.append(...kinds.map((k) => h('option', { value: k.id, text: k.label })));
    }
    return this.optionsMade.cloneNode(true);
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
