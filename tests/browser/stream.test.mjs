// The web demo's streaming in headless Chromium against a running pipeline:
//   node stream.test.mjs http://127.0.0.1:8080 [artifact dir]
// Streams a text of four sentences in typing mode (the demo's default mode, word by word over
// the WebSocket) through the real pipeline and checks, from the player's own record of the
// stream (web-demo/avatar-client.js: `player.streaming`) and of every frame drawn:
// - the text went out word by word, and came back as segments in order, back to back in the
//   stream's time;
// - sound starts before the last segment has been rendered: the first segment's start has
//   passed on the audio clock, and the output carries sound, before the last `segment`
//   message (and `done`) arrives;
// - consecutive segments are scheduled sample-exactly back to back on one AudioContext
//   (start frame = previous start frame + previous decoded length), unless one arrived late,
//   and then it was late (ready after the previous one had finished) and starts when ready;
// - at each seam, the cue drawn in the last frame before it and the first frame after it is
//   the cue in force at that frame's audio time per that segment's cues (times relative to
//   its scheduled start), within one frame; so is every frame's, and the captions show the
//   word covering the time, in its sentence;
// then, with cached segments: a segment whose audio is held back starts late, when ready,
// the face resting in the gap; a segment that fails (an error with its seq, injected into the
// real socket) is skipped and shown, the next one taking its place on the sample; pause
// suspends the audio clock, replay schedules the segments again from the first, back to back;
// `stop()` closes the socket, silences the output and clears the captions.
import { join } from 'node:path';
import { artifactsDir, check, finish, launchChromium } from './harness.mjs';

const base = process.argv[2];
const artifacts = artifactsDir(process.argv[3]);

const FRAME_S = 1 / 60;
const TEXT = 'Streaming starts right away, before the text is done. Each sentence is rendered as a segment of its own. '
  + 'They play back to back, without a gap. The face follows one clock across every seam.';

const browser = await launchChromium();
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
page.on('console', (m) => m.type() === 'error' && console.log(`console: ${m.text()}`));

/**
 * Starts recording, in the page, every frame's drawn state (from `window.avatarState`), the
 * audio clock read beside it, the captions shown, and the output's loudness (an analyser on
 * the player's output); and every message the page sends on a WebSocket.
 */
const START_PROBE = () => {
  const probe = { frames: [], sent: [], stopped: false, analyser: null, data: null };
  window.probe = probe;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    probe.sent.push({ at: performance.now(), data });
    return send.call(this, data);
  };
  const box = document.querySelector('#captions');
  const watch = () => {
    const player = window.avatarPlayer;
    const context = player.audioContext;
    if (context && !probe.analyser) {
      probe.analyser = context.createAnalyser();
      probe.analyser.fftSize = 1024;
      probe.data = new Float32Array(probe.analyser.fftSize);
      player.output.connect(probe.analyser);
    }
    let rms = null;
    if (probe.analyser) {
      probe.analyser.getFloatTimeDomainData(probe.data);
      rms = Math.sqrt(probe.data.reduce((sum, x) => sum + x * x, 0) / probe.data.length);
    }
    const s = window.avatarState;
    probe.frames.push({
      at: performance.now(), now: context ? context.currentTime : null, contextTime: s.contextTime, t: s.audioTimeMs,
      playing: s.playing, segment: s.segment, cueIndex: s.cueIndex, viseme: s.viseme,
      cueT: s.cueIndex >= 0 ? player.result?.mouth_cues[s.cueIndex]?.t_ms ?? null : null,
      wordIndex: s.wordIndex, word: s.word, caption: box.textContent,
      speaking: [...box.querySelectorAll('.speaking')].map((e) => e.textContent), rms,
    });
    if (!probe.stopped) requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
};

