//! Timings another TTS engine already gives: its words (or characters) and when each is
//! heard. Those are exact, so nothing is recognised or aligned: the words' phonemes (espeak-ng,
//! in context) are laid out within each word's span.
//!
//! Read as they come from the engines:
//!
//! - ElevenLabs `with-timestamps`: `{"characters": [...], "character_start_times_seconds":
//!   [...], "character_end_times_seconds": [...]}`, alone or as the response's `alignment` (or
//!   `normalized_alignment`);
//! - Azure Speech word boundaries: a list of `{"text", "audioOffset", "duration"}` in 100 ns
//!   ticks (`Text`/`AudioOffset`/`Duration` as the SDK names them, `audio_offset` too), alone or
//!   as `words`;
//! - word lists in seconds, as OpenAI's `verbose_json` and most recognisers write them:
//!   `{"words": [{"word" or "text", "start", "end"}]}`.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One word and when it is heard, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTime {
    pub text: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// Another engine's timings: its text, and its words as ranges of that text with their times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalTimings {
    pub text: String,
    pub words: Vec<(Range<usize>, f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    #[error("is not JSON: {0}")]
    Json(String),
    #[error(
        "is not a timing format this service reads (ElevenLabs characters, Azure word boundaries, or words with start and end in seconds): {0}"
    )]
    Format(String),
    #[error("has no words")]
    Empty,
}

fn field<'a>(object: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let map = object.as_object()?;
    names.iter().find_map(|name| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn numbers(value: Option<&Value>, what: &str) -> Result<Vec<f64>, TimingsError> {
    value
        .and_then(Value::as_array)
        .ok_or_else(|| TimingsError::Format(format!("no {what} list")))?
        .iter()
        .map(|v| {
            v.as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| TimingsError::Format(format!("{what}: {v} is not a time")))
        })
        .collect()
}

/// 100 ns ticks (a number), or a .NET TimeSpan string `hh:mm:ss.fffffff`, in ms.
fn ticks_ms(value: &Value) -> Option<f64> {
    if let Some(t) = value.as_f64() {
        return Some(t / 10_000.0);
    }
    let s = value.as_str()?;
    let mut parts = s.split(':').rev();
    let seconds: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next().map_or(Some(0.0), |m| m.parse().ok())?;
    let hours: f64 = parts.next().map_or(Some(0.0), |h| h.parse().ok())?;
    Some(((hours * 60.0 + minutes) * 60.0 + seconds) * 1000.0)
}

