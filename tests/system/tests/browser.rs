//! The web demo in headless Chromium (Debian's, driven by playwright-core) against the real
//! running stack: the checks are in `tests/browser/avatar.test.mjs` (the avatar),
//! `tests/browser/captions.test.mjs` (the captions, on a hand-made result and on a real one)
//! and `tests/browser/stream.test.mjs` (streaming: segments back to back on one audio clock).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{Options, Stack};

/// One browser at a time: the scripts check frame timing, and the machine has two cores.
static BROWSER: Mutex<()> = Mutex::new(());

fn browser_tests() -> PathBuf {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let browser_tests = workspace.join("tests/browser");
    assert!(
        browser_tests.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (make test does)"
    );
    browser_tests
}

/// Runs `node <script> <args...>`; the report, and whether every check passed. The
/// report starts with the failed checks, if any.
fn run_script(script: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    let summary = if failed.is_empty() {
        report
    } else {
        format!(
            "failed checks:\n{}\n\nfull report:\n{report}",
            failed.join("\n")
        )
    };
    (out.status.success(), summary)
}

#[test]
fn the_web_demo_speaks_in_sync_in_a_real_browser() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    // The screenshot checked below must be this run's.
    let _ = std::fs::remove_file(artifacts.join("avatar-speaking.png"));
    let (ok, report) = run_script(
        &browser_tests.join("avatar.test.mjs"),
        &[&stack.url(""), &artifacts.display().to_string()],
    );
    assert!(ok, "{report}\n{}", stack.logs());
    assert!(artifacts.join("avatar-speaking.png").exists());
}

/// The demo's default mode: a text of four sentences typed word by word into the WebSocket
/// stream, through the real pipeline. Sound starts before the last segment is rendered,
/// consecutive segments are scheduled sample-exactly back to back on one AudioContext (or were
/// late, and start when ready, the face resting in the gap), the cue drawn on either side of
/// each seam is the one in force at that frame's audio time, the captions follow; a failed
/// segment is skipped and shown; `stop()` closes and silences (`stream.test.mjs`).
#[test]
fn the_web_demo_streams_segments_back_to_back_in_a_real_browser() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    let _ = std::fs::remove_file(artifacts.join("stream-done.png"));
    let (ok, report) = run_script(
        &browser_tests.join("stream.test.mjs"),
        &[&stack.url(""), &artifacts.display().to_string()],
    );
    assert!(ok, "{report}\n{}", stack.logs());
    assert!(artifacts.join("stream-done.png").exists());
}

/// The highlighting rule, exactly, on a hand-made result: no stack, the page's files are
/// served from `web-demo/` by the browser itself.
#[test]
fn the_captions_highlight_the_word_mark_covering_the_time_on_a_fixture() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let artifacts = browser_tests.join("artifacts");
    let (ok, report) = run_script(
        &browser_tests.join("captions.test.mjs"),
        &["--fixture", &artifacts.display().to_string()],
    );
    assert!(ok, "{report}");
}

/// A real render of accents, an emoji and CJK before the words: its word marks index the
/// text, and the word highlighted at audio time t is the one whose mark covers t, beside the
/// mouth's cue at t (paused and seeked, drawn at a time, and on every frame of playback).
#[test]
fn the_captions_highlight_the_word_being_spoken_in_a_real_browser() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    let _ = std::fs::remove_file(artifacts.join("avatar-captions.png"));
    let (ok, report) = run_script(
        &browser_tests.join("captions.test.mjs"),
        &[&stack.url(""), &artifacts.display().to_string()],
    );
    assert!(ok, "{report}\n{}", stack.logs());
    assert!(artifacts.join("avatar-captions.png").exists());
}

/// A real render's subtitles in Chromium's own WebVTT parser (a `<track>` on a `<video>` of
/// the render's audio): the track loads, the browser's cues are the file's, and seeking and
/// playing fire `cuechange` with the cue of that time active (`subtitles.test.mjs`).
#[test]
fn the_subtitles_load_into_a_browser_track_and_fire_cuechange() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    let (ok, report) = run_script(
        &browser_tests.join("subtitles.test.mjs"),
        &[&stack.url(""), &artifacts.display().to_string()],
    );
    assert!(ok, "{report}\n{}", stack.logs());
}

#[test]
fn the_web_demo_lip_syncs_a_microphone_live_in_a_real_browser() {
    let browser_tests = browser_tests();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    let work = tempfile::tempdir().unwrap();
    // The speaker: this stack's own synthesis (its word onsets the truth), decoded by ffmpeg
    // to the WAV Chromium's fake microphone plays, after a second of silence.
    const TEXT: &str = "Maybe the bright blue boat will float past the old mill tomorrow.";
    const LEAD_MS: u64 = 1000;
    let (ogg, render) = common::run(async {
        let (status, body, _) = stack
            .post("/v1/avatar/render", &serde_json::json!({"text": TEXT}))
            .await;
        assert_eq!(status, 200, "{body}");
        (stack.fetch(body["audio_url"].as_str().unwrap()).await, body)
    });
    let (ogg_path, wav) = (
        work.path().join("speech.ogg"),
        work.path().join("speech.wav"),
    );
    std::fs::write(&ogg_path, ogg).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-i"])
        .arg(&ogg_path)
        .args([
            "-af",
            &format!("adelay=delays={LEAD_MS}:all=1,apad=pad_dur=1.5"),
        ])
        .args(["-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .status()
        .expect("ffmpeg (scripts/setup_system.sh test installs it)");
    assert!(status.success());
    let truth = work.path().join("truth.json");
    let words: Vec<serde_json::Value> = render["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| serde_json::json!({"text": w["text"], "t_ms": w["t_ms"]}))
        .collect();
    let truth_json = serde_json::json!({
        "text": TEXT, "words": words, "lead_ms": LEAD_MS, "duration_ms": render["duration_ms"],
    });
    std::fs::write(&truth, truth_json.to_string()).unwrap();
    let (ok, report) = run_script(
        &browser_tests.join("live.test.mjs"),
        &[
            &stack.url(""),
            &artifacts.display().to_string(),
            &wav.display().to_string(),
            &truth.display().to_string(),
        ],
    );
    assert!(ok, "{report}\n{}", stack.logs());
}

#[test]
fn the_browser_clients_pure_helpers_pass_their_unit_tests() {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = Command::new("node")
        .arg("--test")
        .arg(workspace.join("web-demo/client/test/"))
        .output()
        .expect("node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains("# pass 5"), "{report}");
}
