// A render's subtitles in Chromium's own WebVTT parser, against a running pipeline:
//   node subtitles.test.mjs http://127.0.0.1:8080 [artifact dir]
// Renders one text, fetches GET /v1/avatar/render/{id}/subtitles.vtt, and loads it into a
// <track kind="subtitles" default> on a <video> playing the render's audio: the track loads
// (readyState 2; a file the parser rejects gives 3), the browser's cues are the file's (ids,
// times, text, one `timestamp` processing instruction per timestamp tag, escapes read back as
// the characters), and seeking and playing fire `cuechange` with the cue of that time active.
import { join } from 'node:path';
import { artifactsDir, check, finish, launchChromium } from './harness.mjs';

const base = process.argv[2];
const artifacts = artifactsDir(process.argv[3]);

const seconds = (stamp) => {
  const [h, m, s] = stamp.split(':');
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
};

/** The file's cues, read by the letter of the format this project writes. */
function parseVtt(vtt) {
  const [header, ...blocks] = vtt.split('\n\n').filter((b) => b !== '');
  const cues = blocks.map((block) => {
    const [id, timing, ...lines] = block.split('\n');
    const [start, end] = timing.split(' --> ');
    const raw = lines.join('\n');
    const tags = [...raw.matchAll(/<(\d\d+:\d\d:\d\d\.\d\d\d)>/g)].map((m) => m[1]);
    const shown = raw.replace(/<[^>]*>/g, '').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
    return { id, start: seconds(start), end: seconds(end), raw, tags, shown };
  });
  return { header, cues };
}

const text = 'Fish & chips, 1 < 2 and 3 > 2: subtitles in a real browser! '
  + 'This second sentence is long enough that its words need two lines, or even a second cue, to be read.';

const browser = await launchChromium();
const page = await browser.newPage();
page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
page.on('console', (m) => m.type() === 'error' && console.log(`console: ${m.text()}`));

