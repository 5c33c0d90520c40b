// /setup#<code>: the first run, making the first coach account with the server's setup code.

import { post, submitForm } from './account.js';

const $ = (id) => document.getElementById(id);

const fillCode = () => {
  const code = location.hash.slice(1);
  if (code) $('code').value = decodeURIComponent(code);
};
fillCode();
window.addEventListener('hashchange', fillCode);
fetch('/api/setup', { cache: 'no-store' }).then((r) => r.json()).then((s) => {
  if (!s.needed) location.replace('/login');
}).catch(() => {});

submitForm($('setup'), $('problem'), (fields) => post('/api/setup', fields), () => location.replace('/'));
