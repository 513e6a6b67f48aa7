//! The stream's messages, both ways, and their limits (the OpenAPI document describes them).

use serde::{Deserialize, Serialize};

use avatar_domain::{EyeEvent, MouthCue, SentenceMark, VisemeSet, WordMark};

use crate::error::ApiError;
use crate::parse::{BareMessage, TextMessage};

/// Segments rendered at once for one stream (the rest wait, not yet submitted).
pub const MAX_SEGMENTS_IN_FLIGHT: usize = 3;
/// Text received and not yet submitted, in characters: a render's own limit.
pub const MAX_PENDING_CHARS: usize = avatar_domain::MAX_TEXT_CHARS;
/// All the text of one stream, in characters.
pub const MAX_STREAM_CHARS: usize = 100_000;
/// The largest message a client may send, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages waiting for a slow reader before the stream stops producing more.
pub(super) const OUTBOX: usize = 4;

/// What a client sends on the WebSocket, as JSON text messages: `start` first, then `text`
/// pieces of any size, `flush` to speak what is pending now, and `end`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Opens the stream: the render settings for every segment (as in a render request).
    Start {
        #[serde(default)]
        voice_id: Option<String>,
        #[serde(default)]
        speed: Option<f64>,
        #[serde(default)]
        viseme_set: Option<VisemeSet>,
    },
    /// More text, appended to what came before (a word, a token, a paragraph).
    Text { text: String },
    /// Speak what is pending now, without waiting for its sentence to end.
    Flush,
    /// No more text: what is pending is spoken, then `done`.
    End,
}

/// One server-sent event of `POST /v1/avatar/stream`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SseEvent {
    /// The message's `type`: `started`, `segment`, `error` or `done`.
    pub event: String,
    /// A `ServerMessage`, as JSON.
    pub data: String,
}

/// The limits of a stream, as `started` reports them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamLimits {
    pub max_pending_chars: usize,
    pub max_stream_chars: usize,
    pub max_message_bytes: usize,
    pub max_segments_in_flight: usize,
    /// Pending text is spoken after this long without new text.
    pub idle_flush_ms: u64,
    /// The stream is closed after this long without a message.
    pub idle_timeout_ms: u64,
}

/// One segment of speech, in the stream's time and text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamSegment {
    /// 0, 1, 2 ... in the order the text came (and the order they are sent).
    pub seq: u32,
    /// Where the segment starts in the stream's timeline: the sum of the durations of the
    /// segments before it, ms. Play the segments back to back.
    pub offset_ms: u64,
    pub duration_ms: u64,
    pub render_id: String,
    /// The segment's audio (Ogg/Opus unless configured otherwise).
    pub audio_url: String,
    pub cached: bool,
    /// The segment's text in the stream's text, UTF-16 code units.
    pub text_start: usize,
    pub text_end: usize,
    /// In stream time (`offset_ms` added).
    pub mouth_cues: Vec<MouthCue>,
    /// In stream time; blinks and saccades keep their spacing across segments.
    pub eye_events: Vec<EyeEvent>,
    /// In stream time, located in the stream's text (UTF-16 code units).
    pub words: Vec<WordMark>,
    pub sentences: Vec<SentenceMark>,
}

/// What the server sends: `started`, then a `segment` per segment in order (or an `error`
/// naming one), then `done`. An `error` without `seq` that ends the stream is followed by a
/// close (code 1008 for a client's mistake, 1009 for a message over the size limit, 1001 when idle).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Started {
        voice_id: String,
        speed: f64,
        viseme_set: VisemeSet,
        limits: StreamLimits,
    },
    Segment(Box<StreamSegment>),
    Error {
        error: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// The segment that failed, when one did (the stream goes on).
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u32>,
    },
    Done {
        segments: u32,
        failed_segments: u32,
        duration_ms: u64,
        words: u32,
    },
}

impl From<ApiError> for ServerMessage {
    fn from(e: ApiError) -> Self {
        Self::Error {
            error: e.body.error.into(),
            message: e.body.message,
            field: e.body.field,
            seq: None,
        }
    }
}

impl ServerMessage {
    pub(super) fn error(error: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Error {
            error: error.into(),
            message: message.into(),
            field: field.map(Into::into),
            seq: None,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Segment(_) => "segment",
            Self::Error { .. } => "error",
            Self::Done { .. } => "done",
        }
    }
}

/// A client message, or an error naming the field at fault.
pub(super) fn parse_client(text: &str) -> Result<ClientMessage, ServerMessage> {
    fn fields<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ServerMessage> {
        crate::parse::parse_message(text)
            .map_err(|e| ServerMessage::error("invalid_message", e.to_string(), Some(&e.field)))
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ServerMessage::error("invalid_message", format!("not JSON: {e}"), Some("body"))
    })?;
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some("start") => {
            // The settings of a render request, read as the HTTP API reads them (a `null`, an
            // unknown field or a bad value named the same way).
            let mut settings = value.as_object().cloned().unwrap_or_default();
            settings.remove("type");
            if settings.contains_key("text") {
                return Err(ServerMessage::error(
                    "invalid_message",
                    "`start` holds the settings; text comes in `text` messages",
                    Some("text"),
                ));
            }
            settings.insert("text".into(), "start".into());
            let json = serde_json::to_vec(&settings).expect("a JSON object serialises");
            let request = crate::parse::parse_request(&json)?;
            Ok(ClientMessage::Start {
                voice_id: request.voice_id,
                speed: request.speed,
                viseme_set: request.viseme_set,
            })
        }
        Some("text") => fields::<TextMessage>(text).map(|m| ClientMessage::Text { text: m.text }),
        Some("flush") => fields::<BareMessage>(text).map(|_| ClientMessage::Flush),
        Some("end") => fields::<BareMessage>(text).map(|_| ClientMessage::End),
        _ => Err(ServerMessage::error(
            "invalid_message",
            "`type` must be one of start, text, flush, end",
            Some("type"),
        )),
    }
}
