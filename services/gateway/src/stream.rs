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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use avatar_domain::segment::{Segment, Segmenter};
use avatar_domain::{
    EyeEvent, MouthCue, RenderRequest, RenderResult, RenderSpec, RenderStatus, SentenceMark,
    VisemeSet, WordMark, render_id,
};
use avatar_runtime::submit::{Submitted, submit};

use crate::error::{ApiError, ErrorBody};
use crate::state::App;

/// Segments rendered at once for one stream (the rest wait, not yet submitted).
pub const MAX_SEGMENTS_IN_FLIGHT: usize = 3;
/// Text received and not yet submitted, in characters: a render's own limit.
pub const MAX_PENDING_CHARS: usize = avatar_domain::MAX_TEXT_CHARS;
/// All the text of one stream, in characters.
pub const MAX_STREAM_CHARS: usize = 100_000;
/// The largest message a client may send, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages waiting for a slow reader before the stream stops producing more.
const OUTBOX: usize = 4;

/// What a client sends on the WebSocket, as JSON text messages: `start` first, then `text`
/// pieces of any size, `flush` to speak what is pending now, and `end`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Opens the stream: the render settings for every segment (as in a render request).
    Start {
        #[serde(default)]
        voice_id: Option<String>,
        #[serde(default)]
        speed: Option<f64>,
        #[serde(default)]
        viseme_set: Option<VisemeSet>,
    },
    /// More text, appended to what came before (a word, a token, a paragraph).
    Text { text: String },
    /// Speak what is pending now, without waiting for its sentence to end.
    Flush,
    /// No more text: what is pending is spoken, then `done`.
    End,
}

/// One server-sent event of `POST /v1/avatar/stream`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SseEvent {
    /// The message's `type`: `started`, `segment`, `error` or `done`.
    pub event: String,
    /// A `ServerMessage`, as JSON.
    pub data: String,
}

/// The limits of a stream, as `started` reports them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamLimits {
    pub max_pending_chars: usize,
    pub max_stream_chars: usize,
    pub max_message_bytes: usize,
    pub max_segments_in_flight: usize,
    /// Pending text is spoken after this long without new text.
    pub idle_flush_ms: u64,
    /// The stream is closed after this long without a message.
    pub idle_timeout_ms: u64,
}

/// One segment of speech, in the stream's time and text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamSegment {
    /// 0, 1, 2 ... in the order the text came (and the order they are sent).
    pub seq: u32,
    /// Where the segment starts in the stream's timeline: the sum of the durations of the
    /// segments before it, ms. Play the segments back to back.
    pub offset_ms: u64,
    pub duration_ms: u64,
    pub render_id: String,
    /// The segment's audio (Ogg/Opus unless configured otherwise).
    pub audio_url: String,
    pub cached: bool,
    /// The segment's text in the stream's text, UTF-16 code units.
    pub text_start: usize,
    pub text_end: usize,
    /// In stream time (`offset_ms` added).
    pub mouth_cues: Vec<MouthCue>,
    /// In stream time; blinks and saccades keep their spacing across segments.
    pub eye_events: Vec<EyeEvent>,
    /// In stream time, located in the stream's text (UTF-16 code units).
    pub words: Vec<WordMark>,
    pub sentences: Vec<SentenceMark>,
}

/// What the server sends: `started`, then a `segment` per segment in order (or an `error`
/// naming one), then `done`. An `error` without `seq` that ends the stream is followed by a
/// close (code 1008 for a client's mistake, 1011 for the server's, 1001 when idle).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Started {
        voice_id: String,
        speed: f64,
        viseme_set: VisemeSet,
        limits: StreamLimits,
    },
    Segment(Box<StreamSegment>),
    Error {
        error: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// The segment that failed, when one did (the stream goes on).
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u32>,
    },
    Done {
        segments: u32,
        failed_segments: u32,
        duration_ms: u64,
        words: u32,
    },
}

impl From<ApiError> for ServerMessage {
    fn from(e: ApiError) -> Self {
        Self::Error {
            error: e.body.error.into(),
            message: e.body.message,
            field: e.body.field,
            seq: None,
        }
    }
}

