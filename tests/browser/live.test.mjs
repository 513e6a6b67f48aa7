// The web demo's "your voice" mode in headless Chromium against a running pipeline:
//   node live.test.mjs http://127.0.0.1:8080 <artifact dir> <speech.wav> <truth.json>
// Chromium's fake microphone plays `speech.wav` (the pipeline's own synthesis of the
// sentence in `truth.json`, with the synthesiser's word onsets, after `lead_ms` of silence)
// into the page, which captures it with an AudioWorklet and streams it as 16-bit PCM at the
// audio context's own rate over the live lip-sync socket. Checks, from the page's own record
// (web-demo/avatar-client.js: `window.avatarLive`, and every frame drawn):
// - `ready` declares the rate the page captures at, and the audio went out as it was
//   captured (binary messages all through the speech, not at the end);
// - the mouth the page draws moves while the speech is heard (after its delay) and rests in
//   the silence before it;
// - after Stop, the utterance's correction holds every word of the sentence, force-aligned to
//   the transcript the page sent, spaced as the synthesiser spaced them (so the page's rate
//   and the server's resampling agree), then `done` and a normal close.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactsDir, check, finish, launchChromium } from './harness.mjs';

const [base, dir, wav, truthFile] = process.argv.slice(2);
const artifacts = artifactsDir(dir);
const truth = JSON.parse(readFileSync(truthFile, 'utf8'));

const browser = await launchChromium([
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}%noloop`,
]);
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
page.on('console', (m) => m.type() === 'error' && console.log(`console: ${m.text()}`));
await page.goto(base);
await page.waitForFunction(() => document.querySelector('#voice option')?.value);

// Every frame's drawn state beside the captured time, and every message sent on a socket.
await page.evaluate(() => {
  const probe = { frames: [], sent: [] };
  window.probe = probe;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    probe.sent.push({ at: performance.now(), binary: typeof data !== 'string', bytes: data.byteLength ?? data.length });
    return send.call(this, data);
  };
  const watch = () => {
    const live = window.avatarLive;
    const s = window.avatarState;
    if (live) probe.frames.push({ at: performance.now(), captured: live.capturedMs(), t: s.audioTimeMs, playing: s.playing, viseme: s.viseme });
    requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
});

await page.fill('#text', truth.text);
await page.check('input[name="mode"][value="live"]');
await page.check('#read-text');
check((await page.textContent('#speak')) === 'Listen', 'the button says Listen in "your voice" mode');
await page.click('#speak');
await page.waitForFunction(() => window.avatarLive?.ready, null, { timeout: 15000 });
const speechEndMs = truth.lead_ms + truth.duration_ms;
// The whole file, then a second more for the mouth's delay.
await page.waitForFunction((ms) => window.avatarLive.capturedMs() > ms, speechEndMs + 1000, { timeout: speechEndMs + 20000 });
await page.screenshot({ path: join(artifacts, 'live-listening.png') });
check((await page.textContent('#speak')) === 'Stop', 'the button says Stop while listening');
await page.click('#speak');
await page.waitForFunction(() => window.avatarLive.closed, null, { timeout: 20000 });

const record = await page.evaluate(() => {
  const live = window.avatarLive;
  return {
    ready: live.ready, done: live.done, closed: live.closed, rate: live.context.sampleRate,
    messages: live.messages, frames: window.probe.frames, sent: window.probe.sent,
    delayMs: live.ready.lag_ms + 150, status: document.querySelector('#status').textContent,
  };
});
const { ready, done, closed, messages, frames, sent } = record;
const errors = messages.filter((m) => m.type === 'error');
check(errors.length === 0, `no errors (${JSON.stringify(errors)})`);
check(ready.format === 'pcm16' && ready.sample_rate === record.rate && ready.channels === 1,
  `ready declares what the page captures: ${ready.format} at ${ready.sample_rate} Hz x${ready.channels} (the page: ${record.rate} Hz)`);

// The audio went out as it was captured: binary messages all through the speech.
const audio = sent.filter((m) => m.binary);
const spanS = (audio.at(-1).at - audio[0].at) / 1000;
check(audio.length > 20 && spanS > (speechEndMs / 1000) * 0.9,
  `${audio.length} audio messages over ${spanS.toFixed(1)} s (the speech ends at ${(speechEndMs / 1000).toFixed(1)} s)`);
const bytes = audio.reduce((n, m) => n + m.bytes, 0);
check(Math.abs(bytes / 2 / record.rate - spanS) < 0.5, `${(bytes / 2 / record.rate).toFixed(1)} s of 16-bit PCM sent in ${spanS.toFixed(1)} s`);

// The mouth drawn: resting in the silence before the speech, moving in it.
const drawn = (from, to) => frames.filter((f) => f.t >= from && f.t < to && f.captured > record.delayMs);
const before = drawn(200, truth.lead_ms - 150);
const during = drawn(truth.lead_ms + 100, speechEndMs - 100);
const resting = (f) => !f.playing || f.viseme === null || ['REST', 'X', 'sil'].includes(f.viseme);
check(before.length > 10 && before.filter(resting).length >= 0.9 * before.length,
  `the mouth rests before the speech (${before.filter(resting).length} of ${before.length} frames)`);
const moving = during.filter((f) => !resting(f)).length;
check(during.length > 30 && moving >= 0.5 * during.length, `the mouth moves in the speech (${moving} of ${during.length} frames)`);
const early = frames.filter((f) => f.playing && f.t > f.captured - record.delayMs + 1);
check(early.length === 0, `every frame draws the sound ${record.delayMs} ms back, no later (${JSON.stringify(early.slice(0, 3))})`);

// The correction: every word, aligned to the transcript, spaced as synthesised.
const corrections = messages.filter((m) => m.type === 'correction');
const words = corrections.flatMap((c) => c.words);
const norm = (w) => w.toLowerCase().replace(/[^a-z']/g, '');
check(corrections.length >= 1 && corrections.every((c) => c.aligned), `${corrections.length} correction(s), aligned`);
check(JSON.stringify(words.map((w) => norm(w.text))) === JSON.stringify(truth.words.map((w) => norm(w.text))),
  `the corrected words are the sentence's: ${words.map((w) => w.text).join(' ')}`);
if (words.length === truth.words.length) {
  // Relative to the median shift: where the page's capture started is the browser's business.
  const shifts = words.map((w, i) => w.t_ms - truth.words[i].t_ms).sort((a, b) => a - b);
  const shift = shifts[Math.floor(shifts.length / 2)];
  const spacing = words.map((w, i) => Math.abs(w.t_ms - shift - truth.words[i].t_ms)).sort((a, b) => a - b);
  const median = spacing[Math.floor(spacing.length / 2)];
  check(median <= 40, `word onsets spaced as synthesised: median error ${median} ms (${spacing.join(', ')})`);
  check(Math.abs(shift - truth.lead_ms) < 400, `the speech found ${shift.toFixed(0)} ms in, where the file has it (${truth.lead_ms} ms, give or take the capture's start)`);
}
check(done && done.utterances === corrections.length && closed.code === 1000,
  `done (${JSON.stringify(done)}) and a normal close (${closed.code})`);
check(/Done/.test(record.status), `the page says so: "${record.status}"`);
await page.screenshot({ path: join(artifacts, 'live-done.png') });
await browser.close();
finish('live');
