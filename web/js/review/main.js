// /s/<session>/review#<coach token>: replaying a call. Loads the review payload, then wires the
// play clock, the media, the timeline and overview, the tags, the live view and the summary.
// Everything follows one play clock (clock.js); this module only connects the parts.
//
// The payload was asked for by boot.js before these modules loaded. When it arrives, the
// recordings' elements are made first and the browser gets a moment to send their requests;
// the page is drawn while they load. What is below the page's fold (what the coach saw live, the
// downloads, the privacy panel) is loaded and made only once the page is drawn and playable.

import { clock as fmtClock } from '../format.js';
import { DEFAULTS } from '../settings.js';
import { first, link, api, request } from './boot.js';
import { PlayClock } from './clock.js';
import { $, h } from './dom.js';
import { bindKeys } from './keys.js';
import { BROKEN_LINK } from './load.js';
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
const DEFER_MAX_MS = 2000; // what waits for the recordings to be playable waits at most this long

start(first);

async function start(pending = request()) {
  const status = $('review-status');
  const problem = $('problem');
  problem.hidden = true;
  if (!link.session) return fail({ text: BROKEN_LINK });
  status.hidden = false;
  const review = await pending;
  if (!review.ok) return fail(review);
  status.hidden = true;
  performance.mark('review-loaded');
  try {
    await mount(review.data);
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
  if (retry) problem.append(' ', h('button', { type: 'button', class: 'btn small', onclick: () => start() }, 'Try again'));
  problem.hidden = false;
}

/** A moment for the browser's other tasks: the media elements' loading runs on this thread too
 * (their requests, the data as it comes in), so the page is built in a few parts, not one. */
const breath = () => new Promise((resolve) => setTimeout(resolve, 0));

async function mount(data) {
  const duration = data.session.duration_s;
  const playClock = new PlayClock(duration);

  // The recordings first: their loading is what takes longest, and it needs no drawing.
  let transport = null;
  let mediaProblem = '';
  const media = new MediaSet(data.recordings, playClock, (text) => {
    mediaProblem = text;
    transport?.say(text);
  });
  $('audio').append(...media.audios);
  const levels = loadLevels(data.recordings);
  // What can wait until the recordings can play: the tag rows out of sight, the level strips
  // (drawn over the lanes already there), the date in the header, the parts below the fold.
  const playable = media.playable(DEFER_MAX_MS);
  await breath();

  const kinds = data.tag_kinds?.length ? data.tag_kinds : DEFAULTS.tag_kinds; // the coach's, in the payload
  header(data.session);

  const view = new View(duration);
  const tags = new ReviewTags(api, link.session, data.tags);
  const seek = (t) => playClock.seek(t);
  // A click on a moment (timeline, marker, list, summary) plays from there; keys only move.
  const playFrom = (t) => {
    seek(t);
    if (!playClock.playing) toggle();
  };

  transport = new Transport($('transport'), {
    clock: playClock, view, duration,
    seekBy: (s) => seek(playClock.now() + s),
    stepTag: (dir) => stepTag(dir),
    toggle: () => toggle(),
  });
  if (mediaProblem) transport.say(mediaProblem);
  const videos = videoTiles(data, media);
  await breath();

  const overview = new Overview($('overview'), { data, view, clock: playClock, onSeek: playFrom });
  const timeline = new Timeline($('timeline'), {
    data, view, clock: playClock, onSeek: playFrom,
    onTag: (id) => {
      playFrom(tags.get(id).session_time);
      panel.select(id);
    },
  });
  await breath();
  const panel = new TagPanel($('tags'), {
    tags, kinds, clock: playClock, api, duration, onSeek: playFrom,
    clipKind: 'audio', // both voices: the moment as it was said (a video clip is one participant's)
  });
  await breath();
  let balance = null; // made once the page is drawn and playable
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
  media.onSettle = requestSync; // a held clock goes on as soon as the media can play
  // A seek moves the media at once, before anything is redrawn: their requests go out first.
  playClock.on('seek', () => {
    media.sync({ seeking: true });
    view.reveal(playClock.now());
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
    balance?.tick();
    videos.tick(t);
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);

  $('review-body').hidden = false;
  $('review').setAttribute('aria-busy', 'false');
  const drawn = new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  Promise.all([playable, drawn]).then(() => {
    panel.more();
    levels.then((found) => timeline.setLevels(found));
    later(() => headerDate(data.session));
    later(async () => { // its nudge threshold is the only one of the coach's settings not in the payload
      const [{ Balance }, settings] = await Promise.all([import('./balance.js'), api.get('/settings')]);
      const share = settings.ok ? settings.data?.nudges?.talk_balance?.share : null;
      balance = new Balance($('saw'), {
        data, threshold: share ?? DEFAULTS.nudges.talk_balance.share, clock: playClock, onSeek: playFrom,
      });
    });
    later(() => import('./downloads.js')); // it fills its panel as it loads
    later(async () => {
      const { mountPrivacy } = await import('./privacy.js');
      mountPrivacy($('privacy'), api, () => {
        for (const el of document.querySelectorAll('audio, video')) el.remove();  // their files are gone
        $('review-body').replaceChildren(h('p', { class: 'review-status', dataset: { testid: 'deleted' },
          text: 'This session is deleted: its recordings, tags, notes and figures are gone.' }));
      });
    });
  });
  // Ms from navigation, for tests: once every part is in the page (a long tag list's last rows
  // come a few frames after the page is first drawn).
  panel.complete.then(() => {
    document.body.dataset.ready = String(Math.round(performance.now()));
  });
}

function header(session) {
  document.title = `Review${session.label ? ` · ${session.label}` : ''} · livecoach`;
  $('review-title').textContent = session.label ? `Review: ${session.label}` : 'Review';
  const meta = $('review-meta');
  meta.textContent = fmtClock(session.duration_s);
  const state = $('review-state');
  state.hidden = session.state !== 'live';
  state.textContent = 'the call is still running';
}

/** The session's date, once the page is drawn: a page's first toLocaleString loads the locale's data. */
function headerDate(session) {
  if (!Number.isFinite(session.created_at)) return;
  const when = new Date(session.created_at * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  $('review-meta').textContent = `${when} · ${fmtClock(session.duration_s)}`;
}

/** Runs `fn` after the next frame, when the browser has a moment (within a second). */
function later(fn) {
  requestAnimationFrame(() => {
    if (window.requestIdleCallback) requestIdleCallback(fn, { timeout: 1000 });
    else setTimeout(fn, 50);
  });
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
