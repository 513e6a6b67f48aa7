//! The render record: one KV entry per render id that is at once the cache, the job's
//! status and the signal a synchronous request waits on.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use avatar_domain::{RecordingSpec, RenderResult, RenderSpec, RenderStatus};

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
    /// The text as the submitting client sent it, when normalising changed it (surrounding
    /// whitespace, `\r\n`, decomposed accents, control characters): a client that polls gets
    /// the word marks located in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_text: Option<String>,
    /// Lip-sync of this recording rather than speech of `spec.text` (whose voice is then
    /// empty and whose text is the transcript, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
}

/// An uploaded recording to lip-sync: where it is, and what is known of its words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// The file's name in the object store (`audio/<name>`), as uploaded.
    pub audio_file: String,
    /// Its `Content-Type` (or file name) as the client sent it: a decoding hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub spec: RecordingSpec,
}

impl RenderRecord {
    /// Why the render failed, as the record says, or a generic reason.
    pub fn reason(&self) -> Failure {
        self.failure.clone().unwrap_or_else(|| Failure {
            message: "the render failed".into(),
            field: None,
        })
    }

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
            sent_text: None,
            recording: None,
        }
    }

    /// The stage its job starts at: align for a recording, else tts.
    pub fn first_stage(&self) -> crate::jetstream::Stage {
        match self.recording {
            Some(_) => crate::jetstream::Stage::Align,
            None => crate::jetstream::Stage::Tts,
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
