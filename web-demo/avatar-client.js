// avatar-client.js: render a text with the avatar pipeline's HTTP API and play it on any
// <canvas>, mouth, eyes and captions driven by the audio clock. Copy this file and face.js
// into your app (plain ES modules, no dependencies):
//
//   import { AvatarClient, AvatarPlayer } from './avatar-client.js';
//   const client = new AvatarClient({ baseUrl: 'http://localhost:8080' });
//   const player = new AvatarPlayer(document.querySelector('canvas'),
//                                   { captions: document.querySelector('#captions') });
//
//   // Streaming: speech starts after the first sentence (or clause) is rendered, the rest
//   // follows segment by segment, back to back on one Web Audio clock.
//   const stream = client.stream({ viseme_set: 'basic' });
//   const done = player.playStream(stream);
//   stream.type('Hello! Words arrive one by one, as from a chat model.'); // or write()/end()
//   await done;
//
//   // Live: a microphone lip-synced as it speaks, the mouth a fixed lag behind.
//   const live = client.live({ viseme_set: 'basic' });
//   const finished = player.playLive(live);
//   await live.capture(await navigator.mediaDevices.getUserMedia({ audio: true }));
//   // ... live.end() when the speaker is done; `finished` resolves with `done`.
//
//   // One render: the whole text first, then one audio file.
//   const request = { text: 'Hello!', viseme_set: 'basic' };
//   const result = await client.render(request);
//   await player.play(result, { text: request.text });

import { VISEME_SHAPES, activeCue, breathAt, drawFace, eyesAt, mouthAt } from './face.js';

/**
 * An error answered by the API: `status` (0 for a stream's error message, or when the
 * service cannot be reached), `message`, the request `field` at fault, `code` (the body's
 * `error`), and `seq`: the stream segment that failed, if one did.
 */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || body?.error || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body?.error ?? null;
    this.field = body?.field ?? null;
    this.seq = body?.seq ?? null;
    this.body = body;
  }
}

// Captions. A completed result carries `words: [{t_ms, end_ms, text, start, end}]` (each
// written word of the request's text, when it is heard, and where it is in the text in UTF-16
// code units: `text.slice(start, end) === text`) and `sentences: [{t_ms, end_ms, start, end}]`.
// The rules, all functions of the audio time `t` in ms (the same clock as the mouth):
//
// - The word spoken at `t` is the word whose mark covers it: `t_ms <= t < end_ms`. Between
//   two words (a pause at a comma or between sentences), before the first and after the last,
//   no word is highlighted: the highlight shows what is being heard, as the mouth does.
// - The sentence shown at `t` is the last one started at or before `t`, kept through the
//   pause after it; before the first is heard, the first. If the word spoken at `t` lies in
//   another sentence (marks that disagree), that sentence is shown instead, so the spoken
//   word is always on screen. Without sentence marks the caption is the whole text.
// - Paused, the captions stay on the paused moment (like a video's subtitles) while the
//   mouth rests; `stop()` clears them.

/** Index of the word mark covering `t` ms (`t_ms <= t < end_ms`), or -1 between words. */
export function wordAt(words, t) {
  const i = activeCue(words, t);
  return i >= 0 && t < words[i].end_ms ? i : -1;
}

/** Index of the sentence to show at `t` ms: the last started, else the first; -1 if none. */
export function sentenceAt(sentences, t) {
  return sentences.length ? Math.max(0, activeCue(sentences, t)) : -1;
}

const within = (word, sentence) => word.start >= sentence.start && word.end <= sentence.end;

/** What the captions of `result` show at `t` ms: `{ word, sentence }` indices (-1: none). */
export function captionAt(result, t) {
  const words = result?.words ?? [];
  const sentences = result?.sentences ?? [];
  const word = wordAt(words, t);
  let sentence = sentenceAt(sentences, t);
  if (word >= 0 && sentence >= 0 && !within(words[word], sentences[sentence])) {
    const containing = sentences.findIndex((s) => within(words[word], s));
    if (containing >= 0) sentence = containing;
  }
  return { word, sentence };
}

