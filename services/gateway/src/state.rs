//! The gateway's shared state and what every render handler does with it: read and check a
//! request, and answer with a render record.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use avatar_domain::{RenderRequest, RenderResult, RenderStatus, ValidSpec};
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::record::RenderRecord;
use avatar_runtime::submit::{Submitted, resubmit, submit};
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::VoiceRegistry;
use avatar_runtime::watcher::RecordWatcher;

use crate::cache::ResponseCache;
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorKind};
use crate::limits::{MAX_WAITERS_PER_RENDER, Refusal, RenderSlots, Slot};
use crate::parse::{parse_request, read_body};
use crate::responses::{FailedResponse, accepted, json_bytes};

/// Everything a handler needs, shared behind one `Arc`: handlers get it per request, and
/// cloning the NATS handles inside per request costs more than the request itself.
pub type App = Arc<AppState>;

pub struct AppState {
    pub config: Arc<GatewayConfig>,
    pub pipeline: Pipeline,
    pub watcher: RecordWatcher,
    pub voices: VoiceRegistry,
    pub cache: ResponseCache,
    pub store: Arc<dyn object_store::ObjectStore>,
    pub metrics: Arc<Metrics>,
    /// Renders being waited for; beyond `MAX_CONCURRENT_REQUESTS` requests are shed.
    pub slots: RenderSlots,
    /// Streams open; beyond `MAX_CONCURRENT_STREAMS` new ones get 503.
    pub streams: Arc<tokio::sync::Semaphore>,
    pending_jobs: Mutex<Option<(Instant, u64)>>,
}

impl AppState {
    pub async fn new(
        config: GatewayConfig,
        pipeline: Pipeline,
        store: Arc<dyn object_store::ObjectStore>,
        metrics: Arc<Metrics>,
    ) -> App {
        let cache = ResponseCache::new(config.cache_bytes, config.pipeline.cache_ttl);
        Arc::new(Self {
            watcher: RecordWatcher::start(pipeline.clone()),
            // The voices known before the first request (remembered ones too).
            voices: VoiceRegistry::start(pipeline.clone()).await,
            slots: RenderSlots::new(config.max_concurrent_requests, MAX_WAITERS_PER_RENDER),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_streams)),
            config: Arc::new(config),
            pipeline,
            cache,
            store,
            metrics,
            pending_jobs: Mutex::default(),
        })
    }

    /// Reads, parses and validates a render request; every problem names its field. Returns
    /// the request as sent (its text is what the client's marks are located in) and the
    /// validated spec.
    pub async fn read_request(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(RenderRequest, ValidSpec), ApiError> {
        let bytes = read_body(headers, body, self.config.max_body_bytes).await?;
        let request = parse_request(&bytes)?;
        let valid = self.validate_settings(&request)?;
        Ok((request, valid))
    }

    /// Validates a request against the contract and the voices known (every problem names
    /// its field); the spec comes with its render id.
    pub fn validate_settings(&self, request: &RenderRequest) -> Result<ValidSpec, ApiError> {
        // Validation comes first: a client's mistake is a 4xx whatever the workers' state.
        Ok(self
            .voices
            .check_request(request, self.config.default_voice.as_deref())?)
    }

    /// The record of a render: a 404 naming `render_id` for an id that is malformed or names
    /// no render. A render whose job was lost (its record outlived the lease) is resubmitted
    /// here, so a client that only polls is never stuck.
    pub async fn find_record(&self, render_id: &str) -> Result<RenderRecord, ApiError> {
        let unknown = || {
            ApiError::new(ErrorKind::NotFound, format!("no render {render_id:?}"))
                .field("render_id")
        };
        if !avatar_domain::is_render_id(render_id) {
            return Err(unknown());
        }
        let value = self
            .pipeline
            .renders
            .get(render_id.to_owned())
            .await
            .map_err(|e| ApiError::unavailable(format!("the render store is unavailable: {e}")))?;
        let record = value
            .and_then(|v| RenderRecord::from_bytes(&v).ok())
            .ok_or_else(unknown)?;
        if !record.is_final() && avatar_runtime::submit::stale(&record, &self.pipeline) {
            return Ok(match resubmit(&self.pipeline, &record).await {
                Ok(submitted) => submitted.record().clone(),
                Err(_) => record,
            });
        }
        Ok(record)
    }

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

    pub async fn pending_jobs(&self) -> Option<u64> {
        if let Some((at, n)) = *self
            .pending_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < Duration::from_secs(1)
        {
            return Some(n);
        }
        let n = tokio::time::timeout(Duration::from_secs(2), self.pipeline.pending_jobs())
            .await
            .ok()?
            .ok()?;
        *self
            .pending_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), n));
        Some(n)
    }
}

/// Where a poll's completed answer is remembered (its marks located in the submitted text,
/// which other answers' are not).
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

pub fn poll_key(render_id: &str) -> String {
    format!("poll:{render_id}")
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
