// The player: a render or a stream drawn on a canvas from the audio clock.
import { VISEME_SHAPES, activeCue, breathAt, drawFace, eyesAt, mouthAt } from '../face.js';
import { Captions, captionAt } from './captions.js';
import { ApiError } from './errors.js';
import { LIVE_MARGIN_MS } from './streams.js';

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
