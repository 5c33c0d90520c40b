// The form that imports a recorded call (docs/exports.md: the import routes), with its progress.
//
// Contract, for the page that mounts it (the library):
//
//   import { mountImporter } from './importer.js';
//   const importer = mountImporter(element);   // also fine to await
//
// - `element` (any block element, e.g. a <section>) is filled with the form; whatever it held is
//   replaced. The form's styles come from /static/css/importer.css, linked into the page once.
// - Only a logged-in coach can import (the login cookie goes with these same-origin requests); a
//   page without a login shows the server's answer ("only a logged-in coach imports calls").
// - When a call is imported, `element` gets a bubbling `imported` event whose `detail` is
//   `{ session, review }`: the new session's id and its review link (with the coach's token).
//   The form then shows a link to that review and can take the next call.
// - The returned object has `destroy()`: any upload still running is cancelled on the server
//   (nothing of it is kept) and the element is emptied.
//
// Files go to the server as they are (one PUT each, streamed by the browser, never read into
// this page's memory), so recordings of hundreds of MB upload with a progress bar; the
// analysis's progress is then asked for twice a second.
//
// Behind the proxy of several nodes the import lives on the node that answered the POST: its
// answer's URLs (`url`, `upload`) carry that node's prefix (/n/<node>/…), and every later request
// of the import goes to them, whatever prefix this page was loaded under.

import { h } from './review/dom.js';

const POLL_MS = 500;
const STYLESHEET = '/static/css/importer.css';
const FINISHED = new Set(['done', 'failed', 'cancelled']);
let counter = 0;

