//! How a render request is answered: from memory, by waiting for its render (a slot among
//! `MAX_CONCURRENT_REQUESTS`, the submission, the shared watch of the KV bucket), and what the
//! record says then (a result, a failure, or "still under way").

use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use avatar_domain::{RenderResult, RenderStatus, ValidSpec};
use avatar_runtime::record::RenderRecord;
use avatar_runtime::submit::{Submitted, submit};

use crate::error::{ApiError, ErrorKind};
use crate::limits::{MAX_WAITERS_PER_RENDER, Refusal, Slot};
use crate::responses::{FailedResponse, accepted, json_bytes};
use crate::state::{AppState, poll_key};

impl AppState {
    /// A completed answer from the in-memory cache, for a client that sent `client_text`
    /// (normalised: `normalised`), counted as a memory hit.
    pub fn memory_answer(&self, id: &str, client_text: &str, normalised: &str) -> Option<Response> {
        let hit = self.cache.get(id)?;
        self.metrics.cache_hits.with_label_values(&["memory"]).inc();
        self.metrics.renders.with_label_values(&["cached"]).inc();
        Some(self.cached_answer(hit, client_text, normalised))
    }

    /// A share of render `id`'s waiting slot, or the 503 that sheds this request.
    pub fn enter_slot(&self, id: &str) -> Result<Slot, ApiError> {
        self.slots.enter(id).map_err(|refusal| {
            self.metrics.renders.with_label_values(&["shed"]).inc();
            let message = match refusal {
                Refusal::Overloaded => format!(
                    "more than {} renders are being waited for; retry shortly",
                    self.config.max_concurrent_requests
                ),
                Refusal::TooManyWaiters => format!(
                    "more than {MAX_WAITERS_PER_RENDER} requests wait for this very render; retry shortly"
                ),
            };
            ApiError::new(ErrorKind::Overloaded, message).retry_after(1)
        })
    }

