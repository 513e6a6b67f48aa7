//! How a stage worker writes a render's record: claiming it (`rendering`), completing it,
//! and failing it or retrying the job.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};

use avatar_domain::{RenderResult, RenderStatus};

use super::{Limits, StageError, StageHandler, Worker};
use crate::job::Job;
use crate::record::{Failure, RenderRecord, now_ms};

/// Why a render record could not be updated.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordError {
    #[error(transparent)]
    Read(#[from] kv::EntryError),
    #[error(transparent)]
    Write(kv::UpdateError),
    #[error("the render record kept changing")]
    Contended,
}

impl<H: StageHandler> Worker<H> {
    /// A failed job: the render fails now if the error is permanent (or the attempts are
    /// used up), otherwise the job is redelivered after a back-off.
    pub(super) async fn fail_or_retry(
        &self,
        message: &async_nats::jetstream::Message,
        job: &Job,
        error: StageError,
        delivered: i64,
        limits: Limits,
    ) {
        let stage = self.handler.stage();
        match error {
            StageError::Rejected {
                message: reason,
                field,
            } => {
                tracing::info!(%reason, "render rejected");
                let failure = Failure {
                    message: reason,
                    field,
                };
                self.fail_for_good(message, job, failure, "rejected").await;
            }
            StageError::Failed {
                message: reason, ..
            } if delivered >= limits.max_deliver => {
                tracing::warn!(%reason, attempts = delivered, "render failed for good");
                let failure = Failure {
                    message: format!(
                        "{} stage failed after {delivered} attempt{}: {reason}",
                        stage.name(),
                        if delivered == 1 { "" } else { "s" }
                    ),
                    field: None,
                };
                self.fail_for_good(message, job, failure, "failed").await;
            }
            StageError::Failed {
                message: reason, ..
            } => {
                let delay = Duration::from_millis(500 * 2u64.pow(delivered.clamp(1, 6) as u32 - 1));
                tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "attempt failed; retrying");
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                self.count("retried");
            }
        }
    }

    /// Fails the render with `failure`, ends the job for good and counts it as `outcome`.
    async fn fail_for_good(
        &self,
        message: &async_nats::jetstream::Message,
        job: &Job,
        failure: Failure,
        outcome: &str,
    ) {
        let _ = self
            .finish(job, RenderStatus::Failed, None, Some(failure))
            .await;
        let _ = message.ack_with(AckKind::Term).await;
        self.count(outcome);
    }

    /// `None` if the job is no longer wanted; otherwise marks its render `rendering` and
    /// returns the record's revision as left (if known), for the last stage's write.
    pub(super) async fn claim(&self, job: &Job) -> Option<Option<u64>> {
        let rendering = |mut record: RenderRecord| {
            record.status = RenderStatus::Rendering;
            record.updated_at_ms = now_ms();
            record
        };
        match self.update_own_record(job, rendering).await {
            Ok(Some(revision)) => Some(Some(revision)),
            Ok(None) => {
                tracing::info!("job no longer wanted (completed, failed, resubmitted or gone)");
                None
            }
            Err(e) => {
                // Cannot tell: do the work rather than drop a wanted job.
                tracing::warn!(error = %e, "cannot mark the render rendering");
                Some(None)
            }
        }
    }

    /// Writes the final record, if the render is still this job's submission and not final
    /// (compare-and-set: the first completion wins, a duplicate changes nothing).
    pub(super) async fn finish(
        &self,
        job: &Job,
        status: RenderStatus,
        result: Option<RenderResult>,
        failure: Option<Failure>,
    ) -> Result<(), StageError> {
        // A result too large for a KV value is stored beside the audio, the record names it.
        let mut stored = RenderRecord {
            result: result.clone(),
            ..job.record()
        };
        let budget = crate::spill::inline_budget(&self.pipeline);
        crate::spill::store_large_result(&self.store, &mut stored, budget)
            .await
            .map_err(|e| StageError::failed("cannot store the result", e))?;
        let finished = |mut record: RenderRecord| {
            record.status = status;
            record.result = stored.result.clone();
            record.result_file = stored.result_file.clone();
            record.failure = failure.clone();
            record.updated_at_ms = now_ms();
            record
        };
        match self.update_own_record(job, finished).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                tracing::info!("render already finished or resubmitted; result dropped");
                Ok(())
            }
            Err(e) => Err(StageError::failed("cannot write the render record", e)),
        }
    }

    /// Applies `change` to the job's render record while it is still this job's (same
    /// submission, not final), with compare-and-set writes: first on the revision the job
    /// carries (one round trip when nothing moved since), then on the record as read.
    /// The new revision, or `None` if the record is no longer this job's.
    pub(super) async fn update_own_record(
        &self,
        job: &Job,
        change: impl Fn(RenderRecord) -> RenderRecord,
    ) -> Result<Option<u64>, RecordError> {
        let renders = &self.pipeline.renders;
        if let Some(revision) = job.revision {
            match renders
                .update(&job.render_id, change(job.record()).to_bytes(), revision)
                .await
            {
                Ok(revision) => return Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(RecordError::Write(e)),
            }
        }
        for _ in 0..5 {
            let entry = renders.entry(job.render_id.clone()).await?;
            let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                return Ok(None);
            };
            let Ok(record) = RenderRecord::from_bytes(&entry.value) else {
                return Ok(None);
            };
            if record.submission != job.submission || record.is_final() {
                return Ok(None);
            }
            match renders
                .update(&job.render_id, change(record).to_bytes(), entry.revision)
                .await
            {
                Ok(revision) => return Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(RecordError::Write(e)),
            }
        }
        Err(RecordError::Contended)
    }
}
