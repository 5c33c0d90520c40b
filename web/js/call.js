// The WebRTC side of docs/signalling.md, the same for coach and client.
//
// Every participant has a server connection, which this page offers: the microphone only
// (sendonly) in direct topology, audio and video both ways in relay, where the server's tracks
// are the other participant. In direct topology the call itself runs on a peer connection
// between the two browsers: the coach offers, the client answers, ICE trickles through the
// server. If that is not connected 6 s after the offer, the server is told and switches the
// session to relay.

const FALLBACK_MS = 6000; // direct must be connected this long after the offer
const GATHER_MS = 2000; // longest wait for a complete server offer; later candidates trickle
const RETRY_MS = 2000; // pause before offering again after a failed server connection

/** Resolves when ICE gathering is complete, or after ms. */
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export class Call {
  /**
   * @param {import('./signal.js').Channel} signal the /ws/signal channel, not yet opened
   * @param {MediaStream} stream the local camera and microphone
   * @param {'coach'|'client'} role
   * @param {(state: object) => void} onChange gets {signal, topology, peer, media, remote}
   */
  constructor(signal, stream, role, onChange) {
    this.signal = signal;
    this.stream = stream;
    this.role = role;
    this.onChange = onChange;
    this.iceServers = [];
    this.topology = 'direct';
    this.peerPresent = false;
    this.muted = false;
    this.signalState = 'connecting';
    this.server = null; // {pc, sent}: sent once the offer went out
    this.peer = null; // the RTCPeerConnection to the other browser (direct only)
    this.peerOfferId = null; // the number of the peer offer this.peer belongs to (see offerPeer)
    this.offers = Math.floor(Math.random() * 2 ** 30); // numbers the peer offers (a reload starts elsewhere)
    this.peerQueue = Promise.resolve();
    this.remotes = new WeakMap(); // connection -> the other participant's MediaStream
    signal
      .on('welcome', (m) => this.welcome(m))
      .on('answer', (m) => (m.from === 'server' ? this.serverAnswer(m) : this.peerAnswer(m)))
      .on('offer', (m) => this.peerOffer(m))
      .on('ice', (m) => this.peerIce(m))
      .on('peer-joined', () => this.peerJoined())
      .on('peer-left', () => this.peerLeft())
      .on('topology', (m) => this.switchTopology(m.topology))
      .on('reconnecting', () => this.report('reconnecting'))
      .on('error', (m) => m.final || console.warn('signalling:', m.code, m.message));
  }

  start() {
    this.report('connecting');
    this.signal.open();
  }

  // --- from the server -------------------------------------------------------------

  welcome(m) {
    // Also after a reconnection: the server dropped our connections with the old socket, and
    // the other side was told peer-left, so everything starts afresh.
    this.iceServers = m.ice_servers ?? [];
    this.topology = m.topology;
    this.peerPresent = m.peer_present;
    if (this.muted) this.signal.send({ type: 'mute', muted: true });
    this.closePeer();
    this.openServer();
    if (this.role === 'coach' && this.peerPresent) this.offerPeer();
    this.report('connected');
  }

  peerJoined() {
    this.peerPresent = true;
    if (this.role === 'coach') this.offerPeer();
    this.report();
  }

  peerLeft() {
    this.peerPresent = false;
    this.closePeer();
    this.report();
  }

  switchTopology(topology) {
    if (topology === this.topology) return;
    this.topology = topology;
    this.closePeer();
    this.openServer();
    if (this.role === 'coach' && this.peerPresent) this.offerPeer();
    this.report();
  }

  // --- the server connection -------------------------------------------------------

  async openServer() {
    this.closeServer();
    const relay = this.topology === 'relay';
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const server = { pc, sent: false };
    this.server = server;
    this.addMedia(pc, relay ? ['audio', 'video'] : ['audio'], relay ? 'sendrecv' : 'sendonly');
    if (relay) pc.ontrack = (e) => this.addRemote(pc, e.track);
    pc.onicecandidate = (e) => {
      // Candidates found before the offer went out are in its SDP already.
      if (server.sent && this.server === server) {
        this.signal.send({ type: 'ice', to: 'server', candidate: e.candidate?.toJSON() ?? null });
      }
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.server === server) {
        setTimeout(() => this.server === server && this.openServer(), RETRY_MS);
      }
      this.report();
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_MS);
    } catch (err) {
      console.warn('server connection:', err);
    }
    if (this.server !== server || !pc.localDescription) return;
    server.sent = this.signal.send({ type: 'offer', to: 'server', sdp: pc.localDescription.sdp });
  }

  serverAnswer(m) {
    const server = this.server;
    // An answer for a connection already replaced finds the new one not yet sent.
    if (!server?.sent || server.pc.signalingState !== 'have-local-offer') return;
    server.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch((err) => console.warn('server answer:', err));
  }

  closeServer() {
    this.server?.pc.close();
    this.server = null;
  }

  // --- the peer connection (direct topology) ---------------------------------------

  /** A peer connection for the offer numbered ``offerId``; its candidates carry the number. */
  newPeer(offerId) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.peer = pc;
    this.peerOfferId = offerId;
    pc.onicecandidate = (e) =>
      this.signal.send({ type: 'ice', to: 'peer', candidate: e.candidate?.toJSON() ?? null, offer: offerId });
    pc.ontrack = (e) => this.addRemote(pc, e.track);
    pc.onconnectionstatechange = () => this.report();
    // "Not connected within 6 s of the offer": the coach counts from sending it, the client
    // from receiving it. Either one's report is enough for the server.
    clearTimeout(this.fallback);
    this.fallback = setTimeout(() => {
      if (this.peer === pc && pc.connectionState !== 'connected') this.signal.send({ type: 'direct-failed' });
    }, FALLBACK_MS);
    return pc;
  }

  /** Runs peer-connection steps one at a time, so that candidates wait for the description. */
  peerTask(pc, step) {
    this.peerQueue = this.peerQueue
      .then(() => (this.peer === pc ? step() : undefined))
      .catch((err) => this.peer === pc && console.warn('peer connection:', err));
  }

  /** Each offer is numbered, and the answer and candidates for it carry its number: when the
   * coach offers twice in a row (both pages rejoining at once after a node's death: welcome with
   * peer_present, then peer-joined), an answer to the first must not land on the second's
   * connection, which would then never connect and fall back to the relay. */
  offerPeer() {
    if (this.topology !== 'direct') return;
    const pc = this.newPeer(++this.offers);
    this.addMedia(pc, ['audio', 'video'], 'sendrecv');
    this.peerTask(pc, async () => {
      await pc.setLocalDescription(await pc.createOffer());
      this.signal.send({ type: 'offer', to: 'peer', sdp: pc.localDescription.sdp, offer: this.peerOfferId });
    });
  }

  peerOffer(m) {
    if (m.from !== 'peer' || this.topology !== 'direct') return;
    const pc = this.newPeer(m.offer ?? null);
    this.peerTask(pc, async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      // addTrack takes over the transceivers the offer created.
      for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
      await pc.setLocalDescription(await pc.createAnswer());
      this.signal.send({ type: 'answer', to: 'peer', sdp: pc.localDescription.sdp, offer: m.offer ?? null });
    });
  }

  /** Whether a message from the other browser belongs to this.peer (one without a number, from
   * a page that numbers nothing, is taken as it always was). */
  forThisPeer(m) {
    return m.from === 'peer' && this.peer !== null && (m.offer == null || m.offer === this.peerOfferId);
  }

  peerAnswer(m) {
    const pc = this.peer;
    if (!this.forThisPeer(m)) return;
    this.peerTask(pc, () => pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }));
  }

  peerIce(m) {
    const pc = this.peer;
    if (!this.forThisPeer(m)) return;
    // No argument is the end of candidates.
    this.peerTask(pc, () => (m.candidate ? pc.addIceCandidate(m.candidate) : pc.addIceCandidate()));
  }

  closePeer() {
    clearTimeout(this.fallback);
    if (!this.peer) return;
    this.peer.close();
    this.peer = null;
    this.peerOfferId = null;
  }

  // --- media -------------------------------------------------------------------------

  /** One transceiver per kind, so the offer asks for a kind even without a local device. */
  addMedia(pc, kinds, direction) {
    for (const kind of kinds) {
      const track = this.stream.getTracks().find((t) => t.kind === kind);
      pc.addTransceiver(track ?? kind, { direction, streams: [this.stream] });
    }
  }

  addRemote(pc, track) {
    if (!this.remotes.has(pc)) this.remotes.set(pc, new MediaStream());
    this.remotes.get(pc).addTrack(track);
    this.report();
  }

  /** Mutes the microphone for the call and the analysis alike, and tells the server. */
  setMuted(muted) {
    this.muted = muted;
    for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
    this.signal.send({ type: 'mute', muted });
  }

  setCamera(on) {
    for (const track of this.stream.getVideoTracks()) track.enabled = on;
  }

  /** Leaves the call (or, with tell false, stops after the server closed it). */
  leave(tell = true) {
    if (tell) this.signal.send({ type: 'leave' });
    this.signal.close();
    this.closePeer();
    this.closeServer();
    for (const track of this.stream.getTracks()) track.stop();
    this.report('ended');
  }

  // --- state for the page ----------------------------------------------------------

  report(signalState = this.signalState) {
    this.signalState = signalState;
    const pc = this.topology === 'relay' ? this.server?.pc : this.peer;
    this.onChange({
      signal: signalState,
      topology: this.topology,
      peer: this.peerPresent,
      media: pc?.connectionState ?? 'new',
      remote: (pc && this.remotes.get(pc)) ?? null,
    });
  }
}
