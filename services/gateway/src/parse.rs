//! Reading a render request: the body (declared JSON, within the size limit), then the JSON
//! itself, every problem a 4xx naming its field.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;

use avatar_domain::{FieldError, RenderRequest};

use crate::error::{ApiError, ErrorKind};

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
            ErrorKind::UnsupportedMediaType,
            "the request body must be JSON (Content-Type: application/json)",
        )
        .field("Content-Type"));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorKind::BodyTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
        .field("body")
    })
}

/// Parses a render request; a syntax error is a 400 on `body`, a bad value a 422 on its field.
pub fn parse_request(bytes: &[u8]) -> Result<RenderRequest, ApiError> {
    let syntax = |e: &serde_json::Error| {
        ApiError::new(
            ErrorKind::InvalidJson,
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
            let field = if path != "." && !path.is_empty() {
                path
            } else {
                // An unknown or repeated key, or a missing `text`: found from the keys
                // themselves (read only on this error path), not from serde's wording.
                serde_json::from_slice::<ObjectKeys>(bytes)
                    .ok()
                    .and_then(|keys| keys.at_fault())
                    .unwrap_or_else(|| "body".into())
            };
            let message = inner.to_string();
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

/// A socket's `{"type": ..., "text": ...}` message (its `type` already read).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextMessage {
    #[serde(rename = "type")]
    _type: String,
    pub text: String,
}

/// A socket's message of nothing but its `type` (`flush`, `end`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BareMessage {
    #[serde(rename = "type")]
    _type: String,
}

/// One WebSocket message of type `T` (JSON already known to be an object with a `type`), or
/// the field at fault: an unknown or missing field named as such, a bad value by its path.
pub fn parse_message<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, FieldError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let named = inner
            .split('`')
            .nth(1)
            .filter(|_| inner.starts_with("unknown field") || inner.starts_with("missing field"));
        let field = named.map_or(path, str::to_owned);
        FieldError::new(field, inner)
    })
}

/// The top-level keys of a JSON object, in order, repeats included.
struct ObjectKeys(Vec<String>);

impl ObjectKeys {
    /// The first key that is not a request field, else the first repeated one, else `text`
    /// if it is missing.
    fn at_fault(&self) -> Option<String> {
        let keys = &self.0;
        keys.iter()
            .find(|k| !RenderRequest::FIELDS.contains(&k.as_str()))
            .or_else(|| {
                keys.iter()
                    .enumerate()
                    .find(|(i, k)| keys[..*i].contains(k))
                    .map(|(_, k)| k)
            })
            .cloned()
            .or_else(|| (!keys.iter().any(|k| k == "text")).then(|| "text".to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for ObjectKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ObjectKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ObjectKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(ObjectKeys(keys))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        serde_json::from_str::<ObjectKeys>(body).unwrap().at_fault()
    }

    #[test]
    fn the_field_at_fault_comes_from_the_keys() {
        assert_eq!(
            field_of(r#"{"text": "a", "pitch": 1}"#).as_deref(),
            Some("pitch")
        );
        assert_eq!(
            field_of(r#"{"text": "a", "text": "b"}"#).as_deref(),
            Some("text")
        );
        assert_eq!(field_of(r#"{"speed": 1}"#).as_deref(), Some("text"));
        assert_eq!(field_of(r#"{"text": "a", "speed": 1}"#), None);
    }
}
