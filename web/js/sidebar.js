// The coach's sidebar: live figures, the standing nudge, tagging and the coach's settings.
// Mounted beside the call on the coach's page and alone in /s/<session>/sidebar; both are fed
// by the same indicator stream and share the tag outbox through localStorage.

import { Api } from './api.js';
import { Figures } from './figures.js';
import { at } from './node.js';
import { Nudges } from './nudges.js';
import { Settings } from './settings.js';
import { SettingsPanel } from './settingspanel.js';
import { IndicatorStream } from './stream.js';
import { OpQueue } from './tagqueue.js';
import { Tags } from './tags.js';

const TICK_MS = 100;

// Static markup: no data goes in here (the figures are filled in by text).
const LAYOUT = `
  <div class="sb-top">
    <header class="sb-head">
      <span data-testid="session-time" class="clock" title="Session time">—:—</span>
      <span data-testid="stream-state" data-state="connecting" class="pill" title="The live figures’ connection">connecting</span>
      <span data-testid="recording-state" data-state="unknown" class="pill">not known</span>
      <a data-testid="open-sidebar-window" class="btn small icon" target="_blank" title="Open the sidebar in a window of its own" aria-label="Open the sidebar in a window of its own"><svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true"><path d="M9 2h5v5M14 2 7.5 8.5M12 10v4H2V4h4" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/></svg></a>
    </header>
    <!-- While a nudge stands it covers the header: the clock comes back when it goes. -->
    <div data-testid="nudge" class="nudge" data-active="false" role="status">
      <p class="nudge-words"><span data-testid="nudge-text" class="nudge-text"></span>
        <span data-testid="nudge-about" class="nudge-about"></span></p>
      <button data-testid="nudge-dismiss" class="btn small" type="button" title="Dismiss (Esc)">Dismiss <kbd>Esc</kbd></button>
    </div>
  </div>
  <p data-testid="sidebar-problem" class="problem" role="alert" hidden></p>

  <section class="sb-speaking" aria-label="Who is speaking">
    <h3>Speaking now</h3>
    <div class="lamps">
      <span data-testid="lamp-coach" class="lamp coach" data-on="false">coach</span>
      <span data-testid="lamp-client" class="lamp client" data-on="false">client</span>
      <span data-testid="speaking" data-state="nobody" class="speaking-word">nobody</span>
    </div>
  </section>

  <section class="sb-balance">
    <h3>Talk balance <span class="legend"><span class="swatch coach"></span>coach <span class="swatch client"></span>client</span></h3>
    <div class="share">
      <span class="share-scope">Last 5 min</span>
      <span data-testid="share-window" class="share-coach big">—</span>
      <span data-testid="share-window-bar" data-empty="true" class="share-bar" role="img" aria-label="Nobody spoke yet"><span class="part coach"></span><span class="part client"></span></span>
      <span data-testid="share-window-client" class="share-client big">—</span>
      <span class="share-scope">Session</span>
      <span data-testid="share-session" class="share-coach">—</span>
      <span data-testid="share-session-bar" data-empty="true" class="share-bar thin" role="img" aria-label="Nobody spoke yet"><span class="part coach"></span><span class="part client"></span></span>
      <span data-testid="share-session-client" class="share-client">—</span>
    </div>
  </section>

  <div class="sb-pair">
    <section>
      <h3>Silence</h3>
      <p data-testid="silence" data-running="false" class="big silence">—</p>
    </section>
    <section>
      <h3>Wait time</h3>
      <p class="big"><span data-testid="last-wait" class="wait" title="How long you waited after your last turn before your client spoke">—</span></p>
      <p data-testid="wait-count" class="sub">last; median <span data-testid="median-wait" class="wait-median">—</span></p>
    </section>
  </div>

  <p class="sb-row"><span class="row-label">Your current turn</span> <span data-testid="monologue" data-active="false" class="monologue">under 1 min</span></p>

  <section class="sb-tags" aria-label="Tags">
    <h3>Tag a moment <span data-testid="tags-waiting" data-count="0" class="waiting">all saved</span></h3>
    <div data-testid="tag-buttons" class="tag-buttons"></div>
    <p data-testid="tags-problem" class="problem" role="alert" hidden></p>
    <ol data-testid="recent-tags" class="recent-tags" data-empty="true" aria-label="Recent tags"></ol>
  </section>

  <section class="sb-connection">
    <h3>Connection</h3>
    <dl class="states">
      <dt>Coach</dt><dd data-testid="coach-state" data-state="absent">absent</dd>
      <dt>Client</dt><dd data-testid="client-state" data-state="absent">absent</dd>
      <dt>Media</dt><dd><span data-testid="topology">—</span> <span data-testid="topology-hint" class="hint"></span></dd>
    </dl>
  </section>

  <details data-testid="settings" class="sb-settings">
    <summary data-testid="settings-toggle">Settings</summary>
    <form data-testid="settings-form" class="settings-form"></form>
  </details>
`;

/**
 * @param {HTMLElement} root an empty element to fill
 * @param {{session: string, token: string}} link
 * @param {{standalone?: boolean}} [opts] alone in its own window
 */
export function mountSidebar(root, link, { standalone = false } = {}) {
  root.innerHTML = LAYOUT;
  root.classList.add('sidebar');
  const windowLink = root.querySelector('[data-testid="open-sidebar-window"]');
  if (standalone) {
    windowLink.remove();
  } else {
    windowLink.href = at(`/s/${encodeURIComponent(link.session)}/sidebar#${link.token}`);
    windowLink.addEventListener('click', (e) => {
      e.preventDefault();
      const opened = window.open(windowLink.href, `livecoach-sidebar-${link.session}`, 'popup,width=400,height=900');
      opened?.focus();
    });
  }

  const api = new Api(link);
  const stream = new IndicatorStream(link);
  const settings = new Settings(api, link.session);
  let tags;
  const queue = new OpQueue(api, link.session, (op, result) => tags?.settled(op, result));
  tags = new Tags(root, { session: link.session, api, queue, stream, settings });
  const nudges = new Nudges(root, { session: link.session, stream, queue, settings });
  const figures = new Figures(root, stream);
  new SettingsPanel(root.querySelector('[data-testid="settings-form"]'), settings);

  const refresh = () => {
    settings.load();
    tags.sync();
    queue.retryNow();
  };
  stream
    .on('change', () => {
      figures.render();
      nudges.render();
    })
    .on('link', () => figures.states())
    .on('back', refresh);
  queue.onChange(() => nudges.render());
  stream.open();
  refresh();
  setInterval(() => {
    figures.tick();
    if (stream.nudge) nudges.render();
  }, TICK_MS);
  return { stream, queue, tags, settings };
}