impl ServerMessage {
    fn error(error: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self::Error {
            error: error.into(),
            message: message.into(),
            field: field.map(Into::into),
            seq: None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Segment(_) => "segment",
            Self::Error { .. } => "error",
            Self::Done { .. } => "done",
        }
    }
}

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
struct StreamPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    app: App,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.app.metrics.streams_open.dec();
    }
}

/// A stream's permit among `MAX_CONCURRENT_STREAMS`, or a 503.
fn stream_permit(app: &App) -> Result<StreamPermit, ApiError> {
    let permit = app.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
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
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("this endpoint is a WebSocket ({e}); for a whole text, POST it here for server-sent events"),
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
    let (request, spec) = app.read_request(&headers, body).await?;
    let permit = stream_permit(&app)?;
    let (out, mut messages) = mpsc::channel::<ServerMessage>(OUTBOX);
    let (segments, queue) = mpsc::channel::<Segment>(1);
    let queued = Arc::new(AtomicUsize::new(0));
    let _ = out.try_send(started(&app, &spec));
    tokio::spawn(render_segments(app.clone(), spec, queue, out, queued));
    let mut segmenter = Segmenter::new();
    tokio::spawn(async move {
        let pieces = segmenter
            .push(&request.text)
            .into_iter()
            .chain(segmenter.flush());
        for segment in pieces {
            if segments.send(segment).await.is_err() {
                return;
            }
        }
    });
    let events = async_stream(move |tx| async move {
        while let Some(message) = messages.recv().await {
            let event = Event::default()
                .event(message.name())
                .json_data(&message)
                .expect("a message serialises");
            if tx
                .send(Ok::<_, std::convert::Infallible>(event))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(permit);
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A stream fed by a task (a small stand-in for an `async-stream` macro).
fn async_stream<T: Send + 'static, F, Fut>(f: F) -> impl futures::Stream<Item = T>
where
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn started(app: &App, spec: &RenderSpec) -> ServerMessage {
    ServerMessage::Started {
        voice_id: spec.voice_id.clone(),
        speed: spec.speed,
        viseme_set: spec.viseme_set,
        limits: limits(app),
    }
}

/// A WebSocket stream from `start` to `done` (or to the client's leaving).
async fn run_socket(app: App, socket: WebSocket) {
    let (mut sink, mut source) = socket.split();
    let (out, mut outbox) = mpsc::channel::<ServerMessage>(OUTBOX);
    let (close, mut closing) = tokio::sync::oneshot::channel::<(u16, ServerMessage)>();
    // The writer: messages in order; the socket closes after `done` (1000) or at once with a
    // fatal error and its close code.
    let writer = tokio::spawn(async move {
        let mut fatal_pending = true;
        loop {
            let (message, close_code) = tokio::select! {
                biased;
                fatal = &mut closing, if fatal_pending => match fatal {
                    Ok((code, message)) => (message, Some(code)),
                    Err(_) => {
                        fatal_pending = false;
                        continue;
                    }
                },
                message = outbox.recv() => match message {
                    Some(message @ ServerMessage::Done { .. }) => (message, Some(1000)),
                    Some(message) => (message, None),
                    None => break,
                },
            };
            let text = serde_json::to_string(&message).expect("a message serialises");
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
            if let Some(code) = close_code {
                let reason = match code {
                    1000 => "done",
                    1001 => "idle",
                    _ => "refused",
                };
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: Utf8Bytes::from_static(reason),
                    })))
                    .await;
                return;
            }
        }
        let _ = sink.close().await;
    });
    if let Some(fatal) = read_client(&app, &mut source, &out).await {
        let _ = close.send(fatal);
    }
    drop(out);
    let _ = writer.await;
}

