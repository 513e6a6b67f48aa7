//! Submitting a render: the one implementation the gateway and the controller share.
//!
//! The render id is the cache key. Only the request whose KV `create` of the pending record
//! succeeds publishes the job, so identical concurrent requests coalesce into one
//! synthesis. A failed record, or a pending one older than its lease, is taken over with a
//! compare-and-set on the KV revision, so exactly one of several racing requests resubmits.

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};

use async_nats::jetstream::context::PublishError;

use crate::jetstream::Pipeline;
use crate::job::Job;
use crate::record::{Recording, RenderRecord, now_ms, random_id};
use avatar_domain::{RenderStatus, ValidSpec};

/// What became of a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// Already rendered: the stored record, untouched.
    Cached(RenderRecord),
    /// An identical render is under way: this request joins it (the record as read, at
    /// this KV revision).
    InFlight(RenderRecord, u64),
    /// A new job was queued (its pending record, written at this KV revision).
    Queued(RenderRecord, u64),
}

impl Submitted {
    pub fn record(&self) -> &RenderRecord {
        match self {
            Submitted::Cached(r) | Submitted::InFlight(r, _) | Submitted::Queued(r, _) => r,
        }
    }

    /// The KV revision of [`Self::record`], for a render still under way.
    pub fn revision(&self) -> Option<u64> {
        match self {
            Submitted::Cached(_) => None,
            Submitted::InFlight(_, revision) | Submitted::Queued(_, revision) => Some(*revision),
        }
    }
}

/// Why a render could not be submitted; every kind is the pipeline's, none the client's.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The render records (the KV bucket) did not answer.
    #[error("the render store is unavailable: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The job stream refused the job.
    #[error("the job queue is unavailable: {0}")]
    Queue(#[source] PublishError),
    /// Other submissions kept taking the record over.
    #[error("too many concurrent takeovers of render {0}")]
    Contended(String),
}

/// A pending or rendering record not updated within the render lease is considered lost.
pub fn stale(record: &RenderRecord, pipeline: &Pipeline) -> bool {
    now_ms().saturating_sub(record.updated_at_ms) > pipeline.config.render_lease.as_millis() as u64
}

/// Looks the render up and, unless it is cached or in flight, queues it. `sent_text` is the
/// client's text as sent, kept in a new record when it differs from the spec's (normalised)
/// text, so that polling clients get marks located in it.
pub async fn submit(
    pipeline: &Pipeline,
    valid: ValidSpec,
    sent_text: Option<&str>,
) -> Result<Submitted, SubmitError> {
    let ValidSpec { spec, id } = valid;
    let sent_text = sent_text.filter(|t| *t != spec.text).map(str::to_owned);
    submit_record(pipeline, &id, || RenderRecord {
        sent_text: sent_text.clone(),
        ..RenderRecord::pending(id.clone(), spec.clone(), random_id())
    })
    .await
}

/// [`submit`] for lip-sync of an uploaded recording (render id [`avatar_domain::recording_id`]
/// of its bytes and spec), whose job starts at the align stage. `sent_transcript` is the
/// transcript as the client sent it.
pub async fn submit_recording(
    pipeline: &Pipeline,
    id: &str,
    recording: Recording,
    sent_transcript: Option<&str>,
) -> Result<Submitted, SubmitError> {
    let spec = recording.spec.render_spec();
    let sent_text = sent_transcript
        .filter(|t| *t != spec.text)
        .map(str::to_owned);
    submit_record(pipeline, id, || RenderRecord {
        sent_text: sent_text.clone(),
        recording: Some(recording.clone()),
        ..RenderRecord::pending(id.to_owned(), spec.clone(), random_id())
    })
    .await
}

/// Submits again what `record` asked for (a lost render found by a poll).
pub async fn resubmit(
    pipeline: &Pipeline,
    record: &RenderRecord,
) -> Result<Submitted, SubmitError> {
    submit_record(pipeline, &record.render_id, || RenderRecord {
        sent_text: record.sent_text.clone(),
        recording: record.recording.clone(),
        ..RenderRecord::pending(record.render_id.clone(), record.spec.clone(), random_id())
    })
    .await
}

/// The one submission: `pending` makes a new pending record of render `id`.
async fn submit_record(
    pipeline: &Pipeline,
    id: &str,
    pending: impl Fn() -> RenderRecord,
) -> Result<Submitted, SubmitError> {
    let id = id.to_owned();
    let store = |e: Box<dyn std::error::Error + Send + Sync>| SubmitError::Store(e);
    for _ in 0..8 {
        // Optimistically create the pending record first: a new render then costs one
        // round trip; an existing one is read below.
        let record = pending();
        match pipeline.renders.create(&id, record.to_bytes()).await {
            Ok(revision) => return queue(pipeline, record, revision).await,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(store(e.into())),
        }
        let entry = pipeline
            .renders
            .entry(id.clone())
            .await
            .map_err(|e| store(e.into()))?;
        // Deleted meanwhile: create it again.
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            continue;
        };
        match RenderRecord::from_bytes(&entry.value).ok() {
            Some(r) if r.status == RenderStatus::Completed => return Ok(Submitted::Cached(r)),
            Some(r) if !r.is_final() && !stale(&r, pipeline) => {
                return Ok(Submitted::InFlight(r, entry.revision));
            }
            _ => {
                // Failed, lost or unreadable: take it over, if nobody beat us to it.
                let record = pending();
                match pipeline
                    .renders
                    .update(&id, record.to_bytes(), entry.revision)
                    .await
                {
                    Ok(revision) => return queue(pipeline, record, revision).await,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(store(e.into())),
                }
            }
        }
    }
    Err(SubmitError::Contended(id))
}

/// Publishes the first job of a pending record just written at `revision`. If the queue
/// refuses it, the record is marked failed so the next identical request resubmits at once.
async fn queue(
    pipeline: &Pipeline,
    record: RenderRecord,
    revision: u64,
) -> Result<Submitted, SubmitError> {
    let job = Job::from_record(&record, revision);
    match pipeline.publish_job(record.first_stage(), &job).await {
        Ok(()) => Ok(Submitted::Queued(record, revision)),
        Err(e) => {
            let mut failed = record.clone();
            failed.status = RenderStatus::Failed;
            failed.failure = Some(crate::record::Failure {
                message: format!("could not queue the job: {e}"),
                field: None,
            });
            failed.updated_at_ms = now_ms();
            let _ = pipeline
                .renders
                .put(&record.render_id, failed.to_bytes())
                .await;
            Err(SubmitError::Queue(e))
        }
    }
}
