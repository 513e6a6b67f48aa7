// The demo page: a form that streams a text through the API (or renders it whole) and plays
// it on the canvas, or lip-syncs the visitor's own voice live.
import { AvatarClient, AvatarPlayer } from './avatar-client.js';

const $ = (id) => document.getElementById(id);
const client = new AvatarClient();
const player = new AvatarPlayer($('avatar'), { sprites: 'assets/sprites.json', captions: $('captions') });
const MAX_CHARS = 5000;
/** Typing mode: one word every this many ms, about a chat model's pace. */
const TYPING_DELAY_MS = 60;
let current = null; // the AbortController of the render or stream in progress
let listening = null; // the live stream capturing the microphone, while it does

// For tests and the curious: the animation state of the last frame, and the player.
Object.defineProperty(window, 'avatarState', { get: () => player.state });
window.avatarPlayer = player;

function showError(message, field) {
  const box = $('error');
  box.textContent = field ? `${message} (field: ${field})` : message;
  box.hidden = false;
  const input = { text: 'text', voice_id: 'voice', speed: 'speed', viseme_set: 'viseme-set' }[field];
  if (input) $(input).classList.add('invalid');
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
  document.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
}

function setStatus(text, busy = false) {
  $('status').textContent = text;
  $('status').classList.toggle('busy', busy);
}

function updateCount() {
  const n = [...$('text').value.trim()].length;
  $('count').textContent = `${n} / ${MAX_CHARS}`;
}

async function loadVoices() {
  try {
    const { voices, default_voice } = await client.voices();
    const select = $('voice');
    select.replaceChildren(
      ...voices.map((v) => new Option(`${v.voice_id} (${v.language_name || v.language})`, v.voice_id)),
    );
    if (default_voice) select.value = default_voice;
    if (!voices.length) showError('No voices are available yet: is a tts worker running?');
  } catch (e) {
    showError(`Cannot load the voices: ${e.message}`);
  }
}

async function speak(event) {
  event.preventDefault();
  // While listening, the button stops: the last utterance is corrected, then done.
  if (listening) {
    listening.end();
    return;
  }
  clearError();
  current?.abort();
  player.stop();
  const abort = new AbortController();
  current = abort;
  const form = new FormData($('controls'));
  const request = {
    text: $('text').value,
    voice_id: $('voice').value || undefined,
    speed: Number($('speed').value),
    viseme_set: $('viseme-set').value,
  };
  const mode = form.get('mode');
  if (mode === 'stream') return speakStream(request, abort);
  if (mode === 'live') return listen(request, abort);
  setStatus(mode === 'async' ? 'Submitting...' : 'Rendering...', true);
  try {
    const result = await client.render(request, {
      mode,
      signal: abort.signal,
      onStatus: (status, ms) => {
        if (status !== 'completed') setStatus(`${status}... ${(ms / 1000).toFixed(1)} s`, true);
      },
    });
    if (current !== abort) return;
    const cached = result.cached ? ', from the cache' : '';
    setStatus(`Speaking: ${(result.duration_ms / 1000).toFixed(1)} s of audio, ${result.mouth_cues.length} mouth cues, rendered in ${result.processing_time_ms} ms${cached}.`);
    $('pause').disabled = false;
    $('replay').disabled = false;
    $('pause').textContent = 'Pause';
    await player.play(result, { text: request.text });
    if (current === abort) setStatus('Done. Replay, or speak something else.');
  } catch (e) {
    if (e.name === 'AbortError') return;
    setStatus('');
    showError(e.message, e.field);
  }
}

/**
 * Streaming: the text goes over a WebSocket (whole, or word by word in typing mode) and each
 * segment plays as soon as it is rendered, right after the one before.
 */
