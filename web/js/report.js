// /s/<session>/report: a session's one-page report (docs/library.md). The report itself is the
// server's HTML (report_html.py: the same article as in a downloaded copy and `livecoach report`),
// put in this page as it is; this module adds the coach's tools: editing the summary and next
// steps, printing, and choosing what a shared copy for the client holds before downloading it.
// The coach's login opens it; a coach link's token after "#" works too, as on the review.

import { readLink } from './link.js';
import { at } from './node.js';
import { $, h } from './review/dom.js';

const link = readLink();
const base = at(`/api/sessions/${encodeURIComponent(link.session)}`);
const auth = link.token ? { Authorization: `Bearer ${link.token}` } : {};
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
const FIELDS = { summary: 'Summary', next_steps: 'Next steps' };

let text = { summary: '', next_steps: '' };

start();

async function start() {
  if (!link.session) return fail('This address does not name a session.');
  $('to-replay').href = at(`/s/${encodeURIComponent(link.session)}/review${link.token ? `#${link.token}` : ''}`);
  const [article, saved] = await Promise.all([loadArticle(), call('GET', '/report/text')]);
  if (!article) return;
  if (saved.ok) text = saved.data;
  show(article);
  $('report-tools').hidden = false;
  $('print').addEventListener('click', () => print());
  $('download-full').addEventListener('click', (event) => download(event.currentTarget, []));
  $('download-shared').addEventListener('click', (event) => download(event.currentTarget, leftOut()));
  $('share-choice').addEventListener('change', preview);
}

/** A request to the session's API, as the coach: {ok, status, data} (never throws). */
async function call(method, path, body) {
  const init = { method, headers: { ...auth }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(base + path, init);
    const data = (res.headers.get('content-type') ?? '').startsWith('application/json') ? await res.json() : await res.text();
    return { ok: res.ok, status: res.status, data, res };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

/** The report's article, from the server's HTML, or null (and the page says why). */
async function loadArticle() {
  const answer = await call('GET', `/report?format=article&tz=${encodeURIComponent(zone)}`);
  if (!answer.ok) {
    if (answer.status === 401 && !link.token) {
      location.replace(`/login?next=${encodeURIComponent(location.pathname)}`);
      return null;
    }
    const why = {
      0: 'The server cannot be reached. Check your connection, then reload the page.',
      401: 'This link’s key is not accepted for this session.',
      403: 'This session is another coach’s.',
      404: 'There is no such session.',
    }[answer.status] ?? `The report could not be made (${answer.data?.error?.message ?? `error ${answer.status}`}).`;
    fail(why);
    return null;
  }
  // The server's markup, parsed as a document of its own (its text escaped there; no script or
  // style in it), then moved into this page.
  const doc = new DOMParser().parseFromString(answer.data, 'text/html');
  const article = doc.querySelector('article.report');
  if (!article) fail('The server’s answer is not a report this page can show. Reload the page.');
  return article ? document.adoptNode(article) : null;
}

function show(article) {
  $('report-status').hidden = true;
  $('problem').hidden = true;
  for (const body of article.querySelectorAll('[data-field]')) addEditor(body);
  $('report-holder').replaceChildren(article);
  document.title = `${article.querySelector('h1')?.textContent ?? 'Report'} · Report · livecoach`;
  preview();
}

function fail(message) {
  $('report-status').hidden = true;
  $('problem').textContent = message;
  $('problem').hidden = false;
}

/** An Edit button under the summary or the next steps: a text box, saved to the server. */
function addEditor(body) {
  const field = body.dataset.field;
  const testid = field.replace('_', '-');
  const tools = h('div', { class: 'text-tools no-print' },
    h('button', { type: 'button', class: 'btn small', dataset: { testid: `edit-${testid}` }, onclick: () => open() }, `Edit ${FIELDS[field].toLowerCase()}`));
  body.after(tools);

  function open() {
    const box = h('textarea', { name: field, maxlength: 10000, 'aria-label': FIELDS[field], dataset: { testid: `text-${testid}` } });
    box.value = text[field] ?? '';
    const problem = h('p', { class: 'problem-inline', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'btn small primary', dataset: { testid: `save-${testid}` } }, 'Save');
    const editor = h('form', { class: 'text-editor no-print' }, box,
      h('div', { class: 'text-tools' }, save, h('button', { type: 'button', class: 'btn small', onclick: () => close() }, 'Cancel')), problem);
    editor.addEventListener('submit', async (event) => {
      event.preventDefault();
      save.disabled = true;
      const answer = await call('PUT', '/report/text', { ...text, [field]: box.value });
      save.disabled = false;
      if (!answer.ok) {
        problem.textContent = answer.status === 0 ? 'The server cannot be reached: not saved yet.' : `Not saved: ${answer.data?.error?.message ?? answer.status}.`;
        return;
      }
      text = answer.data;
      const article = await loadArticle();
      if (article) show(article);
    });
    body.hidden = true;
    tools.hidden = true;
    tools.after(editor);
    box.focus();

    function close() {
      editor.remove();
      body.hidden = false;
      tools.hidden = false;
    }
  }
}

/** The parts the coach left out of the shared copy (session_report.PARTS). */
function leftOut() {
  return [...$('share-choice').querySelectorAll('input[name="part"]')].filter((box) => !box.checked).map((box) => box.value);
}

/** With "show as the copy", the page hides what the copy leaves out (and prints so). */
function preview() {
  const on = $('preview').checked;
  const out = new Set(leftOut());
  const holder = $('report-holder');
  holder.classList.toggle('preview', on);
  for (const el of holder.querySelectorAll('[data-part]')) el.toggleAttribute('data-hidden-in-copy', on && out.has(el.dataset.part));
}

/** Download the report as a standalone file, less ``without``: the server makes it (logged). */
async function download(button, without) {
  button.disabled = true;
  const query = new URLSearchParams({ format: 'html', download: '1', tz: zone });
  if (without.length) query.set('without', without.join(','));
  const answer = await call('GET', `/report?${query}`);
  button.disabled = false;
  if (!answer.ok) {
    fail(`The copy could not be made (${answer.data?.error?.message ?? `error ${answer.status}`}).`);
    return;
  }
  const name = /filename="([^"]+)"/.exec(answer.res.headers.get('content-disposition') ?? '')?.[1] ?? 'report.html';
  const url = URL.createObjectURL(new Blob([answer.data], { type: 'text/html' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
