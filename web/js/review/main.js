// /s/<session>/review#<coach token>: replaying a call. Loads the review payload, then wires the
// play clock, the media, the timeline and overview, the tags, the live view and the summary.
// Everything follows one play clock (clock.js); this module only connects the parts.

import { Api } from '../api.js';
import { clock as fmtClock } from '../format.js';
import { readLink } from '../room.js';
import { DEFAULTS } from '../settings.js';
import { Balance } from './balance.js';
import { PlayClock } from './clock.js';
import { $, h } from './dom.js';
import { bindKeys } from './keys.js';
import { BROKEN_LINK, loadReview } from './load.js';
import { MediaSet } from './media.js';
import { Overview } from './overview.js';
import { loadLevels } from './peaks.js';
import { renderSummary } from './summary.js';
import { TagPanel } from './taglist.js';
import { ReviewTags } from './tagstate.js';
import { Timeline } from './timeline.js';
import { Transport } from './transport.js';
import { View } from './view.js';

const SYNC_MS = 250; // media follow the clock this often (and at once on every change)
const STEP_BACK_S = 0.75; // "previous tag" skips the tag just jumped to while it plays on
const ZOOM_STEP = 2;

const link = readLink();
start();

async function start() {
  const status = $('review-status');
  const problem = $('problem');
  problem.hidden = true;
  if (!link.session || !link.token) return fail({ text: BROKEN_LINK });
  status.hidden = false;
  const api = new Api(link);
  const [review, settings] = await Promise.all([loadReview(api), api.get('/settings')]);
  if (!review.ok) return fail(review);
  status.hidden = true;
  performance.mark('review-loaded');
  try {
    mount(api, review.data, settings.ok ? settings.data : null);
    performance.measure('review-mount', 'review-loaded');
  } catch (err) {
    console.error(err);
    fail({ text: `This review could not be drawn (${err.message}). Reload the page; if it happens again, the session’s data may be damaged.` });
  }
}

function fail({ text, retry }) {
  $('review-status').hidden = true;
  $('review').setAttribute('aria-busy', 'false');
  const problem = $('problem');
  problem.replaceChildren(h('span', { text }));
  if (retry) problem.append(' ', h('button', { type: 'button', class: 'btn small', onclick: start }, 'Try again'));
  problem.hidden = false;
}

function mount(api, data, settings) {
  const duration = data.session.duration_s;
  const kinds = data.tag_kinds?.length ? data.tag_kinds : (settings?.tag_kinds ?? DEFAULTS.tag_kinds);
  const threshold = settings?.nudges?.talk_balance?.share ?? DEFAULTS.nudges.talk_balance.share;
  header(data.session);

  const playClock = new PlayClock(duration);
  const view = new View(duration);
  const tags = new ReviewTags(api, link.session, data.tags);
  const seek = (t) => playClock.seek(t);
  // A click on a moment (timeline, marker, list, summary) plays from there; keys only move.
  const playFrom = (t) => {
    seek(t);
    if (!playClock.playing) toggle();
  };

  const transport = new Transport($('transport'), {
    clock: playClock, view, duration,
    seekBy: (s) => seek(playClock.now() + s),
    stepTag: (dir) => stepTag(dir),
    toggle: () => toggle(),
  });
  const media = new MediaSet(data.recordings, playClock, (text) => transport.say(text));
  $('audio').append(...media.audios);
  const videos = videoTiles(data, media);

  const overview = new Overview($('overview'), { data, view, clock: playClock, onSeek: playFrom });
  const timeline = new Timeline($('timeline'), {
    data, view, clock: playClock, onSeek: playFrom,
    onTag: (id) => {
      playFrom(tags.get(id).session_time);
      panel.select(id);
    },
  });
  const panel = new TagPanel($('tags'), {
    tags, kinds, clock: playClock, api, duration, onSeek: playFrom,
    clipKind: data.recordings.some((r) => r.kind === 'video') ? 'video' : 'audio',
  });
  const balance = new Balance($('saw'), { data, threshold, clock: playClock, onSeek: playFrom });
  renderSummary($('summary'), data, playFrom);
  if (!duration) transport.remark('Nothing was kept of this session: nobody spoke, and nothing was recorded.');
  else if (!data.recordings.length) transport.remark('This session was not recorded: the timeline, tags and figures are all there is.');

  const showTags = () => {
    const list = tags.list();
    timeline.setTags(list);
    overview.setTags(list);
  };
  tags.onChange(showTags);
  showTags();
  loadLevels(data.recordings).then((levels) => timeline.setLevels(levels));

  function toggle() {
    if (!playClock.playing) media.played();
    playClock.toggle();
  }

  function stepTag(dir) {
    const t = playClock.now();
    const list = tags.list();
    const tag = dir < 0 ? list.findLast((x) => x.session_time < t - STEP_BACK_S) : list.find((x) => x.session_time > t + 0.05);
    if (!tag) return;
    seek(tag.session_time);
    panel.select(tag.id);
  }

  bindKeys({
    toggle,
    seekBy: (s) => seek(playClock.now() + s),
    stepTag,
    addTag: (i) => kinds[i] && panel.add(kinds[i]),
    zoom: (dir) => view.zoom(dir > 0 ? ZOOM_STEP : 1 / ZOOM_STEP, transport.zoomCentre()),
    whole: () => view.showWhole(),
  });

  // Media follow every change at once; coalesced, since a hold inside sync() is a change too.
  let queued = false;
  const requestSync = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      media.sync();
    });
  };
  playClock.on('seek', () => {
    view.reveal(playClock.now());
    requestSync();
  }).on('state', requestSync);
  setInterval(() => media.sync(), SYNC_MS);

  // The play position on screen, every frame; the detail view turns the page as it passes.
  let last = playClock.now();
  const frame = () => {
    const t = playClock.now();
    if (playClock.playing && last <= view.end && t > view.end) view.reveal(t);
    last = t;
    transport.tick();
    timeline.tick();
    overview.tick();
    balance.tick();
    videos.tick(t);
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);

  $('review-body').hidden = false;
  $('review').setAttribute('aria-busy', 'false');
  document.body.dataset.ready = String(Math.round(performance.now())); // ms from navigation, for tests
}

function header(session) {
  document.title = `Review${session.label ? ` · ${session.label}` : ''} · livecoach`;
  $('review-title').textContent = session.label ? `Review: ${session.label}` : 'Review';
  const when = Number.isFinite(session.created_at)
    ? new Date(session.created_at * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
  $('review-meta').textContent = [when, fmtClock(session.duration_s)].filter(Boolean).join(' · ');
  const state = $('review-state');
  state.hidden = session.state !== 'live';
  state.textContent = 'the call is still running';
}

/** A tile per participant with video: whichever of their videos covers the play position. */
function videoTiles(data, media) {
  const tiles = [];
  for (const p of ['coach', 'client']) {
    const els = media.videosOf(p);
    if (!els.length) continue;
    const none = h('p', { class: 'video-none', text: 'No video at this point' });
    tiles.push({ els, none });
    $('videos').append(h('figure', { class: `video-tile ${p}`, dataset: { testid: `video-${p}` } },
      ...els, none, h('figcaption', { text: p === 'coach' ? 'Coach' : 'Client' })));
  }
  $('videos').hidden = !tiles.length;
  return {
    tick() {
      for (const { els, none } of tiles) none.hidden = els.some((el) => !el.hidden);
    },
  };
}