async function speakStream(request, abort) {
  const { text, ...settings } = request;
  const clicked = performance.now();
  let firstSoundMs = null;
  const stream = client.stream(settings);
  abort.signal.addEventListener('abort', () => stream.close());
  const progress = () => {
    const s = player.streaming;
    if (!s || current !== abort) return;
    const heard = s.scheduled.reduce((ms, x) => ms + x.duration * 1000, 0);
    const first = firstSoundMs === null ? '' : `; first sound ${firstSoundMs.toFixed(0)} ms after Speak`;
    setStatus(`Streaming: ${s.scheduled.length} segment${s.scheduled.length === 1 ? '' : 's'}, ${(heard / 1000).toFixed(1)} s of audio${first}.`, !s.done);
  };
  const playing = player.playStream(stream, {
    onSegment: (scheduled) => {
      if (firstSoundMs === null) firstSoundMs = performance.now() - clicked + (scheduled.when - scheduled.readyAt) * 1000;
      progress();
    },
    onError: (e) => current === abort && showError(e.message, e.field),
  });
  $('pause').disabled = false;
  $('replay').disabled = false;
  $('pause').textContent = 'Pause';
  const typing = $('typing').checked;
  setStatus(typing ? 'Typing...' : 'Streaming...', true);
  if (typing) stream.type(text, { delayMs: TYPING_DELAY_MS, signal: abort.signal });
  else stream.say(text);
  try {
    const done = await playing;
    if (current !== abort || !done) return;
    const failed = done.failed_segments ? `, ${done.failed_segments} failed` : '';
    const first = firstSoundMs === null ? '' : `, first sound ${firstSoundMs.toFixed(0)} ms after Speak`;
    setStatus(`Done: ${done.segments} segments${failed}, ${(done.duration_ms / 1000).toFixed(1)} s of audio${first}. Replay, or speak something else.`);
  } catch (e) {
    if (current !== abort) return;
    setStatus('');
    showError(e.message, e.field);
  }
}

/**
 * Your voice: the microphone's audio goes to the server as it is captured, and the avatar
 * mouths along a fixed lag behind, each utterance corrected after its pause.
 */
async function listen(request, abort) {
  setStatus('Asking for the microphone...', true);
  let microphone;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (e) {
    setStatus('');
    showError(`No microphone: ${e.message}`);
    return;
  }
  const transcript = $('read-text').checked ? request.text : undefined;
  const live = client.live({ viseme_set: request.viseme_set, transcript });
  window.avatarLive = live;
  listening = live;
  $('speak').textContent = 'Stop';
  const playing = player.playLive(live);
  abort.signal.addEventListener('abort', () => live.close());
  const progress = () => {
    if (current !== abort) return;
    const corrected = live.messages.filter((m) => m.type === 'correction').length;
    const delay = player.live?.delayMs;
    setStatus(`Listening: ${(live.capturedMs() / 1000).toFixed(1)} s heard, ${corrected} utterance${corrected === 1 ? '' : 's'} corrected${delay ? `; the mouth follows ${delay} ms behind` : ''}. Press Stop to finish.`, true);
  };
  live.addEventListener('cues', progress);
  live.addEventListener('correction', progress);
  live.addEventListener('error', ({ detail }) => current === abort && showError(detail.message, detail.field));
  try {
    await live.capture(microphone);
    progress();
    const done = await playing;
    if (current === abort && done) {
      setStatus(`Done: ${(done.duration_ms / 1000).toFixed(1)} s heard, ${done.utterances} utterance${done.utterances === 1 ? '' : 's'}.`);
    }
  } catch (e) {
    if (current === abort) {
      setStatus('');
      showError(e.message, e.field);
    }
  } finally {
    microphone.getTracks().forEach((t) => t.stop());
    if (listening === live) listening = null;
    $('speak').textContent = 'Speak';
  }
}

function updateMode() {
  const mode = new FormData($('controls')).get('mode');
  $('typing').disabled = mode !== 'stream';
  $('read-text').disabled = mode !== 'live';
  $('speak').textContent = mode === 'live' ? 'Listen' : 'Speak';
}

$('controls').addEventListener('submit', speak);
document.querySelectorAll('input[name="mode"]').forEach((e) => e.addEventListener('change', updateMode));
$('text').addEventListener('input', updateCount);
$('speed').addEventListener('input', () => ($('speed-value').textContent = `${Number($('speed').value).toFixed(2)}x`));
$('pause').addEventListener('click', () => {
  if (player.paused) {
    player.resume();
    $('pause').textContent = 'Pause';
  } else {
    player.pause();
    $('pause').textContent = 'Resume';
  }
});
$('replay').addEventListener('click', () => {
  $('pause').textContent = 'Pause';
  player.replay();
});

// The clock and the current viseme, from the same audio clock the animation uses (the
// captions under the avatar are drawn by the player itself, in the same frame as the mouth).
(function tick() {
  const state = player.state;
  $('clock').textContent = `${((state.audioTimeMs || 0) / 1000).toFixed(2)} s`;
  $('viseme').textContent = state.viseme ? `viseme ${state.viseme} (weight ${state.weight})` : '';
  requestAnimationFrame(tick);
})();

updateCount();
updateMode();
loadVoices();