/// Reads the client's messages until `end`, a fatal error (returned with its close code),
/// or the client leaving (segments not yet started are then dropped with the channel).
async fn read_client(
    app: &App,
    source: &mut futures::stream::SplitStream<WebSocket>,
    out: &mpsc::Sender<ServerMessage>,
) -> Option<(u16, ServerMessage)> {
    let idle_timeout = app.config.stream_idle_timeout;
    let idle_flush = app.config.stream_idle_flush;
    let mut segmenter = Segmenter::new();
    let mut session: Option<(mpsc::Sender<Segment>, Arc<AtomicUsize>)> = None;
    let mut received = 0usize;
    loop {
        // Quiet for `idle_flush` with text pending: speak it.
        let wait = if segmenter.pending_chars() > 0 {
            idle_flush
        } else {
            idle_timeout
        };
        let next = tokio::time::timeout(wait, source.next()).await;
        let message = match next {
            Err(_) if segmenter.pending_chars() > 0 => {
                if let Some((segments, queued)) = &session
                    && let Some(segment) = segmenter.flush()
                {
                    queue(segments, queued, segment).await;
                }
                continue;
            }
            Err(_) => {
                return Some((
                    1001,
                    ServerMessage::error(
                        "idle",
                        format!(
                            "no message for {} s; the stream is closed",
                            idle_timeout.as_secs()
                        ),
                        None,
                    ),
                ));
            }
            // The client left: dropping the session cancels what has not started.
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                let _ = out
                    .send(ServerMessage::error(
                        "invalid_message",
                        "messages are JSON text, not binary",
                        Some("type"),
                    ))
                    .await;
                continue;
            }
        };
        let parsed = match parse_client(text.as_str()) {
            Ok(m) => m,
            Err(error) => {
                let _ = out.send(error).await;
                continue;
            }
        };
        match (parsed, &session) {
            (
                ClientMessage::Start {
                    voice_id,
                    speed,
                    viseme_set,
                },
                None,
            ) => {
                let request = RenderRequest {
                    text: "start".into(),
                    voice_id,
                    speed,
                    viseme_set,
                };
                match app.validate_settings(&request) {
                    Ok(spec) => {
                        let _ = out.send(started(app, &spec)).await;
                        let (segments, queue_rx) = mpsc::channel::<Segment>(1);
                        let queued = Arc::new(AtomicUsize::new(0));
                        tokio::spawn(render_segments(
                            app.clone(),
                            spec,
                            queue_rx,
                            out.clone(),
                            queued.clone(),
                        ));
                        session = Some((segments, queued));
                    }
                    // Not started: the client may send a better `start`.
                    Err(e) => {
                        let _ = out.send(e.into()).await;
                    }
                }
            }
            (ClientMessage::Start { .. }, Some(_)) => {
                let _ = out
                    .send(ServerMessage::error(
                        "invalid_message",
                        "the stream has started already",
                        Some("type"),
                    ))
                    .await;
            }
            (_, None) => {
                return Some((
                    1008,
                    ServerMessage::error(
                        "invalid_message",
                        "the first message must be `start`",
                        Some("type"),
                    ),
                ));
            }
            (ClientMessage::Text { text }, Some((segments, queued))) => {
                let chars = text.chars().count();
                if received + chars > MAX_STREAM_CHARS {
                    return Some((
                        1008,
                        ServerMessage::error(
                            "limit",
                            format!("a stream takes at most {MAX_STREAM_CHARS} characters"),
                            Some("text"),
                        ),
                    ));
                }
                let pending = segmenter.pending_chars() + queued.load(Ordering::Relaxed);
                if pending + chars > MAX_PENDING_CHARS {
                    let _ = out
                        .send(ServerMessage::error(
                            "limit",
                            format!(
                                "{pending} characters are waiting to be spoken; at most \
                                 {MAX_PENDING_CHARS} may wait: this text ({chars} characters) was \
                                 not taken, send it again later"
                            ),
                            Some("text"),
                        ))
                        .await;
                    continue;
                }
                received += chars;
                for segment in segmenter.push(&text) {
                    queue(segments, queued, segment).await;
                }
            }
            (ClientMessage::Flush, Some((segments, queued))) => {
                if let Some(segment) = segmenter.flush() {
                    queue(segments, queued, segment).await;
                }
            }
            (ClientMessage::End, Some((segments, queued))) => {
                if let Some(segment) = segmenter.flush() {
                    queue(segments, queued, segment).await;
                }
                // Dropping the sender (with the session) lets the renderer finish and send
                // `done`; the writer then closes.
                return None;
            }
        }
    }
}

