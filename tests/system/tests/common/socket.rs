//! A test's WebSocket to the gateway: JSON text messages both ways, the close code at the end.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Stack;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `path` on the stack's gateway.
pub async fn connect(stack: &Stack, path: &str) -> Socket {
    let url = stack.url(path).replace("http://", "ws://");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Sends `message` as a JSON text message.
pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The server's next JSON message (`None` once it closed), and the close code if it closed.
pub async fn next(socket: &mut Socket) -> Result<Value, Option<CloseCode>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(120), socket.next())
            .await
            .expect("a message within 120 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Messages until the server closes; the close code.
pub async fn until_closed(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
    let mut messages = Vec::new();
    loop {
        match next(socket).await {
            Ok(m) => messages.push(m),
            Err(code) => return (messages, code),
        }
    }
}
