// The demo page: a form that renders through the API and plays the result on the canvas.
import { AvatarClient, AvatarPlayer } from './avatar-client.js';

const $ = (id) => document.getElementById(id);
const client = new AvatarClient();
const player = new AvatarPlayer($('avatar'), { sprites: 'assets/sprites.json', captions: $('captions') });
const MAX_CHARS = 5000;
let current = null; // the AbortController of the render in progress

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

$('controls').addEventListener('submit', speak);
$('text').addEventListener('input', updateCount);
$('speed').addEventListener('input', () => ($('speed-value').textContent = `${Number($('speed').value).toFixed(2)}x`));
$('pause').addEventListener('click', () => {
  if (player.audio.paused) {
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
  $('clock').textContent = `${(player.audio.currentTime || 0).toFixed(2)} s`;
  $('viseme').textContent = state.viseme ? `viseme ${state.viseme} (weight ${state.weight})` : '';
  requestAnimationFrame(tick);
})();

updateCount();
loadVoices();