    /// Submits `valid` (with the client's `sent_text`) and waits up to `timeout` for the render
    /// to end: the record as last seen, whether it was already rendered, and how long the
    /// submission itself took.
    pub async fn submit_and_wait(
        &self,
        valid: ValidSpec,
        sent_text: Option<&str>,
        timeout: Duration,
    ) -> Result<Waited, ApiError> {
        let id = valid.id.clone();
        let submission = async {
            submit(&self.pipeline, valid, sent_text)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))
        };
        self.wait_for_submission(&id, timeout, submission).await
    }

    /// Waits up to `timeout` for render `id`, which `submission` submits, to end (see
    /// [`Self::submit_and_wait`]).
    pub async fn wait_for_submission(
        &self,
        id: &str,
        timeout: Duration,
        submission: impl Future<Output = Result<Submitted, ApiError>>,
    ) -> Result<Waited, ApiError> {
        // Following the record from before the submission, the submission's own read or
        // write is the only one needed.
        let waiter = self.watcher.waiter(id);
        let started = Instant::now();
        let submitted = submission.await?;
        let submit_time = started.elapsed();
        if let Submitted::Cached(record) = submitted {
            return Ok(Waited {
                record,
                cached: true,
                submit_time,
            });
        }
        if let Some(revision) = submitted.revision() {
            waiter.seen(revision, submitted.record().clone());
        }
        let record = waiter
            .wait(timeout)
            .await
            .unwrap_or_else(|| submitted.record().clone());
        Ok(Waited {
            record,
            cached: false,
            submit_time,
        })
    }

    /// Keeps a completed result in memory (as a cached answer), and returns those bytes.
    pub fn remember(&self, result: &RenderResult) -> Bytes {
        let mut cached = result.clone();
        cached.cached = true;
        let hit = serialise(&cached);
        self.cache.insert(result.render_id.clone(), hit.clone());
        hit
    }

    /// The completed result of a record, with the audio URL made absolute.
    pub async fn completed_result(&self, record: &RenderRecord) -> Result<RenderResult, ApiError> {
        // In the record, or (a very large one) stored beside the audio.
        let mut result = avatar_runtime::spill::load_result(&self.store, record)
            .await
            .map_err(|e| {
                tracing::warn!(render_id = %record.render_id, error = %e, "cannot read a stored result");
                ApiError::unavailable(format!("the result store is unavailable: {e}"))
            })?
            .ok_or_else(|| {
                ApiError::new(ErrorKind::CorruptRecord, "completed without a result",
                )
            })?;
        result.resolve_audio_url(&self.config.audio_base_url);
        Ok(result)
    }

    /// Answers with a record: completed (and remembered), failed, or still under way. With
    /// `client_text`, the text of the client's request, a completed result's word and
    /// sentence marks are located in it (they are stored, and remembered, located in the
    /// normalised text); without (a poll), in the text the render was submitted with
    /// (`sent_text`), and the answer is remembered for polls under [`poll_key`].
    pub async fn answer(
        &self,
        record: &RenderRecord,
        found: Found,
        asker: Asker,
        client_text: Option<&str>,
    ) -> Response {
        let cached = found == Found::Cached;
        let sync = asker == Asker::Waiter;
        match record.status {
            RenderStatus::Completed => match self.completed_result(record).await {
                Ok(mut result) => {
                    // The cache serves `cached: true`; so does this answer if it is cached.
                    let hit = self.remember(&result);
                    let relocate = client_text
                        .or(record.sent_text.as_deref())
                        .filter(|text| *text != record.spec.text);
                    let body = if cached && relocate.is_none() {
                        hit.clone()
                    } else {
                        result.cached = cached;
                        if let Some(text) = relocate {
                            result.locate_marks_in(text);
                        }
                        serialise(&result)
                    };
                    if client_text.is_none() {
                        self.cache.insert(poll_key(&record.render_id), body.clone());
                    }
                    self.metrics
                        .renders
                        .with_label_values(&[if cached { "cached" } else { "completed" }])
                        .inc();
                    json_bytes(StatusCode::OK, body)
                }
                Err(e) => e.into_response(),
            },
            RenderStatus::Failed => {
                self.metrics.renders.with_label_values(&["failed"]).inc();
                let failure = record.reason();
                // A sync caller whose request was at fault gets a 4xx naming the field.
                if sync && let Some(field) = &failure.field {
                    return ApiError::new(ErrorKind::InvalidRequest, failure.message.clone())
                        .field(field.clone())
                        .into_response();
                }
                let status = if sync {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                (
                    status,
                    Json(FailedResponse {
                        render_id: record.render_id.clone(),
                        status: RenderStatus::Failed,
                        error: failure.message,
                        field: failure.field,
                    }),
                )
                    .into_response()
            }
            RenderStatus::Pending | RenderStatus::Rendering => {
                if sync {
                    self.metrics.renders.with_label_values(&["timeout"]).inc();
                }
                let status = if sync {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                };
                (status, Json(accepted(&record.render_id, record.status))).into_response()
            }
        }
    }

    /// A remembered completed response (`cached: true`) for a client that sent `client_text`
    /// (normalised: `normalised`): the same bytes, or, when the texts differ, the result with
    /// its marks located in the client's text.
    pub fn cached_answer(&self, hit: Bytes, client_text: &str, normalised: &str) -> Response {
        if client_text == normalised {
            return json_bytes(StatusCode::OK, hit);
        }
        match serde_json::from_slice::<RenderResult>(&hit) {
            Ok(mut result) => {
                result.locate_marks_in(client_text);
                json_bytes(StatusCode::OK, serialise(&result))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a remembered response does not parse");
                json_bytes(StatusCode::OK, hit)
            }
        }
    }
}

/// Whether a render was done for this request or found done before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Rendered,
    Cached,
}

impl Found {
    pub fn cached_if(cached: bool) -> Self {
        if cached { Self::Cached } else { Self::Rendered }
    }
}

/// Who is answered: a request that waited for its render (an unfinished one is a 202, a
/// failure its 4xx or a 500), or a poll (a 200 with the record's status, whatever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    Waiter,
    Poller,
}

/// A render submitted and waited for ([`AppState::submit_and_wait`]).
pub struct Waited {
    pub record: RenderRecord,
    /// Already rendered when submitted.
    pub cached: bool,
    pub submit_time: Duration,
}

fn serialise(result: &RenderResult) -> Bytes {
    serde_json::to_vec(result)
        .expect("a result serialises")
        .into()
}
