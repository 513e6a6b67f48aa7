//! The render id: the cache key and the job's name.
//!
//! A hex SHA-256 over everything that changes the output. The same request always maps to
//! the same id, so repeated requests hit the cache and concurrent ones coalesce.

use sha2::{Digest, Sha256};

use crate::RenderSpec;

/// Bumped whenever a change to the stages changes what a render produces, so old cache
/// entries are not served for the new pipeline. 2: mouth cues fitted to the audio
/// (docs/lipsync-accuracy.md). 3: word and sentence marks in every result.
pub const PIPELINE_VERSION: &str = "avatar-pipeline/3";

/// Hex SHA-256 of the pipeline version, voice, speed, viseme set and normalised text,
/// separated by NUL (which none of them can contain after validation).
pub fn render_id(spec: &RenderSpec) -> String {
    let mut hasher = Sha256::new();
    for part in [
        PIPELINE_VERSION,
        spec.voice_id.as_str(),
        // Rust prints the shortest string that round-trips, so 1.0 and 1.00 hash alike.
        &spec.speed.to_string(),
        spec.viseme_set.as_str(),
        spec.text.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

/// The render id of lip-sync for a recording: hex SHA-256 of the pipeline version, a marker
/// that keeps it apart from text renders, the viseme set, what is known of the words (the
/// normalised transcript, or the timings) and the audio file's bytes.
pub fn recording_id(audio: &[u8], spec: &crate::RecordingSpec) -> String {
    let words = match &spec.words {
        crate::Words::Unknown => String::new(),
        crate::Words::Transcript(t) => t.clone(),
        crate::Words::Timed(t) => format!(
            "\u{1}timings\u{1}{}",
            serde_json::to_string(t).expect("timings serialise")
        ),
    };
    let mut hasher = Sha256::new();
    for part in [
        PIPELINE_VERSION.as_bytes(),
        b"recording",
        spec.viseme_set.as_str().as_bytes(),
        words.as_bytes(),
    ] {
        hasher.update(part);
        hasher.update([0u8]);
    }
    hasher.update(audio);
    hex::encode(hasher.finalize())
}

/// Whether `id` looks like a render id: 64 lowercase hex digits.
pub fn is_render_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RenderRequest, VisemeSet};

    fn id(text: &str, voice: &str, speed: f64, set: VisemeSet) -> String {
        let spec = RenderRequest {
            text: text.into(),
            voice_id: Some(voice.into()),
            speed: Some(speed),
            viseme_set: Some(set),
        }
        .validate("v")
        .unwrap();
        render_id(&spec)
    }

    #[test]
    fn a_recording_id_depends_on_audio_words_and_set() {
        let spec = |transcript: Option<&str>, timings: Option<&str>, set| {
            crate::RecordingRequest {
                transcript: transcript.map(str::to_owned),
                timings: timings.map(str::to_owned),
                viseme_set: Some(set),
            }
            .validate()
            .unwrap()
        };
        let hi = spec(Some("Hi there."), None, VisemeSet::Basic);
        let base = recording_id(b"RIFF1", &hi);
        assert!(is_render_id(&base));
        let sent = spec(Some(" Hi there.\r\n"), None, VisemeSet::Basic);
        assert_eq!(base, recording_id(b"RIFF1", &sent));
        assert_ne!(base, recording_id(b"RIFF2", &hi));
        let other = spec(Some("Hi there!"), None, VisemeSet::Basic);
        assert_ne!(base, recording_id(b"RIFF1", &other));
        let oculus = spec(Some("Hi there."), None, VisemeSet::Oculus);
        assert_ne!(base, recording_id(b"RIFF1", &oculus));
        let unknown = spec(None, None, VisemeSet::Basic);
        assert_ne!(base, recording_id(b"RIFF1", &unknown));
        let words = r#"{"words": [{"word": "Hi", "start": 0, "end": 0.2}]}"#;
        let timed = recording_id(b"RIFF1", &spec(None, Some(words), VisemeSet::Basic));
        let later = words.replace("0.2", "0.3");
        assert_ne!(
            timed,
            recording_id(b"RIFF1", &spec(None, Some(&later), VisemeSet::Basic))
        );
        assert_ne!(timed, recording_id(b"RIFF1", &unknown));
    }

    #[test]
    fn same_request_same_id_and_every_input_counts() {
        let base = id("Hello there.", "a", 1.0, VisemeSet::Basic);
        assert_eq!(base.len(), 64);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(base, id("  Hello there.\n", "a", 1.00, VisemeSet::Basic));
        assert_ne!(base, id("Hello there!", "a", 1.0, VisemeSet::Basic));
        assert_ne!(base, id("Hello there.", "b", 1.0, VisemeSet::Basic));
        assert_ne!(base, id("Hello there.", "a", 1.1, VisemeSet::Basic));
        assert_ne!(base, id("Hello there.", "a", 1.0, VisemeSet::Oculus));
    }
}
