// /library: the logged-in coach's sessions by client and date (docs/library.md). Filters go to the
// server (GET /api/library) and into the address, so a filtered library can be reloaded or
// bookmarked. Choosing a client shows their trends. Each row opens its replay; its report and
// exports are a click away. The import form (importer.js, when the server has it) sits on top.

import { me } from './account.js';
import { clock, percent, seconds } from './format.js';
import { $, h } from './review/dom.js';

const FILTERS = ['client', 'from', 'to', 'tag_kind'];
const EXPORTS = [['json', 'JSON'], ['csv', 'CSV (zip)'], ['vtt', 'WebVTT'], ['rttm', 'RTTM'], ['audacity', 'Audacity labels']];
const PENDING_RETRY_MS = 400; // figures still being built after an upgrade: ask again soon

let asked = 0; // the number of the latest request: an older answer arriving late is dropped
let pending = 0; // sessions whose figures the server is still building (the page asks again)
const early = globalThis.livecoachEarly;

start();

async function start() {
  readAddress();
  $('filters').addEventListener('change', () => { writeAddress(); load(); });
  $('f-clear').addEventListener('click', () => {
    $('filters').reset();
    writeAddress();
    load();
  });
  addEventListener('popstate', () => { readAddress(); load(); });
  $('sessions').addEventListener('click', onClick);
  const sent = early && early.search === location.search ? early.answer : null;
  await load(sent);
  // What the list does not need waits for every row of it: on a busy machine every request,
  // module and stylesheet competes with the list's own answer and rows.
  mountImporter();
  me().then((coach) => { if (coach) $('coach-name').textContent = coach.name; });
}

/** The filters' values as the API's query (dates as the local day's bounds, in epoch seconds),
 * asking for what the list shows alone. */
function query() {
  const out = new URLSearchParams({ fields: 'list' });
  const client = $('f-client').value;
  if (client) out.set('client', client);
  if ($('f-from').value) out.set('from', String(localDay($('f-from').value)));
  if ($('f-to').value) out.set('to', String(localDay($('f-to').value, 1)));
  if ($('f-tag').value) out.set('tag_kind', $('f-tag').value);
  return out;
}

/** The epoch seconds of a local midnight: the day's, or ``after`` days later (a DST day is not 24 h). */
function localDay(date, after = 0) {
  const day = new Date(`${date}T00:00:00`);
  day.setDate(day.getDate() + after);
  return day.getTime() / 1000;
}

function readAddress() {
  const params = new URLSearchParams(location.search);
  for (const key of FILTERS) {
    const input = $('filters').elements[key];
    const value = params.get(key) ?? '';
    if (input.tagName === 'SELECT' && value && ![...input.options].some((o) => o.value === value)) {
      input.append(h('option', { value }, value)); // its real label comes with the answer
    }
    input.value = key === 'from' || key === 'to' ? (/^\d{4}-\d{2}-\d{2}$/.test(value) ? value : '') : value;
  }
}

function writeAddress() {
  const params = new URLSearchParams();
  for (const key of FILTERS) {
    const value = $('filters').elements[key].value;
    if (value) params.set(key, value);
  }
  const search = params.size ? `?${params}` : '';
  if (search !== location.search) history.pushState(null, '', `${location.pathname}${search}`);
}

/** Ask for the library (or read the answer to a request already sent) and draw it; settles when
 * every row is in (or when another drawing took over). */
