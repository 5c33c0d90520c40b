// Whether this call is being recorded, shown on both participants' pages for the whole call,
// and the coach's pause/resume, sent over the call's own signalling connection
// (docs/signalling.md: the `recording` message).

import { at } from './node.js';

const $ = (id) => document.getElementById(id);

/** The indicator's words for the server's recording status {state, audio, withdrawn, problem}. */
function describe(status, role) {
  const mine = status.audio?.includes(role);
  const other = role === 'coach' ? 'client' : 'coach';
  if (status.withdrawn?.[role]?.length && !mine) return status.state === 'on' ? 'Not recording you (you withdrew consent)' : 'Not recorded (you withdrew consent)';
  if (role === 'coach' && status.withdrawn?.[other]?.length) return `${status.state === 'on' ? 'Recording you only' : 'Not recorded'}: the client withdrew consent`;
  switch (status.state) {
    case 'on': return mine ? 'Recording' : 'Recording the other participant';
    case 'paused': return 'Recording paused';
    case 'failed': return 'Recording stopped';
    default: return 'Not recorded';
  }
}

/**
 * @param {import('./signal.js').Channel} signal the call's channel
 * @param {'coach'|'client'} role
 */
export function showRecording(signal, role) {
  const indicator = $('recording');
  const toggle = $('record-toggle');
  let paused = false;
  const render = (status) => {
    if (!status) return;
    indicator.hidden = false;
    indicator.dataset.state = status.state;
    indicator.textContent = describe(status, role);
    indicator.title = status.problem ?? '';
    paused = status.state === 'paused';
    if (toggle) {
      toggle.hidden = !['on', 'paused'].includes(status.state);
      toggle.textContent = paused ? 'Resume recording' : 'Pause recording';
      toggle.dataset.state = paused ? 'off' : 'on';
    }
  };
  signal.on('welcome', (m) => render(m.recording)).on('recording', render);
  toggle?.addEventListener('click', () => signal.send({ type: 'recording', paused: !paused }));
}

/** The notice this session's client agrees to, from the server (what it analyses and records). */
export async function loadNotice({ session, token }) {
  const res = await fetch(at(`/api/sessions/${encodeURIComponent(session)}/notice`), {
    headers: { Authorization: `Bearer ${token}` }, cache: 'no-store',
  });
  if (!res.ok) throw new Error(res.status === 401 ? 'This link is not valid (any more).' : `The server answered ${res.status}.`);
  return res.json();
}
