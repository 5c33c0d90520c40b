// The sidebar's HTTP calls (docs/sidebar.md), with the coach's token. Never throws: a request
// that could not be made at all answers {ok: false, status: 0}.

import { at } from './node.js';

const TIMEOUT_MS = 8000;

export class Api {
  constructor({ session, token }) {
    this.base = at(`/api/sessions/${encodeURIComponent(session)}`);
    this.token = token;
  }

  /** @returns {Promise<{ok: boolean, status: number, data: any, code: string|null, message: string}>} */
  request(method, path, body) {
    const init = {
      method,
      headers: this.token ? { Authorization: `Bearer ${this.token}` } : {}, // none: the coach's login
      cache: 'no-store',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return this.receive(fetch(this.base + path, init));
  }

  /** The answer to a request already sent (a fetch's promise), read as request() answers. */
  async receive(pending) {
    let res;
    try {
      res = await pending;
    } catch (err) {
      return { ok: false, status: 0, data: null, code: null, message: String(err?.message ?? err) };
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      // not JSON: a proxy's error page, or a server without this API
    }
    const error = res.ok ? null : data?.error;
    return { ok: res.ok, status: res.status, data, code: error?.code ?? null, message: error?.message ?? res.statusText };
  }

  get(path) { return this.request('GET', path); }
  put(path, body) { return this.request('PUT', path, body); }
  delete(path) { return this.request('DELETE', path); }
}