async function load(sent = null) {
  const mine = ++asked;
  const status = $('library-status');
  let res;
  try {
    res = await (sent ?? fetch(`/api/library?${query()}`, { cache: 'no-store' }));
  } catch {
    return fail('The server cannot be reached. Check your connection, then reload the page.');
  }
  if (res.status === 401) {
    location.replace(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  const answer = await res.json().catch(() => null);
  if (mine !== asked) return;
  if (!res.ok || !answer || answer.version !== 1) {
    return fail(`The library could not be loaded (${answer?.error?.message ?? `error ${res.status}`}).`);
  }
  $('problem').hidden = true;
  pending = answer.pending;
  fillFilters(answer);
  const drawn = drawSessions(answer);
  const n = answer.sessions.length;
  status.textContent = answer.pending
    ? `Bringing the figures of ${answer.pending} sessions up to date…`
    : `${n} ${n === 1 ? 'session' : 'sessions'}${filtered() ? ' match the filters' : ''}.`;
  $('library').setAttribute('aria-busy', 'false');
  if (answer.pending) setTimeout(() => { if (mine === asked) load(); }, PENDING_RETRY_MS);
  drawTrends($('f-client').value);
  return drawn;
}

const filtered = () => FILTERS.some((key) => $('filters').elements[key].value);

function fail(text) {
  $('library-status').textContent = '';
  $('problem').textContent = text;
  $('problem').hidden = false;
  $('library').setAttribute('aria-busy', 'false');
}

/** The client and tag kind lists, from every client of the coach and their tag kinds. */
function fillFilters(answer) {
  const client = $('f-client');
  const chosen = client.value;
  client.replaceChildren(h('option', { value: '' }, 'All clients'),
    ...answer.clients.filter((c) => c.name).map((c) => h('option', { value: c.name }, `${c.name} (${c.sessions})`)));
  client.value = chosen;
  const tag = $('f-tag');
  const kind = tag.value;
  tag.replaceChildren(h('option', { value: '' }, 'Any or none'),
    ...answer.tag_kinds.map((k) => h('option', { value: k.id }, k.label)));
  if (kind && ![...tag.options].some((o) => o.value === kind)) tag.append(h('option', { value: kind }, kind));
  tag.value = kind;
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const COLUMNS = ['Date', 'Duration', 'Talk balance', 'Median wait', 'Tags', 'Recorded', 'Actions'];

const FIRST_ROWS = 20; // more than a screen holds (a row is 3 to 6 rem tall): drawn before the list is shown
// The rest, this many per task: a thousand rows are one task of about 70 ms on a 2-core machine.
// Smaller tasks let the page answer sooner but finish the list later on a busy machine, where
// each yield gives the cores away (250 a task: every row 0.2 s later).
const CHUNK_ROWS = 1000;
let drawing = 0; // the number of the latest drawing: an older one still adding rows stops

/** Every session, grouped by client (by name), newest first within a client. A group is a
 * section of its own whose rendering the browser skips while it is off screen (library.css).
 * The first rows (and their groups) are drawn at once, the others in the tasks after, so that
 * the first frame lays out a screenful, not a thousand rows; ``data-complete`` on the list says
 * when every row is in, and so does the promise returned, which also settles when another
 * drawing takes over. */
function drawSessions(answer) {
  const mine = ++drawing;
  const list = $('sessions');
  list.dataset.complete = 'false';
  const labels = Object.fromEntries(answer.tag_kinds.map((k) => [k.id, k.label]));
  const groups = new Map();
  for (const c of answer.clients) groups.set(c.name, []);
  for (const session of answer.sessions) {
    if (!groups.has(session.client)) groups.set(session.client, []);
    groups.get(session.client).push(session);
  }
  const queue = [...groups].filter(([, sessions]) => sessions.length)
    .map(([name, sessions]) => ({ name, sessions, drawn: 0, body: null }));
  $('client-names').replaceChildren(...answer.clients.filter((c) => c.name).map((c) => h('option', { value: c.name })));
  list.replaceChildren();
  list.hidden = queue.length === 0;
  if (!queue.length) $('library-status').textContent = filtered() ? 'No session matches these filters.' : 'No session yet.';
  addRows(list, queue, FIRST_ROWS, labels);
  performance.mark('library-drawn');
  return new Promise((done) => {
    const more = () => {
      if (mine !== drawing) return done();
      addRows(list, queue, CHUNK_ROWS, labels);
      if (queue.length) return setTimeout(more);
      list.dataset.complete = 'true';
      performance.mark('library-complete');
      done();
    };
    // The first rows go on screen first: the rest after the end of the first frame with them in
    // it (after its rendering step, the next task), which is the benchmark's "on screen".
    requestAnimationFrame(() => setTimeout(() => {
      performance.mark('library-on-screen');
      more();
    }));
  });
}

/** Up to ``n`` more rows from the queue, in order; a group's section is made with its first rows. */
function addRows(list, queue, n, labels) {
  const sections = [];
  while (n > 0 && queue.length) {
    const group = queue[0];
    if (!group.body) {
      group.body = h('tbody');
      sections.push(groupSection(group.name, group.sessions.length, group.body));
    }
    const part = group.sessions.slice(group.drawn, group.drawn + n);
    group.body.append(...part.map((session) => row(session, labels)));
    group.drawn += part.length;
    n -= part.length;
    if (group.drawn === group.sessions.length) queue.shift();
  }
  list.append(...sections);
}

/** A client's section: its heading, and a table whose rows go in ``body``. Its row count sets the
 * height the browser assumes while the section is off screen and not laid out (library.css). */
function groupSection(name, count, body) {
  const section = h('section', { class: 'client-group', dataset: { testid: 'client-group', client: name } },
    h('h2', { class: 'group-head' },
      h('span', { class: 'group-name' }, name || 'No client'),
      h('span', { class: 'hint' }, ` ${count} ${count === 1 ? 'session' : 'sessions'}`),
      name ? h('button', { type: 'button', class: 'btn small', dataset: { testid: 'show-trends', client: name } }, 'Trends') : null),
    h('table', { class: 'sessions' }, h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))), body));
  section.style.setProperty('--rows', String(count));
  return section;
}

