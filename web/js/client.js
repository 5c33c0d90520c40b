// The client's page: a notice, consent by joining, and the call. It never opens the
// indicator stream and shows no analysis.

import { room } from './room.js';

room({ role: 'client', other: 'your coach', consent: true });
