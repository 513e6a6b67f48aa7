// avatar-client.js: render a text with the avatar pipeline's HTTP API and play it on any
// <canvas>, mouth and eyes driven by the audio clock. Copy this file and face.js into your
// app (plain ES modules, no dependencies):
//
//   import { AvatarClient, AvatarPlayer } from './avatar-client.js';
//   const client = new AvatarClient({ baseUrl: 'http://localhost:8080' });
//   const player = new AvatarPlayer(document.querySelector('canvas'));
//   const result = await client.render({ text: 'Hello!', viseme_set: 'basic' });
//   await player.play(result);

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
 * frame, so mouth and eyes stay with the sound whatever the timers do (late start, a stalled
 * tab, pause and seek). Between renders the avatar breathes and blinks on its own.
 *
 * Options: `sprites`: a URL of a sprite manifest (assets/README.md) to draw the mouth from
 * images, falling back to the drawn mouth for any viseme without one.
 */
export class AvatarPlayer {
  constructor(canvas, { sprites = null } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.audio = new Audio();
    this.audio.preload = 'auto';
    this.result = null;
    this.sprites = {};
    this.state = { playing: false, audioTimeMs: 0, cueIndex: -1, viseme: null, frame: 0 };
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

  /** Loads a completed render and plays it from the start; resolves when it ends. */
  async play(result) {
    this.stop();
    await this.#spritesReady;
    this.result = result;
    this.audio.src = result.audio_url;
    this.audio.currentTime = 0;
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
    return this.play(this.result);
  }

  /** Stops playback; the avatar returns to rest. */
  stop() {
    this.audio.pause();
    this.result = null;
  }

  /**
   * The animation state at audio time `tMs` of the loaded render. While the audio is paused
   * (or nothing is loaded) the mouth rests and the eyes blink on their own; `speaking: true`
   * shows the render's state at `tMs` regardless.
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
    return {
      playing: Boolean(speaking),
      audioTimeMs: tMs,
      cueIndex: cue.cueIndex,
      viseme: cue.viseme,
      weight: cue.weight,
      blend: cue.blend,
      mouth,
      lid: eyes.lid,
      gaze: eyes.gaze,
      blinking: eyes.blinking,
      breath: breathAt(clockMs),
    };
  }

  /** Draws the avatar as it is at audio time `tMs` (used by the loop, and by tests). */
  renderAt(tMs, options = {}) {
    const state = this.stateAt(tMs, options);
    drawFace(this.ctx, state, this.#spriteFor(state));
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

/** Index of the cue active at `tMs` in a render's cues (-1 before the first). */
export { activeCue };
