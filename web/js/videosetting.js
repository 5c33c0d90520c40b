// The coach's choice, before the call, of whether this session records video. The server keeps
// it (docs/review.md); the client's notice says what it is when they join.

import { Api } from './api.js';

/** Wires the lobby's checkbox to the session's setting. */
export async function videoSetting(link, box) {
  const api = new Api(link);
  const shown = await api.get('/recording');
  if (!shown.ok) return;
  box.checked = shown.data.video;
  box.disabled = false;
  box.addEventListener('change', async () => {
    box.disabled = true;
    const saved = await api.put('/recording', { video: box.checked });
    if (saved.ok) box.checked = saved.data.video;
    else box.checked = !box.checked;
    box.disabled = false;
  });
}
