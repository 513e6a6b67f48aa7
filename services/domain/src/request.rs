//! What a client may ask for, and the contract's limits on it.
//!
//! [`RenderRequest`] is the request as sent (HTTP body, CLI flags, custom resource spec);
//! [`RenderRequest::validate`] turns it into a [`RenderSpec`] or names every bad field. Every
//! entry point validates through this one function, so a limit cannot be enforced in one
//! place and forgotten in another.

use serde::{Deserialize, Serialize};

pub use crate::viseme::VisemeSet;
use unicode_normalization::UnicodeNormalization;

/// Longest text accepted, in Unicode scalar values after trimming (the contract's 5000).
pub const MAX_TEXT_CHARS: usize = 5000;
/// Slowest speech rate accepted (speed multiplier).
pub const MIN_SPEED: f64 = 0.5;
/// The largest audio file lip-sync of a recording accepts (bytes).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// The longest recording lip-sync accepts (ms): ten minutes.
pub const MAX_AUDIO_MS: u64 = 600_000;
/// Fastest speech rate accepted (speed multiplier).
pub const MAX_SPEED: f64 = 2.0;
/// Speed used when the request does not give one.
pub const DEFAULT_SPEED: f64 = 1.0;
/// Longest voice id accepted; voice ids are file stems in the voices directory.
pub const MAX_VOICE_ID_CHARS: usize = 128;

/// A viseme set by name, as a request field names it.
impl std::str::FromStr for VisemeSet {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        VisemeSet::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "viseme_set",
                    format!("unknown viseme set {s:?}; expected one of basic, rhubarb, oculus"),
                )
            })
    }
}

/// A render request as a client sends it. Optional fields take the documented defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The text to speak: 1 to 5000 characters after trimming (so at least one that is not
    /// whitespace).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 5000, pattern = r"\S")
    )]
    pub text: String,
    /// A voice id from `/v1/voices`; default `DEFAULT_VOICE`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            value_type = String,
            required = false,
            min_length = 1,
            max_length = 128,
            pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
        )
    )]
    pub voice_id: Option<String>,
    /// Speech rate, 0.5 to 2.0; default 1.0.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = f64, required = false, minimum = 0.5, maximum = 2.0)
    )]
    pub speed: Option<f64>,
    /// The mouth-shape vocabulary of the cues; default `basic`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = VisemeSet, required = false))]
    pub viseme_set: Option<VisemeSet>,
}

/// An optional field that, when present, must hold a value: `null` is refused with the
/// field named (as the original API's number and string fields do), absence means the
/// default.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "must not be null (leave the field out for its default)",
        )),
    }
}

/// A validated request: normalised text within the limits, a well-formed voice id, a speed
/// in range. Whether the voice exists is for the voice store to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderSpec {
    pub text: String,
    pub voice_id: String,
    pub speed: f64,
    pub viseme_set: VisemeSet,
}

/// One invalid field and why, e.g. `text: must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl RenderRequest {
    /// The fields a request may have (the JSON names; `text` is required).
    pub const FIELDS: &'static [&'static str] = &["text", "voice_id", "speed", "viseme_set"];

    /// Checks every field against the contract and reports all problems at once.
    pub fn validate(&self, default_voice: &str) -> Result<RenderSpec, Vec<FieldError>> {
        let mut errors = Vec::new();

        let text = normalize_text(&self.text);
        let chars = text.chars().count();
        if chars == 0 {
            errors.push(FieldError::new(
                "text",
                "must contain at least one character that is not whitespace",
            ));
        } else if chars > MAX_TEXT_CHARS {
            errors.push(FieldError::new(
                "text",
                format!("is {chars} characters long; at most {MAX_TEXT_CHARS} are allowed"),
            ));
        }

        let speed = self.speed.unwrap_or(DEFAULT_SPEED);
        if !speed.is_finite() || !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
            errors.push(FieldError::new(
                "speed",
                format!("must be a number from {MIN_SPEED} to {MAX_SPEED}, got {speed}"),
            ));
        }

        let voice_id = self.voice_id.as_deref().unwrap_or(default_voice).to_owned();
        if let Err(e) = check_voice_id(&voice_id) {
            errors.push(FieldError::new("voice_id", e.to_string()));
        }

        if errors.is_empty() {
            Ok(RenderSpec {
                text,
                voice_id,
                speed,
                viseme_set: self.viseme_set.unwrap_or_default(),
            })
        } else {
            Err(errors)
        }
    }
}

/// Why a string is not a voice id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceIdError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {MAX_VOICE_ID_CHARS} characters")]
    TooLong,
    #[error("{0:?} is not a voice id (letters, digits, '_', '-', '.' only)")]
    NotPlain(String),
}

/// Voice ids name files in the voices directory, so only a plain file stem is accepted:
/// ASCII letters, digits, `_`, `-` and `.` (not leading), nothing that could become a path.
pub fn check_voice_id(voice_id: &str) -> Result<(), VoiceIdError> {
    if voice_id.is_empty() {
        return Err(VoiceIdError::Empty);
    }
    if voice_id.len() > MAX_VOICE_ID_CHARS {
        return Err(VoiceIdError::TooLong);
    }
    let plain = voice_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain || voice_id.starts_with('.') {
        return Err(VoiceIdError::NotPlain(voice_id.to_owned()));
    }
    Ok(())
}

