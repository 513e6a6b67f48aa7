//! The API's response bodies (besides [`avatar_domain::RenderResult`] and the error body).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use avatar_domain::{RenderResult, RenderStatus, VoiceInfo};

/// A render accepted and not finished yet (or, for async submissions, possibly finished).
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub render_id: String,
    pub status: RenderStatus,
    /// Where to poll for the result (relative to the API's base URL).
    pub poll_url: String,
}

/// A render that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedResponse {
    pub render_id: String,
    pub status: RenderStatus,
    /// Why it failed.
    pub error: String,
    /// The request field to blame, when the request is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    pub nats_connected: bool,
    /// Jobs queued or in progress over all stages (`null` when unknown).
    pub pending_jobs: Option<u64>,
}

/// Whether a render can be accepted now, and if not, why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Why not (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub nats_connected: bool,
    /// Voices live tts workers speak now.
    pub voices_live: usize,
    /// Voices known at all (live, or announced before): requests for them are accepted and
    /// wait for a worker.
    pub voices_known: usize,
}

/// The process is up and serving.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveResponse {
    /// Always `alive`.
    pub status: &'static str,
}

/// What polling answers: the completed result, the failure, or the status of a render
/// still under way (documentation only: the handler writes one of these).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PollResponse {
    Completed(RenderResult),
    Failed(FailedResponse),
    UnderWay(AcceptedResponse),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoicesResponse {
    pub voices: Vec<VoiceInfo>,
    /// The voice used when a request names none.
    pub default_voice: Option<String>,
}

pub fn accepted(render_id: &str, status: RenderStatus) -> AcceptedResponse {
    AcceptedResponse {
        render_id: render_id.to_owned(),
        status,
        poll_url: format!("/v1/avatar/render/{render_id}"),
    }
}

pub fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