/** The player's record of the stream (without the audio objects), and the probe's frames. */
const READ_STREAM = () => {
  const player = window.avatarPlayer;
  const s = player.streaming;
  const probe = window.probe;
  const frames = probe.frames;
  probe.frames = [];
  return {
    sampleRate: player.audioContext.sampleRate,
    now: player.audioContext.currentTime,
    text: s.stream.text,
    events: s.events,
    done: s.done,
    failed: s.failed.map((f) => ({ seq: f.seq, message: f.error.message })),
    finished: s.finished,
    segments: s.segments.map(({ buffer, ...m }) => ({ ...m, bufferLength: buffer?.length ?? null, bufferRate: buffer?.sampleRate ?? null, bufferDuration: buffer?.duration ?? null })),
    scheduled: s.scheduled.map(({ source, ...x }) => x),
    sent: probe.sent.map((m) => ({ at: m.at, ...JSON.parse(m.data) })),
    frames,
  };
};

/** The scheduled segment whose interval holds context time `c`, or null (before, after, a gap). */
function scheduledAt(record, c) {
  return record.scheduled.find((x) => x.when <= c && c < x.end) ?? null;
}

/**
 * The cue in force at context time `c` per the cues of the segment scheduled over `c`: its
 * time relative to that segment's start, its offset added; the segment's last cue started
 * by then (or, before its first, the last of the segments before it). Null if none sounds.
 */
function cueInForce(record, c) {
  const x = scheduledAt(record, c);
  if (!x) return null;
  const t = x.offset_ms + (c - x.when) * 1000;
  const k = record.segments.findIndex((m) => m.seq === x.seq);
  for (let j = k; j >= 0; j -= 1) {
    const cues = record.segments[j].mouth_cues;
    for (let i = cues.length - 1; i >= 0; i -= 1) {
      if (cues[i].t_ms <= t && (j < k || cues[i].t_ms < x.offset_ms + x.duration_ms)) return { ...cues[i], seq: x.seq, t };
    }
  }
  return null;
}

/** The drawn cue is the one in force at its audio time, or at most one frame either side. */
function drawnCueOk(record, f) {
  if (!f.playing) return false;
  const same = (c) => c && c.viseme === f.viseme && c.t_ms === f.cueT;
  return same(cueInForce(record, f.contextTime))
    || same(cueInForce(record, f.contextTime - FRAME_S))
    || same(cueInForce(record, f.contextTime + FRAME_S));
}

/** The word mark covering stream time `t`, and the sentence the captions show then. */
function captionAt(record, t) {
  const words = record.segments.flatMap((m) => m.words);
  const sentences = record.segments.flatMap((m) => m.sentences);
  let w = -1;
  words.forEach((x, i) => { if (x.t_ms <= t && t < x.end_ms) w = i; });
  let s = 0;
  sentences.forEach((x, i) => { if (x.t_ms <= t) s = i; });
  if (w >= 0) {
    const containing = sentences.findIndex((x) => words[w].start >= x.start && words[w].end <= x.end);
    if (containing >= 0) s = containing;
  }
  return { word: w >= 0 ? words[w].text : null, caption: sentences.length ? record.text.slice(sentences[s].start, sentences[s].end).trim() : '' };
}

/** Every consecutive pair of scheduled segments: back to back on the sample, or late. */
function seamChecks(record, label) {
  const rate = record.sampleRate;
  let exact = 0;
  let late = 0;
  const wrong = [];
  for (let i = 0; i + 1 < record.scheduled.length; i += 1) {
    const a = record.scheduled[i];
    const b = record.scheduled[i + 1];
    if (!b.late) {
      const ok = b.startFrame === a.startFrame + a.length && b.startFrame === a.endFrame
        && Math.abs(b.when - (a.when + a.duration)) <= 1 / rate && a.sampleRate === rate;
      if (ok) exact += 1;
      else wrong.push(`${a.seq}->${b.seq}: start frame ${b.startFrame} vs ${a.startFrame} + ${a.length}, ${b.when} vs ${a.when + a.duration}`);
    } else {
      // Late: it was ready only once the previous one had (all but) finished, and starts then.
      const ok = b.readyAt >= a.end - 0.02 - 1e-9 && b.when >= b.readyAt && b.when > a.end;
      if (ok) late += 1;
      else wrong.push(`${a.seq}->${b.seq}: marked late, ready at ${b.readyAt.toFixed(3)} s, previous ends ${a.end.toFixed(3)} s`);
    }
  }
  check(wrong.length === 0, `${label}: each segment starts on the sample where the one before ends (${exact} seam(s) sample-exact at ${rate} Hz), or was late and starts when ready (${late} late)${wrong.length ? `; wrong: ${wrong.join('; ')}` : ''}`);
  return { exact, late };
}

