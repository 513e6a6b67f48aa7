//! One WebSocket stream: the client's messages read and checked, text cut into segments,
//! the server's messages written in order, the close.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use avatar_domain::RenderRequest;
use avatar_domain::segment::{Segment, Segmenter};

use super::protocol::*;
use super::segments::{queue_segment, render_segments};
use super::started;
use crate::state::App;

/// A WebSocket stream from `start` to `done` (or to the client's leaving).
pub(super) async fn run_socket(app: App, socket: WebSocket) {
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
                    1009 => "message too big",
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
                    queue_segment(segments, queued, segment).await;
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
            // A message over the size limit ends the stream, saying so.
            Ok(Some(Err(e))) if e.to_string().contains("Message too long") => {
                return Some((
                    1009,
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
