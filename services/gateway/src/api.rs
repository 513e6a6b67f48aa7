//! The HTTP API of the original product: sync and async renders, polling, health, voices,
//! metrics, audio and the OpenAPI document.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use avatar_core::jetstream::{Pipeline, Stage};
use avatar_core::record::RenderRecord;
use avatar_core::submit::{Submitted, submit};
use avatar_core::telemetry::{METRICS_CONTENT_TYPE, Metrics};
use avatar_core::watcher::RecordWatcher;
use avatar_core::{RenderRequest, RenderResult, RenderSpec, RenderStatus, VoiceInfo, render_id};

use crate::cache::ResponseCache;
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorBody};
use crate::limits::{MAX_WAITERS_PER_RENDER, Refusal, RenderSlots};
use avatar_core::voices::{VoiceCheck, VoiceRegistry};

/// Why nothing can be rendered on a system where no tts worker ever announced a voice.
const NO_VOICES_YET: &str = "no tts worker has announced its voices yet";

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
    pending_jobs: Mutex<Option<(Instant, u64)>>,
}

/// A render accepted and not finished yet (or, for async submissions, possibly finished).
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub render_id: String,
    pub status: RenderStatus,
    /// Where to poll for the result (relative to the API's base URL).
    pub poll_url: String,
}

/// A render that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedResponse {
    pub render_id: String,
    pub status: RenderStatus,
    /// Why it failed.
    pub error: String,
    /// The request field to blame, when the request is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    pub nats_connected: bool,
    /// Jobs queued or in progress over all stages (`null` when unknown).
    pub pending_jobs: Option<u64>,
}

/// Whether a render can be accepted now, and if not, why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Why not (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub nats_connected: bool,
    /// Voices live tts workers speak now.
    pub voices_live: usize,
    /// Voices known at all (live, or announced before): requests for them are accepted and
    /// wait for a worker.
    pub voices_known: usize,
}

/// The process is up and serving.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveResponse {
    /// Always `alive`.
    pub status: &'static str,
}