/** Fills `element` with the import form; returns { destroy() }. */
export function mountImporter(element) {
  linkStylesheet();
  const id = `importer-${++counter}`;
  let job = null; // the server's import while one runs
  let xhr = null; // the upload in progress
  let stopped = false;

  const layoutTracks = radio('tracks', 'A file for each of you (e.g. Zoom’s “separate audio file for each participant”)', true);
  const layoutStereo = radio('stereo', 'One stereo file: you on the left channel, your client on the right');
  const coachFile = fileInput('coach', 'Your recording');
  const clientFile = fileInput('client', 'Your client’s recording');
  const stereoFile = fileInput('stereo', 'The stereo recording');
  const client = h('input', { type: 'text', id: `${id}-client`, name: 'client', required: true, maxlength: 200,
    autocomplete: 'off', dataset: { testid: 'import-client' } });
  const label = h('input', { type: 'text', id: `${id}-label`, name: 'label', maxlength: 200, autocomplete: 'off',
    placeholder: 'the client’s name', dataset: { testid: 'import-label' } });
  const date = h('input', { type: 'date', id: `${id}-date`, name: 'date', dataset: { testid: 'import-date' } });
  const submit = h('button', { type: 'submit', class: 'btn primary', dataset: { testid: 'import-start' } }, 'Import');
  const cancel = h('button', { type: 'button', class: 'btn', hidden: true, dataset: { testid: 'import-cancel' },
    onclick: () => stop('Import cancelled: nothing of it was kept.') }, 'Cancel');
  const bar = h('progress', { max: 1, value: 0, hidden: true, dataset: { testid: 'import-progress' } });
  const said = h('p', { class: 'importer-status', role: 'status', 'aria-live': 'polite', dataset: { testid: 'import-status' } });
  const problem = h('p', { class: 'problem', role: 'alert', hidden: true, dataset: { testid: 'import-problem' } });
  const tracks = h('div', { class: 'importer-files' }, coachFile.row, clientFile.row);
  const stereo = h('div', { class: 'importer-files', hidden: true }, stereoFile.row);

  const form = h('form', { class: 'importer-form', dataset: { testid: 'import-form' }, onsubmit: (e) => { e.preventDefault(); start(); } },
    h('h2', { text: 'Import a recorded call' }),
    h('p', { class: 'hint', text: 'A call held in Zoom, Meet, Teams or on the phone: it is analysed like a live call, and kept with its recording for review. Import only calls whose participants agreed to be recorded.' }),
    h('fieldset', { class: 'importer-layout' }, h('legend', { text: 'The recording' }), layoutTracks.row, layoutStereo.row),
    tracks, stereo,
    h('div', { class: 'importer-fields' },
      h('div', {}, h('label', { for: client.id, text: 'Client' }), client),
      h('div', {}, h('label', { for: label.id, text: 'Session label (optional)' }), label),
      h('div', {}, h('label', { for: date.id, text: 'Date of the call' }), date)),
    h('div', { class: 'actions' }, submit, cancel),
    bar, said, problem);
  element.replaceChildren(form);

  for (const r of [layoutTracks, layoutStereo]) r.input.addEventListener('change', showLayout);
  for (const f of [coachFile, clientFile, stereoFile]) {
    f.input.addEventListener('change', () => {
      const file = f.input.files[0];
      if (file && !date.value) date.value = localDate(new Date(file.lastModified));
    });
  }

  function showLayout() {
    const isStereo = layoutStereo.input.checked;
    stereo.hidden = !isStereo;
    tracks.hidden = isStereo;
  }

  function chosen() {
    const isStereo = layoutStereo.input.checked;
    const picks = isStereo ? { stereo: stereoFile } : { coach: coachFile, client: clientFile };
    const files = {};
    for (const [part, pick] of Object.entries(picks)) {
      const file = pick.input.files[0];
      if (!file) throw new Error(`Choose ${pick.what.toLowerCase()}.`);
      if (!file.size) throw new Error(`${file.name} is empty: it holds no recording.`);
      files[part] = file;
    }
    if (!isStereo && files.coach.name === files.client.name && files.coach.size === files.client.size
        && files.coach.lastModified === files.client.lastModified) {
      throw new Error('The same file is chosen for you and for your client.');
    }
    if (!client.value.trim()) throw new Error('Enter the client’s name.');
    return { layout: isStereo ? 'stereo' : 'tracks', files };
  }

  /** The call's time: the file's own if the date is the file's date, else noon on the date chosen. */
  function recordedAt(files) {
    const first = Object.values(files)[0];
    if (!date.value) return first.lastModified / 1000;
    if (localDate(new Date(first.lastModified)) === date.value) return first.lastModified / 1000;
    return new Date(`${date.value}T12:00`).getTime() / 1000;
  }

  async function start() {
    problem.hidden = true;
    let picked;
    try {
      picked = chosen();
    } catch (err) {
      return fail(err.message, false, true);
    }
    busy(true);
    stopped = false;
    const body = {
      label: label.value.trim() || client.value.trim(), client: client.value.trim(), layout: picked.layout,
      recorded_at: recordedAt(picked.files),
      files: Object.fromEntries(Object.entries(picked.files).map(([part, f]) => [part, { name: f.name, size: f.size }])),
    };
    const made = await call('POST', '/api/imports', body);
    if (!made.ok) return fail(made.message);
    job = made.data;
    const total = Object.values(picked.files).reduce((sum, f) => sum + f.size, 0);
    let before = 0;
    for (const [part, file] of Object.entries(picked.files)) {
      const sent = await upload(job.upload[part], file, (n) => showUpload(before + n, total));
      if (stopped) return;
      if (!sent.ok) return fail(sent.message, true);
      before += file.size;
    }
    await follow();
  }

  /** The analysis's progress, until the import is done or failed. */
  async function follow() {
    while (!stopped) {
      const got = await call('GET', jobUrl(job));
      if (stopped) return;
      if (!got.ok) return fail(got.message);
      const s = got.data;
      if (s.state === 'done') return done(s);
      if (s.state === 'failed' || s.state === 'cancelled') return fail(s.error || 'the import did not finish');
      showAnalysis(s);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function showUpload(sent, total) {
    bar.hidden = false;
    bar.value = total ? (sent / total) * 0.5 : 0;
    said.textContent = `Uploading: ${mb(sent)} of ${mb(total)} MB`;
  }

  function showAnalysis(s) {
    bar.hidden = false;
    if (s.state === 'queued') {
      bar.value = 0.5;
      said.textContent = 'Uploaded. Waiting for another import to finish…';
    } else if (s.progress === null) {
      bar.removeAttribute('value'); // length unknown: an indeterminate bar
      said.textContent = 'Analysing…';
    } else {
      bar.value = 0.5 + s.progress * 0.5;
      said.textContent = `Analysing: ${Math.round(s.progress * 100)}%`;
    }
  }

  function done(s) {
    job = null;
    busy(false);
    bar.value = 1;
    const link = h('a', { href: s.review, dataset: { testid: 'import-review' }, text: 'Open its review' });
    said.replaceChildren(`Imported “${s.label}”. `, link, '.');
    form.reset();
    showLayout();
    element.dispatchEvent(new CustomEvent('imported', { bubbles: true, detail: { session: s.session, review: s.review } }));
  }

  function fail(message, cancelOnServer = false, local = false) {
    if (cancelOnServer && job) call('DELETE', jobUrl(job));
    job = null;
    busy(false);
    bar.hidden = true;
    said.textContent = '';
    problem.textContent = local ? message : sentence(message);
    problem.hidden = false;
  }

  async function stop(message) {
    stopped = true;
    if (xhr) xhr.abort();
    const was = job;
    job = null;
    if (was) await call('DELETE', jobUrl(was));
    busy(false);
    bar.hidden = true;
    said.textContent = message;
  }

  function busy(on) {
    submit.disabled = on;
    cancel.hidden = !on;
    for (const el of form.querySelectorAll('input')) el.disabled = on;
  }

  /** A PUT of the file as it is, with its upload progress: {ok, message}. */
  function upload(url, file, onProgress) {
    return new Promise((resolve) => {
      xhr = new XMLHttpRequest();
      xhr.open('PUT', url);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => {
        const answer = parse(xhr.responseText);
        resolve(xhr.status < 300 ? { ok: true } : { ok: false, message: answer?.error?.message || `the server answered ${xhr.status}` });
        xhr = null;
      };
      xhr.onerror = () => { xhr = null; resolve({ ok: false, message: 'the upload was cut off: check your connection and try again' }); };
      xhr.onabort = () => { xhr = null; resolve({ ok: false, message: 'the upload was stopped' }); };
      xhr.send(file);
    });
  }

  return {
    destroy() {
      if (job && !FINISHED.has(job.state)) stop('');
      element.replaceChildren();
    },
  };
}

/** The import's own URL, as the server's answer to the POST gave it (with the prefix of the node
 * that holds the import, behind the proxy). */
export function jobUrl(job) {
  return typeof job.url === 'string' && job.url.startsWith('/') ? job.url
    : `/api/imports/${encodeURIComponent(job.import)}`;
}

/** A JSON request with the login cookie: {ok, status, data, message}; never throws. */
async function call(method, path, body) {
  const init = { method, cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: null, message: 'the server cannot be reached: check your connection and try again' };
  }
  const data = parse(await res.text());
  if (res.ok) return { ok: true, status: res.status, data, message: '' };
  if (res.status === 404 && !data?.error) return { ok: false, status: 404, data, message: 'this server cannot import calls' };
  return { ok: false, status: res.status, data, message: data?.error?.message || `the server answered ${res.status}` };
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function radio(value, text, checked = false) {
  const input = h('input', { type: 'radio', name: 'layout', value, checked, dataset: { testid: `import-layout-${value}` } });
  return { input, row: h('label', { class: 'importer-choice' }, input, ` ${text}`) };
}

function fileInput(part, what) {
  const input = h('input', { type: 'file', name: part, accept: 'audio/*,video/*,.m4a,.mp3,.wav,.ogg,.opus,.webm,.flac,.mp4,.mkv',
    dataset: { testid: `import-file-${part}` } });
  return { input, what, row: h('label', { class: 'importer-file' }, h('span', { text: what }), input) };
}

function linkStylesheet() {
  if (document.querySelector(`link[href="${STYLESHEET}"]`)) return;
  document.head.append(h('link', { rel: 'stylesheet', href: STYLESHEET }));
}

function localDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function mb(bytes) {
  return (bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0);
}

/** The server's message as a sentence (left as it is: it may begin with a file's own name). */
function sentence(text) {
  const t = String(text || 'the import failed').trim();
  return `Not imported: ${t}${/[.!?]$/.test(t) ? '' : '.'}`;
}
