//! `scripts/download_voices.sh`: a voice that cannot be fetched is reported with the reason,
//! and the others still arrive.

use std::process::Command;

#[test]
fn a_failed_voice_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // Put joe in place (from the workspace's copy, to avoid a second download) but not alan;
    // alan's server refuses connections.
    let voices = std::env::var_os("VOICES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../voices").into());
    for ext in ["onnx", "onnx.json"] {
        std::fs::copy(
            voices.join(format!("en_US-joe-medium.{ext}")),
            dir.path().join(format!("en_US-joe-medium.{ext}")),
        )
        .unwrap();
    }
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/download_voices.sh"
    ))
    .args(["en_GB-alan-medium", "en_US-joe-medium", "not-a-voice"])
    .env("VOICES_DIR", dir.path())
    .env("PIPER_VOICES_URL", "http://127.0.0.1:9/piper-voices")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("voice en_GB-alan-medium: FAILED") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("voice not-a-voice: FAILED: not a Piper voice name"),
        "{stderr}"
    );
    assert!(
        stdout.contains("voice en_US-joe-medium: present"),
        "{stdout}"
    );
    assert!(!dir.path().join("en_GB-alan-medium.onnx").exists());
    assert!(!dir.path().join("en_GB-alan-medium.onnx.json").exists());
}
