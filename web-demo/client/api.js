// The HTTP API: voices, renders (sync, or polled), and the streams it opens.
import { ApiError } from './errors.js';
import { AvatarEventStream, AvatarLive, AvatarStream } from './streams.js';

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
