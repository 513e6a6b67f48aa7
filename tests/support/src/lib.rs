//! What the test suites of several crates share (a dev-dependency only): the real voices,
//! an independent reading of audio files (ffprobe), a voice whose model is broken, and the
//! fields of a completed result.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The voice every test speaks with (the one fetchable from a package registry).
pub const VOICE: &str = "en_US-joe-medium";

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `VOICES_DIR`, or the workspace's `voices/` that `scripts/download_voices.sh` fills.
pub fn voices_dir() -> PathBuf {
    std::env::var_os("VOICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("voices"))
}

/// What ffprobe reads from an audio file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub duration_ms: f64,
}

/// Reads `path` with ffprobe, an independent decoder; panics if it cannot.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,sample_rate,channels",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_owned()
    };
    Probe {
        codec: field("codec_name"),
        sample_rate: field("sample_rate").parse().unwrap(),
        channels: field("channels").parse().unwrap(),
        duration_ms: field("duration").parse::<f64>().unwrap() * 1000.0,
    }
}

/// [`probe`] of audio held in memory.
pub fn probe_bytes(bytes: &[u8]) -> Probe {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    probe(file.path())
}

/// Puts a voice `name` in `dir` whose config is real (the test voice's) and whose model is
/// not a model: it lists like a voice and fails when it is loaded.
pub fn broken_voice(dir: &Path, name: &str) {
    std::fs::copy(
        voices_dir().join(format!("{VOICE}.onnx.json")),
        dir.join(format!("{name}.onnx.json")),
    )
    .expect("the test voice's config (scripts/download_voices.sh en_US-joe-medium)");
    std::fs::write(
        dir.join(format!("{name}.onnx")),
        b"this is not an onnx model",
    )
    .unwrap();
}

/// Asserts that a completed result has exactly the contract's fields plus `viseme_set`.
pub fn assert_result_fields(result: &Value) {
    let mut keys: Vec<&str> = result
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {result}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "audio_url",
            "cached",
            "duration_ms",
            "eye_events",
            "mouth_cues",
            "processing_time_ms",
            "render_id",
            "status",
            "viseme_set"
        ],
        "{result}"
    );
}