try {
  const response = await fetch(`${base}/v1/avatar/render`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  const result = await response.json();
  check(response.status === 200 && result.status === 'completed', `a render came back (${response.status}, ${result.words?.length} words)`);
  const vttUrl = `/v1/avatar/render/${result.render_id}/subtitles.vtt`;
  const served = await fetch(`${base}${vttUrl}`);
  check(served.status === 200 && served.headers.get('content-type') === 'text/vtt; charset=utf-8',
    `the subtitles are served as ${served.headers.get('content-type')} (${served.status})`);
  const vtt = await served.text();
  const file = parseVtt(vtt);
  check(file.header === 'WEBVTT' && file.cues.length >= 2, `the file has ${file.cues.length} cues`);

  // A page on the gateway's origin (so the track needs no CORS) with the render's audio and
  // the subtitles as a track; and, to show that the parser does refuse, a track whose file
  // is not WebVTT.
  await page.route(`${base}/subtitles-test.html`, (route) => route.fulfill({
    contentType: 'text/html',
    body: `<!doctype html><title>subtitles</title>
      <video id="video" preload="auto" src="${result.audio_url}" width="640" height="360" style="background:#000">
        <track id="track" kind="subtitles" srclang="en" label="English" default src="${vttUrl}">
        <track id="broken" kind="metadata" src="/broken-subtitles.vtt">
      </video>`,
  }));
  await page.route(`${base}/broken-subtitles.vtt`, (route) => route.fulfill({
    contentType: 'text/vtt', body: '1\n00:00:00.000 --> 00:00:01.000\nno WEBVTT header\n',
  }));
  await page.goto(`${base}/subtitles-test.html`);
  await page.evaluate(() => { document.getElementById('broken').track.mode = 'hidden'; });
  await page.waitForFunction(() => ['track', 'broken'].every((id) => document.getElementById(id).readyState >= 2), null, { timeout: 20000 });
  const [readyState, brokenState] = await page.evaluate(() => ['track', 'broken'].map((id) => document.getElementById(id).readyState));
  check(brokenState === 3, `a file without the WebVTT header fails to load (readyState ${brokenState})`);
  check(readyState === 2, `the track loaded (readyState ${readyState}; 3 is a parse error)`);

  const cues = await page.evaluate(() => [...document.getElementById('track').track.cues].map((cue) => {
    const fragment = cue.getCueAsHTML();
    const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_ALL);
    const stamps = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.nodeType === Node.PROCESSING_INSTRUCTION_NODE && node.target === 'timestamp') stamps.push(node.data);
    }
    return { id: cue.id, start: cue.startTime, end: cue.endTime, text: cue.text, shown: fragment.textContent, stamps };
  }));
  check(cues.length === file.cues.length, `the browser has the file's ${file.cues.length} cues (${cues.length})`);
  file.cues.forEach((want, i) => {
    const got = cues[i] || {};
    const same = got.id === want.id && Math.abs(got.start - want.start) < 0.0005 && Math.abs(got.end - want.end) < 0.0005
      && got.text === want.raw && got.shown === want.shown;
    check(same, `cue ${want.id}: id, times and text as in the file (${JSON.stringify(got.shown)})`);
    // Chromium keeps a tag's time as a double and prints it truncated (08.081 -> 08.080):
    // the same time within a millisecond is the same tag.
    const sameStamps = (got.stamps || []).length === want.tags.length
      && want.tags.every((tag, k) => Math.abs(seconds(got.stamps[k]) - seconds(tag)) <= 0.0011);
    check(sameStamps && want.tags.length > 0,
      `cue ${want.id}: ${want.tags.length} timestamp tags read as processing instructions (${got.stamps?.length}; file ${want.tags.join(' ')}; browser ${(got.stamps || []).join(' ')}; cue ${want.start}-${want.end})`);
    check(want.shown.split('\n').every((line) => line.length <= 42) && want.shown.split('\n').length <= 2,
      `cue ${want.id}: at most two lines of 42 characters`);
  });
  const all = cues.map((c) => c.shown.replace(/\n/g, ' ')).join(' ');
  check(all === text, `the cues together are the text, '&', '<' and '>' read back as written: ${JSON.stringify(all)}`);

  // Seeking to the middle of the last cue makes it the active one.
  await page.waitForFunction(() => document.getElementById('video').readyState >= 1, null, { timeout: 20000 });
  const last = file.cues[file.cues.length - 1];
  const seeked = await page.evaluate(async (cue) => {
    const video = document.getElementById('video');
    const track = document.getElementById('track').track;
    const active = new Promise((resolve) => {
      track.addEventListener('cuechange', () => {
        const ids = [...track.activeCues].map((c) => c.id);
        if (ids.includes(cue.id)) resolve(ids);
      });
    });
    video.currentTime = (cue.start + cue.end) / 2;
    return Promise.race([active, new Promise((resolve) => setTimeout(() => resolve(null), 5000))]);
  }, last);
  check(seeked !== null && seeked.length === 1, `seeking into cue ${last.id} fires cuechange with it active (${JSON.stringify(seeked)})`);

  // Playing from the start: the first cue becomes active while the audio plays through it.
  const first = file.cues[0];
  const played = await page.evaluate(async (cue) => {
    const video = document.getElementById('video');
    const track = document.getElementById('track').track;
    video.currentTime = 0;
    const active = new Promise((resolve) => {
      const listener = () => {
        const ids = [...track.activeCues].map((c) => c.id);
        if (ids.includes(cue.id) && !video.paused) {
          track.removeEventListener('cuechange', listener);
          resolve({ ids, t: video.currentTime });
        }
      };
      track.addEventListener('cuechange', listener);
    });
    await video.play();
    const seen = await Promise.race([active, new Promise((resolve) => setTimeout(() => resolve(null), 10000))]);
    video.pause();
    return seen;
  }, first);
  check(played !== null && played.t >= first.start - 0.05 && played.t <= first.end + 0.05,
    `playing fires cuechange with cue ${first.id} active inside its time (${JSON.stringify(played)}, cue ${first.start}-${first.end} s)`);
  await page.screenshot({ path: join(artifacts, 'subtitles.png') });
} catch (e) {
  check(false, `unexpected: ${e.stack || e}`);
} finally {
  await browser.close();
}

finish('subtitle');
