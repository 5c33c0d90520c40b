// The coach's page: the call, and beside it the live readout. The readout opens with the
// page, not with the call, so a second window can serve as a sidebar without joining (a
// second call window with the same link would replace the first).

import { room, readLink } from './room.js';
import { Readout } from './readout.js';

const link = readLink();
room({ role: 'coach', other: 'your client' });
if (link.session && link.token) new Readout(document.getElementById('readout')).open(link);