/**
 * The pieces of `text` from `start` to `end`: `[{ text, word }]`, each word mark inside the
 * range a piece of its own (`word`: its index) and the text between words pieces with
 * `word: -1`, whitespace at both ends trimmed. Concatenated, they are the range's text.
 */
export function captionPieces(text, words, { start = 0, end = text.length } = {}) {
  const pieces = [];
  let at = start;
  words.forEach((w, i) => {
    if (w.start < at || w.end > end || w.end <= w.start) return;
    if (w.start > at) pieces.push({ text: text.slice(at, w.start), word: -1 });
    pieces.push({ text: text.slice(w.start, w.end), word: i });
    at = w.end;
  });
  if (at < end) pieces.push({ text: text.slice(at, end), word: -1 });
  if (pieces[0]?.word === -1) pieces[0].text = pieces[0].text.trimStart();
  const last = pieces[pieces.length - 1];
  if (last?.word === -1) last.text = last.text.trimEnd();
  return pieces.filter((p) => p.text !== '');
}

/** Marks placed in a text made of the words themselves, one space apart (no text given). */
function joinedWords(words, sentences) {
  let text = '';
  const placed = words.map((w) => {
    if (text) text += ' ';
    const start = text.length;
    text += w.text;
    return { ...w, start, end: text.length };
  });
  const moved = sentences.map((s) => {
    const inside = words.flatMap((w, i) => (within(w, s) ? [i] : []));
    return inside.length
      ? { ...s, start: placed[inside[0]].start, end: placed[inside[inside.length - 1]].end }
      : { ...s, start: 0, end: 0 };
  });
  return { text, words: placed, sentences: moved };
}

/**
 * Captions in an element of the page: the sentence being spoken, each word a
 * `<span class="word" data-word="i">`, the text between words kept as text nodes (all
 * through `textContent`-safe DOM calls: no markup is ever parsed from the text), the word
 * being spoken with the class `speaking` and `aria-current="true"`. `AvatarPlayer` drives
 * it from its frame loop when given a `captions` element.
 */
export class Captions {
  constructor(element) {
    this.element = element;
    this.clear();
  }

  /**
   * Takes a render's marks and `text`, the request's text they index. Without a text (or
   * one the marks do not fit) the caption is the words themselves, one space apart.
   */
  load(result, text) {
    this.update(result, text);
    this.element.replaceChildren();
  }

  /**
   * Takes marks and text grown since `load` (a stream's next segment): the element keeps
   * what it shows until the next `show` redraws it from the new marks, so nothing blinks.
   */
  update(result, text) {
    const words = result?.words ?? [];
    const sentences = result?.sentences ?? [];
    const fits = typeof text === 'string' && words.every((w) => text.slice(w.start, w.end) === w.text);
    ({ text: this.text, words: this.words, sentences: this.sentences } = fits
      ? { text, words, sentences }
      : joinedWords(words, sentences));
    this.shown = null; // the sentence whose words are in the element (-1: the whole text)
    this.spoken = -1; // the highlighted word
    this.spans = new Map();
  }

  clear() {
    this.load(null, '');
  }

  /** Shows sentence `sentence` (-1: the whole text) with word `word` highlighted (-1: none). */
  show(sentence, word) {
    if (sentence !== this.shown) {
      const range = sentence >= 0 ? this.sentences[sentence] : { start: 0, end: this.text.length };
      this.spans = new Map();
      this.element.replaceChildren(...captionPieces(this.text, this.words, range).map((piece) => {
        if (piece.word < 0) return document.createTextNode(piece.text);
        const span = document.createElement('span');
        span.className = 'word';
        span.dataset.word = String(piece.word);
        span.textContent = piece.text;
        this.spans.set(piece.word, span);
        return span;
      }));
      this.shown = sentence;
      this.spoken = -1;
    }
    if (word === this.spoken) return;
    const before = this.spans.get(this.spoken);
    before?.classList.remove('speaking');
    before?.removeAttribute('aria-current');
    const span = this.spans.get(word);
    span?.classList.add('speaking');
    span?.setAttribute('aria-current', 'true');
    this.spoken = word;
    if (span) this.#keepInView(span);
  }

