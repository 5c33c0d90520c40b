// The start page: the logged-in coach creates a session, then sees their link and the client's
// invite. Without a login it sends the coach to /login (or /setup on a server with no coach).

import { me, post, submitForm } from './account.js';

const $ = (id) => document.getElementById(id);

const coach = await me();
if (!coach) {
  const setup = await fetch('/api/setup', { cache: 'no-store' }).then((r) => r.json()).catch(() => ({}));
  location.replace(setup.needed ? '/setup' : '/login?next=/');
} else {
  $('coach-name').textContent = coach.name;
  $('account').hidden = false;
}
$('logout').addEventListener('click', async () => {
  await post('/api/logout');
  location.replace('/login');
});
submitForm($('password-form'), $('password-problem'), (fields) => post('/api/password', fields), () => {
  $('password-form').reset();
  $('password-done').hidden = false;
});

async function copy(input, button) {
  const done = (text) => {
    button.textContent = text;
    setTimeout(() => (button.textContent = 'Copy'), 2000);
  };
  try {
    await navigator.clipboard.writeText(input.value);
    done('Copied');
  } catch {
    // The clipboard API needs https (or localhost): select the text for the user instead.
    input.select();
    done(document.execCommand('copy') ? 'Copied' : 'Press Ctrl+C');
  }
}

$('new-session').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('create');
  const label = $('label').value.trim();
  button.disabled = true;
  $('create-problem').hidden = true;
  try {
    const response = await fetch('/api/sessions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(label ? { label } : {}),
    });
    if (response.status === 401) {
      location.replace('/login?next=/');
      return;
    }
    if (response.status !== 201) throw new Error(`the server answered ${response.status}`);
    const created = await response.json();
    $('coach-link').value = new URL(created.coach_url, location.href).href;
    $('client-link').value = new URL(created.client_url, location.href).href;
    $('open-coach').href = created.coach_url;
    $('session-id').textContent = created.session;
    $('created').hidden = false;
    $('client-link').focus();
    $('client-link').select();
  } catch (err) {
    $('create-problem').textContent = `The session could not be created: ${err.message}.`;
    $('create-problem').hidden = false;
  } finally {
    button.disabled = false;
  }
});

for (const name of ['coach', 'client']) {
  $(`copy-${name}`).addEventListener('click', (event) => copy($(`${name}-link`), event.currentTarget));
}
