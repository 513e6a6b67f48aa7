// The web demo in headless Chromium against a running pipeline:
//   node avatar.test.mjs http://127.0.0.1:8080 [artifact dir]
// Checks that the audio really plays, that the mouth drawn at audio time t is the cue active
// at t, that mouth and eye pixels change with visemes and blinks, pause/replay/re-speak, and
// that an API error reaches the user. Saves a screenshot of the speaking avatar.
import { join } from 'node:path';
import { artifactsDir, check, finish, launchChromium } from './harness.mjs';

const base = process.argv[2];
const artifacts = artifactsDir(process.argv[3]);

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
page.on('console', (m) => m.type() === 'error' && console.log(`console: ${m.text()}`));

try {
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.querySelector('#voice option[value="en_US-joe-medium"]'), null, { timeout: 20000 });
  check(true, 'the page loads and lists the voices from /v1/voices');

  // Idle: the avatar is animated (frames advance, it breathes) before anything is said.
  const idle1 = await page.evaluate(() => ({ ...window.avatarState }));
  await page.waitForTimeout(500);
  const idle2 = await page.evaluate(() => ({ ...window.avatarState }));
  check(idle2.frame > idle1.frame + 10 && !idle2.playing, `idle animation runs (${idle2.frame - idle1.frame} frames in 0.5 s)`);
  check(idle1.breath !== idle2.breath, 'the idle avatar breathes');

  // Speak, as one render (streaming, the default, has its own test: stream.test.mjs).
  const sentence = 'Bob was amazed: the avatar opened its mouth wide and spoke every word in time.';
  await page.check('input[name="mode"][value="sync"]');
  await page.fill('#text', sentence);
  await page.selectOption('#viseme-set', 'basic');
  await page.click('#speak');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 60000 });
  const result = await page.evaluate(() => window.avatarPlayer.result);
  check(result && result.status === 'completed' && result.mouth_cues.length > 10, `a render came back (${result?.mouth_cues.length} cues, ${result?.duration_ms} ms)`);

  // The mouth drawn on each frame is the cue active at the audio's time, within a frame.
  const samples = [];
  for (let i = 0; i < 25; i += 1) {
    samples.push(await page.evaluate(() => {
      const s = window.avatarState;
      return { audioTimeMs: s.audioTimeMs, cueIndex: s.cueIndex, viseme: s.viseme, now: window.avatarPlayer.audio.currentTime * 1000 };
    }));
    await page.waitForTimeout(60);
  }
  const cueAt = (t) => {
    let k = -1;
    result.mouth_cues.forEach((c, j) => { if (c.t_ms <= t) k = j; });
    return k;
  };
  const consistent = samples.filter((s) => s.cueIndex === cueAt(s.audioTimeMs) && result.mouth_cues[s.cueIndex]?.viseme === s.viseme);
  check(consistent.length === samples.length, `the drawn cue is the cue active at the drawn audio time (${consistent.length}/${samples.length})`);
  const frameLag = samples.map((s) => s.now - s.audioTimeMs);
  check(frameLag.every((d) => d >= -1 && d <= 50), `the drawn time trails the audio clock by at most one frame (max ${Math.max(...frameLag).toFixed(1)} ms)`);
  const times = samples.map((s) => s.now);
  check(times[times.length - 1] > times[0] + 800, `the audio clock advances (${times[0].toFixed(0)} -> ${times[times.length - 1].toFixed(0)} ms)`);
  check(new Set(samples.map((s) => s.viseme)).size >= 3, `several visemes were shown (${[...new Set(samples.map((s) => s.viseme))].join(' ')})`);

  await page.screenshot({ path: join(artifacts, 'avatar-speaking.png') });
  check(true, `screenshot saved to ${join(artifacts, 'avatar-speaking.png')}`);

  // Pause holds the audio and rests the mouth; resume continues.
  await page.click('#pause');
  const paused = await page.evaluate(() => ({ paused: window.avatarPlayer.audio.paused, t: window.avatarPlayer.audio.currentTime }));
  await page.waitForTimeout(300);
  const still = await page.evaluate(() => ({ t: window.avatarPlayer.audio.currentTime, playing: window.avatarState.playing, viseme: window.avatarState.viseme }));
  check(paused.paused && Math.abs(still.t - paused.t) < 0.01 && !still.playing && still.viseme === null, 'pause stops the clock and rests the mouth');
  await page.click('#pause');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 5000 });
  check(true, 'resume plays on');

  // It plays to the end.
  await page.waitForFunction(() => window.avatarPlayer.audio.ended, null, { timeout: result.duration_ms + 15000 });
  const end = await page.evaluate(() => window.avatarPlayer.audio.currentTime * 1000);
  check(Math.abs(end - result.duration_ms) <= 60, `the audio reaches its end (${end.toFixed(0)} ms of ${result.duration_ms} ms)`);

  // Pixels: the mouth region differs between a rest and a wide-open vowel, the eyes between
  // open and mid-blink.
  const pixels = await page.evaluate(async () => {
    const { MOUTH_BOX, LEFT_EYE_BOX } = await import('./face.js');
    const player = window.avatarPlayer;
    const r = player.result;
    const cues = r.mouth_cues;
    const ctx = player.canvas.getContext('2d');
    const grab = (box) => ctx.getImageData(box.x, box.y - 8, box.w, box.h + 16).data;
    const diff = (a, b) => {
      let n = 0;
      for (let i = 0; i < a.length; i += 4) if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) > 60) n += 1;
      return n;
    };
    const clock = { speaking: true, clockMs: 0 };
    const restAt = 0;
    const open = cues.map((c, i) => ({ c, i })).filter(({ c, i }) => c.viseme === 'AA' && c.weight >= 0.6 && i + 1 < cues.length)
      .sort((a, b) => b.c.weight - a.c.weight)[0];
    const openAt = open ? open.c.t_ms + Math.min(80, 0.6 * (cues[open.i + 1].t_ms - open.c.t_ms)) + 1 : null;
    player.renderAt(restAt, clock);
    const rest = grab(MOUTH_BOX);
    const restEye = grab(LEFT_EYE_BOX);
    const restState = { ...player.state };
    let openPixels = null;
    let openState = null;
    if (openAt !== null) {
      player.renderAt(openAt, clock);
      openPixels = diff(rest, grab(MOUTH_BOX));
      openState = { ...player.state };
    }
    const blink = r.eye_events.find((e) => e.event_type === 'blink');
    let blinkPixels = null;
    let blinkState = null;
    if (blink) {
      player.renderAt(blink.t_ms + blink.duration_ms / 2, clock);
      blinkState = { ...player.state };
      blinkPixels = diff(restEye, grab(LEFT_EYE_BOX));
    }
    const saccade = r.eye_events.find((e) => e.event_type === 'saccade');
    let saccadeState = null;
    if (saccade) {
      player.renderAt(saccade.t_ms + saccade.duration_ms / 2, clock);
      saccadeState = { ...player.state };
    }
    return { restState, openState, openPixels, blink, blinkState, blinkPixels, saccade, saccadeState, openAt };
  });
  check(pixels.restState.viseme === 'REST' && pixels.restState.mouth.open < 0.05, 'the mouth rests at the start');
  check(pixels.openState && pixels.openState.viseme === 'AA' && pixels.openState.mouth.open > 0.5, `an AA cue opens the mouth (open ${pixels.openState?.mouth.open.toFixed(2)})`);
  check(pixels.openPixels > 500, `mouth pixels differ between REST and AA (${pixels.openPixels} pixels)`);
  if (pixels.blink) {
    check(pixels.blinkState.lid > 0.95, `the eyes are closed in the middle of the blink at ${pixels.blink.t_ms} ms (lid ${pixels.blinkState.lid.toFixed(2)})`);
    check(pixels.blinkPixels > 300, `eye pixels differ between open and blinking (${pixels.blinkPixels} pixels)`);
  } else {
    check(false, 'the render has a blink to check');
  }
  if (pixels.saccade) {
    const g = pixels.saccadeState.gaze;
    check(Math.hypot(g.x, g.y) > 0.9, `a ${pixels.saccade.direction} saccade moves the pupils (${g.x.toFixed(2)}, ${g.y.toFixed(2)})`);
  }

  // Live, the eyes close at a blink's time: seek to just before one and watch.
  if (pixels.blink) {
    const lids = await page.evaluate(async (blink) => {
      const player = window.avatarPlayer;
      player.audio.currentTime = Math.max(0, (blink.t_ms - 300) / 1000);
      await player.resume();
      const seen = [];
      await new Promise((resolve) => {
        const watch = () => {
          const s = window.avatarState;
          seen.push({ t: s.audioTimeMs, lid: s.lid });
          if (s.audioTimeMs > blink.t_ms + blink.duration_ms + 100 || player.audio.ended) resolve();
          else requestAnimationFrame(watch);
        };
        requestAnimationFrame(watch);
      });
      player.pause();
      return seen;
    }, pixels.blink);
    const during = lids.filter((s) => s.t >= pixels.blink.t_ms && s.t <= pixels.blink.t_ms + pixels.blink.duration_ms);
    const before = lids.filter((s) => s.t < pixels.blink.t_ms - 50);
    check(during.some((s) => s.lid > 0.8) && before.every((s) => s.lid < 0.2), `live playback closes the eyes during the blink (max lid ${Math.max(...during.map((s) => s.lid)).toFixed(2)})`);
  }

  // Replay starts again from the beginning.
  await page.click('#replay');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 5000 });
  const replayed = await page.evaluate(() => window.avatarPlayer.audio.currentTime);
  check(replayed < 1.0, `replay starts from the beginning (${replayed.toFixed(2)} s)`);

  // A second Speak during playback replaces the first render.
  await page.fill('#text', 'A second sentence interrupts the first one.');
  await page.selectOption('#viseme-set', 'oculus');
  await page.click('#speak');
  await page.waitForFunction((id) => window.avatarPlayer.result && window.avatarPlayer.result.render_id !== id && window.avatarState.playing, result.render_id, { timeout: 60000 });
  const second = await page.evaluate(() => ({ set: window.avatarPlayer.result.viseme_set, t: window.avatarPlayer.audio.currentTime }));
  check(second.set === 'oculus' && second.t < 2, 'a second Speak during playback plays the new render from its start');
  await page.click('#pause');

  // Async mode shows progress while the render is pending, then plays.
  await page.evaluate(() => {
    window.statusSeen = [];
    new MutationObserver(() => window.statusSeen.push(document.querySelector('#status').textContent))
      .observe(document.querySelector('#status'), { childList: true, characterData: true, subtree: true });
  });
  await page.check('input[name="mode"][value="async"]');
  await page.fill('#text', 'This one is submitted asynchronously and polled until it is ready.');
  await page.click('#speak');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 60000 });
  const seen = await page.evaluate(() => window.statusSeen);
  check(seen.some((t) => /pending|rendering/.test(t)), `async mode shows progress (${seen.filter((t) => /pending|rendering/.test(t)).slice(0, 3).join(' | ')})`);
  await page.click('#pause');
  await page.check('input[name="mode"][value="sync"]');

  // An API error reaches the user.
  await page.fill('#text', 'a'.repeat(5001));
  await page.click('#speak');
  await page.waitForSelector('#error:not([hidden])', { timeout: 20000 });
  const error = await page.textContent('#error');
  check(/5001/.test(error) && /text/.test(error), `a 5001-character text shows the API's error: "${error}"`);
  check(await page.evaluate(() => document.querySelector('#text').classList.contains('invalid')), 'the text box is marked invalid');
  await page.screenshot({ path: join(artifacts, 'avatar-error.png') });

  // Custom sprites: with a manifest for AA, an AA cue draws the image; other visemes keep the
  // drawn mouth.
  const magenta = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z/AfAAQAAf8iCjrwAAAAAElFTkSuQmCC', 'base64');
  await page.route('**/assets/sprites.json', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify({ basic: { AA: 'mouth-basic-AA.png' } }) }));
  await page.route('**/assets/mouth-basic-AA.png', (route) => route.fulfill({ contentType: 'image/png', body: magenta }));
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#voice option[value="en_US-joe-medium"]'), null, { timeout: 20000 });
  await page.check('input[name="mode"][value="sync"]');
  await page.fill('#text', sentence);
  await page.click('#speak');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 60000 });
  await page.click('#pause');
  const sprite = await page.evaluate(async (openAt) => {
    const { MOUTH_BOX } = await import('./face.js');
    const player = window.avatarPlayer;
    const ctx = player.canvas.getContext('2d');
    const magentaShare = () => {
      const d = ctx.getImageData(MOUTH_BOX.x + 20, MOUTH_BOX.y + 20, MOUTH_BOX.w - 40, MOUTH_BOX.h - 40).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 60 && d[i + 2] > 200) n += 1;
      return n / (d.length / 4);
    };
    player.renderAt(openAt, { speaking: true, clockMs: 0 });
    const onAA = magentaShare();
    player.renderAt(0, { speaking: true, clockMs: 0 });
    const onRest = magentaShare();
    return { onAA, onRest };
  }, pixels.openAt);
  check(sprite.onAA > 0.9 && sprite.onRest === 0, `sprites: the AA image is drawn for AA (${(sprite.onAA * 100).toFixed(0)} % of the mouth box), the drawn mouth elsewhere`);
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
  await page.screenshot({ path: join(artifacts, 'avatar-failure.png') }).catch(() => {});
} finally {
  await browser.close();
}

finish('browser');