impl ExternalTimings {
    /// Reads any of the formats in the module's documentation.
    pub fn parse(json: &[u8]) -> Result<Self, TimingsError> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| TimingsError::Json(e.to_string()))?;
        let timings = Self::from_value(&value)?;
        if timings.words.is_empty() {
            return Err(TimingsError::Empty);
        }
        for (range, start, end) in &timings.words {
            if !(start.is_finite() && end.is_finite() && start <= end) {
                return Err(TimingsError::Format(format!(
                    "{:?} ends before it starts",
                    &timings.text[range.clone()]
                )));
            }
        }
        Ok(timings)
    }

    fn from_value(value: &Value) -> Result<Self, TimingsError> {
        if let Some(inner) = field(value, &["alignment", "normalized_alignment"])
            && inner.is_object()
        {
            return Self::from_value(inner);
        }
        if let Some(chars) = field(value, &["characters", "chars"]) {
            return Self::from_characters(value, chars);
        }
        let list = match value {
            Value::Array(_) => value,
            _ => field(value, &["words", "word_boundaries", "wordBoundaries"])
                .ok_or_else(|| TimingsError::Format("no characters and no words".into()))?,
        };
        let items = list
            .as_array()
            .ok_or_else(|| TimingsError::Format("words is not a list".into()))?;
        let mut words = Vec::new();
        for item in items {
            let text = field(item, &["punctuated_word", "word", "text"])
                .and_then(Value::as_str)
                .ok_or_else(|| TimingsError::Format(format!("{item} has no word or text")))?;
            let (start, end) = if let Some(offset) = field(item, &["audioOffset", "audio_offset"]) {
                let start = ticks_ms(offset)
                    .ok_or_else(|| TimingsError::Format(format!("audioOffset {offset}")))?;
                let duration = field(item, &["duration"]).and_then(ticks_ms).unwrap_or(0.0);
                (start, start + duration)
            } else {
                let secs = |names: &[&str]| {
                    field(item, names)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| TimingsError::Format(format!("{item}: no {}", names[0])))
                };
                (secs(&["start"])? * 1000.0, secs(&["end"])? * 1000.0)
            };
            words.push(WordTime {
                text: text.to_owned(),
                start_ms: start,
                end_ms: end,
            });
        }
        Ok(Self::from_words(&words))
    }

    /// ElevenLabs: one time span per character; words are the runs between whitespace.
    fn from_characters(value: &Value, chars: &Value) -> Result<Self, TimingsError> {
        let chars: Vec<&str> = chars
            .as_array()
            .ok_or_else(|| TimingsError::Format("characters is not a list".into()))?
            .iter()
            .map(|c| c.as_str().unwrap_or(" "))
            .collect();
        let starts = numbers(
            field(value, &["character_start_times_seconds"]),
            "character start times",
        )?;
        let ends = numbers(
            field(value, &["character_end_times_seconds"]),
            "character end times",
        )?;
        if starts.len() != chars.len() || ends.len() != chars.len() {
            return Err(TimingsError::Format(format!(
                "{} characters with {} start and {} end times",
                chars.len(),
                starts.len(),
                ends.len()
            )));
        }
        let mut text = String::new();
        let mut words = Vec::new();
        let mut current: Option<(usize, f64, f64)> = None;
        for (i, c) in chars.iter().enumerate() {
            let at = text.len();
            text.push_str(c);
            if c.trim().is_empty() {
                if let Some((from, s, e)) = current.take() {
                    words.push((from..at, s, e));
                }
                continue;
            }
            let (s, e) = (starts[i] * 1000.0, ends[i] * 1000.0);
            current = Some(match current {
                Some((from, first, _)) => (from, first, e),
                None => (at, s, e),
            });
        }
        if let Some((from, s, e)) = current {
            words.push((from..text.len(), s, e));
        }
        Ok(Self { text, words })
    }

    /// Words as a text (joined by spaces) and their ranges in it.
    pub fn from_words(words: &[WordTime]) -> Self {
        let mut text = String::new();
        let mut ranges = Vec::new();
        for w in words {
            let word = w.text.trim();
            if word.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            let from = text.len();
            text.push_str(word);
            ranges.push((from..text.len(), w.start_ms, w.end_ms));
        }
        Self {
            text,
            words: ranges,
        }
    }

    /// The time span of the word that holds byte `at` of the text.
    pub fn span_at(&self, at: usize) -> Option<(usize, f64, f64)> {
        self.words
            .iter()
            .position(|(r, _, _)| r.contains(&at) || r.start >= at)
            .map(|i| (i, self.words[i].1, self.words[i].2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elevenlabs_characters_become_words() {
        let json = br#"{"audio_base64": "...", "alignment": {
            "characters": ["H","i"," ","y","o","u","!"],
            "character_start_times_seconds": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "character_end_times_seconds": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65]}}"#;
        let t = ExternalTimings::parse(json).unwrap();
        assert_eq!(t.text, "Hi you!");
        assert_eq!(t.words, vec![(0..2, 0.0, 200.0), (3..7, 300.0, 650.0)]);
    }

    #[test]
    fn azure_word_boundaries_and_second_lists() {
        let azure = br#"[{"Text": "Hello", "AudioOffset": 500000, "Duration": 3000000},
                         {"text": "world", "audioOffset": 3600000, "duration": "00:00:00.4000000"}]"#;
        let t = ExternalTimings::parse(azure).unwrap();
        assert_eq!(t.text, "Hello world");
        assert_eq!(t.words, vec![(0..5, 50.0, 350.0), (6..11, 360.0, 760.0)]);
        let openai = br#"{"text": "Hello world", "words": [
            {"word": "Hello", "start": 0.05, "end": 0.35}, {"word": "world", "start": 0.36, "end": 0.76}]}"#;
        assert_eq!(ExternalTimings::parse(openai).unwrap(), t);
    }

    #[test]
    fn bad_timings_are_named() {
        assert!(matches!(
            ExternalTimings::parse(b"{"),
            Err(TimingsError::Json(_))
        ));
        assert!(matches!(
            ExternalTimings::parse(b"{}"),
            Err(TimingsError::Format(_))
        ));
        assert_eq!(ExternalTimings::parse(b"[]"), Err(TimingsError::Empty));
        let backwards = br#"{"words": [{"word": "a", "start": 2, "end": 1}]}"#;
        assert!(matches!(
            ExternalTimings::parse(backwards),
            Err(TimingsError::Format(_))
        ));
        let short = br#"{"characters": ["a"], "character_start_times_seconds": [],
            "character_end_times_seconds": [1]}"#;
        assert!(matches!(
            ExternalTimings::parse(short),
            Err(TimingsError::Format(_))
        ));
    }
}
