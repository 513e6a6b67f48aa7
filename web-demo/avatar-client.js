// avatar-client.js: render a text with the avatar pipeline's HTTP API and play it on any
// <canvas>, mouth, eyes and captions driven by the audio clock. Copy this file and face.js
// into your app (plain ES modules, no dependencies):
//
//   import { AvatarClient, AvatarPlayer } from './avatar-client.js';
//   const client = new AvatarClient({ baseUrl: 'http://localhost:8080' });
//   const player = new AvatarPlayer(document.querySelector('canvas'),
//                                   { captions: document.querySelector('#captions') });
//   const request = { text: 'Hello!', viseme_set: 'basic' };
//   const result = await client.render(request);
//   await player.play(result, { text: request.text });

import { VISEME_SHAPES, activeCue, breathAt, drawFace, eyesAt, mouthAt } from './face.js';

/** An error answered by the API: `status`, `message`, and the request `field` at fault. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || body?.error || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.field = body?.field ?? null;
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
    const words = result?.words ?? [];
    const sentences = result?.sentences ?? [];
    const fits = typeof text === 'string' && words.every((w) => text.slice(w.start, w.end) === w.text);
    ({ text: this.text, words: this.words, sentences: this.sentences } = fits
      ? { text, words, sentences }
      : joinedWords(words, sentences));
    this.shown = null; // the sentence whose words are in the element (-1: the whole text)
    this.spoken = -1; // the highlighted word
    this.spans = new Map();
    this.element.replaceChildren();
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
}

/**
 * Plays a render on a canvas. The animation reads the audio element's `currentTime` on every
 * frame, so mouth, eyes and captions stay with the sound whatever the timers do (late start,
 * a stalled tab, pause and seek). Between renders the avatar breathes and blinks on its own.
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
    this.result = null;
    this.text = undefined; // the loaded render's request text, for its captions
    this.captions = captions ? new Captions(captions) : null;
    this.sprites = {};
    this.state = { playing: false, audioTimeMs: 0, cueIndex: -1, viseme: null, wordIndex: -1, word: null, sentenceIndex: -1, frame: 0 };
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

  pause() {
    this.audio.pause();
  }

  resume() {
    return this.audio.play();
  }

  replay() {
    if (!this.result) return Promise.resolve();
    return this.play(this.result, { text: this.text });
  }

  /** Stops playback; the avatar returns to rest and the captions are cleared. */
  stop() {
    this.audio.pause();
    this.result = null;
    this.text = undefined;
    this.captions?.clear();
  }

  /**
   * The animation state at audio time `tMs` of the loaded render. While the audio is paused
   * (or nothing is loaded) the mouth rests and the eyes blink on their own; `speaking: true`
   * shows the render's state at `tMs` regardless. The captions' word and sentence
   * (`wordIndex`, `word`, `sentenceIndex`) are those at `tMs` whenever a render is loaded,
   * playing or paused.
   */
  stateAt(tMs, { speaking = Boolean(this.result) && !this.audio.paused, clockMs = performance.now() } = {}) {
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

  /** Draws the avatar and the captions as they are at audio time `tMs` (used by the loop, and by tests). */
  renderAt(tMs, options = {}) {
    const state = this.stateAt(tMs, options);
    drawFace(this.ctx, state, this.#spriteFor(state));
    this.captions?.show(state.sentenceIndex, state.wordIndex);
    this.state = { ...state, frame: this.state.frame + 1 };
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
    const tMs = this.result ? this.audio.currentTime * 1000 : 0;
    this.renderAt(tMs);
    requestAnimationFrame(this.#loop);
  };
}

/** Index of the cue active at `tMs` in a render's cues (-1 before the first); the same lookup
 *  finds the last word or sentence mark started at `tMs`. */
export { activeCue };
