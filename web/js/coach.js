// The coach's page: the call, and beside it the sidebar. The sidebar opens with the page, not
// with the call; /s/<session>/sidebar shows it alone, in a window of its own (a second call
// window with the same link would replace the first).

import { room, readLink } from './room.js';
import { mountSidebar } from './sidebar.js';

const link = readLink();
room({ role: 'coach', other: 'your client' });
if (link.session && link.token) mountSidebar(document.getElementById('sidebar'), link);
