// /login: email and password; the server sets the login cookie and the page goes on.

import { me, nextPage, post, submitForm } from './account.js';

const $ = (id) => document.getElementById(id);

if (await me()) location.replace(nextPage());
fetch('/api/setup', { cache: 'no-store' }).then((r) => r.json()).then((s) => { $('first-run').hidden = !s.needed; }).catch(() => {});

submitForm($('login'), $('problem'), (fields) => post('/api/login', fields), () => location.replace(nextPage()));
