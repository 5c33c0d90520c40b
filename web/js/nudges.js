// The standing nudge: one word or a short phrase that the server decided (docs/sidebar.md),
// shown until the coach dismisses it (a click, or Escape) or its time is up. A dismissal goes
// through the outbox, so it is logged even if the connection drops at that moment.

import { setText } from './format.js';

const TYPING = 'input, textarea, select, [contenteditable]';
const ABOUT = {
  talk_balance: 'You have talked most of the last minutes',
  monologue: 'A long turn',
  wait: 'Silences filled quickly',
  client_quiet: 'Your client has been quiet a while',
};

export class Nudges {
  constructor(root, { stream, queue, settings }) {
    this.stream = stream;
    this.queue = queue;
    this.settings = settings;
    this.box = root.querySelector('[data-testid="nudge"]');
    this.text = root.querySelector('[data-testid="nudge-text"]');
    this.about = root.querySelector('[data-testid="nudge-about"]');
    this.dismissed = new Set();
    this.current = null;
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
    const standing = n && n.id && !this.dismissed.has(n.id) && !this.queue.has('dismiss', n.id)
      && (now === null || now - n.session_time < this.settings.showSeconds);
    this.current = standing ? n : null;
    this.box.dataset.active = String(Boolean(standing));
    this.box.dataset.kind = standing ? n.kind : '';
    setText(this.text, standing ? n.text : '');
    setText(this.about, standing ? ABOUT[n.kind] ?? '' : '');
  }

  dismiss() {
    const n = this.current;
    if (!n) return;
    this.dismissed.add(n.id);
    const now = this.stream.sessionNow();
    this.queue.add({ op: 'dismiss', id: n.id, body: { session_time: Math.round((now ?? n.session_time) * 1000) / 1000 } });
    this.render();
  }
}