/// A client message, or an error naming the field at fault.
fn parse_client(text: &str) -> Result<ClientMessage, ServerMessage> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Start {
        #[serde(rename = "type")]
        _type: String,
        #[serde(default)]
        voice_id: Option<String>,
        #[serde(default)]
        speed: Option<f64>,
        #[serde(default)]
        viseme_set: Option<VisemeSet>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Text {
        #[serde(rename = "type")]
        _type: String,
        text: String,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Bare {
        #[serde(rename = "type")]
        _type: String,
    }
    fn fields<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ServerMessage> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // An unknown or missing field is named in the message, a bad value by its path.
            let named = inner.split('`').nth(1).filter(|_| {
                inner.starts_with("unknown field") || inner.starts_with("missing field")
            });
            let field = named.map_or(path, str::to_owned);
            ServerMessage::error("invalid_message", format!("{field}: {inner}"), Some(&field))
        })
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ServerMessage::error("invalid_message", format!("not JSON: {e}"), Some("body"))
    })?;
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some("start") => fields::<Start>(text).map(|m| ClientMessage::Start {
            voice_id: m.voice_id,
            speed: m.speed,
            viseme_set: m.viseme_set,
        }),
        Some("text") => fields::<Text>(text).map(|m| ClientMessage::Text { text: m.text }),
        Some("flush") => fields::<Bare>(text).map(|_| ClientMessage::Flush),
        Some("end") => fields::<Bare>(text).map(|_| ClientMessage::End),
        _ => Err(ServerMessage::error(
            "invalid_message",
            "`type` must be one of start, text, flush, end",
            Some("type"),
        )),
    }
}

/// Hands a segment to the renderer, counting its characters as waiting until it starts.
async fn queue(segments: &mpsc::Sender<Segment>, queued: &AtomicUsize, segment: Segment) {
    queued.fetch_add(segment.text.chars().count(), Ordering::Relaxed);
    let _ = segments.send(segment).await;
}

/// Renders the segments that arrive on `queue`, up to [`MAX_SEGMENTS_IN_FLIGHT`] at once,
/// and sends them in order in the stream's time and text, then `done`.
async fn render_segments(
    app: App,
    spec: RenderSpec,
    queue: mpsc::Receiver<Segment>,
    out: mpsc::Sender<ServerMessage>,
    queued: Arc<AtomicUsize>,
) {
    let gone = out.clone();
    let segments = futures::stream::poll_fn({
        let mut queue = queue;
        move |cx| queue.poll_recv(cx)
    })
    // Taken from the queue only when a place in flight is free: from then on it is started.
    .inspect({
        let queued = queued.clone();
        move |segment| {
            queued.fetch_sub(segment.text.chars().count(), Ordering::Relaxed);
        }
    })
    .filter(|s| std::future::ready(s.is_speakable()))
    .enumerate()
    .map(|(seq, segment)| {
        let (app, spec) = (app.clone(), spec.clone());
        let gone = gone.clone();
        let taken = std::time::Instant::now();
        async move {
            // A client that left cancels the segments not started yet.
            let outcome = if gone.is_closed() {
                Err(ApiError::new(
                    StatusCode::GONE,
                    "cancelled",
                    "the client left",
                ))
            } else {
                render_segment(&app, &spec, &segment).await
            };
            (seq as u32, segment, outcome, taken)
        }
    })
    .buffered(MAX_SEGMENTS_IN_FLIGHT);
    futures::pin_mut!(segments);
    let (mut offset_ms, mut count, mut failed, mut words) = (0u64, 0u32, 0u32, 0u32);
    let mut eyes_so_far: Vec<EyeEvent> = Vec::new();
    while let Some((seq, segment, outcome, taken)) = segments.next().await {
        count += 1;
        let outcome_name = match &outcome {
            Ok(r) if r.cached => "cached",
            Ok(_) => "completed",
            Err(e) if e.status == StatusCode::GONE => "cancelled",
            Err(_) => "failed",
        };
        app.metrics
            .stream_segments
            .with_label_values(&[outcome_name])
            .inc();
        app.metrics
            .stream_segment_seconds
            .observe(taken.elapsed().as_secs_f64());
        let message = match outcome {
            Ok(result) => {
                let message = in_stream(result, seq, &segment, offset_ms, &mut eyes_so_far);
                offset_ms += message.duration_ms;
                words += message.words.len() as u32;
                ServerMessage::Segment(Box::new(message))
            }
            Err(e) => {
                failed += 1;
                match ServerMessage::from(e) {
                    ServerMessage::Error {
                        error,
                        message,
                        field,
                        ..
                    } => ServerMessage::Error {
                        error,
                        message,
                        field,
                        seq: Some(seq),
                    },
                    other => other,
                }
            }
        };
        if out.send(message).await.is_err() {
            // The client is gone: the segments not started are dropped with the stream.
            return;
        }
    }
    let _ = out
        .send(ServerMessage::Done {
            segments: count,
            failed_segments: failed,
            duration_ms: offset_ms,
            words,
        })
        .await;
}

