//! What the gateway's WebSockets share: the writer that sends a socket's messages in order
//! and closes it, and the reading of a client's next message.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The stream is over, every answer sent.
pub const DONE: u16 = 1000;
/// No message for the idle timeout.
pub const IDLE: u16 = 1001;
/// A client's mistake that ends the stream.
pub const REFUSED: u16 = 1008;
/// A message over the size limit.
pub const TOO_BIG: u16 = 1009;
/// The worker answering the stream was lost.
pub const LOST: u16 = 1011;
/// Nothing can take the stream now; try again later.
pub const TRY_AGAIN: u16 = 1013;

/// A socket's sending half: messages in order through `out`, a fatal one through `close`
/// (sent at once, then the close frame with its code).
pub struct Writer<T> {
    pub out: mpsc::Sender<T>,
    pub close: oneshot::Sender<(u16, T)>,
    pub task: JoinHandle<()>,
}

/// Starts the writer of `sink`: up to `outbox` messages wait for a slow reader; after a
/// message for which `last` holds, the socket closes with [`DONE`].
pub fn spawn_writer<T: Serialize + Send + 'static>(
    mut sink: SplitSink<WebSocket, Message>,
    outbox: usize,
    last: fn(&T) -> bool,
) -> Writer<T> {
    let (out, mut messages) = mpsc::channel::<T>(outbox);
    let (close, mut closing) = oneshot::channel::<(u16, T)>();
    let task = tokio::spawn(async move {
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
                message = messages.recv() => match message {
                    Some(message) => {
                        let done = last(&message).then_some(DONE);
                        (message, done)
                    }
                    None => break,
                },
            };
            let text = serde_json::to_string(&message).expect("a message serialises");
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
            if let Some(code) = close_code {
                let reason = match code {
                    DONE => "done",
                    IDLE => "idle",
                    TOO_BIG => "message too big",
                    LOST => "worker lost",
                    TRY_AGAIN => "try again later",
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
    Writer { out, close, task }
}

/// What came from the client.
pub enum Incoming {
    Text(Utf8Bytes),
    Binary(bytes::Bytes),
    /// Nothing within the wait.
    Quiet,
    /// A message over the socket's size limit.
    TooBig,
    /// The client closed the socket or it broke.
    Gone,
}

/// What the socket's next item is, or `None` for a ping or pong (answered already).
pub fn incoming(next: Option<Result<Message, axum::Error>>) -> Option<Incoming> {
    match next {
        Some(Err(e)) if e.to_string().contains("Message too long") => Some(Incoming::TooBig),
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Some(Incoming::Gone),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
        Some(Ok(Message::Text(text))) => Some(Incoming::Text(text)),
        Some(Ok(Message::Binary(bytes))) => Some(Incoming::Binary(bytes)),
    }
}

/// The client's next data message within `wait` (pings and pongs are answered and skipped,
/// and count as the client being there).
pub async fn next_message(source: &mut SplitStream<WebSocket>, wait: Duration) -> Incoming {
    loop {
        match tokio::time::timeout(wait, source.next()).await {
            Err(_) => return Incoming::Quiet,
            Ok(next) => {
                if let Some(incoming) = incoming(next) {
                    return incoming;
                }
            }
        }
    }
}
