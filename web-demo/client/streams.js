// The streams a client holds open: a text's (a WebSocket, or server-sent events) and live
// audio's.
import { ApiError } from './errors.js';

/**
 * A whole text's stream over server-sent events: what `AvatarStream` offers a player
 * (`messages`, `text`, `closed`, `message` and `close` events, `close()`, `resolve()`),
 * read from a `fetch` of `POST /v1/avatar/stream`. A refused request (4xx/5xx) becomes an
 * `error` message, as the socket would send it, and the stream closes.
 */
export class AvatarEventStream extends EventTarget {
  #abort = new AbortController();

  constructor(url, request, httpBase = location.href) {
    super();
    this.httpBase = httpBase;
    this.text = request.text ?? '';
    this.ended = true; // nothing more can be written
    this.messages = [];
    this.closed = null;
    this.#read(url, request);
  }

  #deliver(message) {
    this.messages.push(message);
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }

  #close(code, reason) {
    if (this.closed) return;
    this.closed = { code, reason };
    this.dispatchEvent(new CustomEvent('close', { detail: this.closed }));
  }

  async #read(url, request) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
        signal: this.#abort.signal,
      });
      if (!response.ok) {
        let body = {};
        try {
          body = await response.json();
        } catch {
          body = { error: 'unavailable', message: `unexpected ${response.status} response` };
        }
        this.#deliver({ type: 'error', ...body });
        this.#close(1008, body.error || 'refused');
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = event
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          if (data) this.#deliver(JSON.parse(data));
        }
      }
      const last = this.messages[this.messages.length - 1];
      this.#close(last?.type === 'done' ? 1000 : 1006, last?.type === 'done' ? 'done' : 'ended early');
    } catch (e) {
      this.#close(e.name === 'AbortError' ? 1000 : 1006, e.message);
    }
  }

  close() {
    this.#abort.abort();
  }

  /** A URL from a message (`audio_url`), resolved against the gateway's address. */
  resolve(url) {
    return new URL(url, this.httpBase).href;
  }
}

/**
 * A text in pieces of at most this many UTF-16 units per message. The server refuses a piece
 * that would take the text waiting to be spoken past 5,000 characters; it waits for its
 * segments (at most about 1,200 characters in flight) before reading more, so pieces of this
 * size are always taken, however much is written at once.
 */
const MAX_PIECE = 2000;

