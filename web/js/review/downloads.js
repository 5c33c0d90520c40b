// The review's downloads: the session's exports (docs/exports.md) as files. A module of its own,
// loaded by main.js once the page is drawn (the panel is below the fold), which fills #downloads.
// The export route wants the coach's token like every review request, which a plain link cannot
// send: each button fetches the export with it and hands the file to the browser's downloads.

import { Api } from '../api.js';
import { readLink } from '../link.js';
import { h } from './dom.js';

const EXPORTS = [
  { format: 'json', text: 'JSON', title: 'Everything about the session, for programs' },
  { format: 'csv', text: 'CSV', title: 'Segments, tags and nudges: a zip of three spreadsheets' },
  { format: 'vtt', text: 'WebVTT', title: 'The tags as subtitles any player shows beside the recording' },
  { format: 'rttm', text: 'RTTM', title: 'Who spoke when, for diarisation tools' },
  { format: 'audacity', text: 'Audacity labels', title: 'Tags and turns as a label track for Audacity' },
];
const TIMEOUT_MS = 60000;

/** Fills `panel` with a download button per export of the session the page's link names. */
export function mountDownloads(panel, link = readLink()) {
  if (!panel || !link.session || !link.token) return;
  const api = new Api(link);
  const said = h('p', { class: 'hint downloads-status', role: 'status' });
  const buttons = EXPORTS.map(({ format, text, title }) => h('button', {
    type: 'button', class: 'btn small', title, dataset: { testid: `download-${format}` },
    onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      said.textContent = `Preparing the ${text} file…`;
      said.textContent = await fetchExport(api, format, text);
      button.disabled = false;
    },
  }, text));
  panel.replaceChildren(h('h2', { text: 'Download' }), h('div', { class: 'actions downloads' }, ...buttons), said);
}

/** Fetches one export with the coach's token and saves it; the sentence to show after. */
async function fetchExport(api, format, text) {
  let res;
  try {
    res = await fetch(`${api.base}/export?format=${encodeURIComponent(format)}`, {
      headers: { Authorization: `Bearer ${api.token}` }, cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch {
    return `The ${text} file could not be fetched: the server cannot be reached.`;
  }
  if (!res.ok) {
    let message = `the server answered ${res.status}`;
    try {
      message = (await res.json())?.error?.message || message;
    } catch {
      // not JSON
    }
    return `The ${text} file could not be made: ${message}.`;
  }
  const blob = await res.blob();
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '')?.[1] || `session.${format}`;
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return `Downloaded ${name}.`;
}

mountDownloads(document.getElementById('downloads'));
