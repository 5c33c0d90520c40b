// The call page shared by coach and client: the preview before joining, then the call with
// its controls, then the end. Element ids are the same in coach.html and client.html.

import { Channel } from './signal.js';
import { Preview } from './devices.js';
import { Call } from './call.js';
import { showRecording, loadNotice } from './recording.js';
import { VideoRecorder } from './videorec.js';
import { readLink } from './link.js';

export { readLink }; // its home is link.js; kept here for pages that import it from room.js

const $ = (id) => document.getElementById(id);

// Reloading cannot help with these: the link itself is refused.
const DEAD_LINK = new Set(['bad-token', 'unknown-session']);

function showProblem(text) {
  $('problem').textContent = text;
  $('problem').hidden = !text;
}

/** Shows the end screen; `again` labels the button that reloads the page, if any. */
function showEnd(title, text, again) {
  for (const id of ['lobby', 'call']) $(id).hidden = true;
  $('ended').hidden = false;
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  $('again').hidden = !again;
  $('again').textContent = again ?? '';
  $('again').onclick = () => location.reload();
  const review = $('review-link'); // the coach's page only
  if (review) {
    review.href = $('review-now').href;
    review.hidden = !review.href;
  }
  $('recording').hidden = true;
  setStatus('ended', 'Not in the call');
}

function setStatus(state, text, topology) {
  const el = $('call-status');
  el.dataset.state = state;
  el.dataset.topology = topology ?? '';
  el.textContent = text;
}

/** What to tell the participant about the call's state: [data-state, sentence]. */
function describe(s, other) {
  if (s.signal === 'connecting') return ['connecting', 'Connecting…'];
  if (s.signal === 'reconnecting') return ['reconnecting', 'Connection lost. Reconnecting…'];
  if (!s.peer) return ['waiting', `Waiting for ${other} to join`];
  if (s.media !== 'connected') return ['joining', `Connecting to ${other}…`];
  return ['live', s.topology === 'relay' ? 'In the call, through the server' : 'In the call'];
}

/**
 * @param {object} opts
 * @param {'coach'|'client'} opts.role
 * @param {string} opts.other how to name the other participant ("your coach")
 * @param {boolean} [opts.consent] send consent: true with the hello (the client's Join)
 */
export function room({ role, other, consent = false }) {
  const link = readLink();
  const broken = link.session && link.token ? '' : 'This link is not complete. Open the whole link you were given, including the part after “#”.';
  // Join waits until the devices have been asked for: a click during the permission prompt
  // would otherwise start the call with no microphone and no camera.
  $('join').disabled = true;
  // A device problem shows while there is one; a broken link stays shown regardless.
  const preview = new Preview($('preview'), { audio: $('mic-select'), video: $('camera-select') }, (text) => showProblem(text || broken));
  // The client joins by agreeing to the notice, so Join waits for the server's wording of it.
  const notice = consent && !broken
    ? loadNotice(link).then((n) => { $('notice').textContent = n.notice; }, (err) => { showProblem(err.message); throw err; })
    : Promise.resolve();
  Promise.allSettled([preview.open(), notice]).then(([, loaded]) => {
    $('join').disabled = Boolean(broken) || loaded.status === 'rejected';
  });
  setStatus('idle', 'Not in the call yet');

  $('decline')?.addEventListener('click', () => {
    preview.stop();
    showEnd(
      'You have not joined.',
      'Nothing was sent, and your camera and microphone are off again. You can close this page, or open the invite link again if you change your mind.',
      'Back to the invite',
    );
  });

  $('join').addEventListener('click', () => {
    showProblem('');
    const stream = preview.stream; // the call takes over the previewed devices
    const hello = { type: 'hello', session: link.session, token: link.token };
    if (consent) hello.consent = true;
    const signal = new Channel('/ws/signal', hello, 15000);
    const call = new Call(signal, stream, role, (s) => render(s));
    showRecording(signal, role);
    const video = new VideoRecorder(link, stream, signal, role);

    const remoteVideo = $('remote-video');
    function render(s) {
      if (s.signal === 'ended') return;
      const [state, text] = describe(s, other);
      setStatus(state, text, s.topology);
      $('remote-note').textContent = text;
      $('remote-note').hidden = state === 'live';
      if (remoteVideo.srcObject !== s.remote) remoteVideo.srcObject = s.remote;
    }

    signal.on('error', (m) => {
      if (!m.final) return;
      video.stop();
      call.leave(false);
      showEnd(m.text, DEAD_LINK.has(m.code) ? 'Ask for a new link.' : 'You can join again from this window.', DEAD_LINK.has(m.code) ? undefined : 'Join again');
    });

    const mute = $('mute');
    mute.addEventListener('click', () => {
      const muted = mute.dataset.state !== 'off';
      call.setMuted(muted);
      mute.dataset.state = muted ? 'off' : 'on';
      mute.textContent = muted ? 'Unmute' : 'Mute';
    });
    const camera = $('camera');
    camera.addEventListener('click', () => {
      const on = camera.dataset.state === 'off';
      call.setCamera(on);
      camera.dataset.state = on ? 'on' : 'off';
      camera.textContent = on ? 'Stop camera' : 'Start camera';
    });
    const withdrawn = $('withdrawn');
    if (withdrawn) {
      // The client's page only (client.html): taking back their consent, over the call's own
      // connection (docs/signalling.md: `withdraw`); the server stops what they took back at once.
      $('withdraw-recording').addEventListener('click', () => signal.send({ type: 'withdraw', scopes: ['audio', 'video'] }));
      $('withdraw-all').addEventListener('click', () => signal.send({ type: 'withdraw', scopes: ['analysis', 'audio', 'video'] }));
      signal.on('withdrawn', (m) => {
        withdrawn.textContent = m.scopes.includes('analysis') ? 'You withdrew your consent to the analysis and the recording.'
          : 'You withdrew your consent to the recording: nothing more of you is recorded.';
        withdrawn.hidden = false;
        $('withdraw-recording').disabled = true;
      });
    }
    $('leave').addEventListener('click', () => {
      video.stop();
      call.leave();
      showEnd('You left the call.', 'You can join again with the same link while the session lasts.', 'Join again');
    });

    mute.disabled = !stream.getAudioTracks().length;
    camera.disabled = !stream.getVideoTracks().length;
    $('local-video').srcObject = stream;
    $('lobby').hidden = true;
    $('call').hidden = false;
    call.start();
  }, { once: true });
}
