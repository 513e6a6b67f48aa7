//! Lip-sync of a recording: what a client may send with the audio, and the limits on it.
//!
//! [`RecordingRequest`] is what came with the audio (HTTP form fields or query parameters,
//! CLI flags); [`RecordingRequest::validate`] turns it into a [`RecordingSpec`] or names every
//! bad field, the one check every entry point uses. The audio itself is checked where it is
//! decoded (`avatar_audio::decode_recording`).

use serde::{Deserialize, Serialize};

use crate::request::{FieldError, MAX_TEXT_CHARS, RenderSpec, VisemeSet, normalize_text};
use crate::timings::ExternalTimings;

/// The largest timings document accepted (bytes): ElevenLabs' character alignment of 5000
/// characters is about 150 KB.
pub const MAX_TIMINGS_BYTES: usize = 1024 * 1024;

/// What came with a recording, as sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordingRequest {
    /// What the recording says: its words are then force-aligned.
    pub transcript: Option<String>,
    /// Another engine's word or character timings (JSON, see [`crate::timings`]): taken as
    /// they are, nothing recognised.
    pub timings: Option<String>,
    pub viseme_set: Option<VisemeSet>,
}

/// What is known of a recording's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Words {
    /// Nothing: they are recognised (best effort).
    Unknown,
    /// What it says (normalised): the words are force-aligned.
    Transcript(String),
    /// The engine that spoke it timed them: taken as they are.
    Timed(ExternalTimings),
}

/// A validated recording request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingSpec {
    pub words: Words,
    pub viseme_set: VisemeSet,
}

impl RecordingSpec {
    /// The transcript, if the client gave one.
    pub fn transcript(&self) -> Option<&str> {
        match &self.words {
            Words::Transcript(t) => Some(t),
            _ => None,
        }
    }

    /// The render spec a recording's record and jobs carry: no voice, speed 1, the transcript
    /// as its text (empty without one; the words heard are then the result's `transcript`).
    pub fn render_spec(&self) -> RenderSpec {
        RenderSpec {
            text: self.transcript().unwrap_or_default().to_owned(),
            voice_id: String::new(),
            speed: 1.0,
            viseme_set: self.viseme_set,
        }
    }
}

impl RecordingRequest {
    /// Checks every field against the contract and reports all problems at once.
    pub fn validate(&self) -> Result<RecordingSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut words = Words::Unknown;
        if let Some(t) = &self.transcript {
            let chars = t.chars().count();
            let text = normalize_text(t);
            if chars > MAX_TEXT_CHARS {
                errors.push(FieldError::new(
                    "transcript",
                    format!("is {chars} characters long; at most {MAX_TEXT_CHARS} are allowed"),
                ));
            } else if text.is_empty() {
                errors.push(FieldError::new(
                    "transcript",
                    "is empty; leave it out to have the words recognised",
                ));
            } else {
                words = Words::Transcript(text);
            }
        }
        if let Some(json) = &self.timings {
            if self.transcript.is_some() {
                errors.push(FieldError::new(
                    "timings",
                    "come with their own text: give a transcript or timings, not both",
                ));
            } else if json.len() > MAX_TIMINGS_BYTES {
                errors.push(FieldError::new(
                    "timings",
                    format!(
                        "are {} bytes; at most {MAX_TIMINGS_BYTES} are allowed",
                        json.len()
                    ),
                ));
            } else {
                match ExternalTimings::parse(json.as_bytes()) {
                    Err(e) => errors.push(FieldError::new("timings", e.to_string())),
                    Ok(t) if t.text.chars().count() > MAX_TEXT_CHARS => {
                        errors.push(FieldError::new(
                            "timings",
                            format!(
                                "hold {} characters of text; at most {MAX_TEXT_CHARS} are allowed",
                                t.text.chars().count()
                            ),
                        ))
                    }
                    Ok(t) => words = Words::Timed(t),
                }
            }
        }
        if errors.is_empty() {
            Ok(RecordingSpec {
                words,
                viseme_set: self.viseme_set.unwrap_or_default(),
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: RecordingRequest) -> Vec<String> {
        r.validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn words_come_from_the_transcript_or_the_timings() {
        let spec = RecordingRequest::default().validate().unwrap();
        assert_eq!(spec.words, Words::Unknown);
        assert_eq!(spec.viseme_set, VisemeSet::Basic);
        let spec = RecordingRequest {
            transcript: Some("  Hello\r\nthere ".into()),
            viseme_set: Some(VisemeSet::Oculus),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(spec.transcript(), Some("Hello\nthere"));
        assert_eq!(spec.render_spec().text, "Hello\nthere");
        assert_eq!(spec.render_spec().viseme_set, VisemeSet::Oculus);
        let timed = RecordingRequest {
            timings: Some(r#"{"words": [{"word": "Hi", "start": 0.1, "end": 0.4}]}"#.into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(matches!(&timed.words, Words::Timed(t) if t.text == "Hi"));
        assert_eq!(timed.render_spec().text, "");
        // The spec travels in job messages.
        let json = serde_json::to_string(&timed).unwrap();
        assert_eq!(serde_json::from_str::<RecordingSpec>(&json).unwrap(), timed);
    }

    #[test]
    fn bad_fields_are_named() {
        let empty = RecordingRequest {
            transcript: Some(" \n ".into()),
            ..Default::default()
        };
        assert_eq!(fields(empty), ["transcript"]);
        let long = RecordingRequest {
            transcript: Some("a".repeat(MAX_TEXT_CHARS + 1)),
            ..Default::default()
        };
        assert_eq!(fields(long), ["transcript"]);
        let both = RecordingRequest {
            transcript: Some("Hi".into()),
            timings: Some("[]".into()),
            ..Default::default()
        };
        assert_eq!(fields(both), ["timings"]);
        for bad in ["{", "{}", "[]", &"x".repeat(MAX_TIMINGS_BYTES + 1)] {
            let r = RecordingRequest {
                timings: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(fields(r), ["timings"], "{bad:.20}");
        }
        let words: Vec<String> = (0..MAX_TEXT_CHARS / 4)
            .map(|i| format!(r#"{{"word": "word", "start": {i}, "end": {i}.5}}"#))
            .collect();
        let too_much_text = RecordingRequest {
            timings: Some(format!(r#"{{"words": [{}]}}"#, words.join(","))),
            ..Default::default()
        };
        assert_eq!(fields(too_much_text), ["timings"]);
    }
}
