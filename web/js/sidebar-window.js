// /s/<session>/sidebar: the coach's sidebar alone, for a second screen or beside another app.

import { readLink } from './link.js';
import { mountSidebar } from './sidebar.js';

const link = readLink();
const root = document.getElementById('sidebar');
if (link.session && link.token) {
  mountSidebar(root, link, { standalone: true });
} else {
  const p = document.createElement('p');
  p.className = 'problem';
  p.setAttribute('role', 'alert');
  p.textContent = 'This link is not complete. Open the whole link, including the part after “#”.';
  root.replaceChildren(p);
}