/// The text as it is rendered and hashed: Unicode NFC, line breaks as `\n`, every other
/// control character (NUL, BEL, ESC, ...) replaced by a space, surrounding whitespace trimmed.
/// Inner whitespace is kept: a blank line is a paragraph break to the phonemizer.
pub fn normalize_text(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let cleaned: String = unified
        .nfc()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    cleaned.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> RenderRequest {
        RenderRequest {
            text: text.into(),
            ..Default::default()
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn fields_are_exactly_what_serde_accepts() {
        let all = RenderRequest {
            text: "hi".into(),
            voice_id: Some("v".into()),
            speed: Some(1.0),
            viseme_set: Some(VisemeSet::Oculus),
        };
        let json = serde_json::to_value(&all).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        let mut fields = RenderRequest::FIELDS.to_vec();
        fields.sort();
        assert_eq!(keys, fields);
        assert!(serde_json::from_str::<RenderRequest>(r#"{"text": "hi", "pitch": 2}"#).is_err());
    }

    #[test]
    fn null_is_refused_and_absence_means_the_default() {
        for (body, field) in [
            (r#"{"text": "hi", "speed": null}"#, "speed"),
            (r#"{"text": "hi", "voice_id": null}"#, "voice_id"),
            (r#"{"text": "hi", "viseme_set": null}"#, "viseme_set"),
        ] {
            let err = serde_json::from_str::<RenderRequest>(body).unwrap_err();
            assert!(err.to_string().contains("null"), "{field}: {err}");
        }
        let absent: RenderRequest = serde_json::from_str(r#"{"text": "hi"}"#).unwrap();
        assert_eq!(absent, request("hi"));
        let given: RenderRequest =
            serde_json::from_str(r#"{"text": "hi", "speed": 1.5, "viseme_set": "oculus"}"#)
                .unwrap();
        assert_eq!(given.speed, Some(1.5));
        assert_eq!(given.viseme_set, Some(VisemeSet::Oculus));
    }

    #[test]
    fn defaults_apply() {
        let spec = request(" Hello ").validate("en_US-joe-medium").unwrap();
        assert_eq!(spec.text, "Hello");
        assert_eq!(spec.voice_id, "en_US-joe-medium");
        assert_eq!(spec.speed, 1.0);
        assert_eq!(spec.viseme_set, VisemeSet::Basic);
    }

    #[test]
    fn text_limits_count_characters_after_trimming() {
        assert!(request(&"é".repeat(5000)).validate("v").is_ok());
        let padded = format!("  {}  \n", "a".repeat(5000));
        assert!(request(&padded).validate("v").is_ok());
        let err = request(&"a".repeat(5001)).validate("v").unwrap_err();
        assert_eq!(fields(err.clone()), ["text"]);
        assert!(err[0].message.contains("5001"), "{}", err[0].message);
        assert_eq!(fields(request("").validate("v").unwrap_err()), ["text"]);
        assert_eq!(
            fields(request(" \n\t ").validate("v").unwrap_err()),
            ["text"]
        );
        assert_eq!(
            fields(request("\u{0}\u{7}\u{1b}").validate("v").unwrap_err()),
            ["text"]
        );
    }

    #[test]
    fn speed_limits() {
        for ok in [0.5, 1.0, 2.0] {
            let r = RenderRequest {
                speed: Some(ok),
                ..request("hi")
            };
            assert_eq!(r.validate("v").unwrap().speed, ok);
        }
        for bad in [0.49, 2.01, f64::NAN, f64::INFINITY, -1.0, 0.0] {
            let r = RenderRequest {
                speed: Some(bad),
                ..request("hi")
            };
            assert_eq!(fields(r.validate("v").unwrap_err()), ["speed"], "{bad}");
        }
    }

    #[test]
    fn voice_ids_cannot_be_paths() {
        for bad in ["../etc/passwd", "a/b", ".hidden", "", "x y", "voice\u{0}"] {
            let r = RenderRequest {
                voice_id: Some(bad.into()),
                ..request("hi")
            };
            assert_eq!(
                fields(r.validate("v").unwrap_err()),
                ["voice_id"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn all_errors_reported_together() {
        let r = RenderRequest {
            text: String::new(),
            voice_id: Some("../x".into()),
            speed: Some(9.0),
            viseme_set: None,
        };
        assert_eq!(
            fields(r.validate("v").unwrap_err()),
            ["text", "speed", "voice_id"]
        );
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_text("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(normalize_text("bell\u{7}nul\u{0}"), "bell nul");
        // NFC: e + combining acute becomes é, so both spellings hash alike.
        assert_eq!(normalize_text("e\u{301}"), "\u{e9}");
    }

    #[test]
    fn viseme_set_names() {
        for set in VisemeSet::ALL {
            assert_eq!(set.as_str().parse::<VisemeSet>().unwrap(), set);
            let json = serde_json::to_string(&set).unwrap();
            assert_eq!(json, format!("\"{set}\""));
        }
        assert_eq!(
            "visemes".parse::<VisemeSet>().unwrap_err().field,
            "viseme_set"
        );
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        let err = serde_json::from_str::<RenderRequest>(r#"{"text":"hi","colour":"red"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
