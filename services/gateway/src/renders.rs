//! The render resources: synchronous and asynchronous submission, and polling.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use avatar_domain::{RenderRequest, RenderResult, RenderStatus};
use avatar_runtime::submit::submit;

use crate::answers::{Asker, Found, Waited};
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::responses::{AcceptedResponse, FailedResponse, PollResponse, accepted, json_bytes};
use crate::state::App;

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
pub async fn render_sync(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let entered = Instant::now();
    let (request, valid) = app.read_request(&headers, body).await?;
    let id = valid.id.clone();
    if let Some(answer) = app.memory_answer(&id, &request.text, &valid.spec.text) {
        return Ok(answer);
    }
    let _slot = app.enter_slot(&id)?;
    let started = Instant::now();
    let Waited {
        record,
        cached,
        submit_time,
    } = app
        .submit_and_wait(valid, Some(&request.text), app.config.sync_timeout)
        .await?;
    if cached {
        app.metrics.cache_hits.with_label_values(&["kv"]).inc();
        return Ok(app
            .answer(&record, Found::Cached, Asker::Waiter, Some(&request.text))
            .await);
    }
    let waited = started.elapsed();
    let response = app
        .answer(&record, Found::Rendered, Asker::Waiter, Some(&request.text))
        .await;
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
pub async fn render_async(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Answers with the status only; the text as sent goes into a new record, so that polling
    // gets the marks located in it.
    let (request, valid) = app.read_request(&headers, body).await?;
    let id = valid.id.clone();
    if app.cache.get(&id).is_some() {
        return Ok((StatusCode::OK, Json(accepted(&id, RenderStatus::Completed))).into_response());
    }
    let submitted = submit(&app.pipeline, valid, Some(&request.text))
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
pub async fn poll(
    State(app): State<App>,
    Path(render_id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(hit) = app.cache.get(&crate::state::poll_key(&render_id)) {
        app.metrics.cache_hits.with_label_values(&["memory"]).inc();
        return Ok(json_bytes(StatusCode::OK, hit));
    }
    let record = app.find_record(&render_id).await?;
    Ok(app
        .answer(&record, Found::Cached, Asker::Poller, None)
        .await)
}

/// A completed render's subtitles (WebVTT).
///
/// Cues of at most two lines of 42 characters, never across a sentence and broken after a
/// clause's punctuation where the lengths allow, each on screen while its words are heard,
/// with a timestamp tag before every word but a cue's first (karaoke-style highlighting).
#[utoipa::path(
    get,
    tag = "renders",
    path = "/v1/avatar/render/{render_id}/subtitles.vtt",
    params(("render_id" = String, Path, description = "The id from a render response")),
    responses(
        (status = 200, description = "The subtitles (WebVTT)", body = String, content_type = "text/vtt; charset=utf-8"),
        (status = 404, description = "No such render", body = ErrorBody),
        (status = 409, description = "The render is not completed: still pending or rendering (`error` is `render_pending` or `render_rendering`; poll and retry), or failed (`render_failed`, with the reason)", body = ErrorBody),
    )
)]
pub async fn subtitles(
    State(app): State<App>,
    Path(render_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = app.find_record(&render_id).await?;
    match record.status {
        RenderStatus::Completed => {
            let result = app.completed_result(&record).await?;
            // A recording's words may have been recognised: its marks index the transcript.
            let text = result.transcript.as_deref().unwrap_or(&record.spec.text);
            let vtt = avatar_domain::subtitles::webvtt(text, &result.words, &result.sentences);
            Ok(([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], vtt).into_response())
        }
        RenderStatus::Failed => Err(ApiError::new(
            ErrorKind::RenderFailedNoSubtitles,
            format!(
                "render {render_id} failed, so it has no subtitles: {}",
                record.reason().message
            ),
        )),
        status @ (RenderStatus::Pending | RenderStatus::Rendering) => {
            let (kind, name) = match status {
                RenderStatus::Pending => (ErrorKind::RenderPending, "pending"),
                _ => (ErrorKind::RenderRendering, "rendering"),
            };
            Err(ApiError::new(
                kind,
                format!(
                    "render {render_id} is {name}: its subtitles are ready once it is completed \
                     (poll /v1/avatar/render/{render_id})"
                ),
            ))
        }
    }
}
