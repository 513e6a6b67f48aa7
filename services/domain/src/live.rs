//! Live lip-sync's answers: what the align stage says about a stream of audio as it is heard
//! (`cues` at a fixed lag), what it says again when the speaker pauses (`correction`), and
//! how the stream ends. The gateway sends them on its WebSocket as they are.

use serde::{Deserialize, Serialize};

use crate::{MouthCue, VisemeSet, WordMark};

/// The audio a live stream's binary messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LiveFormat {
    /// 16-bit little-endian PCM, mono (or interleaved channels), any number of whole samples
    /// per message.
    Pcm16,
    /// One Opus packet per message (as WebCodecs' `AudioEncoder` or a TTS engine's raw Opus
    /// stream gives them; not an Ogg or WebM file).
    Opus,
}

/// The limits of a live stream, as `ready` reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiveLimits {
    /// The longest stream, ms of audio.
    pub max_audio_ms: u64,
    /// The largest message, bytes.
    pub max_message_bytes: usize,
    /// All the transcript text of one stream, characters.
    pub max_transcript_chars: usize,
    /// The stream is closed after this long without a message.
    pub idle_timeout_ms: u64,
}

/// What the live lip-sync WebSocket sends, as JSON text messages: `ready`, then `cues` as the
/// audio is heard and a `correction` after each pause, then `done` (or an `error`; one that
/// ends the stream is followed by a close: 1008 for a client's mistake, 1009 for a message
/// over the size limit, 1001 when idle, 1013 when no align worker can take the stream).
/// Times are ms of the stream's audio from its first sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The stream is open: send audio.
    Ready {
        /// How far behind the audio heard the `cues` are (`to_ms` trails `heard_ms` by this
        /// much, plus up to 100 ms between updates).
        lag_ms: u64,
        format: LiveFormat,
        sample_rate: u32,
        channels: u16,
        viseme_set: VisemeSet,
        limits: LiveLimits,
    },
    /// The mouth for `[from_ms, to_ms)` of the audio, as heard (no words: the sounds
    /// themselves). The first cue, at `from_ms`, is the shape held there; the windows of
    /// successive messages tile the stream.
    Cues {
        from_ms: u64,
        to_ms: u64,
        /// The audio received so far.
        heard_ms: u64,
        mouth_cues: Vec<MouthCue>,
    },
    /// An utterance heard again after its pause: its cues and words replace what `cues` said
    /// for `[from_ms, to_ms)`. Force-aligned to the words of the running transcript it spoke
    /// (`aligned: true`), or recognised without one (`aligned: false`, best effort).
    Correction {
        from_ms: u64,
        to_ms: u64,
        aligned: bool,
        /// The words it spoke; `words` are located in it (UTF-16 code units).
        text: String,
        mouth_cues: Vec<MouthCue>,
        words: Vec<WordMark>,
    },
    Error {
        error: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// The stream ended; every utterance was corrected.
    Done { duration_ms: u64, utterances: u32 },
}

impl LiveMessage {
    pub fn error(error: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Error {
            error: error.into(),
            message: message.into(),
            field: field.map(Into::into),
        }
    }
}