/** The frames on either side of the start of `b` (scheduled after `a`). */
function aroundSeam(record, frames, a, b) {
  const before = frames.filter((f) => f.contextTime !== null && f.contextTime >= a.when && f.contextTime < b.when).at(-1);
  const after = frames.find((f) => f.contextTime !== null && f.contextTime >= b.when && f.contextTime < b.end);
  return { before, after };
}

const describe = (f) => (f ? `${f.viseme}@${f.cueT} (audio ${(f.contextTime * 1000).toFixed(1)} ms, stream ${f.t.toFixed(1)} ms)` : 'no frame');

try {
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.querySelector('#voice option[value="en_US-joe-medium"]') && window.avatarPlayer, null, { timeout: 20000 });
  const defaults = await page.evaluate(() => ({
    mode: new FormData(document.querySelector('#controls')).get('mode'),
    typing: document.querySelector('#typing')?.checked,
    typingEnabled: !document.querySelector('#typing')?.disabled,
  }));
  check(defaults.mode === 'stream' && defaults.typing === false && defaults.typingEnabled, `streaming is the demo's default mode, with a typing checkbox (${JSON.stringify(defaults)})`);

  // 1. A stream typed word by word, through the real pipeline.
  await page.evaluate(START_PROBE);
  await page.fill('#text', TEXT);
  await page.selectOption('#viseme-set', 'basic');
  await page.check('#typing');
  const clicked = await page.evaluate(() => performance.now());
  await page.click('#speak');
  await page.waitForFunction(() => window.avatarPlayer.streaming?.finished || window.avatarPlayer.streaming?.error, null, { timeout: 120000 });
  await page.waitForTimeout(100);
  const record = await page.evaluate(READ_STREAM);
  const { segments, scheduled, events, frames } = record;
  await page.screenshot({ path: join(artifacts, 'stream-done.png') });

  // What went out: start, the words one by one, end.
  const sentTexts = record.sent.filter((m) => m.type === 'text');
  const words = TEXT.match(/\s*\S+|\s+$/g);
  check(record.sent[0]?.type === 'start' && record.sent[0].viseme_set === 'basic' && record.sent.at(-1)?.type === 'end',
    `the client sends start (${JSON.stringify(record.sent[0])}) first and end last`);
  const spread = sentTexts.length > 1 ? sentTexts.at(-1).at - sentTexts[0].at : 0;
  check(sentTexts.length === words.length && sentTexts.map((m) => m.text).join('') === TEXT && record.text === TEXT && spread >= (words.length - 1) * 40,
    `typing mode sends the text word by word (${sentTexts.length} text messages for ${words.length} words, over ${spread.toFixed(0)} ms), together the text`);

  // What came back: the segments, in order, back to back in the stream's time, and done.
  check(record.done && record.done.segments === segments.length && record.done.failed_segments === 0 && segments.length >= 4,
    `the stream is done: ${segments.length} segments (${segments.map((m) => `"${record.text.slice(m.text_start, m.text_end).trim()}"`).join(' | ')}), done ${JSON.stringify(record.done)}`);
  check(segments.every((m, i) => m.seq === i && m.offset_ms === (i ? segments[i - 1].offset_ms + segments[i - 1].duration_ms : 0)),
    `segments arrive in order, each offset the sum of the durations before it (${segments.map((m) => `${m.seq}@${m.offset_ms}+${m.duration_ms}`).join(' ')})`);
  check(scheduled.length === segments.length && scheduled.every((x, i) => x.seq === i && x.length === segments[i].bufferLength && segments[i].bufferRate === record.sampleRate),
    `every segment's audio was fetched, decoded at the context's rate (${record.sampleRate} Hz) and scheduled in order`);
  const decodedVsRounded = segments.map((m) => m.bufferDuration * 1000 - m.duration_ms);
  check(decodedVsRounded.every((d) => Math.abs(d) <= 30),
    `each decoded buffer lasts its duration_ms within 30 ms (differences ${decodedVsRounded.map((d) => d.toFixed(1)).join(', ')} ms): the schedule uses the buffers' own lengths`);

  // (a) Sound before the last segment was rendered.
  const segmentEvents = events.filter((e) => e.type === 'segment');
  const lastSegment = segmentEvents.at(-1);
  const doneEvent = events.find((e) => e.type === 'done');
  const firstStart = scheduled[0].when;
  check(lastSegment.contextTime > firstStart + 0.1 && doneEvent.contextTime > firstStart + 0.1,
    `sound starts before the last segment is rendered: the first segment started at ${firstStart.toFixed(3)} s on the audio clock, the last segment arrived at ${lastSegment.contextTime.toFixed(3)} s and done at ${doneEvent.contextTime.toFixed(3)} s`);
  const loud = frames.filter((f) => f.rms !== null && f.rms > 0.01 && f.at < lastSegment.at);
  const speakingEarly = frames.filter((f) => f.playing && f.at < lastSegment.at);
  check(loud.length > 5 && speakingEarly.length > 5,
    `the output carries sound (${loud.length} frames with RMS > 0.01, max ${Math.max(0, ...loud.map((f) => f.rms)).toFixed(3)}) and the face speaks (${speakingEarly.length} frames) before the last segment arrives, ${(lastSegment.at - clicked).toFixed(0)} ms after Speak; first sound scheduled ${((firstStart - events[0].contextTime) * 1000 + events[0].at - clicked).toFixed(0)} ms after Speak`);

  // (b) Sample-exact back to back, or late.
  const seams = seamChecks(record, 'typed stream');
  check(seams.exact >= 1, `at least one seam is sample-exact (${seams.exact} of ${scheduled.length - 1}; the others late: ${seams.late})`);

  // (c) At each seam, the cue drawn just before and just after it.
  const seamReport = [];
  let seamWrong = 0;
  for (let i = 0; i + 1 < scheduled.length; i += 1) {
    const { before, after } = aroundSeam(record, frames, scheduled[i], scheduled[i + 1]);
    const okBefore = before && drawnCueOk(record, before) && before.segment === scheduled[i].seq;
    const okAfter = after && drawnCueOk(record, after) && after.segment === scheduled[i + 1].seq;
    if (!okBefore || !okAfter) seamWrong += 1;
    const expected = (f) => (f ? cueInForce(record, f.contextTime) : null);
    seamReport.push(`${scheduled[i].seq}|${scheduled[i + 1].seq}: before ${describe(before)} expected ${expected(before)?.viseme}@${expected(before)?.t_ms}${okBefore ? '' : ' WRONG'}, after ${describe(after)} expected ${expected(after)?.viseme}@${expected(after)?.t_ms}${okAfter ? '' : ' WRONG'}`);
  }
  check(seamWrong === 0, `at each seam, the frames just before and just after draw the cue in force at their audio time per their segment's cues:\n     ${seamReport.join('\n     ')}`);
  const playingFrames = frames.filter((f) => f.playing);
  const wrongFrames = playingFrames.filter((f) => !drawnCueOk(record, f));
  check(playingFrames.length > 100 && wrongFrames.length === 0,
    `every one of ${playingFrames.length} frames drawn while speaking shows the cue in force at its audio time${wrongFrames.length ? `; wrong: ${wrongFrames.slice(0, 3).map(describe).join(', ')}` : ''}`);
  const lag = frames.filter((f) => f.contextTime !== null && f.now !== null).map((f) => (f.now - f.contextTime) * 1000);
  check(lag.every((d) => d >= -0.001 && d <= 50), `each frame is drawn from the audio clock, trailing it by at most one frame (max ${Math.max(...lag).toFixed(1)} ms)`);
  const segmentsSeen = new Set(playingFrames.map((f) => f.segment));
  check(segmentsSeen.size === scheduled.length, `the face spoke in every segment (${[...segmentsSeen].join(' ')})`);
  const silentAfter = frames.filter((f) => f.contextTime !== null && f.contextTime > scheduled.at(-1).end + 0.05);
  check(silentAfter.every((f) => !f.playing && f.viseme === null), `after the last segment the face rests (${silentAfter.length} frames)`);

  // Captions: every speaking frame highlights the word covering its time, in its sentence.
  const captionWrong = playingFrames.filter((f) => {
    const expected = captionAt(record, f.t);
    return f.word !== expected.word || f.caption !== expected.caption
      || (expected.word === null ? f.speaking.length !== 0 : f.speaking.length !== 1 || f.speaking[0] !== expected.word);
  });
  const highlighted = new Set(playingFrames.filter((f) => f.word).map((f) => `${f.wordIndex}`));
  const allWords = segments.flatMap((m) => m.words);
  check(captionWrong.length === 0 && highlighted.size >= allWords.length * 0.8,
    `the captions highlight the word covering each speaking frame's stream time, in its sentence (${highlighted.size} of ${allWords.length} words highlighted in turn)${captionWrong.length ? `; wrong: ${JSON.stringify(captionWrong.slice(0, 2))}` : ''}`);
  const third = segments[Math.min(2, segments.length - 1)];
  const probeWord = third.words[Math.floor(third.words.length / 2)];
  const atWord = playingFrames.filter((f) => f.t >= probeWord.t_ms + 10 && f.t < probeWord.end_ms - 10);
  check(atWord.length > 0 && atWord.every((f) => f.speaking[0] === probeWord.text && f.caption.includes(probeWord.text)),
    `in segment ${third.seq}, at "${probeWord.text}" (${probeWord.t_ms}-${probeWord.end_ms} ms of the stream) the captions highlight it (${atWord.map((f) => f.speaking[0]).join(' ')})`);
  const status = await page.textContent('#status');
  check(/^Done: \d+ segments/.test(status), `the demo reports the stream done: "${status}"`);

  // 2. A late segment: the same text again (its segments now cached, so they come at once),
  // the audio of segment 1 held back until well after segment 0 has played.
  const holdMs = segments[0].duration_ms + 900;
  await page.route(segments[1].audio_url, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    await route.continue();
  });
  await page.uncheck('#typing');
  await page.click('#speak');
  await page.waitForFunction(() => {
    const s = window.avatarPlayer.streaming;
    return s && s.scheduled.length >= 3 && s.stream.closed && window.avatarPlayer.audioContext.currentTime > s.scheduled[1].when + 0.4;
  }, null, { timeout: 60000 });
  const held = await page.evaluate(READ_STREAM);
  await page.unroute(segments[1].audio_url);
  const [h0, h1, h2] = held.scheduled;
  check(held.segments.every((m) => m.cached) && h1.seq === 1 && h1.late && h1.when - h0.end > 0.3,
    `a segment whose audio comes late starts when it is ready: ${(1000 * (h1.when - h0.end)).toFixed(0)} ms after segment 0 ended (held ${holdMs} ms; cached segments: ${held.segments.every((m) => m.cached)})`);
  seamChecks(held, 'with a late segment');
  check(h2.seq === 2 && !h2.late && h2.startFrame === h1.endFrame, 'the segment after the late one follows it on the sample');
  const gapFrames = held.frames.filter((f) => f.contextTime !== null && f.contextTime > h0.end + 0.02 && f.contextTime < h1.when - 0.02);
  check(gapFrames.length > 10 && gapFrames.every((f) => !f.playing && f.viseme === null && f.segment === -1 && f.speaking.length === 0),
    `in the gap the face rests and no word is highlighted (${gapFrames.length} frames)`);
  const lateSeam = aroundSeam(held, held.frames, h0, h1);
  const afterGap = held.frames.filter((f) => f.contextTime !== null && f.contextTime >= h1.when && f.contextTime < h1.end);
  check(lateSeam.after && afterGap.length > 10 && afterGap.every((f) => drawnCueOk(held, f)) && Math.abs(lateSeam.after.t - (h1.offset_ms + (lateSeam.after.contextTime - h1.when) * 1000)) < 0.01,
    `after the gap, each frame draws the late segment's cue at its time from the segment's own start: first ${describe(lateSeam.after)}, ${afterGap.length} frames right`);

  // 3. A failed segment (the server's error for seq 1 in place of the segment, injected into
  // the real socket): it is skipped and shown, and segment 2 starts where segment 0 ends.
  await page.routeWebSocket(/\/v1\/avatar\/stream/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((message) => {
      const m = JSON.parse(message);
      if (m.type === 'segment' && m.seq === 1) {
        ws.send(JSON.stringify({ type: 'error', error: 'render_failed', message: 'segment 1 could not be rendered (injected by the test)', seq: 1 }));
      } else {
        ws.send(message);
      }
    });
  });
  await page.click('#speak');
  await page.waitForFunction(() => {
    const s = window.avatarPlayer.streaming;
    return s && s.done && s.scheduled.length >= 2 && window.avatarPlayer.audioContext.currentTime > s.scheduled[1].when + 0.3;
  }, null, { timeout: 60000 });
  const failed = await page.evaluate(READ_STREAM);
  const shownError = await page.evaluate(() => (document.querySelector('#error').hidden ? null : document.querySelector('#error').textContent));
  const [f0, f1] = failed.scheduled;
  check(failed.failed.length === 1 && failed.failed[0].seq === 1 && failed.scheduled.every((x) => x.seq !== 1) && f1.seq === 2,
    `the failed segment is skipped (scheduled: ${failed.scheduled.map((x) => x.seq).join(' ')})`);
  check(shownError !== null && shownError.includes('injected by the test'), `its error is shown: "${shownError}"`);
  check(!f1.late && f1.startFrame === f0.endFrame && Math.abs(f1.when - (f0.when + f0.duration)) <= 1 / failed.sampleRate,
    'the segment after the failed one starts on the sample where the one before it ends');
  const skipSeam = aroundSeam(failed, failed.frames, f0, f1);
  check(skipSeam.before && skipSeam.after && drawnCueOk(failed, skipSeam.before) && drawnCueOk(failed, skipSeam.after) && skipSeam.after.segment === 2,
    `across that seam the drawn cues follow the audio clock: before ${describe(skipSeam.before)}, after ${describe(skipSeam.after)} (segment 2 at stream ${f1.offset_ms} ms)`);
  await page.unrouteAll({ behavior: 'ignoreErrors' }).catch(() => {});

  // Pause holds the audio clock and rests the face; resume plays on; replay schedules the
  // segments again from the first, back to back.
  await page.click('#pause');
  await page.waitForTimeout(250);
  const paused = await page.evaluate(() => ({
    t: window.avatarPlayer.audioContext.currentTime, context: window.avatarPlayer.audioContext.state,
    held: window.avatarPlayer.paused, playing: window.avatarState.playing, viseme: window.avatarState.viseme,
  }));
  await page.waitForTimeout(200);
  const stillAt = await page.evaluate(() => window.avatarPlayer.audioContext.currentTime);
  check(paused.held && paused.context === 'suspended' && !paused.playing && paused.viseme === null && stillAt === paused.t,
    `pause suspends the stream's audio clock (${paused.t.toFixed(3)} s, then ${stillAt.toFixed(3)} s) and rests the face`);
  await page.click('#pause');
  await page.waitForFunction(() => window.avatarState.playing, null, { timeout: 5000 });
  check(true, 'resume plays on');
  await page.click('#replay');
  await page.waitForFunction(() => {
    const s = window.avatarPlayer.streaming;
    return s.scheduled.length && window.avatarPlayer.audioContext.currentTime > s.scheduled[0].when + 0.2 && window.avatarState.playing;
  }, null, { timeout: 5000 });
  const replayed = await page.evaluate(READ_STREAM);
  const replayFrame = replayed.frames.filter((f) => f.playing).at(-1);
  check(replayed.scheduled.map((x) => x.seq).join(' ') === '0 2 3 4' && replayFrame?.segment === 0 && replayFrame.t < 1000,
    `replay plays the stream again from the start (scheduled ${replayed.scheduled.map((x) => x.seq).join(' ')}; drawn: segment ${replayFrame?.segment} at ${replayFrame?.t.toFixed(0)} ms)`);
  seamChecks(replayed, 'replayed');

  // 4. stop(): the socket closes, the sound stops, the face rests, the captions clear.
  const stopped = await page.evaluate(async () => {
    const player = window.avatarPlayer;
    const stream = player.streaming.stream;
    player.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const probe = window.probe;
    const last = probe.frames.slice(-5);
    return {
      socket: stream.socket.readyState,
      streaming: player.streaming,
      state: { playing: window.avatarState.playing, viseme: window.avatarState.viseme },
      captions: document.querySelector('#captions').textContent,
      rms: Math.max(...last.map((f) => f.rms ?? 0)),
    };
  });
  check(stopped.socket >= 2 && stopped.streaming === null && !stopped.state.playing && stopped.state.viseme === null && stopped.captions === '' && stopped.rms < 0.001,
    `stop() closes the socket (state ${stopped.socket}), silences the output (RMS ${stopped.rms.toFixed(4)}), rests the face and clears the captions`);
  await page.evaluate(() => { window.probe.stopped = true; });

  // 5. The same text over server-sent events (the client module's `streamText`): the same
  //    segments, played back to back on the same clock; a refused request is an error.
  const sse = await page.evaluate(async (text) => {
    const { AvatarClient } = await import('/avatar-client.js');
    const client = new AvatarClient();
    const player = window.avatarPlayer;
    const stream = client.streamText({ text, voice_id: 'en_US-joe-medium' });
    const done = await player.playStream(stream);
    const scheduled = player.streaming ? player.streaming.scheduled : null;
    const segments = stream.messages.filter((m) => m.type === 'segment');
    const refused = client.streamText({ text: 'hi', speed: 9 });
    await new Promise((resolve) => refused.addEventListener('close', resolve));
    return {
      done, scheduled: scheduled && scheduled.length, segments: segments.length,
      offsets: segments.every((m, i) => i === 0 || m.offset_ms === segments[i - 1].offset_ms + segments[i - 1].duration_ms),
      refused: refused.messages[0], closed: refused.closed,
    };
  }, TEXT);
  check(sse.done && sse.done.type === 'done' && sse.done.segments === sse.segments && sse.segments >= 4 && sse.offsets,
    `over server-sent events: ${sse.segments} segments back to back, played to done (${JSON.stringify(sse.done)})`);
  check(sse.refused && sse.refused.type === 'error' && sse.refused.field === 'speed' && sse.closed.code === 1008,
    `a refused server-sent stream is an error naming the field (${JSON.stringify(sse.refused)})`);
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
  await page.screenshot({ path: join(artifacts, 'stream-failure.png') }).catch(() => {});
} finally {
  await browser.close();
}

finish('stream');
