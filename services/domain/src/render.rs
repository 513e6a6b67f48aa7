//! The outcome of a render in the HTTP API's response shape.
//!
//! Field names and shapes are the original product's contract (`render_id`, `status`,
//! `audio_url`, `duration_ms`, `mouth_cues`, `eye_events`, `cached`, `processing_time_ms`),
//! plus `viseme_set` so a client knows which vocabulary the cues use.

use serde::{Deserialize, Serialize};

use crate::marks::{SentenceMark, WordMark};
use crate::{PhonemeTimeline, VisemeSet};

/// Where a render is in its life: `pending` -> `rendering` -> `completed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RenderStatus {
    Pending,
    Rendering,
    Completed,
    Failed,
}

/// A mouth shape that holds from `t_ms` until the next cue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MouthCue {
    /// Milliseconds from the start of the decoded audio.
    pub t_ms: u64,
    /// A viseme name of the render's viseme set (e.g. `AA`, `X`, `sil`).
    pub viseme: String,
    /// How far the shape is formed, 0.0 to 1.0.
    pub weight: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EyeEventType {
    Blink,
    Saccade,
}

/// Where a saccade moves the gaze (from the avatar's own point of view of the screen:
/// `left` is the viewer's left). The eyes return to centre after `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SaccadeDirection {
    Left,
    Right,
    Up,
    Down,
    UpLeft,
    UpRight,
    DownLeft,
    DownRight,
}

/// A blink (lids close and reopen over `duration_ms`) or a saccade (gaze shifts in
/// `direction` and back over `duration_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EyeEvent {
    pub t_ms: u64,
    pub event_type: EyeEventType,
    pub duration_ms: u64,
    /// Only for saccades; `null` for blinks, as in the original contract.
    pub direction: Option<SaccadeDirection>,
}

/// A voice the pipeline can speak (the `/v1/voices` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VoiceInfo {
    pub voice_id: String,
    /// Language code as the voice names it, e.g. `en_US`.
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_name: Option<String>,
    pub sample_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
}

/// A completed render: the body of the API's completed response and of `render.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderResult {
    pub render_id: String,
    pub status: RenderStatus,
    pub audio_url: String,
    pub duration_ms: u64,
    pub mouth_cues: Vec<MouthCue>,
    pub eye_events: Vec<EyeEvent>,
    pub cached: bool,
    pub processing_time_ms: u64,
    pub viseme_set: VisemeSet,
    /// Every written word of `text` and when it is heard, in order (punctuation is not a
    /// word; `1,234` or a URL is one word however many it is spoken as).
    #[serde(default)]
    pub words: Vec<WordMark>,
    /// Every synthesised sentence and when it is heard, in order.
    #[serde(default)]
    pub sentences: Vec<SentenceMark>,
    /// Only for lip-sync of a recording without a transcript: what was recognised, the text
    /// `words` and `sentences` refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

impl RenderResult {
    /// Makes a relative `audio_url` (the file name the pipeline stores) absolute under
    /// `base`, the URL the audio is served from; an absolute one stays as it is.
    pub fn resolve_audio_url(&mut self, base: &str) {
        if !self.audio_url.contains("://") {
            self.audio_url = format!("{base}/{}", self.audio_url);
        }
    }

    /// Locates the word and sentence marks in the client's own `text` (they are stored
    /// located in the rendered, normalised text; see [`crate::marks::locate_in`]).
    pub fn locate_marks_in(&mut self, text: &str) {
        crate::marks::locate_in(text, &mut self.words, &mut self.sentences);
    }

    /// A fresh render's answer (not from the cache), as the last stage of the pipeline and
    /// the offline engine assemble it. `audio_url` is what the client is given, or a file
    /// name that whoever answers the client makes absolute. The timeline is the synthesis
    /// run's, `text` the normalised text it spoke (for the word and sentence marks).
    #[allow(clippy::too_many_arguments)]
    pub fn completed(
        render_id: String,
        audio_url: String,
        timeline: &PhonemeTimeline,
        text: &str,
        viseme_set: VisemeSet,
        mouth_cues: Vec<MouthCue>,
        eye_events: Vec<EyeEvent>,
        processing_time_ms: u64,
    ) -> Self {
        let (words, sentences) = crate::marks::marks(timeline, text);
        let duration_ms = timeline.duration_ms();
        Self {
            words,
            sentences,
            render_id,
            status: RenderStatus::Completed,
            audio_url,
            duration_ms,
            mouth_cues,
            eye_events,
            cached: false,
            processing_time_ms,
            viseme_set,
            transcript: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_matches_the_contract() {
        let result = RenderResult {
            render_id: "abc".into(),
            status: RenderStatus::Completed,
            audio_url: "http://localhost:8080/audio/abc.ogg".into(),
            duration_ms: 2340,
            mouth_cues: vec![MouthCue {
                t_ms: 120,
                viseme: "AA".into(),
                weight: 0.85,
            }],
            eye_events: vec![
                EyeEvent {
                    t_ms: 1500,
                    event_type: EyeEventType::Blink,
                    duration_ms: 150,
                    direction: None,
                },
                EyeEvent {
                    t_ms: 2800,
                    event_type: EyeEventType::Saccade,
                    duration_ms: 300,
                    direction: Some(SaccadeDirection::UpLeft),
                },
            ],
            cached: false,
            processing_time_ms: 1523,
            viseme_set: VisemeSet::Basic,
            words: vec![WordMark {
                aligned: None,
                confidence: None,
                t_ms: 120,
                end_ms: 400,
                text: "Hello".into(),
                start: 0,
                end: 5,
            }],
            sentences: vec![SentenceMark {
                t_ms: 120,
                end_ms: 2100,
                start: 0,
                end: 12,
            }],
            transcript: None,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "render_id": "abc",
                "status": "completed",
                "audio_url": "http://localhost:8080/audio/abc.ogg",
                "duration_ms": 2340,
                "mouth_cues": [{"t_ms": 120, "viseme": "AA", "weight": 0.85f32}],
                "eye_events": [
                    {"t_ms": 1500, "event_type": "blink", "duration_ms": 150, "direction": null},
                    {"t_ms": 2800, "event_type": "saccade", "duration_ms": 300, "direction": "up_left"}
                ],
                "cached": false,
                "processing_time_ms": 1523,
                "viseme_set": "basic",
                "words": [{"t_ms": 120, "end_ms": 400, "text": "Hello", "start": 0, "end": 5}],
                "sentences": [{"t_ms": 120, "end_ms": 2100, "start": 0, "end": 12}]
            })
        );
        let back: RenderResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);
    }
}
