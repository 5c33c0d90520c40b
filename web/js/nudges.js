// The standing nudge: one word or a short phrase that the server decided (docs/sidebar.md),
// shown until the coach dismisses it (a click, or Escape) or its time is up. A dismissal goes
// through the outbox, so it is logged even if the connection drops at that moment.

import { setText } from './format.js';
import { keep, readKeptList } from './kept.js';

const TYPING = 'input, textarea, select, [contenteditable]';
// Which rule it was, in small type under the word itself.
const ABOUT = {
  talk_balance: 'talk balance, last 5 min',
  monologue: 'your current turn',
  wait: 'silences filled',
  client_quiet: 'client quiet a while',
};

export class Nudges {
  constructor(root, { session, stream, queue, settings }) {
    this.stream = stream;
    this.queue = queue;
    this.settings = settings;
    this.key = `livecoach.${session}.dismissed`;
    this.box = root.querySelector('[data-testid="nudge"]');
    this.text = root.querySelector('[data-testid="nudge-text"]');
    this.about = root.querySelector('[data-testid="nudge-about"]');
    // The live call learns of a dismissal over the indicator stream (it may still be in a
    // snapshot or two). Its id is never shown again, also after a reload.
    this.dismissed = new Set(this.load());
    this.current = null;
    addEventListener('storage', (e) => {
      if (e.key !== this.key) return;
      for (const id of this.load()) this.dismissed.add(id); // dismissed in another window
      this.render();
    });
    root.querySelector('[data-testid="nudge-dismiss"]').addEventListener('click', () => this.dismiss());
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !this.current || e.target.closest?.(TYPING)) return;
      e.preventDefault();
      this.dismiss();
    });
  }

  render() {
    const n = this.stream.nudge;
    const now = this.stream.sessionNow();
    if (n && n.id && (this.dismissed.has(n.id) || this.queue.has('dismiss', n.id))) this.stream.dismissLive(n.id);
    const standing = n && n.id && !this.dismissed.has(n.id) && !this.queue.has('dismiss', n.id)
      && (now === null || now - n.session_time < this.settings.showSeconds);
    this.current = standing ? n : null;
    this.box.dataset.active = String(Boolean(standing));
    this.box.dataset.kind = standing ? n.kind : '';
    setText(this.text, standing ? n.text : '');
    setText(this.about, standing ? ABOUT[n.kind] ?? '' : '');
  }

  load() {
    return readKeptList(this.key);
  }

  dismiss() {
    const n = this.current;
    if (!n) return;
    this.dismissed.add(n.id);
    keep(this.key, [...this.load(), n.id].slice(-20)); // if that fails, this page still remembers it
    const now = this.stream.sessionNow();
    this.queue.add({ op: 'dismiss', id: n.id, body: { session_time: Math.round((now ?? n.session_time) * 1000) / 1000 } });
    this.render();
  }
}
