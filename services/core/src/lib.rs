//! The avatar pipeline's domain, shared by every stage and service.
//!
//! A render is named by a content hash of what was asked ([`render_id`]), validated once
//! ([`request`]), timed in samples of the synthesised audio ([`timeline`]) and answered in
//! the shape of the HTTP API's completed response ([`render`]). The services share the
//! JetStream layout ([`jetstream`]), the render record ([`record`]), submission
//! ([`submit`]), waiting ([`watcher`]), the stage-worker loop ([`worker`]), configuration
//! ([`config`]), storage ([`storage`]) and telemetry ([`telemetry`]).

pub mod config;
pub mod jetstream;
pub mod record;
pub mod render;
pub mod render_id;
pub mod request;
pub mod shutdown;
pub mod spill;
pub mod storage;
pub mod submit;
pub mod telemetry;
pub mod timeline;
pub mod tls;
pub mod voices;
pub mod watcher;
pub mod worker;

pub use render::{
    EyeEvent, EyeEventType, MouthCue, RenderResult, RenderStatus, SaccadeDirection, VoiceInfo,
};
pub use render_id::{PIPELINE_VERSION, render_id};
pub use request::{
    DEFAULT_SPEED, FieldError, MAX_SPEED, MAX_TEXT_CHARS, MAX_VOICE_ID_CHARS, MIN_SPEED,
    RenderRequest, RenderSpec, VisemeSet, normalize_text,
};
pub use timeline::{Pause, PhonemeTimeline, SentenceSpan, TimedPhoneme};
