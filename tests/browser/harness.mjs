// What every browser test shares: the artifacts folder, `check` (an ok/FAIL line per check),
// headless Chromium launched the same way, and the exit status at the end.
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

let failures = 0;

/** Prints an `ok`/`FAIL` line and counts failures; returns `ok`. */
export function check(ok, message) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
  if (!ok) failures += 1;
  return ok;
}

/** The artifacts folder (screenshots), created if need be. */
export function artifactsDir(dir = 'artifacts') {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Headless Chromium (`CHROMIUM`, else Debian's), audio allowed to start without a gesture;
 * `extraArgs` for a test's own switches (a fake microphone).
 */
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run', '--autoplay-policy=no-user-gesture-required', ...extraArgs],
  });
}

/** Prints the summary and exits 1 if any check failed. */
export function finish(what) {
  console.log(failures ? `${failures} check(s) failed` : `all ${what} checks passed`);
  process.exit(failures ? 1 : 0);
}
