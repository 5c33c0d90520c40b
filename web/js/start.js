// The start page: create a session, then show the coach's link and the client's invite.

const $ = (id) => document.getElementById(id);

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
