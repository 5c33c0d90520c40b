// A small form for the coach's settings: the tag lead, the tag kinds (keys 1 to 9) and the
// nudge thresholds. It sends the whole object with PUT /settings (docs/sidebar.md).

import { MAX_KINDS } from './settings.js';

const NUDGES = [
  { kind: 'talk_balance', label: 'Talk balance', field: 'share', unit: '% coach share', scale: 100, min: 50, max: 95 },
  { kind: 'monologue', label: 'Monologue', field: 'seconds', unit: 's coach turn', scale: 1, min: 10, max: 600 },
  { kind: 'wait', label: 'Wait', field: 'filled_silences', unit: 'filled silences in 5 min', scale: 1, min: 1, max: 20 },
  { kind: 'client_quiet', label: 'Client quiet', field: 'seconds', unit: 's without the client', scale: 1, min: 30, max: 1800 },
];

/** A tag kind's id from its label: the API's alphabet, unique among `taken`. */
function kindId(label, taken) {
  const base = label.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 32) || 'tag';
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}_${n}`;
  return id;
}

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

export class SettingsPanel {
  constructor(form, settings) {
    this.form = form;
    this.settings = settings;
    settings.onChange(() => this.form.contains(document.activeElement) || this.build());
    form.addEventListener('input', () => this.status && (this.status.textContent = ''));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.save();
    });
    this.build();
  }

  build() {
    const v = this.settings.value;
    this.kinds = v.tag_kinds.map((k) => ({ ...k }));
    const lead = el('input', { type: 'number', min: 0, max: 60, step: 0.5, value: v.tag_lead_s, name: 'tag_lead_s' });
    lead.dataset.testid = 'setting-lead';
    this.kindList = el('ol', { className: 'kind-list' });
    const add = el('button', { type: 'button', className: 'btn small', textContent: 'Add a kind' });
    add.addEventListener('click', () => {
      if (this.kinds.length >= MAX_KINDS) return;
      this.kinds.push({ id: '', label: '' });
      this.renderKinds();
      this.kindList.lastElementChild?.querySelector('input')?.focus();
    });
    this.add = add;

    const nudges = el('fieldset', {}, el('legend', { textContent: 'Nudges' }));
    for (const n of NUDGES) {
      const rule = v.nudges?.[n.kind] ?? {};
      const on = el('input', { type: 'checkbox', checked: rule.enabled !== false, name: `${n.kind}.enabled` });
      const value = el('input', {
        type: 'number', name: `${n.kind}.${n.field}`, min: n.min, max: n.max, step: 1,
        value: Math.round((rule[n.field] ?? 0) * n.scale),
      });
      value.setAttribute('aria-label', `${n.label}: ${n.unit}`);
      nudges.append(el('div', { className: 'nudge-rule' },
        el('label', { className: 'check' }, on, ` ${n.label}`), value, el('span', { className: 'hint', textContent: n.unit })));
    }

    this.status = el('p', { className: 'hint', role: 'status' });
    this.form.replaceChildren(
      el('label', { className: 'inline' }, 'Tag lead ', lead, el('span', { className: 'hint', textContent: ' s before the click' })),
      el('fieldset', {}, el('legend', { textContent: 'Tag kinds (keys 1–9)' }), this.kindList, add),
      nudges,
      el('div', { className: 'actions' }, el('button', { type: 'submit', className: 'btn small primary', textContent: 'Save settings' })),
      this.status,
    );
    this.renderKinds();
  }

  renderKinds() {
    this.kindList.replaceChildren(...this.kinds.map((k, i) => {
      const input = el('input', { type: 'text', value: k.label, maxLength: 60, required: true });
      input.setAttribute('aria-label', `Tag kind ${i + 1}`);
      input.addEventListener('input', () => (k.label = input.value));
      const remove = el('button', { type: 'button', className: 'btn small', textContent: 'Remove' });
      remove.setAttribute('aria-label', `Remove tag kind ${i + 1}`);
      remove.addEventListener('click', () => {
        this.kinds.splice(i, 1);
        this.renderKinds();
      });
      return el('li', {}, input, remove);
    }));
    this.add.disabled = this.kinds.length >= MAX_KINDS;
  }

  async save() {
    const v = structuredClone(this.settings.value);
    const data = new FormData(this.form);
    v.tag_lead_s = Number(data.get('tag_lead_s'));
    const taken = new Set(this.kinds.filter((k) => k.id).map((k) => k.id));
    v.tag_kinds = this.kinds.filter((k) => k.label.trim()).map((k) => {
      if (k.id) return { id: k.id, label: k.label.trim() };
      const id = kindId(k.label, taken);
      taken.add(id);
      return { id, label: k.label.trim() };
    });
    v.nudges ??= {};
    for (const n of NUDGES) {
      const rule = (v.nudges[n.kind] ??= {});
      rule.enabled = data.get(`${n.kind}.enabled`) === 'on';
      rule[n.field] = Number(data.get(`${n.kind}.${n.field}`)) / n.scale;
    }
    this.status.textContent = 'Saving…';
    const res = await this.settings.save(v);
    if (res.ok) this.build();
    this.status.textContent = res.ok ? 'Saved.' : `Not saved: ${res.message}`;
  }
}
