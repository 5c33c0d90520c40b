// The coach's page: the call, and beside it the sidebar. The sidebar opens with the page, not
// with the call; /s/<session>/sidebar shows it alone, in a window of its own (a second call
// window with the same link would replace the first).

import { readLink } from './link.js';
import { at } from './node.js';
import { room } from './room.js';
import { mountSidebar } from './sidebar.js';
import { videoSetting } from './videosetting.js';

const link = readLink();
room({ role: 'coach', other: 'your client' });
if (link.session && link.token) {
  mountSidebar(document.getElementById('sidebar'), link);
  videoSetting(link, document.getElementById('record-video'));
  // The review is one click away at any time, not only when the call ends.
  const review = document.getElementById('review-now');
  review.href = at(`/s/${encodeURIComponent(link.session)}/review#${link.token}`);
  review.hidden = false;
}