/// A segment's result moved into the stream's time and text.
fn in_stream(
    mut result: RenderResult,
    seq: u32,
    segment: &Segment,
    offset_ms: u64,
    eyes_so_far: &mut Vec<EyeEvent>,
) -> StreamSegment {
    result.locate_marks_in(&segment.text);
    let shift = |t: &mut u64| *t += offset_ms;
    result
        .mouth_cues
        .iter_mut()
        .for_each(|c| shift(&mut c.t_ms));
    for w in &mut result.words {
        shift(&mut w.t_ms);
        shift(&mut w.end_ms);
        w.start += segment.start;
        w.end += segment.start;
    }
    for s in &mut result.sentences {
        shift(&mut s.t_ms);
        shift(&mut s.end_ms);
        s.start += segment.start;
        s.end += segment.start;
    }
    let before = eyes_so_far.len();
    eyes::stitch(
        eyes_so_far,
        result.eye_events.into_iter().map(|mut e| {
            e.t_ms += offset_ms;
            e
        }),
    );
    let eye_events = eyes_so_far[before..].to_vec();
    // Only the recent past matters for the spacing of the next ones.
    if eyes_so_far.len() > 16 {
        eyes_so_far.drain(..eyes_so_far.len() - 16);
    }
    StreamSegment {
        seq,
        offset_ms,
        duration_ms: result.duration_ms,
        render_id: result.render_id,
        audio_url: result.audio_url,
        cached: result.cached,
        text_start: segment.start,
        text_end: segment.start + segment.text.encode_utf16().count(),
        mouth_cues: result.mouth_cues,
        eye_events,
        words: result.words,
        sentences: result.sentences,
    }
}

/// One segment as a render of its own: from the gateway's memory, the cache, or the
/// pipeline (submitted and waited for).
async fn render_segment(
    app: &App,
    template: &RenderSpec,
    segment: &Segment,
) -> Result<RenderResult, ApiError> {
    let request = RenderRequest {
        text: segment.text.clone(),
        voice_id: Some(template.voice_id.clone()),
        speed: Some(template.speed),
        viseme_set: Some(template.viseme_set),
    };
    let spec = request
        .validate(&template.voice_id)
        .map_err(ApiError::invalid)?;
    let id = render_id(&spec);
    if let Some(hit) = app.cache.get(&id)
        && let Ok(mut result) = serde_json::from_slice::<RenderResult>(&hit)
    {
        result.cached = true;
        return Ok(result);
    }
    let waiter = app.watcher.waiter(&id);
    let submitted = submit(&app.pipeline, spec)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let cached = matches!(submitted, Submitted::Cached(_));
    let record = match submitted {
        Submitted::Cached(record) => record,
        other => {
            if let Some(revision) = other.revision() {
                waiter.seen(revision, other.record().clone());
            }
            waiter
                .wait(app.config.sync_timeout)
                .await
                .unwrap_or_else(|| other.record().clone())
        }
    };
    match record.status {
        RenderStatus::Completed => {
            let mut result = app.completed_result(&record).await?;
            result.cached = cached;
            Ok(result)
        }
        RenderStatus::Failed => {
            let failure = record.reason();
            let mut error = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "render_failed",
                failure.message,
            );
            if let Some(field) = failure.field {
                error = error.field(field);
            }
            Err(error)
        }
        RenderStatus::Pending | RenderStatus::Rendering => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "segment_timeout",
            format!(
                "the segment was not rendered within {} s (render {id} goes on; poll it)",
                app.config.sync_timeout.as_secs()
            ),
        )),
    }
}
