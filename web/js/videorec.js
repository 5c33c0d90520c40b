// This browser's own camera and microphone, recorded with MediaRecorder while the server says
// so (the `recording` status names this participant under `video`), and uploaded in numbered
// chunks every few seconds (docs/review.md, "Video uploads"). A pause stops the recording and a
// resume starts a new one, so each file stays on the session clock. Chunks wait in memory while
// the server cannot be reached and go out in order when it is back; a closed tab loses at most
// the chunk being recorded. A page that goes away mid-recording (a reload, a closed tab) tells
// the server that its file ends with what it has, so that the file is finished at once (and a
// reload's new recording follows it) rather than after the server's 2 minutes without a chunk.

import { at } from './node.js';

const CHUNK_MS = 3000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const TYPES = ['video/webm;codecs=vp8,opus', 'video/webm;codecs=vp9,opus', 'video/webm'];
const VOID = new Uint8Array([0xec, 0x80]); // a WebM Void element: a last chunk with no media in it

async function sha256(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class VideoRecorder {
  /**
   * @param {{session: string, token: string}} link
   * @param {MediaStream} stream the local camera and microphone
   * @param {import('./signal.js').Channel} signal the call's channel
   * @param {'coach'|'client'} role
   */
  constructor(link, stream, signal, role) {
    this.base = at(`/api/sessions/${encodeURIComponent(link.session)}/uploads/`);
    this.token = link.token;
    this.stream = stream;
    this.role = role;
    this.recorder = null;
    this.queue = [];
    this.sending = false;
    this.clock = null; // {t, at}: session time t at performance.now() at
    this.mime = TYPES.find((t) => window.MediaRecorder?.isTypeSupported(t));
    this.active = null; // the id of the recording in progress
    this.stored = new Map(); // recording id -> how many of its chunks the server has stored
    this.inflight = null; // the chunk being uploaded
    this.voidSha = null; // the hash of VOID, ready before the page can go away
    sha256(new Blob([VOID])).then((hex) => { this.voidSha = hex; });
    window.addEventListener('pagehide', () => this.abandon());
    signal
      .on('welcome', (m) => {
        this.clock = { t: m.session_time, at: performance.now() };
        this.follow(m.recording);
      })
      .on('recording', (m) => this.follow(m));
  }

  sessionNow() {
    return this.clock ? this.clock.t + (performance.now() - this.clock.at) / 1000 : 0;
  }

  /** Record exactly while the server's status asks this participant's video to be recorded. */
  follow(status) {
    const wanted = status?.state === 'on' && status.video?.includes(this.role);
    if (wanted && !this.recorder) this.start();
    if (!wanted && this.recorder) this.stop();
  }

  start() {
    if (!this.mime || !this.stream.getVideoTracks().some((t) => t.readyState === 'live')) return;
    const id = crypto.randomUUID();
    const start = Math.max(0, this.sessionNow());
    const recorder = new MediaRecorder(this.stream, { mimeType: this.mime });
    let number = 0;
    let ended = false;
    // Every chunk with data, then at `stop` (which comes after the last `dataavailable`) an
    // empty last chunk that finishes the file. Chromium can fire two `dataavailable` after
    // stop(), both with the recorder inactive: marking either "last" would finish the file
    // early and have the other refused.
    recorder.ondataavailable = (e) => {
      if (!ended && e.data.size) this.enqueue({ id, number: number++, blob: e.data, start, last: false });
    };
    recorder.onstop = () => {
      ended = true;
      if (number > 0) this.enqueue({ id, number: number++, blob: new Blob([]), start, last: true });
    };
    recorder.onerror = (e) => console.warn('video recording:', e.error ?? e);
    recorder.start(CHUNK_MS);
    this.recorder = recorder;
    this.active = id;
  }

  /** Stop recording; the last chunk is uploaded with `last`, which finishes the file. */
  stop() {
    const recorder = this.recorder;
    this.recorder = null;
    this.active = null;
    if (recorder && recorder.state !== 'inactive') recorder.stop();
  }

  /**
   * The page goes away while recording: MediaRecorder's chunk in progress is lost with it, but
   * the server can finish the file with the chunks it has. An empty last chunk, numbered after
   * them, says so; `keepalive` lets it outlive the page. If older chunks still wait here (the
   * server was unreachable), they are lost too, and the server finishes the file by itself.
   */
  abandon() {
    const id = this.active;
    const recorder = this.recorder;
    this.active = null;
    this.recorder = null;
    if (recorder) recorder.ondataavailable = null;
    if (!id || !this.voidSha) return;
    if (this.queue.some((c) => c.id === id && c !== this.inflight)) return;
    // A chunk in flight is cut off with the page, or was stored just before: if it was not,
    // this last chunk is refused as out of order, and the server finishes the file later.
    const number = this.inflight?.id === id ? this.inflight.number + 1 : (this.stored.get(id) ?? 0);
    if (number === 0) return; // nothing stored: no file to finish
    fetch(`${this.base}${id}/${number}?last=1`, {
      method: 'PUT',
      keepalive: true,
      headers: { Authorization: `Bearer ${this.token}`, 'X-Content-SHA256': this.voidSha },
      body: VOID,
    }).catch(() => {});
  }

  enqueue(chunk) {
    this.queue.push(chunk);
    this.send();
  }

  async send() {
    if (this.sending) return;
    this.sending = true;
    let attempt = 0;
    while (this.queue.length) {
      const chunk = this.queue[0];
      this.inflight = chunk;
      const outcome = await this.upload(chunk);
      this.inflight = null;
      if (outcome === 'done') this.stored.set(chunk.id, chunk.number + 1);
      if (outcome === 'retry') {
        await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)]));
        continue;
      }
      attempt = 0;
      if (outcome === 'give-up') this.queue = this.queue.filter((c) => c.id !== chunk.id);
      else this.queue.shift();
    }
    this.sending = false;
  }

  /** One chunk: 'done', 'retry' (network or server trouble) or 'give-up' (this recording is refused). */
  async upload({ id, number, blob, start, last }) {
    const query = new URLSearchParams();
    if (number === 0) query.set('start', start.toFixed(3));
    if (last) query.set('last', '1');
    const body = blob.size ? blob : new Blob([VOID]); // an empty last chunk
    let res;
    try {
      res = await fetch(`${this.base}${id}/${number}?${query}`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${this.token}`, 'X-Content-SHA256': await sha256(body) },
        body,
      });
    } catch {
      return 'retry';
    }
    if (res.ok) return 'done';
    if (res.status >= 500 && res.status !== 507) return 'retry';
    const error = (await res.json().catch(() => null))?.error;
    if (error?.code === 'out-of-order' && error.expected > number) return 'done'; // already there
    console.warn('video upload refused:', res.status, error?.code, error?.message);
    return 'give-up';
  }
}
