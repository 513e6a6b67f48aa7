//! The job message that carries a render from stage to stage.

use avatar_domain::{MouthCue, PhonemeTimeline, RenderSpec, RenderStatus};
use serde::{Deserialize, Serialize};

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;

use crate::jetstream::{Pipeline, Stage};
use crate::record::{Recording, RenderRecord, now_ms};

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
    /// The record's `sent_text`, kept through the stages' writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_text: Option<String>,
    /// The record's recording, for lip-sync of one (the job starts at the align stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
}

/// The first stage's output: one synthesis run's audio (by key) and its timeline, or an
/// uploaded recording and its alignment's.
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
    /// The text the timeline's words index when it is not the spec's: what was recognised
    /// in a recording, or the text of another engine's timings. The result reports it as
    /// its `transcript`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Job {
    /// The first job (tts, or align for a recording) of a record just written at KV
    /// `revision`.
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
            sent_text: record.sent_text.clone(),
            recording: record.recording.clone(),
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
            sent_text: self.sent_text.clone(),
            recording: self.recording.clone(),
        }
    }

    /// The JetStream message id for publishing this job to `stage`: one submission and one
    /// synthesis run, so a retried publish is dropped but a re-render after a failure is not.
    pub fn message_id(&self, stage: Stage) -> String {
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

/// Publishing jobs: the pipeline's, in this module so that the JetStream layout does not
/// depend on the job's shape.
impl Pipeline {
    /// Publishes a job to a stage and waits for JetStream to store it.
    pub async fn publish_job(&self, stage: Stage, job: &Job) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(job).expect("a job serialises");
        self.publish_job_bytes(stage, job, payload).await
    }

    /// Publishes `job` already serialised as `payload` (see [`crate::spill::job_message`]).
    pub async fn publish_job_bytes(
        &self,
        stage: Stage,
        job: &Job,
        payload: Vec<u8>,
    ) -> Result<(), PublishError> {
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(job.message_id(stage));
        self.jetstream
            .send_publish(stage.subject(), message)
            .await?
            .await?;
        Ok(())
    }
}
