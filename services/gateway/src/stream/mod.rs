//! Streaming renders: text in as it is written, speech out segment by segment.
//!
//! A stream's text is cut into segments ([`avatar_domain::segment`]: sentences, the first
//! possibly a clause); each segment is a render of its own through the pipeline (its own
//! content id, so it is cached, coalesced and spread over the tts replicas like any render),
//! up to [`MAX_SEGMENTS_IN_FLIGHT`] at once, and answered in order, shifted into the stream's
//! time (`offset_ms`: the sum of the durations before it) and the stream's text (UTF-16
//! offsets of everything the client sent).
//!
//! Two ways in: a WebSocket (`GET /v1/avatar/stream`; text in pieces, `flush`, `end`) and
//! server-sent events (`POST /v1/avatar/stream` with a whole render request).
//!
//! Audio travels as a URL (`audio_url`), not in the socket: each segment is a stored,
//! cached render whose audio the gateway already serves with byte ranges and a one-year
//! cache header; the messages stay small JSON the client can read as they come, a slow audio
//! fetch never holds up the marks of the next segment, and a segment rendered before (by
//! anyone) costs no bytes in the stream. The price is one request per segment for its audio.

mod protocol;
mod segments;
mod socket;

pub use protocol::{
    ClientMessage, MAX_MESSAGE_BYTES, MAX_PENDING_CHARS, MAX_SEGMENTS_IN_FLIGHT, MAX_STREAM_CHARS,
    ServerMessage, SseEvent, StreamLimits, StreamSegment,
};

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use avatar_domain::segment::{Segment, Segmenter};
use avatar_domain::{RenderRequest, RenderSpec};

use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::state::App;
use futures::StreamExt;
use protocol::OUTBOX;
use segments::{queue_segment, render_segments};
use socket::run_socket;

fn limits(app: &App) -> StreamLimits {
    StreamLimits {
        max_pending_chars: MAX_PENDING_CHARS,
        max_stream_chars: MAX_STREAM_CHARS,
        max_message_bytes: MAX_MESSAGE_BYTES,
        max_segments_in_flight: MAX_SEGMENTS_IN_FLIGHT,
        idle_flush_ms: app.config.stream_idle_flush.as_millis() as u64,
        idle_timeout_ms: app.config.stream_idle_timeout.as_millis() as u64,
    }
}

/// A stream's place among `MAX_CONCURRENT_STREAMS` (counted in `avatar_streams_open` while
/// it is held).
pub(crate) struct StreamPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    app: App,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.app.metrics.streams_open.dec();
    }
}

/// A stream's permit among `MAX_CONCURRENT_STREAMS`, or a 503.
pub(crate) fn stream_permit(app: &App) -> Result<StreamPermit, ApiError> {
    let permit = app.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            ErrorKind::Overloaded,
            format!(
                "more than {} streams are open; retry shortly",
                app.config.max_concurrent_streams
            ),
        )
        .retry_after(1)
    })?;
    app.metrics.streams_open.inc();
    Ok(StreamPermit {
        _permit: permit,
        app: app.clone(),
    })
}

/// The WebSocket stream.
#[utoipa::path(
    get,
    tag = "streams",
    path = "/v1/avatar/stream",
    responses(
        (status = 101, description = "A WebSocket: the client sends `ClientMessage`s (JSON text messages), the server answers with `ServerMessage`s"),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 503, description = "Too many streams open; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn stream_ws(
    State(app): State<App>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(ErrorKind::WebSocketRequired, format!("this endpoint is a WebSocket ({e}); for a whole text, POST it here for server-sent events"),
        )
        .field("Upgrade")
    })?;
    let permit = stream_permit(&app)?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            run_socket(app, socket).await;
            drop(permit);
        }))
}

/// The stream for a whole text as server-sent events (`started`, `segment`..., `done`;
/// `error` events name a failed segment).
#[utoipa::path(
    post,
    tag = "streams",
    path = "/v1/avatar/stream",
    request_body = RenderRequest,
    responses(
        (status = 200, description = "Server-sent events, each `event:` named by its `type`, its `data` a `ServerMessage` as JSON", content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorBody),
        (status = 503, description = "Too many streams open, or NATS unavailable; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn stream_sse(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (request, valid) = app.read_request(&headers, body).await?;
    let spec = valid.spec;
    let permit = stream_permit(&app)?;
    let (out, mut messages) = mpsc::channel::<ServerMessage>(OUTBOX);
    let (segments, queue) = mpsc::channel::<Segment>(1);
    let queued = Arc::new(AtomicUsize::new(0));
    let _ = out.try_send(started(&app, &spec));
    tokio::spawn(render_segments(
        app.clone(),
        spec,
        queue,
        out,
        queued.clone(),
    ));
    let mut segmenter = Segmenter::new();
    tokio::spawn(async move {
        let pieces = segmenter
            .push(&request.text)
            .into_iter()
            .chain(segmenter.flush());
        for segment in pieces {
            queue_segment(&segments, &queued, segment).await;
        }
    });
    // The events as the renderer sends them; the stream's place is held while they flow.
    let events = futures::stream::poll_fn(move |cx| {
        let _held = &permit;
        messages.poll_recv(cx)
    })
    .map(|message| {
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event(message.name())
                .json_data(&message)
                .expect("a message serialises"),
        )
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

pub(super) fn started(app: &App, spec: &RenderSpec) -> ServerMessage {
    ServerMessage::Started {
        voice_id: spec.voice_id.clone(),
        speed: spec.speed,
        viseme_set: spec.viseme_set,
        limits: limits(app),
    }
}
