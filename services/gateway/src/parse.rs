//! Reading a render request: the body (declared JSON, within the size limit), then the JSON
//! itself, every problem a 4xx naming its field.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;

use avatar_domain::{FieldError, RenderRequest};

use crate::error::ApiError;

/// The body of a JSON request: a 415 naming `Content-Type` unless it is declared JSON, a 413
/// naming `body` beyond `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        )
        .field("Content-Type"));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .field("body")
    })
}

/// Parses a render request; a syntax error is a 400 on `body`, a bad value a 422 on its field.
pub fn parse_request(bytes: &[u8]) -> Result<RenderRequest, ApiError> {
    let syntax = |e: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
        .field("body")
    };
    // serde would also accept a struct as a JSON array; the contract says object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(syntax(&e)),
            Ok(_) => Err(ApiError::invalid(vec![FieldError::new(
                "body",
                "must be a JSON object with at least a \"text\" field",
            )])),
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let request: RenderRequest =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return syntax(&inner);
            }
            let message = inner.to_string();
            // serde names unknown and missing fields in backticks; otherwise the path does.
            let named = message.split('`').nth(1).map(str::to_owned);
            let field = if path != "." && !path.is_empty() {
                path
            } else {
                named.unwrap_or_else(|| "body".into())
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ApiError::invalid(vec![FieldError::new(field, message)])
        })?;
    deserializer.end().map_err(|e| syntax(&e))?;
    Ok(request)
}