/** `text` cut into words, each with the whitespace before it (and the last with the rest). */
export function typedWords(text) {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/**
 * One stream over the WebSocket: text goes in as it is written, segments of speech come
 * out. `start` is sent when the socket opens (what is written before waits for it). Every
 * server message is dispatched as a `message` event and as an event named by its type
 * (`started`, `segment`, `error`, `done`), a `CustomEvent` whose `detail` is the message;
 * `close` (`detail: {code, reason}`) when the socket closes. `messages` keeps them all, in
 * order. `text` is everything written so far: the text the segments' `start`/`end`, and
 * their words' and sentences', index in UTF-16 code units.
 */
export class AvatarStream extends EventTarget {
  #outbox = [];

  constructor(url, settings = {}, httpBase = location.href) {
    super();
    this.url = url;
    this.settings = settings;
    this.httpBase = httpBase;
    this.text = '';
    this.ended = false; // `end` sent (or the stream closed by this side)
    this.messages = [];
    this.closed = null; // `{code, reason}` once the socket has closed
    this.#outbox.push(JSON.stringify({ type: 'start', ...settings }));
    this.socket = new WebSocket(url);
    this.socket.addEventListener('open', () => {
      for (const message of this.#outbox) this.socket.send(message);
      this.#outbox = null;
    });
    this.socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.messages.push(message);
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
    this.socket.addEventListener('close', (event) => {
      this.ended = true;
      this.closed = { code: event.code, reason: event.reason };
      this.dispatchEvent(new CustomEvent('close', { detail: this.closed }));
    });
  }

  #send(message) {
    if (this.closed || this.socket.readyState > WebSocket.OPEN) return;
    const json = JSON.stringify(message);
    if (this.#outbox) this.#outbox.push(json);
    else this.socket.send(json);
  }

  /** Appends `text` (a token, a word, a paragraph) to what is to be spoken. */
  write(text) {
    if (this.ended || !text) return;
    this.text += text;
    for (let at = 0; at < text.length;) {
      let end = Math.min(text.length, at + MAX_PIECE);
      // Never between the two halves of a surrogate pair.
      if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end -= 1;
      this.#send({ type: 'text', text: text.slice(at, end) });
      at = end;
    }
  }

  /** Speaks what is pending now, without waiting for its sentence to end. */
  flush() {
    if (!this.ended) this.#send({ type: 'flush' });
  }

  /** No more text: what is pending is spoken, then the server sends `done` and closes. */
  end() {
    if (this.ended) return;
    this.#send({ type: 'end' });
    this.ended = true;
  }

  /** Writes `text` whole and ends the stream. */
  say(text) {
    this.write(text);
    this.end();
  }

  /**
   * Writes `text` word by word, `delayMs` apart, as a chat model sends tokens, then ends the
   * stream (unless `end: false`). Stops early if the stream closes or `signal` aborts.
   */
  async type(text, { delayMs = 50, end = true, signal } = {}) {
    for (const word of typedWords(text)) {
      if (this.ended || signal?.aborted) return;
      this.write(word);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    if (end && !signal?.aborted) this.end();
  }

  /** Closes the socket: the server stops rendering what it has not started. */
  close() {
    this.ended = true;
    if (this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, 'client done');
  }

  /** A URL from a message (`audio_url`), resolved against the gateway's address. */
  resolve(url) {
    return new URL(url, this.httpBase).href;
  }
}

/** A live stream's audio goes out in messages of about this many ms. */
const LIVE_MESSAGE_MS = 40;
/** The live mouth is drawn this much later than the server's lag, ms (its updates come every 100 ms). */
export const LIVE_MARGIN_MS = 150;

/**
 * Applies a live stream's message to `timeline` (`{mouth_cues, words}`): `cues` are appended
 * (their windows tile the stream; anything at or past the window's start is replaced), a
 * `correction` replaces the cues of its `[from_ms, to_ms)` and adds its words (each with
 * `utterance`: the text its `start`/`end` index). Other messages leave it as it is.
 */
export function applyLive(timeline, m) {
  const cues = timeline.mouth_cues;
  if (m.type === 'cues') {
    while (cues.length && cues.at(-1).t_ms >= m.from_ms) cues.pop();
    cues.push(...m.mouth_cues);
  } else if (m.type === 'correction') {
    const first = cues.findIndex((c) => c.t_ms >= m.from_ms);
    const at = first < 0 ? cues.length : first;
    let end = at;
    while (end < cues.length && cues[end].t_ms < m.to_ms) end += 1;
    cues.splice(at, end - at, ...m.mouth_cues);
    timeline.words.push(...m.words.map((w) => ({ ...w, utterance: m.text })));
  }
  return timeline;
}

/** The AudioWorklet that hands the captured samples (channel 0) to the page. */
const CAPTURE_WORKLET = `registerProcessor('avatar-capture', class extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
});`;

/**
 * Live lip-sync: a speaker's audio (a microphone, or any `MediaStream`) sent to the server as
 * 16-bit PCM as it is captured, and the mouth back at a fixed lag. `capture(mediaStream)`
 * opens the socket (`start` with the audio context's own rate) and starts sending; `text`
 * adds to the transcript (optional: what the speaker says, if known); `end` finishes (the
 * last utterance is corrected, then `done`). Every server message is a `message` event and
 * an event named by its type (`ready`, `cues`, `correction`, `error`, `done`); `close`
 * (`detail: {code, reason}`) when the socket closes.
 *
 * `timeline` is what `AvatarPlayer` draws: the `cues` as they come, each `correction`
 * replacing its utterance's cues and adding its `words` (with `text`: `start`/`end` index
 * the correction's own text). `capturedMs()` is how much audio has been captured.
 */
export class AvatarLive extends EventTarget {
  #pending = [];
  #pendingFrames = 0;

  constructor(url, settings = {}) {
    super();
    this.url = url;
    this.settings = settings;
    this.messages = [];
    this.ready = null;
    this.done = null;
    this.closed = null;
    this.ended = false;
    this.context = null;
    this.startedAt = null; // the context time the first captured sample was heard at
    this.sentFrames = 0;
    this.timeline = { viseme_set: settings.viseme_set ?? 'basic', mouth_cues: [], eye_events: [], words: [], sentences: [] };
  }

  /**
   * Captures `mediaStream` (e.g. `navigator.mediaDevices.getUserMedia({audio: true})`) on
   * `context` (one is created if not given; call this from a click) and streams it.
   * Resolves once the server is `ready`; rejects with an `ApiError` if it refuses.
   */
  async capture(mediaStream, context = new AudioContext()) {
    this.context = context;
    if (context.state === 'suspended') await context.resume();
    const module = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: 'text/javascript' }));
    await context.audioWorklet.addModule(module);
    URL.revokeObjectURL(module);
    const source = context.createMediaStreamSource(mediaStream);
    const node = new AudioWorkletNode(context, 'avatar-capture', { numberOfOutputs: 1, outputChannelCount: [1] });
    // Pulled by the graph, heard by no one.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(context.destination);
    this.nodes = { source, node, mute };
    this.socket = new WebSocket(this.url);
    this.socket.binaryType = 'arraybuffer';
    const ready = new Promise((resolve, reject) => {
      this.addEventListener('ready', () => resolve(this.ready), { once: true });
      this.addEventListener('close', () => reject(this.#closedError()), { once: true });
    });
    this.socket.addEventListener('open', () => {
      const { viseme_set, transcript } = this.settings;
      this.socket.send(JSON.stringify({ type: 'start', format: 'pcm16', sample_rate: context.sampleRate, channels: 1, viseme_set, transcript }));
    });
    this.socket.addEventListener('message', (event) => this.#message(event));
    this.socket.addEventListener('close', (event) => {
      this.ended = true;
      this.closed = { code: event.code, reason: event.reason };
      this.#stopCapture();
      this.dispatchEvent(new CustomEvent('close', { detail: this.closed }));
    });
    node.port.onmessage = ({ data }) => this.#captured(data);
    return ready;
  }

  #closedError() {
    const error = this.messages.filter((m) => m.type === 'error').at(-1);
    return error ? new ApiError(0, error) : new ApiError(0, { error: 'closed', message: `the live stream closed (${this.closed?.code})` });
  }

  #message(event) {
    let m;
    try {
      m = JSON.parse(event.data);
    } catch {
      return;
    }
    this.messages.push(m);
    applyLive(this.timeline, m);
    if (m.type === 'ready') this.ready = m;
    else if (m.type === 'done') this.done = m;
    this.dispatchEvent(new CustomEvent('message', { detail: m }));
    this.dispatchEvent(new CustomEvent(m.type, { detail: m }));
  }

  /** Samples from the worklet: to 16-bit PCM, sent every `LIVE_MESSAGE_MS` once ready. */
  #captured(samples) {
    if (this.ended) return;
    if (this.startedAt === null) this.startedAt = this.context.currentTime - samples.length / this.context.sampleRate;
    this.#pending.push(samples);
    this.#pendingFrames += samples.length;
    if (this.#pendingFrames < (this.context.sampleRate * LIVE_MESSAGE_MS) / 1000) return;
    this.#flush();
  }

  #flush() {
    if (!this.ready || this.socket.readyState !== WebSocket.OPEN || !this.#pendingFrames) return;
    const bytes = new DataView(new ArrayBuffer(this.#pendingFrames * 2));
    let i = 0;
    for (const chunk of this.#pending) {
      for (const x of chunk) bytes.setInt16(2 * i++, Math.max(-1, Math.min(1, x)) * 32767, true);
    }
    this.socket.send(bytes.buffer);
    this.sentFrames += this.#pendingFrames;
    this.#pending = [];
    this.#pendingFrames = 0;
  }

  /** The audio captured so far, ms of the stream's time. */
  capturedMs() {
    if (this.startedAt === null || !this.context) return 0;
    return Math.max(0, (this.context.currentTime - this.startedAt) * 1000);
  }

  /** More of the transcript. */
  text(text) {
    if (!this.ended && this.socket?.readyState === WebSocket.OPEN && text) this.socket.send(JSON.stringify({ type: 'text', text }));
  }

  /** Stops capturing; the server corrects the last utterance, sends `done` and closes. */
  end() {
    if (this.ended) return;
    this.#flush();
    this.ended = true;
    this.#stopCapture();
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'end' }));
  }

  /** Closes at once. */
  close() {
    this.ended = true;
    this.#stopCapture();
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, 'client done');
  }

  #stopCapture() {
    if (!this.nodes) return;
    this.nodes.node.port.onmessage = null;
    this.nodes.source.disconnect();
    this.nodes.node.disconnect();
    this.nodes = null;
  }
}