  /** A long caption scrolls inside its box (never the page) to keep the spoken word shown. */
  #keepInView(span) {
    const box = this.element;
    if (box.scrollHeight <= box.clientHeight) return;
    const top = span.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientTop + box.scrollTop;
    if (top < box.scrollTop || top + span.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    });
  });

export class AvatarClient {
  /** `baseUrl`: where the gateway is ('' for the page's own origin). */
  constructor({ baseUrl = '' } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
  }

  async #json(path, init = {}) {
    let response;
    try {
      response = await fetch(this.baseUrl + path, init);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, { message: `cannot reach the avatar service (${e.message})` });
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { message: `unexpected ${response.status} response` };
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return { status: response.status, body };
  }

  /** `{voices: [{voice_id, language, ...}], default_voice}`. */
  async voices() {
    return (await this.#json('/v1/voices')).body;
  }

  /**
   * Renders `request` ({text, voice_id?, speed?, viseme_set?}) and resolves with the completed
   * result. `mode: 'sync'` waits in one request (falling back to polling if the server answers
   * 202); `'async'` submits and polls. `onStatus(status, elapsedMs)` reports progress.
   */
  async render(request, { mode = 'sync', onStatus = () => {}, signal, pollIntervalMs = 250 } = {}) {
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const init = {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
      signal,
    };
    onStatus('pending', 0);
    const path = mode === 'async' ? '/v1/avatar/render_async' : '/v1/avatar/render';
    let { body } = await this.#json(path, init);
    while (body.status !== 'completed') {
      if (body.status === 'failed') {
        throw new ApiError(500, { message: body.error || 'the render failed', field: body.field });
      }
      onStatus(body.status, elapsed());
      await sleep(pollIntervalMs, signal);
      ({ body } = await this.#json(`/v1/avatar/render/${body.render_id}`, { signal }));
    }
    onStatus('completed', elapsed());
    return body;
  }

  /**
   * Opens a stream (`GET /v1/avatar/stream`, a WebSocket on the same host: `ws:` or `wss:`)
   * with the render settings `{voice_id?, speed?, viseme_set?}` for all its segments.
   * Write text into it as it comes; play it with `AvatarPlayer.playStream`.
   */
  stream(settings = {}) {
    const base = new URL(this.baseUrl || '/', location.href);
    const url = new URL(`${this.baseUrl}/v1/avatar/stream`, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new AvatarStream(url.href, settings, base.href);
  }

  /**
   * Opens a live lip-sync stream (`GET /v1/avatar/lipsync/live`, a WebSocket) with
   * `{viseme_set?, transcript?}`: feed it a microphone with `AvatarLive.capture`, animate it
   * with `AvatarPlayer.playLive`.
   */
  live(settings = {}) {
    const url = new URL(`${this.baseUrl}/v1/avatar/lipsync/live`, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new AvatarLive(url.href, settings);
  }

  /**
   * A stream of a whole text over server-sent events (`POST /v1/avatar/stream`), for where a
   * WebSocket cannot be held: the same messages, playable with `AvatarPlayer.playStream`.
   * `request`: {text, voice_id?, speed?, viseme_set?}.
   */
  streamText(request) {
    const base = new URL(this.baseUrl || '/', location.href);
    return new AvatarEventStream(`${this.baseUrl}/v1/avatar/stream`, request, base.href);
  }
}

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
const LIVE_MARGIN_MS = 150;

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
    const cues = this.timeline.mouth_cues;
    if (m.type === 'ready') this.ready = m;
    else if (m.type === 'cues') {
      // Windows tile the stream: drop anything drawn past `from_ms` (never, in order), append.
      while (cues.length && cues.at(-1).t_ms >= m.from_ms) cues.pop();
      cues.push(...m.mouth_cues);
    } else if (m.type === 'correction') {
      const first = cues.findIndex((c) => c.t_ms >= m.from_ms);
      const at = first < 0 ? cues.length : first;
      let end = at;
      while (end < cues.length && cues[end].t_ms < m.to_ms) end += 1;
      cues.splice(at, end - at, ...m.mouth_cues);
      this.timeline.words.push(...m.words.map((w) => ({ ...w, utterance: m.text })));
    } else if (m.type === 'done') this.done = m;
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

/** A stream's first segment starts this long after its audio is ready, s. */
const STREAM_LEAD_S = 0.05;
/** A segment whose turn comes sooner than this after it is ready is late, s. */
const STREAM_MARGIN_S = 0.02;

/**
 * Plays a render, or a stream, on a canvas. Every frame reads the audio clock and draws the
 * state at that moment, so mouth, eyes and captions stay with the sound whatever the timers
 * do (late start, a stalled tab, pause and seek). Between renders the avatar breathes and
 * blinks on its own.
 *
 * - A render (`play`, `load`) plays in an `<audio>` element (`audio`); its `currentTime` is
 *   the clock.
 * - A stream (`playStream`) plays on one Web Audio clock (`audioContext`): each segment's
 *   audio is fetched and decoded as soon as its message arrives, and scheduled, in order,
 *   to start on the sample where the previous one ends (start frame = previous start frame +
 *   previous decoded length), so consecutive segments join without a gap. A segment that is
 *   not ready by then (late) starts as soon as it is; the face rests in between. The time
 *   drawn at context time `c` comes from the segment scheduled over `c`:
 *   `offset_ms + (c - its start) * 1000`, so the server's rounding of each duration to a
 *   millisecond never adds up across segments.
 *
 * Options: `sprites`: a URL of a sprite manifest (assets/README.md) to draw the mouth from
 * images, falling back to the drawn mouth for any viseme without one. `captions`: an element
 * to show captions in (see `Captions`), updated in the same frame, from the same audio time,
 * as the mouth.
 */
export class AvatarPlayer {
  constructor(canvas, { sprites = null, captions = null } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.audio = new Audio();
    this.audio.preload = 'auto';
    this.audioContext = null; // created by the first stream (browsers start it from a click)
    this.output = null; // every stream segment plays through this GainNode
    this.result = null; // what is drawn: a render's result, or a stream's marks so far
    this.text = undefined; // the text the marks index, for the captions
    this.streaming = null; // the stream being played (see `playStream`)
    this.live = null; // the live stream being animated (see `playLive`)
    this.captions = captions ? new Captions(captions) : null;
    this.sprites = {};
    this.state = { playing: false, audioTimeMs: 0, cueIndex: -1, viseme: null, wordIndex: -1, word: null, sentenceIndex: -1, contextTime: null, segment: -1, frame: 0 };
    this.idle = { nextBlinkAt: performance.now() + 2000, blinkStart: -1 };
    this.restMouth = { ...VISEME_SHAPES.basic.REST };
    this.#spritesReady = sprites ? this.loadSprites(sprites) : Promise.resolve();
    requestAnimationFrame(this.#loop);
  }

  #spritesReady;

  /** Loads `{ "basic": { "AA": "mouth-basic-AA.png", ... }, ... }`; missing ones are skipped. */
  async loadSprites(manifestUrl) {
    try {
      const response = await fetch(manifestUrl);
      if (!response.ok) return;
      const manifest = await response.json();
      const base = new URL(manifestUrl, location.href);
      const loads = [];
      for (const [set, files] of Object.entries(manifest)) {
        this.sprites[set] = {};
        for (const [viseme, file] of Object.entries(files)) {
          const image = new Image();
          image.src = new URL(file, base).href;
          loads.push(image.decode().then(() => (this.sprites[set][viseme] = image), () => {}));
        }
      }
      await Promise.all(loads);
    } catch {
      // No manifest, or a broken one: the drawn mouth it is.
    }
  }

  /**
   * Loads a completed render at its start, paused. `text`: the request's text, which the
   * captions show (by default `result.text`; without one, the words themselves).
   */
  load(result, { text = result.text } = {}) {
    this.stop();
    this.result = result;
    this.text = text;
    this.captions?.load(result, text);
    this.audio.src = result.audio_url;
    this.audio.currentTime = 0;
  }

  /** Loads a completed render (options as `load`) and plays it from the start; resolves when it ends. */
  async play(result, options = {}) {
    this.stop();
    await this.#spritesReady;
    this.load(result, options);
    const ended = new Promise((resolve) => this.audio.addEventListener('ended', resolve, { once: true }));
    await this.audio.play();
    return ended;
  }

  /**
   * Plays a stream (`AvatarClient.stream`) as its segments arrive; call it when the stream
   * is opened (from a click: it starts the audio context). Resolves with the `done` message
   * once the last segment has been heard (with `null` if `stop` ends it first); rejects with
   * an `ApiError` if the stream is refused or breaks off (what was scheduled still plays).
   * A failed segment (an `error` with `seq`, or audio that cannot be loaded) is skipped and
   * reported to `onError(apiError)`, as is any other error that does not end the stream;
   * `onSegment(scheduled)` is called as each segment is scheduled.
   *
   * `streaming` holds the stream's record while it plays: `segments` (the `segment` messages
   * with their decoded `buffer`), `scheduled` (`{seq, offset_ms, duration_ms, startFrame,
   * endFrame, length, sampleRate, when, end, late, readyAt}`, times in the context's seconds),
   * `events` (every message and the close, with the `contextTime` and `performance.now()`
   * they arrived at), `failed`, `errors`, `done`.
   */
  playStream(stream, { onSegment = () => {}, onError = () => {} } = {}) {
    this.stop();
    const context = this.#context();
    const s = {
      stream, started: null, segments: [], scheduled: [], events: [], failed: [], errors: [], done: null, error: null,
      cursor: 0, nextFrame: null, finished: false, fetches: new AbortController(), onSegment, onError,
    };
    const ended = new Promise((resolve, reject) => Object.assign(s, { resolve, reject }));
    this.streaming = s;
    this.result = {
      render_id: null, status: 'streaming', viseme_set: stream.settings?.viseme_set ?? 'basic', duration_ms: 0,
      mouth_cues: [], eye_events: [], words: [], sentences: [],
    };
    this.text = '';
    this.captions?.load(this.result, '');
    const note = (type, seq = null) => s.events.push({ type, seq, contextTime: context.currentTime, at: performance.now() });
    const onMessage = ({ detail: m }) => {
      if (this.streaming !== s) return;
      note(m.type, m.seq ?? null);
      this.#streamMessage(s, m);
    };
    const onClose = ({ detail }) => {
      if (this.streaming !== s) return;
      note('close');
      if (s.done) return;
      const error = s.errors.filter((e) => e.seq === null).at(-1) ?? new ApiError(0, {
        error: 'closed',
        message: `the stream closed before it was done (${detail.code}${detail.reason ? `: ${detail.reason}` : ''})`,
      });
      this.#streamFailed(s, error);
    };
    // Messages that came before (if the stream was opened a while ago), then the rest.
    for (const m of stream.messages) onMessage({ detail: m });
    if (stream.closed) onClose({ detail: stream.closed });
    else {
      stream.addEventListener('message', onMessage);
      stream.addEventListener('close', onClose);
    }
    return ended;
  }

  /**
   * Animates a live stream (`AvatarClient.live`, capturing): the mouth follows the speaker
   * `lag_ms` + 150 ms behind the sound (the time the server needs to hear it), from the live
   * cues and then each utterance's correction. Resolves with the `done` message (with `null`
   * if `stop` ends it first); rejects with an `ApiError` if the stream is refused or breaks.
   * `live` holds it while it plays, with `delayMs`.
   */
  playLive(live) {
    this.stop();
    const l = { live, delayMs: null };
    this.live = l;
    this.result = live.timeline;
    this.text = '';
    this.captions?.clear();
    return new Promise((resolve, reject) => {
      Object.assign(l, { resolve });
      live.addEventListener('ready', ({ detail }) => (l.delayMs = detail.lag_ms + LIVE_MARGIN_MS), { once: true });
      if (live.ready) l.delayMs = live.ready.lag_ms + LIVE_MARGIN_MS;
      live.addEventListener('close', () => {
        if (this.live !== l) return;
        this.live = null;
        if (live.done) resolve(live.done);
        else {
          const error = live.messages.filter((m) => m.type === 'error').at(-1);
          reject(new ApiError(0, error ?? { error: 'closed', message: `the live stream closed before it was done (${live.closed?.code})` }));
        }
      });
    });
  }

  /** The live clock: the speaker's sound, `delayMs` ago. */
  #liveClock(l) {
    const contextTime = l.live.context?.currentTime ?? null;
    // Until `ready` says the lag, nothing is drawn from the stream.
    if (l.delayMs === null) return { tMs: 0, speaking: false, contextTime, segment: -1 };
    const tMs = l.live.capturedMs() - l.delayMs;
    return { tMs: Math.max(0, tMs), speaking: tMs > 0, contextTime, segment: -1 };
  }

  /** The audio context streams play on, running. */
  #context() {
    if (!this.audioContext) {
      this.audioContext = new AudioContext();
      this.output = this.audioContext.createGain();
      this.output.connect(this.audioContext.destination);
    }
    if (this.audioContext.state === 'suspended') this.audioContext.resume();
    return this.audioContext;
  }

  #streamMessage(s, m) {
    if (m.type === 'started') {
      s.started = m;
      this.result.viseme_set = m.viseme_set;
    } else if (m.type === 'segment') {
      this.#addSegment(s, m);
    } else if (m.type === 'error') {
      const error = new ApiError(0, m);
      s.errors.push(error);
      if (m.seq !== undefined && m.seq !== null) {
        s.failed.push({ seq: m.seq, error });
        s.onError(error);
      } else if (!s.started) {
        // The server refused the settings: nothing will be spoken.
        this.#streamFailed(s, error);
        s.stream.close();
      } else {
        s.onError(error);
      }
    } else if (m.type === 'done') {
      s.done = m;
      this.#scheduleNext(s);
    }
  }

  #streamFailed(s, error) {
    if (s.error) return;
    s.error = error;
    s.reject(error);
    this.#scheduleNext(s);
  }

  /** A segment's marks join the timeline at once; its audio is fetched and decoded. */
  #addSegment(s, m) {
    const segment = { ...m, buffer: null, failed: false, decodedAt: null };
    s.segments.push(segment);
    const r = this.result;
    r.mouth_cues.push(...m.mouth_cues);
    r.eye_events.push(...m.eye_events);
    r.words.push(...(m.words ?? []));
    r.sentences.push(...(m.sentences ?? []));
    r.duration_ms = m.offset_ms + m.duration_ms;
    this.text = s.stream.text.slice(0, Math.max(m.text_end, this.text.length));
    this.captions?.update(r, this.text);
    const context = this.audioContext;
    fetch(s.stream.resolve(m.audio_url), { signal: s.fetches.signal })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.arrayBuffer();
      })
      .then((bytes) => context.decodeAudioData(bytes))
      .then((buffer) => {
        segment.buffer = buffer;
        segment.decodedAt = context.currentTime;
      }, (e) => {
        if (this.streaming !== s) return;
        segment.failed = true;
        const error = new ApiError(0, { error: 'audio', message: `segment ${m.seq}: its audio cannot be played (${e.message})`, seq: m.seq });
        s.failed.push({ seq: m.seq, error });
        s.errors.push(error);
        s.onError(error);
      })
      .then(() => this.#scheduleNext(s));
  }

  /** Schedules the segments that are ready, in order; resolves the stream after the last. */
  #scheduleNext(s) {
    if (this.streaming !== s) return;
    while (s.cursor < s.segments.length) {
      const segment = s.segments[s.cursor];
      if (!segment.buffer && !segment.failed) return; // its audio is on the way
      s.cursor += 1;
      if (segment.buffer) this.#schedule(s, segment);
    }
    if (!(s.done || s.error) || s.finished) return;
    const last = s.scheduled.at(-1);
    const finish = () => {
      if (this.streaming !== s || s.scheduled.at(-1) !== last || s.finished) return;
      s.finished = true;
      if (!s.error) s.resolve(s.done);
    };
    if (!last || this.audioContext.currentTime >= last.end) finish();
    else last.source.onended = finish;
  }

  /** Starts `segment` where the previous one ends, to the sample, or as soon as it can if late. */
  #schedule(s, segment) {
    const context = this.audioContext;
    const rate = context.sampleRate;
    const now = context.currentTime;
    const previous = s.scheduled.at(-1);
    let startFrame = Math.ceil((now + STREAM_LEAD_S) * rate);
    let late = false;
    if (s.nextFrame !== null) {
      if (s.nextFrame / rate >= now + STREAM_MARGIN_S) startFrame = s.nextFrame;
      else late = true;
    }
    const buffer = segment.buffer; // decoded at the context's rate
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const when = startFrame / rate;
    source.start(when);
    s.nextFrame = startFrame + buffer.length;
    const scheduled = {
      seq: segment.seq, offset_ms: segment.offset_ms, duration_ms: segment.duration_ms,
      startFrame, endFrame: s.nextFrame, length: buffer.length, sampleRate: buffer.sampleRate, duration: buffer.duration,
      when, end: s.nextFrame / rate, late, gap: late && previous ? when - previous.end : 0, readyAt: now, source,
    };
    s.scheduled.push(scheduled);
    s.onSegment(scheduled);
  }

  /**
   * The stream's clock at the context's current time: the stream time (ms) drawn, whether a
   * segment is sounding (`speaking`), and which (`segment`: its seq, -1 between segments).
   */
  #streamClock(s) {
    const context = this.audioContext;
    const c = context.currentTime;
    const list = s.scheduled;
    let k = list.length - 1;
    while (k >= 0 && list[k].when > c) k -= 1;
    if (k < 0) return { tMs: 0, speaking: false, contextTime: c, segment: -1 };
    const e = list[k];
    const sounding = c < e.end;
    // Within the segment's own span of the stream's time, so a segment decoded a little
    // longer than its rounded duration never shows the next one's first cue.
    const tMs = e.offset_ms + Math.max(0, Math.min((Math.min(c, e.end) - e.when) * 1000, e.duration_ms - 0.001));
    const speaking = sounding && context.state === 'running';
    return { tMs, speaking, contextTime: c, segment: sounding ? e.seq : -1 };
  }

  /** The clock every frame is drawn from: the stream's, or the audio element's. */
  #clock() {
    if (this.live) return this.#liveClock(this.live);
    if (this.streaming) return this.#streamClock(this.streaming);
    return {
      tMs: this.result ? this.audio.currentTime * 1000 : 0,
      speaking: Boolean(this.result) && !this.audio.paused,
      contextTime: null,
      segment: -1,
    };
  }

  /** Whether the audio is held (a render's element, or a stream's context, paused). */
  get paused() {
    return this.streaming ? this.audioContext?.state !== 'running' : this.audio.paused;
  }

  pause() {
    if (this.streaming) this.audioContext.suspend();
    else this.audio.pause();
  }

  resume() {
    if (this.streaming) return this.audioContext.resume();
    return this.audio.play();
  }

  /** Plays the render, or the stream's segments received so far (and the rest as they come), from the start. */
  replay() {
    const s = this.streaming;
    if (s) {
      this.#silence(s);
      Object.assign(s, { scheduled: [], cursor: 0, nextFrame: null, finished: false });
      this.#context();
      this.#scheduleNext(s);
      return Promise.resolve();
    }
    if (!this.result) return Promise.resolve();
    return this.play(this.result, { text: this.text });
  }

  #silence(s) {
    for (const { source } of s.scheduled) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // Never started: nothing to stop.
      }
    }
  }

  /** Stops playback (a stream is closed, its sounds stopped); the avatar returns to rest and the captions are cleared. */
  stop() {
    this.audio.pause();
    const l = this.live;
    if (l) {
      this.live = null;
      l.live.close();
      l.resolve(null);
    }
    const s = this.streaming;
    if (s) {
      this.streaming = null;
      s.stream.close();
      s.fetches.abort();
      this.#silence(s);
      s.resolve(null);
    }
    this.result = null;
    this.text = undefined;
    this.captions?.clear();
  }

  /**
   * The animation state at audio time `tMs` of what is loaded (a render, or a stream's
   * timeline in stream time). While the audio is paused (or nothing is loaded, or a stream
   * waits for its next segment) the mouth rests and the eyes blink on their own;
   * `speaking: true` shows the loaded state at `tMs` regardless. The captions' word and
   * sentence (`wordIndex`, `word`, `sentenceIndex`) are those at `tMs` whenever something is
   * loaded, playing or paused.
   */
  stateAt(tMs, { speaking = this.#clock().speaking, clockMs = performance.now() } = {}) {
    const result = this.result;
    let mouth = this.restMouth;
    let cue = { cueIndex: -1, viseme: null, weight: 0, blend: 1 };
    let eyes = { lid: 0, gaze: { x: 0, y: 0 }, blinking: null };
    if (result && speaking) {
      cue = mouthAt(result.mouth_cues, result.viseme_set, tMs);
      eyes = eyesAt(result.eye_events, tMs);
      mouth = cue.mouth;
    } else {
      eyes = { ...eyes, lid: this.#idleBlink(clockMs) };
    }
    const caption = captionAt(result, tMs);
    return {
      playing: Boolean(speaking),
      audioTimeMs: tMs,
      cueIndex: cue.cueIndex,
      viseme: cue.viseme,
      weight: cue.weight,
      blend: cue.blend,
      wordIndex: caption.word,
      word: caption.word >= 0 ? result.words[caption.word].text : null,
      sentenceIndex: caption.sentence,
      mouth,
      lid: eyes.lid,
      gaze: eyes.gaze,
      blinking: eyes.blinking,
      breath: breathAt(clockMs),
    };
  }

  /**
   * Draws the avatar and the captions as they are at audio time `tMs` (used by the loop, and
   * by tests). The frame loop passes its `clock` too: the state then records the audio
   * context's time the frame was drawn from (`contextTime`) and the stream segment sounding
   * (`segment`, -1 if none).
   */
  renderAt(tMs, { clock = null, ...options } = {}) {
    const state = this.stateAt(tMs, options);
    drawFace(this.ctx, state, this.#spriteFor(state));
    this.captions?.show(state.sentenceIndex, state.wordIndex);
    this.state = { ...state, contextTime: clock?.contextTime ?? null, segment: clock?.segment ?? -1, frame: this.state.frame + 1 };
    return this.state;
  }

  #spriteFor(state) {
    const set = this.result?.viseme_set;
    const images = set && this.sprites[set];
    if (!images) return null;
    if (state.cueIndex < 0) {
      const rest = Object.keys(VISEME_SHAPES[set] || {})[0];
      return images[rest] ? { image: images[rest], alpha: 1, from: null } : null;
    }
    const cues = this.result.mouth_cues;
    const image = images[cues[state.cueIndex].viseme];
    if (!image) return null;
    const previous = state.cueIndex > 0 ? images[cues[state.cueIndex - 1].viseme] : null;
    return { image, alpha: state.blend, from: previous ? { image: previous } : null };
  }

  /** Idle blinks every 2 to 6 s, 150 ms each. */
  #idleBlink(clockMs) {
    const idle = this.idle;
    if (idle.blinkStart < 0 && clockMs >= idle.nextBlinkAt) {
      idle.blinkStart = clockMs;
    }
    if (idle.blinkStart >= 0) {
      const p = (clockMs - idle.blinkStart) / 150;
      if (p >= 1) {
        idle.blinkStart = -1;
        idle.nextBlinkAt = clockMs + 2000 + Math.random() * 4000;
        return 0;
      }
      return Math.sin(Math.PI * p);
    }
    return 0;
  }

  /** One frame: the audio clock decides what is drawn. */
  #loop = () => {
    const clock = this.#clock();
    this.renderAt(clock.tMs, { speaking: clock.speaking, clock });
    requestAnimationFrame(this.#loop);
  };
}

/** Index of the cue active at `tMs` in a render's cues (-1 before the first); the same lookup
 *  finds the last word or sentence mark started at `tMs`. */
export { activeCue };
