// Camera and microphone before the call: capture, preview, and the choice of device.

const KINDS = { audio: 'audioinput', video: 'videoinput' };
const NONE = { audio: 'No microphone available', video: 'No camera available' };

/** Asks for both devices; one missing or refused device does not cost the other one. */
async function capture(audio, video) {
  const media = navigator.mediaDevices;
  try {
    return await media.getUserMedia({ audio, video });
  } catch (err) {
    const parts = await Promise.allSettled([media.getUserMedia({ audio }), media.getUserMedia({ video })]);
    const tracks = parts.flatMap((p) => (p.status === 'fulfilled' ? p.value.getTracks() : []));
    if (!tracks.length) throw err;
    return new MediaStream(tracks);
  }
}

function describe(err) {
  if (err.name === 'NotAllowedError') return 'The browser was not allowed to use your camera and microphone. Allow them for this site and reload the page.';
  if (err.name === 'NotFoundError') return 'No camera or microphone was found.';
  if (err.name === 'NotReadableError') return 'Your camera or microphone is in use by another program.';
  return `Your camera and microphone could not be opened (${err.name || err.message}).`;
}

export class Preview {
  /**
   * @param {HTMLVideoElement} video
   * @param {{audio: HTMLSelectElement, video: HTMLSelectElement}} selects
   * @param {(text: string) => void} warn shows a problem, or clears it with ""
   */
  constructor(video, selects, warn) {
    this.video = video;
    this.selects = selects;
    this.warn = warn;
    this.stream = new MediaStream();
    for (const kind of Object.keys(KINDS)) selects[kind].addEventListener('change', () => this.open());
    navigator.mediaDevices?.addEventListener('devicechange', () => this.list());
  }

  /** Opens the chosen devices (the defaults at first) and shows them. */
  async open() {
    if (!navigator.mediaDevices) {
      this.warn('This page needs a secure (https) address to use your camera and microphone.');
      return this.stream;
    }
    const want = (kind) => {
      const id = this.selects[kind].value;
      return id ? { deviceId: { exact: id } } : true;
    };
    const audio = want('audio');
    const video = want('video');
    // Release the old devices first: some cameras can be opened by one stream only.
    this.stop();
    try {
      this.stream = await capture(audio, video);
      this.warn('');
    } catch (err) {
      this.stream = new MediaStream();
      this.warn(describe(err));
    }
    this.video.srcObject = this.stream;
    await this.list();
    return this.stream;
  }

  /** Fills the device lists; labels are only known once capture was allowed. */
  async list() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [kind, deviceKind] of Object.entries(KINDS)) {
      const select = this.selects[kind];
      const found = devices.filter((d) => d.kind === deviceKind && d.deviceId);
      const current = this.stream.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
      select.replaceChildren(
        ...found.map((d, i) => new Option(d.label || `${kind === 'audio' ? 'Microphone' : 'Camera'} ${i + 1}`, d.deviceId, false, d.deviceId === current)),
      );
      if (!found.length) select.append(new Option(NONE[kind], ''));
      select.disabled = !found.length;
    }
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
  }
}
