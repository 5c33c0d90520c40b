// Building elements from code. The page's Content-Security-Policy refuses inline styles and
// scripts, so markup is made here, never from strings with data in them: text goes in as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An element: h('button', {class: 'btn', type: 'button', onclick: fn, dataset: {id}}, 'text', child…).
 * `text` sets textContent; null, undefined and false props or children are skipped.
 */
export function h(tag, props = {}, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** The same for SVG elements. */
export function s(tag, props = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

function fill(el, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (id) => document.getElementById(id);

/** Keyboard shortcuts stay out of the way while someone types. */
export const TYPING = 'input, textarea, select, [contenteditable]';
