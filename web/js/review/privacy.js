// The review's privacy panel (docs/security.md): who opened this session and fetched its files,
// how long its recordings are kept, and deleting the whole session.

import { h } from './dom.js';

const DAY_CHOICES = [null, 365, 90, 30, 7];

/** Fill `panel` from the server; `onDeleted` runs once the session is gone. */
export async function mountPrivacy(panel, api, onDeleted) {
  const [log, kept] = await Promise.all([api.get('/access-log'), api.get('/retention')]);
  const list = h('ol', { class: 'access-log', dataset: { testid: 'access-log' } });
  for (const e of (log.ok ? log.data.entries : []).slice(-20).reverse()) {
    const when = new Date(e.at * 1000).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
    list.append(h('li', { text: `${when}: ${e.who} ${e.action}${e.detail ? ` (${e.detail})` : ''}` }));
  }
  const keep = h('select', { 'aria-label': 'Keep the recordings', dataset: { testid: 'keep-recordings' } });
  const most = kept.ok ? kept.data.installation_keep_recordings_days : null;
  for (const days of DAY_CHOICES) {
    if (days !== null && most !== null && days > most) continue;
    const label = days === null ? (most === null ? 'as long as the session' : `${most} days (this server’s time)`) : `${days} days`;
    keep.append(h('option', { value: days === null ? '' : String(days), text: label }));
  }
  keep.value = kept.ok && kept.data.keep_recordings_days !== null ? String(kept.data.keep_recordings_days) : '';
  const said = h('span', { class: 'hint', role: 'status' });
  keep.addEventListener('change', async () => {
    const answer = await api.put('/retention', { keep_recordings_days: keep.value ? Number(keep.value) : null });
    said.textContent = answer.ok ? 'Saved.' : `Not saved: ${answer.message}.`;
  });
  const problem = h('p', { class: 'problem', role: 'alert', hidden: true });
  const remove = h('button', {
    type: 'button', class: 'btn danger small', dataset: { testid: 'delete-session' },
    onclick: async () => {
      if (!window.confirm('Delete this session: its recordings, tags, notes and figures, for good?')) return;
      remove.disabled = true;
      const answer = await api.delete('');
      remove.disabled = false;
      if (answer.ok) onDeleted();
      else {
        problem.textContent = `The session was not deleted: ${answer.message}.`;
        problem.hidden = false;
      }
    },
  }, 'Delete this session');
  panel.replaceChildren(
    h('h2', { text: 'Privacy' }),
    h('label', { text: 'Keep the recordings' }), keep, said,
    h('h3', { text: 'Who looked at this session' }),
    list.children.length ? list : h('p', { class: 'hint', text: 'Nobody yet.' }),
    remove, problem,
  );
}
