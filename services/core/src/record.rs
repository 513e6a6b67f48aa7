//! The render record: one KV entry per render id that is at once the cache, the job's
//! status and the signal a synchronous request waits on.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{MouthCue, PhonemeTimeline, RenderResult, RenderSpec, RenderStatus};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a render failed, and which request field is to blame if the client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderRecord {
    pub render_id: String,
    pub status: RenderStatus,
    /// Names one submission of this render: a retry after a failure is a new submission.
    pub submission: String,
    pub spec: RenderSpec,
    pub submitted_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RenderResult>,
    /// Where the result is when it was too large to keep in the record (an object key; see
    /// [`crate::spill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl RenderRecord {
    pub fn pending(render_id: String, spec: RenderSpec, submission: String) -> Self {
        let now = now_ms();
        Self {
            render_id,
            status: RenderStatus::Pending,
            submission,
            spec,
            submitted_at_ms: now,
            updated_at_ms: now,
            result: None,
            result_file: None,
            failure: None,
        }
    }

    /// Completed or failed: nothing more will happen to it.
    pub fn is_final(&self) -> bool {
        matches!(self.status, RenderStatus::Completed | RenderStatus::Failed)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a record serialises")
            .into()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A random id for a submission or a synthesis run: 16 lowercase letters and digits.
pub fn random_id() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What a job message carries from stage to stage: the request and, as the stages run, their
/// outputs. Audio stays in the object store; only its key travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub render_id: String,
    pub submission: String,
    pub spec: RenderSpec,
    pub submitted_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<Speech>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mouth_cues: Option<Vec<MouthCue>>,
    /// The render record's KV revision as the previous step left it: as submitted (so the
    /// tts stage marks it `rendering` with one compare-and-set), then as the tts stage left
    /// it (so the last stage writes the result with one compare-and-set, not a read and a
    /// write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Where the stage outputs are (timeline, cues) when they did not fit in the message: an
    /// object key (see [`crate::spill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_file: Option<String>,
}

/// The tts stage's output: one synthesis run's audio (by key) and its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speech {
    /// Names the synthesis run; the audio file and the timeline are both from it.
    pub run: String,
    /// The audio file's name in the object store (`audio/<name>`).
    pub audio_file: String,
    pub duration_ms: u64,
    /// Empty in a message whose payload is stored elsewhere (`Job::payload_file`).
    #[serde(default)]
    pub timeline: PhonemeTimeline,
}

impl Job {
    /// The tts job of a record just written at KV `revision`.
    pub fn from_record(record: &RenderRecord, revision: u64) -> Self {
        Self {
            render_id: record.render_id.clone(),
            submission: record.submission.clone(),
            spec: record.spec.clone(),
            submitted_at_ms: record.submitted_at_ms,
            speech: None,
            mouth_cues: None,
            revision: Some(revision),
            payload_file: None,
        }
    }

    /// The render record this job belongs to, as its fields describe it (`rendering`).
    pub fn record(&self) -> RenderRecord {
        RenderRecord {
            render_id: self.render_id.clone(),
            status: RenderStatus::Rendering,
            submission: self.submission.clone(),
            spec: self.spec.clone(),
            submitted_at_ms: self.submitted_at_ms,
            updated_at_ms: now_ms(),
            result: None,
            result_file: None,
            failure: None,
        }
    }

    /// The JetStream message id for publishing this job to `stage`: one submission and one
    /// synthesis run, so a retried publish is dropped but a re-render after a failure is not.
    pub fn message_id(&self, stage: crate::jetstream::Stage) -> String {
        let run = self.speech.as_ref().map_or("-", |s| s.run.as_str());
        format!(
            "{}.{}.{}.{}",
            self.render_id,
            self.submission,
            run,
            stage.name()
        )
    }
}
