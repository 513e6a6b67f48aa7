//! The avatar pipeline's domain: what a render is, with no I/O.
//!
//! A render is asked for with a [`request`] (validated once, against the contract's limits),
//! named by a content hash of what was asked ([`render_id`]), timed in samples of the
//! synthesised audio ([`timeline`]), its words and sentences located in the text
//! ([`marks`]), and answered in the shape of the HTTP API's completed response ([`render`]); a recording to
//! lip-sync instead of text is asked for with a [`recording`] (its words as a transcript or
//! another engine's [`timings`]); [`voice`] holds the default-voice rule. The stage libraries (tts,
//! lipsync, eyes) and the services all build on this crate; the runtime (NATS, HTTP, storage,
//! telemetry) is `avatar-runtime`, which only the binaries use.

pub mod live;
pub mod marks;
pub mod recording;
pub mod render;
pub mod render_id;
pub mod request;
pub mod segment;
pub mod subtitles;
pub mod timeline;
pub mod timings;
pub mod viseme;
pub mod voice;

pub use live::{LiveFormat, LiveLimits, LiveMessage};
pub use marks::{SentenceMark, SpokenText, WordMark};
pub use recording::{RecordingRequest, RecordingSpec, Words};
pub use render::{
    EyeEvent, EyeEventType, MouthCue, RenderResult, RenderStatus, SaccadeDirection, VoiceInfo,
};
pub use render_id::{PIPELINE_VERSION, is_render_id, recording_id, render_id};
pub use request::{
    DEFAULT_SPEED, FieldError, MAX_SPEED, MAX_TEXT_CHARS, MAX_VOICE_ID_CHARS, MIN_SPEED,
    RenderRequest, RenderSpec, VisemeSet, normalize_text,
};
pub use timeline::{Pause, PhonemeTimeline, SentenceSpan, TimedPhoneme};
pub use timings::ExternalTimings;
pub use voice::{NO_VOICES_YET, Refused, ValidSpec, VoiceCheck};
