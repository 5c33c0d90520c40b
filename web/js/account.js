// The coach's account from the pages: who is logged in, logging in, out, the first run and a
// password change (docs/security.md). The login itself is an HttpOnly cookie the server sets:
// no script ever sees it.

const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** POST a JSON body: {ok, status, data, message}; never throws. */
export async function post(path, body) {
  try {
    const res = await fetch(path, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body ?? {}), cache: 'no-store' });
    const data = await res.json().catch(() => null);
    return { ok: res.ok, status: res.status, data, message: data?.error?.message ?? res.statusText };
  } catch (err) {
    return { ok: false, status: 0, data: null, message: 'the server cannot be reached' };
  }
}

/** The logged-in coach ({id, email, name}) or null. */
export async function me() {
  try {
    const res = await fetch('/api/me', { cache: 'no-store' });
    return res.ok ? (await res.json()).coach : null;
  } catch {
    return null;
  }
}

/** The page to go to after logging in: ?next= if it is a path of this server, else the start. */
export function nextPage() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

/** Wire a form: on submit, send its fields, show the problem or run `done(answer)`. */
export function submitForm(form, problem, send, done) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    problem.hidden = true;
    const answer = await send(Object.fromEntries(new FormData(form)));
    button.disabled = false;
    if (answer.ok) {
      done(answer);
      return;
    }
    problem.textContent = answer.status === 0 ? 'The server cannot be reached. Check your connection and try again.'
      : `${answer.message[0].toUpperCase()}${answer.message.slice(1)}.`;
    problem.hidden = false;
  });
}
