//! The routes, and what every request passes through (metrics, CORS, the JSON 404).

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, get_service, post};

use crate::error::{ApiError, ErrorKind};
use crate::live::live_ws;
use crate::recordings::{MAX_RECORDING_BODY_BYTES, lipsync_async, lipsync_sync};
use crate::renders::{poll, render_async, render_sync, subtitles};
use crate::service::{health, livez, metrics, readyz, voices};
use crate::state::App;
use crate::stream::{stream_sse, stream_ws};
use crate::{files, openapi};

/// The API, the audio and result files, and the web demo (when configured) at `/`.
pub fn router(app: App) -> Router {
    let router = Router::new()
        .route("/v1/avatar/render", post(render_sync))
        .route("/v1/avatar/render_async", post(render_async))
        .route(
            "/v1/avatar/lipsync",
            post(lipsync_sync).layer(DefaultBodyLimit::max(MAX_RECORDING_BODY_BYTES)),
        )
        .route(
            "/v1/avatar/lipsync_async",
            post(lipsync_async).layer(DefaultBodyLimit::max(MAX_RECORDING_BODY_BYTES)),
        )
        .route("/v1/avatar/lipsync/live", get(live_ws))
        .route("/v1/avatar/render/{render_id}", get(poll))
        .route(
            "/v1/avatar/render/{render_id}/subtitles.vtt",
            get(subtitles),
        )
        .route("/v1/avatar/stream", get(stream_ws).post(stream_sse))
        .route("/v1/voices", get(voices))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/ready", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/audio/{file}", get(files::serve_audio))
        .route("/results/{file}", get(files::serve_result));
    // The web demo at `/` (GET and HEAD); anything else unknown, whatever its method, is a
    // JSON 404.
    let router = match &app.config.web_dir {
        Some(dir) => router.fallback(
            get_service(
                tower_http::services::ServeDir::new(dir)
                    .append_index_html_on_directories(true)
                    .not_found_service(axum::handler::HandlerWithoutStateExt::into_service(
                        not_found,
                    )),
            )
            .fallback(not_found),
        ),
        None => router.fallback(not_found),
    };
    router
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::RANGE])
                .expose_headers([header::CONTENT_RANGE, header::RETRY_AFTER]),
        )
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such endpoint")
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
