//! Errors as the API answers them: a status and a JSON body that names the field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use avatar_domain::FieldError;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_request`.
    pub error: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, if one is (`text`, `speed`, `voice_id`, `viseme_set`,
    /// `body`, `Content-Type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// Every kind of error the API answers: its status and its stable code (`ErrorBody::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 400: a multipart form that cannot be read.
    InvalidForm,
    /// 422: a field is invalid.
    InvalidRequest,
    /// 404: no such endpoint, render or file.
    NotFound,
    /// 416: a `Range` the file cannot satisfy.
    BadRange,
    /// 415: the body is not of a type the endpoint takes.
    UnsupportedMediaType,
    /// 413: the body is over its limit.
    BodyTooLarge,
    /// 426: a WebSocket endpoint asked without the upgrade.
    WebSocketRequired,
    /// 503: too many renders or streams; retry shortly.
    Overloaded,
    /// 503: NATS, the store or the workers are not there; retry.
    Unavailable,
    /// 409: the render has not started yet (its subtitles are not there).
    RenderPending,
    /// 409: the render is under way (its subtitles are not there yet).
    RenderRendering,
    /// 409: the render failed, so it has no subtitles.
    RenderFailedNoSubtitles,
    /// 500: a stream segment's render failed.
    RenderFailed,
    /// 504: a stream segment was not rendered in time.
    SegmentTimeout,
    /// 410: the client left before the segment started.
    Cancelled,
    /// 500: a stored record cannot be read.
    CorruptRecord,
    /// 500: the gateway could not run its decoder.
    DecoderFailed,
}

impl ErrorKind {
    pub const ALL: [Self; 18] = [
        Self::InvalidJson,
        Self::InvalidForm,
        Self::InvalidRequest,
        Self::NotFound,
        Self::BadRange,
        Self::UnsupportedMediaType,
        Self::BodyTooLarge,
        Self::WebSocketRequired,
        Self::Overloaded,
        Self::Unavailable,
        Self::RenderPending,
        Self::RenderRendering,
        Self::RenderFailedNoSubtitles,
        Self::RenderFailed,
        Self::SegmentTimeout,
        Self::Cancelled,
        Self::CorruptRecord,
        Self::DecoderFailed,
    ];

    pub const fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson | Self::InvalidForm => StatusCode::BAD_REQUEST,
            Self::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRange => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::WebSocketRequired => StatusCode::UPGRADE_REQUIRED,
            Self::Overloaded | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RenderPending | Self::RenderRendering | Self::RenderFailedNoSubtitles => {
                StatusCode::CONFLICT
            }
            Self::RenderFailed | Self::CorruptRecord | Self::DecoderFailed => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::SegmentTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Cancelled => StatusCode::GONE,
        }
    }

    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidForm => "invalid_form",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::BadRange => "bad_range",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTooLarge => "body_too_large",
            Self::WebSocketRequired => "websocket_required",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::RenderPending => "render_pending",
            Self::RenderRendering => "render_rendering",
            Self::RenderFailedNoSubtitles | Self::RenderFailed => "render_failed",
            Self::SegmentTimeout => "segment_timeout",
            Self::Cancelled => "cancelled",
            Self::CorruptRecord => "corrupt_record",
            Self::DecoderFailed => "decoder_failed",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds a client should wait before retrying (503/429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: kind.status(),
            body: ErrorBody {
                error: kind.code(),
                message: message.into(),
                field: None,
                details: Vec::new(),
            },
            retry_after: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 422 listing every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let field = errors.first().map(|e| e.field.clone());
        let mut error = Self::new(ErrorKind::InvalidRequest, message);
        error.body.field = field;
        error.body.details = errors;
        error
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message).retry_after(2)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<avatar_domain::Refused> for ApiError {
    fn from(refused: avatar_domain::Refused) -> Self {
        match refused {
            avatar_domain::Refused::Invalid(errors) => Self::invalid(errors),
            avatar_domain::Refused::NoVoicesYet => Self::unavailable(avatar_domain::NO_VOICES_YET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/api.md's table of error codes is the enum's: each kind's code on a row of its status.
    #[test]
    fn every_error_kind_is_documented_with_its_status() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
                .unwrap();
        for kind in ErrorKind::ALL {
            let row = format!("| {} |", kind.status().as_u16());
            let code = format!("`{}`", kind.code());
            assert!(
                docs.lines()
                    .any(|l| l.starts_with(&row) && l.contains(&code)),
                "{kind:?}: no row `{row} ... {code}` in docs/api.md"
            );
        }
    }
}