/// What polling answers: the completed result, the failure, or the status of a render
/// still under way (documentation only: the handler writes one of these).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PollResponse {
    Completed(RenderResult),
    Failed(FailedResponse),
    UnderWay(AcceptedResponse),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoicesResponse {
    pub voices: Vec<VoiceInfo>,
    /// The voice used when a request names none.
    pub default_voice: Option<String>,
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
            config: Arc::new(config),
            pipeline,
            cache,
            store,
            metrics,
            pending_jobs: Mutex::default(),
        })
    }

    pub fn router(self: Arc<Self>) -> Router {
        let router = Router::new()
            .route("/v1/avatar/render", post(render_sync))
            .route("/v1/avatar/render_async", post(render_async))
            .route("/v1/avatar/render/{render_id}", get(poll))
            .route("/v1/voices", get(voices))
            .route("/health", get(health))
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/ready", get(readyz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi))
            .route("/audio/{file}", get(crate::audio::serve))
            .route("/results/{file}", get(crate::audio::serve_result));
        // The web demo at `/`; anything else unknown is a JSON 404.
        let router = match &self.config.web_dir {
            Some(dir) => router.fallback_service(
                tower_http::services::ServeDir::new(dir)
                    .append_index_html_on_directories(true)
                    .not_found_service(axum::handler::HandlerWithoutStateExt::into_service(
                        not_found,
                    )),
            ),
            None => router.fallback(not_found),
        };
        router
            .layer(axum::middleware::from_fn_with_state(self.clone(), observe))
            .layer(
                tower_http::cors::CorsLayer::new()
                    .allow_origin(tower_http::cors::Any)
                    .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                    .allow_headers([header::CONTENT_TYPE, header::RANGE])
                    .expose_headers([header::CONTENT_RANGE, header::RETRY_AFTER]),
            )
            .with_state(self)
    }

    /// Reads, parses and validates a render request; every problem names its field.
    async fn read_request(&self, headers: &HeaderMap, body: Body) -> Result<RenderSpec, ApiError> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            )
            .field("Content-Type"));
        }
        let limit = self.config.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {limit} bytes"),
            )
            .field("body")
        })?;
        let request = parse_request(&bytes)?;
        let default_voice = self
            .voices
            .default_voice(self.config.default_voice.as_deref());
        let spec = request
            .validate(
                default_voice
                    .as_deref()
                    .unwrap_or(avatar_core::voices::CONTRACT_DEFAULT_VOICE),
            )
            .map_err(ApiError::invalid)?;
        // Validation came first: a client's mistake is a 4xx whatever the workers' state.
        match self.voices.check(&spec.voice_id) {
            // A remembered voice with no worker live: the job waits durably in JetStream.
            VoiceCheck::Known | VoiceCheck::Remembered => Ok(spec),
            VoiceCheck::NoneAnnounced => Err(ApiError::unavailable(NO_VOICES_YET)),
            VoiceCheck::Unknown { available } => {
                Err(ApiError::invalid(vec![avatar_core::FieldError::new(
                    "voice_id",
                    format!(
                        "unknown voice {:?}; available: {}",
                        spec.voice_id,
                        available.join(", ")
                    ),
                )]))
            }
        }
    }

    /// The completed result of a record, with the audio URL made absolute.
    async fn completed_result(&self, record: &RenderRecord) -> Result<RenderResult, ApiError> {
        // In the record, or (a very large one) stored beside the audio.
        let mut result = avatar_core::spill::load_result(&self.store, record)
            .await
            .map_err(|e| {
                tracing::warn!(render_id = %record.render_id, error = %e, "cannot read a stored result");
                ApiError::unavailable(format!("the result store is unavailable: {e}"))
            })?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "corrupt_record",
                    "completed without a result",
                )
            })?;
        if !result.audio_url.contains("://") {
            result.audio_url = format!("{}/{}", self.config.audio_base_url, result.audio_url);
        }
        Ok(result)
    }

    /// Answers with a record: completed (and remembered), failed, or still under way.
    async fn answer(&self, record: &RenderRecord, cached: bool, sync: bool) -> Response {
        match record.status {
            RenderStatus::Completed => match self.completed_result(record).await {
                Ok(mut result) => {
                    let serialise = |result: &RenderResult| -> Bytes {
                        serde_json::to_vec(result)
                            .expect("a result serialises")
                            .into()
                    };
                    // The cache serves `cached: true`; so does this answer if it is cached.
                    result.cached = true;
                    let hit = serialise(&result);
                    let body = if cached {
                        hit.clone()
                    } else {
                        result.cached = false;
                        serialise(&result)
                    };
                    self.cache.insert(record.render_id.clone(), hit);
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
                let failure = record
                    .failure
                    .clone()
                    .unwrap_or(avatar_core::record::Failure {
                        message: "the render failed".into(),
                        field: None,
                    });
                // A sync caller whose request was at fault gets a 4xx naming the field.
                if sync && let Some(field) = &failure.field {
                    return ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        failure.message.clone(),
                    )
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

    async fn pending_jobs(&self) -> Option<u64> {
        if let Some((at, n)) = *self.pending_jobs.lock().expect("pending")
            && at.elapsed() < Duration::from_secs(1)
        {
            return Some(n);
        }
        let n = tokio::time::timeout(Duration::from_secs(2), self.pipeline.pending_jobs())
            .await
            .ok()?
            .ok()?;
        *self.pending_jobs.lock().expect("pending") = Some((Instant::now(), n));
        Some(n)
    }
}

fn accepted(render_id: &str, status: RenderStatus) -> AcceptedResponse {
    AcceptedResponse {
        render_id: render_id.to_owned(),
        status,
        poll_url: format!("/v1/avatar/render/{render_id}"),
    }
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parses a render request; a syntax error is a 400 on `body`, a bad value a 422 on its field.
fn parse_request(bytes: &[u8]) -> Result<RenderRequest, ApiError> {
    let syntax = |e: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
        .field("body")
    };
    // serde would also accept a struct as a JSON array; the contract says object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(syntax(&e)),
            Ok(_) => Err(ApiError::invalid(vec![avatar_core::FieldError::new(
                "body",
                "must be a JSON object with at least a \"text\" field",
            )])),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let request: RenderRequest =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return syntax(&inner);
            }
            let message = inner.to_string();
            // serde names unknown and missing fields in backticks; otherwise the path does.
            let named = message.split('`').nth(1).map(str::to_owned);
            let field = if path != "." && !path.is_empty() {
                path
            } else {
                named.unwrap_or_else(|| "body".into())
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ApiError::invalid(vec![avatar_core::FieldError::new(field, message)])
        })?;
    deserializer.end().map_err(|e| syntax(&e))?;
    Ok(request)
}

/// Synchronous render: waits up to `SYNC_TIMEOUT_SECONDS`.
#[utoipa::path(
    post,
    tag = "renders",
    path = "/v1/avatar/render",
    request_body = RenderRequest,
    responses(
        (status = 200, description = "The completed render", body = RenderResult),
        (status = 202, description = "Still rendering after SYNC_TIMEOUT_SECONDS: poll `poll_url`", body = AcceptedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorBody),
        (status = 500, description = "The render failed", body = FailedResponse),
        (status = 503, description = "Overloaded or NATS unavailable; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn render_sync(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let entered = Instant::now();
    let spec = app.read_request(&headers, body).await?;
    let id = render_id(&spec);
    if let Some(hit) = app.cache.get(&id) {
        app.metrics.cache_hits.with_label_values(&["memory"]).inc();
        app.metrics.renders.with_label_values(&["cached"]).inc();
        return Ok(json_bytes(StatusCode::OK, hit));
    }
    let _slot = app.slots.enter(&id).map_err(|refusal| {
        app.metrics.renders.with_label_values(&["shed"]).inc();
        let message = match refusal {
            Refusal::Overloaded => format!(
                "more than {} renders are being waited for; retry shortly",
                app.config.max_concurrent_requests
            ),
            Refusal::TooManyWaiters => format!(
                "more than {MAX_WAITERS_PER_RENDER} requests wait for this very render; retry shortly"
            ),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).retry_after(1)
    })?;
    let started = Instant::now();
    // Following the record from before the submission, the submission's own read or write
    // is the only one needed.
    let waiter = app.watcher.waiter(&id);
    let submitted = submit(&app.pipeline, spec)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if let Submitted::Cached(record) = &submitted {
        app.metrics.cache_hits.with_label_values(&["kv"]).inc();
        return Ok(app.answer(record, true, true).await);
    }
    let submit_time = started.elapsed();
    if let Some(revision) = submitted.revision() {
        waiter.seen(revision, submitted.record().clone());
    }
    let record = waiter
        .wait(app.config.sync_timeout)
        .await
        .unwrap_or_else(|| submitted.record().clone());
    let waited = started.elapsed();
    let response = app.answer(&record, false, true).await;
    tracing::debug!(
        render_id = %id,
        submit_ms = submit_time.as_secs_f64() * 1000.0,
        total_ms = waited.as_secs_f64() * 1000.0,
        handler_ms = entered.elapsed().as_secs_f64() * 1000.0,
        status = ?record.status,
        "sync render answered"
    );
    Ok(response)
}

/// Asynchronous render: answers at once with the poll URL.
#[utoipa::path(
    post,
    tag = "renders",
    path = "/v1/avatar/render_async",
    request_body = RenderRequest,
    responses(
        (status = 202, description = "Queued (or joined an identical render under way)", body = AcceptedResponse),
        (status = 200, description = "Already rendered: poll `poll_url` for the result", body = AcceptedResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorBody),
        (status = 503, description = "NATS unavailable; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn render_async(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let spec = app.read_request(&headers, body).await?;
    let id = render_id(&spec);
    if app.cache.get(&id).is_some() {
        return Ok((StatusCode::OK, Json(accepted(&id, RenderStatus::Completed))).into_response());
    }
    let submitted = submit(&app.pipeline, spec)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let record = submitted.record();
    let status = if record.status == RenderStatus::Completed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(accepted(&id, record.status))).into_response())
}

/// A render's status: pending, rendering, completed (the full result) or failed.
#[utoipa::path(
    get,
    tag = "renders",
    path = "/v1/avatar/render/{render_id}",
    params(("render_id" = String, Path, description = "The id from a render response")),
    responses(
        (status = 200, description = "Completed: the full result; failed: the reason (`error`, and `field` if the request was at fault); pending or rendering: the status and `poll_url`",
            body = PollResponse),
        (status = 404, description = "No such render", body = ErrorBody),
    )
)]
async fn poll(State(app): State<App>, Path(render_id): Path<String>) -> Result<Response, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no render {render_id:?}"),
        )
        .field("render_id")
    };
    if !avatar_core::storage::is_render_id(&render_id) {
        return Err(unknown());
    }
    if let Some(hit) = app.cache.get(&render_id) {
        app.metrics.cache_hits.with_label_values(&["memory"]).inc();
        return Ok(json_bytes(StatusCode::OK, hit));
    }
    let value = app
        .pipeline
        .renders
        .get(render_id.clone())
        .await
        .map_err(|e| ApiError::unavailable(format!("the render store is unavailable: {e}")))?;
    let record = value
        .and_then(|v| RenderRecord::from_bytes(&v).ok())
        .ok_or_else(unknown)?;
    // A render whose job was lost (its record outlived the lease) is resubmitted here too,
    // so a client that only polls is never stuck.
    let record = if !record.is_final() && avatar_core::submit::stale(&record, &app.pipeline) {
        match submit(&app.pipeline, record.spec.clone()).await {
            Ok(submitted) => submitted.record().clone(),
            Err(_) => record,
        }
    } else {
        record
    };
    Ok(app.answer(&record, true, false).await)
}

