//! The service resources: voices, health, liveness, readiness and metrics, and what answers
//! while the gateway starts.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use avatar_runtime::jetstream::Stage;
use avatar_runtime::telemetry::METRICS_CONTENT_TYPE;

use crate::error::ApiError;
use crate::responses::{HealthResponse, LiveResponse, ReadyResponse, VoicesResponse};
use avatar_domain::NO_VOICES_YET;

use crate::state::App;

/// The voices the tts workers can speak.
#[utoipa::path(get, tag = "service", path = "/v1/voices", responses((status = 200, body = VoicesResponse)))]
pub async fn voices(State(app): State<App>) -> Json<VoicesResponse> {
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
pub async fn health(State(app): State<App>) -> Response {
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
    let not_ready = get(|| async {
        let body = ReadyResponse {
            status: "not_ready",
            reason: Some("connecting to NATS".into()),
            nats_connected: false,
            voices_live: 0,
            voices_known: 0,
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    });
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", not_ready.clone())
        .route("/ready", not_ready)
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
pub async fn livez() -> Json<LiveResponse> {
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
pub async fn readyz(State(app): State<App>) -> Response {
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
pub async fn metrics(State(app): State<App>) -> Response {
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
