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

/// A fatal error: the close code and the message sent before it.
type Fatal = (u16, ServerMessage);

/// What a client message leads to.
enum Step {
    /// Read the next message.
    Next,
    /// The client is done (`end`) or gone: what was queued finishes, then `done`.
    Finish,
    /// The stream ends with this error.
    Close(Fatal),
}

/// A stream's reading side: its text cut into segments and, once started, the renderer the
/// segments go to.
struct Session<'a> {
    app: &'a App,
    out: &'a mpsc::Sender<ServerMessage>,
    segmenter: Segmenter,
    /// The renderer's queue and the characters it holds, after `start`.
    renderer: Option<(mpsc::Sender<Segment>, Arc<AtomicUsize>)>,
    /// All the text taken so far, characters.
    received: usize,
}

/// Reads the client's messages until `end`, a fatal error (returned with its close code),
/// or the client leaving (segments not yet started are then dropped with the channel).
async fn read_client(
    app: &App,
    source: &mut futures::stream::SplitStream<WebSocket>,
    out: &mpsc::Sender<ServerMessage>,
) -> Option<Fatal> {
    let mut session = Session {
        app,
        out,
        segmenter: Segmenter::new(),
        renderer: None,
        received: 0,
    };
    loop {
        // Quiet for `idle_flush` with text pending: speak it.
        let pending = session.segmenter.pending_chars() > 0;
        let wait = if pending {
            app.config.stream_idle_flush
        } else {
            app.config.stream_idle_timeout
        };
        let step = match next_message(source, wait).await {
            Incoming::Quiet if pending => session.on_flush().await,
            Incoming::Quiet => session.on_idle(),
            // A message over the size limit ends the stream, saying so.
            Incoming::TooBig => Step::Close((
                TOO_BIG,
                ServerMessage::error(
                    "limit",
                    format!(
                        "a message is at most {MAX_MESSAGE_BYTES} bytes; send text in smaller pieces"
                    ),
                    Some("text"),
                ),
            )),
            // The client left: dropping the session cancels what has not started.
            Incoming::Gone => return None,
            Incoming::Binary(_) => {
                session
                    .answer(ServerMessage::error(
                        "invalid_message",
                        "messages are JSON text, not binary",
                        Some("type"),
                    ))
                    .await
            }
            Incoming::Text(text) => session.on_message(text.as_str()).await,
        };
        match step {
            Step::Next => {}
            Step::Finish => return None,
            Step::Close(fatal) => return Some(fatal),
        }
    }
}

impl Session<'_> {
    /// Sends a message that does not end the stream.
    async fn answer(&self, message: ServerMessage) -> Step {
        let _ = self.out.send(message).await;
        Step::Next
    }

    async fn on_message(&mut self, text: &str) -> Step {
        let message = match parse_client(text) {
            Ok(m) => m,
            Err(error) => return self.answer(error).await,
        };
        match (message, self.renderer.is_some()) {
            (
                ClientMessage::Start {
                    voice_id,
                    speed,
                    viseme_set,
                },
                false,
            ) => {
                self.on_start(RenderRequest {
                    text: "start".into(),
                    voice_id,
                    speed,
                    viseme_set,
                })
                .await
            }
            (ClientMessage::Start { .. }, true) => {
                self.answer(ServerMessage::error(
                    "invalid_message",
                    "the stream has started already",
                    Some("type"),
                ))
                .await
            }
            (_, false) => Step::Close((
                REFUSED,
                ServerMessage::error(
                    "invalid_message",
                    "the first message must be `start`",
                    Some("type"),
                ),
            )),
            (ClientMessage::Text { text }, true) => self.on_text(&text).await,
            (ClientMessage::Flush, true) => self.on_flush().await,
            (ClientMessage::End, true) => self.on_end().await,
        }
    }

    /// `start`: the settings checked, the renderer started; a bad one is answered and the
    /// client may send a better one.
    async fn on_start(&mut self, request: RenderRequest) -> Step {
        match self.app.validate_settings(&request) {
            Ok(valid) => {
                let spec = valid.spec;
                let _ = self.out.send(started(self.app, &spec)).await;
                let (segments, queue_rx) = mpsc::channel::<Segment>(1);
                let queued = Arc::new(AtomicUsize::new(0));
                tokio::spawn(render_segments(
                    self.app.clone(),
                    spec,
                    queue_rx,
                    self.out.clone(),
                    queued.clone(),
                ));
                self.renderer = Some((segments, queued));
                Step::Next
            }
            Err(e) => self.answer(e.into()).await,
        }
    }

    /// More text: refused whole when the pending text would pass its limit, the stream
    /// ended when all its text would.
    async fn on_text(&mut self, text: &str) -> Step {
        let Some((segments, queued)) = &self.renderer else {
            return Step::Next;
        };
        let chars = text.chars().count();
        if self.received + chars > MAX_STREAM_CHARS {
            return Step::Close((
                REFUSED,
                ServerMessage::error(
                    "limit",
                    format!("a stream takes at most {MAX_STREAM_CHARS} characters"),
                    Some("text"),
                ),
            ));
        }
        let pending = self.segmenter.pending_chars() + queued.load(Ordering::Relaxed);
        if pending + chars > MAX_PENDING_CHARS {
            let _ = self
                .out
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
            return Step::Next;
        }
        self.received += chars;
        for segment in self.segmenter.push(text) {
            queue_segment(segments, queued, segment).await;
        }
        Step::Next
    }

    /// Speaks what is pending now (`flush`, or quiet for `STREAM_IDLE_FLUSH_MS`).
    async fn on_flush(&mut self) -> Step {
        if let Some((segments, queued)) = &self.renderer
            && let Some(segment) = self.segmenter.flush()
        {
            queue_segment(segments, queued, segment).await;
        }
        Step::Next
    }

    /// Quiet for `STREAM_IDLE_TIMEOUT_SECONDS` with nothing pending: the stream is closed.
    fn on_idle(&self) -> Step {
        Step::Close((
            IDLE,
            ServerMessage::error(
                "idle",
                format!(
                    "no message for {} s; the stream is closed",
                    self.app.config.stream_idle_timeout.as_secs()
                ),
                None,
            ),
        ))
    }

    /// `end`: what is pending is spoken; dropping the renderer's queue (with the session) lets
    /// it finish and send `done`, after which the writer closes.
    async fn on_end(&mut self) -> Step {
        self.on_flush().await;
        Step::Finish
    }
}