function chooseClient(name) {
  $('f-client').value = name;
  writeAddress();
  load();
  $('filters').scrollIntoView({ block: 'start' });
}

const replayOf = (id) => `/s/${encodeURIComponent(id)}/review`;
const ROW = $('session-row').content.firstElementChild; // the page's template of a row
const HINT = h('span', { class: 'hint' });

/** A session's row: the page's template, cloned and filled in (a thousand rows in a few tens of
 * ms; made element by element they took ten times as long). Attributes are set as such, not
 * through properties that parse them (``href``, ``dataset``). */
function row(session, labels) {
  const tr = ROW.cloneNode(true);
  const [date, duration, balance, wait, tags, recorded, actions] = tr.cells;
  tr.setAttribute('data-session', session.id);
  tr.setAttribute('data-client', session.client);
  const link = date.firstChild;
  link.setAttribute('href', replayOf(session.id));
  link.textContent = WHEN.format(session.created_at * 1000);
  if (session.figures?.live) date.append(h('span', { class: 'pill', dataset: { state: 'live' } }, 'live'));
  if (session.origin === 'import') date.append(hint(' imported'));
  if (session.label && session.label !== session.client) date.append(h('div', { class: 'hint' }, session.label));
  actions.firstChild.firstChild.setAttribute('href', `/s/${encodeURIComponent(session.id)}/report`);
  const f = session.figures;
  if (!f) {
    duration.textContent = pending ? 'figures on their way…' : 'no figures';
    balance.replaceChildren();
    return tr;
  }
  duration.textContent = clock(f.duration_s);
  const share = percent(f.talk_share_coach);
  const bar = balance.firstChild;
  if (share === null) {
    bar.setAttribute('data-empty', 'true');
    bar.setAttribute('aria-label', 'nobody spoke');
    balance.lastChild.textContent = 'nobody spoke';
  } else {
    bar.setAttribute('aria-label', `coach ${share}%, client ${100 - share}%`);
    bar.style.setProperty('--share', `${share}%`);
    balance.lastChild.textContent = `${share}% · ${100 - share}%`;
  }
  wait.textContent = f.median_wait_s === null ? '—' : seconds(f.median_wait_s);
  if (f.tag_count) {
    const chips = document.createElement('ul');
    chips.className = 'tag-chips';
    for (const kind in f.tags) {
      const chip = document.createElement('li');
      chip.textContent = `${labels[kind] ?? kind} ${f.tags[kind]}`;
      chips.append(chip);
    }
    tags.append(chips);
  } else {
    tags.append(hint('none'));
  }
  if (f.recorded) recorded.textContent = 'yes';
  else recorded.append(hint('no'));
  return tr;
}