/// The voices the tts workers can speak.
#[utoipa::path(get, tag = "service", path = "/v1/voices", responses((status = 200, body = VoicesResponse)))]
async fn voices(State(app): State<App>) -> Json<VoicesResponse> {
    Json(VoicesResponse {
        voices: app.voices.list(),
        default_voice: app
            .voices
            .default_voice(app.config.default_voice.as_deref()),
    })
}

/// Health: unhealthy (503) when NATS is unreachable.
#[utoipa::path(
    get,
    tag = "service",
    path = "/health",
    responses(
        (status = 200, description = "Healthy", body = HealthResponse),
        (status = 503, description = "Unhealthy", body = HealthResponse),
    )
)]
async fn health(State(app): State<App>) -> Response {
    let connected = app.pipeline.connected();
    let pending_jobs = if connected {
        app.pending_jobs().await
    } else {
        None
    };
    let healthy = connected && pending_jobs.is_some();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthResponse {
            status: if healthy { "healthy" } else { "unhealthy" },
            nats_connected: connected,
            pending_jobs,
        }),
    )
        .into_response()
}

/// What answers before NATS is reached: alive, not ready, unhealthy, and 503 with
/// `Retry-After` for everything else.
pub fn starting_router() -> Router {
    let not_ready = || ReadyResponse {
        status: "not_ready",
        reason: Some("connecting to NATS".into()),
        nats_connected: false,
        voices_live: 0,
        voices_known: 0,
    };
    Router::new()
        .route("/livez", get(livez))
        .route(
            "/readyz",
            get(move || async move { (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready())) }),
        )
        .route(
            "/ready",
            get(move || async move { (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready())) }),
        )
        .route(
            "/health",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(HealthResponse {
                        status: "unhealthy",
                        nats_connected: false,
                        pending_jobs: None,
                    }),
                )
            }),
        )
        .fallback(|| async {
            ApiError::unavailable("the gateway is starting: NATS is not reachable yet")
        })
}

