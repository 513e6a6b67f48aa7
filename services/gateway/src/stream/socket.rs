//! One WebSocket stream: the client's messages read and checked, text cut into segments,
//! the server's messages written in order, the close.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::WebSocket;
use futures::StreamExt;
use tokio::sync::mpsc;

use avatar_domain::RenderRequest;
use avatar_domain::segment::{Segment, Segmenter};

use super::protocol::*;
use super::segments::{queue_segment, render_segments};
use super::started;
use crate::state::App;
use crate::ws::{IDLE, Incoming, REFUSED, TOO_BIG, next_message, spawn_writer};

/// A WebSocket stream from `start` to `done` (or to the client's leaving).
pub(super) async fn run_socket(app: App, socket: WebSocket) {
    let (sink, mut source) = socket.split();
    let writer = spawn_writer(sink, OUTBOX, |m| matches!(m, ServerMessage::Done { .. }));
    if let Some(fatal) = read_client(&app, &mut source, &writer.out).await {
        let _ = writer.close.send(fatal);
    }
    drop(writer.out);
    let _ = writer.task.await;
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
        let text = match next_message(source, wait).await {
            Incoming::Quiet if segmenter.pending_chars() > 0 => {
                if let Some((segments, queued)) = &session
                    && let Some(segment) = segmenter.flush()
                {
                    queue_segment(segments, queued, segment).await;
                }
                continue;
            }
            Incoming::Quiet => {
                return Some((
                    IDLE,
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
            // A message over the size limit ends the stream, saying so.
            Incoming::TooBig => {
                return Some((
                    TOO_BIG,
                    ServerMessage::error(
                        "limit",
                        format!(
                            "a message is at most {MAX_MESSAGE_BYTES} bytes; send text in smaller pieces"
                        ),
                        Some("text"),
                    ),
                ));
            }
            // The client left: dropping the session cancels what has not started.
            Incoming::Gone => return None,
            Incoming::Text(text) => text,
            Incoming::Binary(_) => {
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
                    Ok(valid) => {
                        let spec = valid.spec;
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
                    REFUSED,
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
                        REFUSED,
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
                    queue_segment(segments, queued, segment).await;
                }
            }
            (ClientMessage::Flush, Some((segments, queued))) => {
                if let Some(segment) = segmenter.flush() {
                    queue_segment(segments, queued, segment).await;
                }
            }
            (ClientMessage::End, Some((segments, queued))) => {
                if let Some(segment) = segmenter.flush() {
                    queue_segment(segments, queued, segment).await;
                }
                // Dropping the sender (with the session) lets the renderer finish and send
                // `done`; the writer then closes.
                return None;
            }
        }
    }
}
