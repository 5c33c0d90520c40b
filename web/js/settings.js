// The coach's settings (docs/sidebar.md): tag kinds, the tag lead and the nudge thresholds.
// Loaded from the server and kept in localStorage, so tagging works with the coach's own kinds
// and lead even when the page opens while the server is unreachable.

import { keep, readKept } from './kept.js';

export const DEFAULTS = {
  tag_lead_s: 5,
  tag_kinds: [
    { id: 'breakthrough', label: 'Breakthrough' },
    { id: 'resistance', label: 'Resistance' },
    { id: 'action_commitment', label: 'Action commitment' },
    { id: 'goal_clarity', label: 'Goal clarity' },
    { id: 'emotional_shift', label: 'Emotional shift' },
    { id: 'confidence', label: 'Confidence' },
  ],
  nudges: {
    min_gap_s: 60, same_kind_gap_s: 300, show_s: 60,
    talk_balance: { enabled: true, share: 0.65, min_speech_s: 120 },
    monologue: { enabled: true, seconds: 90 },
    wait: { enabled: true, filled_silences: 3, window_s: 300 },
    client_quiet: { enabled: true, seconds: 240 },
  },
};

export const MAX_KINDS = 9; // keys 1 to 9

export class Settings {
  constructor(api, session) {
    this.api = api;
    this.key = `livecoach.${session}.settings`;
    this.listeners = [];
    this.value = this.cached() ?? structuredClone(DEFAULTS);
    this.loaded = false; // from the server, in this page
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  get kinds() {
    return (this.value.tag_kinds ?? DEFAULTS.tag_kinds).slice(0, MAX_KINDS);
  }

  get lead() {
    const lead = Number(this.value.tag_lead_s);
    return Number.isFinite(lead) && lead >= 0 ? lead : DEFAULTS.tag_lead_s;
  }

  get showSeconds() {
    return this.value.nudges?.show_s ?? DEFAULTS.nudges.show_s;
  }

  cached() {
    const v = readKept(this.key, null);
    return v && Array.isArray(v.tag_kinds) ? v : null;
  }

  set(value) {
    if (JSON.stringify(value) === JSON.stringify(this.value)) return; // as cached: nothing to redraw
    this.value = value;
    keep(this.key, value); // the cache is a convenience: a failed write does not matter
    for (const fn of this.listeners) fn(value);
  }

  /** Fetches the server's settings; returns whether that worked. */
  async load() {
    const res = await this.api.get('/settings');
    if (res.ok && res.data && Array.isArray(res.data.tag_kinds)) {
      this.loaded = true;
      this.set(res.data);
    }
    return res.ok;
  }

  /** Replaces the settings on the server: {ok, message}. */
  async save(value) {
    const res = await this.api.put('/settings', value);
    if (res.ok && res.data) this.set(res.data);
    return { ok: res.ok, message: res.ok ? '' : res.message || (res.status ? `the server answered ${res.status}` : 'the server cannot be reached') };
  }
}