/** A muted word: the row's "none", "no", "imported". */
function hint(text) {
  const span = HINT.cloneNode();
  span.textContent = text;
  return span;
}

/** A click on a row opens its replay, but for its own links, buttons and fields; its Export and
 * Client… buttons open (or close) a panel under its buttons. */
function onClick(event) {
  const trends = event.target.closest('[data-testid=show-trends]');
  if (trends) return chooseClient(trends.dataset.client);
  const menu = event.target.closest('button[data-menu]');
  if (menu) return toggleMenu(menu);
  const tr = event.target.closest('tr[data-session]');
  if (tr && !event.target.closest('a, button, input, select, label, form, .row-panel')) location.href = replayOf(tr.dataset.session);
}

/** A row's panel: its export links, or its client form (made when first asked for). */
function toggleMenu(button) {
  const tr = button.closest('tr[data-session]');
  const cell = button.closest('td');
  const open = button.getAttribute('aria-expanded') === 'true';
  cell.querySelector('.row-panel')?.remove();
  for (const other of cell.querySelectorAll('button[data-menu]')) other.setAttribute('aria-expanded', 'false');
  if (open) return;
  button.setAttribute('aria-expanded', 'true');
  const id = tr.dataset.session;
  const panel = button.dataset.menu === 'export'
    ? h('ul', { class: 'row-panel' }, EXPORTS.map(([format, text]) => h('li', {}, h('a', {
      href: `/api/sessions/${encodeURIComponent(id)}/export?format=${format}`, download: '', dataset: { testid: `export-${format}` },
    }, text))))
    : clientForm(id, tr.dataset.client);
  cell.append(panel);
  panel.querySelector('input')?.focus();
}

/** File the session under another client (or a new one): the names so far are offered. */
function clientForm(id, client) {
  const input = h('input', { type: 'text', name: 'client', value: client, maxlength: 200, list: 'client-names', 'aria-label': 'Client', dataset: { testid: 'client-input' } });
  const problem = h('span', { class: 'problem-inline', role: 'alert' });
  const form = h('form', { class: 'client-form row-panel' }, input, h('button', { type: 'submit', class: 'btn small primary', dataset: { testid: 'save-client' } }, 'Save'), problem);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const res = await fetch(`/api/sessions/${encodeURIComponent(id)}/client`, {
      method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ client: input.value }), cache: 'no-store',
    }).catch(() => null);
    if (!res?.ok) {
      problem.textContent = res ? `Not saved (${res.status}).` : 'The server cannot be reached.';
      return;
    }
    load();
  });
  return form;
}

/** The chosen client's trends: their charts and the CSV link (hidden without a client). */
async function drawTrends(name) {
  const section = $('trends');
  if (!name) {
    section.hidden = true;
    return;
  }
  const path = `/api/clients/${encodeURIComponent(name)}/trends`;
  const res = await fetch(path, { cache: 'no-store' }).catch(() => null);
  const answer = res?.ok ? await res.json().catch(() => null) : null;
  if ($('f-client').value !== name) return; // another client was chosen meanwhile
  if (!answer) {
    section.hidden = true;
    return;
  }
  $('trends-title').textContent = `Trends for ${name} (${answer.points.length} ${answer.points.length === 1 ? 'session' : 'sessions'})`;
  $('trends-csv').href = `${path}?format=csv`;
  const { trendCharts } = await import('./trends.js');
  if ($('f-client').value !== name) return;
  $('trend-charts').replaceChildren(...trendCharts(answer));
  section.hidden = false;
}

/** The import form, where the server has one (./importer.js); the page works without it. */
async function mountImporter() {
  const holder = $('importer');
  try {
    const { mountImporter: mount } = await import('./importer.js');
    await mount(holder);
    holder.hidden = false;
    // An import that finished adds a session: the list is drawn again.
    holder.addEventListener('imported', () => load());
  } catch (err) {
    holder.hidden = true;
    if (!String(err?.message ?? err).includes('importer.js')) console.warn('the import form could not be shown', err);
  }
}