/// Liveness: the process serves requests (for a liveness probe; says nothing of NATS).
#[utoipa::path(get, tag = "service", path = "/livez", responses((status = 200, body = LiveResponse)))]
async fn livez() -> Json<LiveResponse> {
    Json(LiveResponse { status: "alive" })
}

/// Readiness: 200 only when a render can be accepted (NATS reachable, its job queue
/// answering, and some voice known: live, or announced before and waiting for a worker);
/// 503 with the reason otherwise. `/ready` is the same.
#[utoipa::path(
    get,
    tag = "service",
    path = "/readyz",
    responses(
        (status = 200, description = "Renders are accepted", body = ReadyResponse),
        (status = 503, description = "Renders would be refused now; `reason` says why", body = ReadyResponse),
    )
)]
async fn readyz(State(app): State<App>) -> Response {
    let connected = app.pipeline.connected();
    let (voices_live, voices_known) = app.voices.counts();
    let reason = if !connected {
        Some("NATS is unreachable".to_owned())
    } else if app.pending_jobs().await.is_none() {
        Some("the job queue does not answer".to_owned())
    } else if voices_known == 0 {
        Some(NO_VOICES_YET.to_owned())
    } else {
        None
    };
    let ready = reason.is_none();
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(ReadyResponse {
            status: if ready { "ready" } else { "not_ready" },
            reason,
            nats_connected: connected,
            voices_live,
            voices_known,
        }),
    )
        .into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, tag = "service", path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(app): State<App>) -> Response {
    for stage in Stage::ALL {
        if let Ok(Ok(depth)) =
            tokio::time::timeout(Duration::from_millis(500), app.pipeline.queue_depth(stage)).await
        {
            app.metrics
                .queue_depth
                .with_label_values(&[stage.name()])
                .set(depth as i64);
        }
    }
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Counts and times every request by route and status.
async fn observe(State(app): State<App>, request: axum::extract::Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics
        .http_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .http_requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Avatar pipeline API",
        description = "Text to speech audio (Ogg/Opus), lip-sync mouth cues and eye events for 2-D avatars.",
        license(name = "GPL-3.0-or-later")
    ),
    paths(
        render_sync,
        render_async,
        poll,
        voices,
        health,
        livez,
        readyz,
        metrics,
        crate::audio::serve,
        crate::audio::serve_result
    ),
    components(schemas(
        RenderRequest,
        RenderResult,
        AcceptedResponse,
        FailedResponse,
        ErrorBody,
        HealthResponse,
        LiveResponse,
        ReadyResponse,
        PollResponse,
        VoicesResponse
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document, as committed in `openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("OpenAPI serialises")
        + "\n"
}
