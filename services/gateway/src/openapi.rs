//! The OpenAPI document: served at `/openapi.json`, committed as `openapi.json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use avatar_domain::{RenderRequest, RenderResult};

use crate::error::ErrorBody;
use crate::responses::{
    AcceptedResponse, FailedResponse, HealthResponse, LiveResponse, PollResponse, ReadyResponse,
    VoicesResponse,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Avatar pipeline API",
        description = "Text to speech audio (Ogg/Opus), lip-sync mouth cues and eye events for 2-D avatars; lip-sync of recordings (a person, or another TTS engine), with or without a transcript, and of live audio as it is captured.",
        license(name = "GPL-3.0-or-later")
    ),
    paths(
        crate::renders::render_sync,
        crate::renders::render_async,
        crate::recordings::lipsync_sync,
        crate::recordings::lipsync_async,
        crate::live::live_ws,
        crate::renders::poll,
        crate::renders::subtitles,
        crate::stream::stream_ws,
        crate::stream::stream_sse,
        crate::service::voices,
        crate::service::health,
        crate::service::livez,
        crate::service::readyz,
        crate::service::metrics,
        crate::files::serve_audio,
        crate::files::serve_result
    ),
    components(schemas(
        RenderRequest,
        RenderResult,
        crate::recordings::LipsyncForm,
        AcceptedResponse,
        FailedResponse,
        ErrorBody,
        HealthResponse,
        LiveResponse,
        ReadyResponse,
        PollResponse,
        VoicesResponse,
        crate::stream::ClientMessage,
        crate::stream::ServerMessage,
        crate::stream::StreamSegment,
        crate::stream::StreamLimits,
        crate::stream::SseEvent,
        crate::live::LiveClientMessage,
        avatar_domain::LiveMessage,
        avatar_domain::LiveLimits,
        avatar_domain::LiveFormat
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document, as committed in `openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("OpenAPI serialises")
        + "\n"
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
