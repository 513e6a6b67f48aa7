//! Live lip-sync: a speaker's audio in as it is captured, the mouth out at a fixed lag, and
//! each utterance corrected after its pause (`GET /v1/avatar/lipsync/live`, a WebSocket).
//!
//! The gateway decodes the client's audio (16-bit PCM at its own rate, or Opus packets) to
//! the aligner's 16 kHz, asks an align worker to take the stream over NATS core
//! ([`avatar_runtime::live`]: a live stream is worth nothing later, so nothing is stored),
//! and forwards the worker's answers ([`avatar_domain::LiveMessage`]) as they come.

mod protocol;
mod socket;

pub use protocol::{LiveClientMessage, MAX_LIVE_MESSAGE_BYTES};

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::Response;

use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::state::App;
use crate::stream::stream_permit;

/// The live lip-sync WebSocket.
#[utoipa::path(
    get,
    tag = "lipsync",
    path = "/v1/avatar/lipsync/live",
    responses(
        (status = 101, description = "A WebSocket: the client sends a `LiveClientMessage` `start` (JSON text), then the audio as binary messages (`pcm16`: 16-bit little-endian samples, whole frames; `opus`: one packet each) and `text`/`end` as JSON text; the server answers with `LiveMessage`s"),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 503, description = "Too many streams open; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn live_ws(
    State(app): State<App>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(ErrorKind::WebSocketRequired, format!("this endpoint is a WebSocket ({e}); for a whole recording, POST it to /v1/avatar/lipsync"),
        )
        .field("Upgrade")
    })?;
    let permit = stream_permit(&app)?;
    Ok(upgrade
        .max_message_size(MAX_LIVE_MESSAGE_BYTES)
        .max_frame_size(MAX_LIVE_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            socket::run_live(app, socket).await;
            drop(permit);
        }))
}
