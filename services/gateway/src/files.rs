//! `GET /audio/{file}` and `GET /results/{file}`: a render's audio, and the full result
//! JSON the controller stores for custom resources, from the object store (local or S3)
//! through the gateway. One code path for both backends, so a browser fetches audio from the API's own
//! origin whatever the storage; files are immutable (named by render id and synthesis run, or an upload's render id)
//! and cached for a year. Single byte ranges are honoured, as `<audio>` seeking needs.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use avatar_runtime::storage::{audio_key, is_audio_file_name, is_result_file_name, result_key};

use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::state::App;

/// A render's audio file.
#[utoipa::path(
    get,
    tag = "audio",
    path = "/audio/{file}",
    operation_id = "serve",
    params(("file" = String, Path, description = "The file name from a render's audio_url")),
    responses(
        (status = 200, description = "The audio: audio/ogg or audio/wav, or an uploaded recording as its own kind (audio/mpeg, audio/flac, ...)"),
        (status = 206, description = "The requested byte range"),
        (status = 404, description = "No such file", body = ErrorBody),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
    )
)]
pub async fn serve_audio(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Synthesised audio is Ogg or WAV; an uploaded recording is served as the kind it is.
    let content_type = file
        .rsplit_once('.')
        .and_then(|(_, extension)| avatar_audio::Container::from_extension(extension))
        .map(avatar_audio::Container::mime);
    let Some(content_type) = content_type.filter(|_| is_audio_file_name(&file)) else {
        return Err(not_found(&file));
    };
    serve_object(&app, &audio_key(&file), content_type, &file, &headers).await
}

/// A render's full result (the completed response), as stored for an AvatarRender resource.
#[utoipa::path(
    get,
    tag = "renders",
    path = "/results/{file}",
    params(("file" = String, Path, description = "`<render id>.json`, from an AvatarRender's status.resultUrl")),
    responses(
        (status = 200, description = "The completed render", body = avatar_domain::RenderResult),
        (status = 404, description = "No such result", body = ErrorBody),
    )
)]
pub async fn serve_result(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(id) = file
        .strip_suffix(".json")
        .filter(|_| is_result_file_name(&file))
    else {
        return Err(not_found(&file));
    };
    serve_object(&app, &result_key(id), "application/json", &file, &headers).await
}

fn not_found(file: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no file {file:?}")).field("file")
}

fn unsatisfiable(message: String) -> ApiError {
    ApiError::new(ErrorKind::BadRange, message).field("Range")
}

fn unavailable(e: object_store::Error) -> ApiError {
    ApiError::unavailable(format!("the object store is unavailable: {e}"))
}

/// One immutable object, whole or one byte range of it.
async fn serve_object(
    app: &App,
    key: &object_store::path::Path,
    content_type: &'static str,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => Some(
            parse_range(value)
                .ok_or_else(|| unsatisfiable(format!("unsupported range {value:?}")))?,
        ),
    };
    // An empty suffix (`bytes=-0`) selects nothing: unsatisfiable whatever the file.
    if let Some(GetRange::Suffix(0)) = range {
        return Err(unsatisfiable(format!(
            "{} selects no bytes",
            GetRange::Suffix(0)
        )));
    }
    let options = GetOptions {
        range: range.clone(),
        ..Default::default()
    };
    let result = match app.store.get_opts(key, options).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Err(not_found(file)),
        // Whether the range was outside the file is judged from the file's size, not from
        // the store's wording (only on this error path: a served range costs one request).
        Err(e) => {
            if let Some(range) = &range
                && let Ok(meta) = app.store.head(key).await
                && range.as_range(meta.size).is_err()
            {
                return Err(unsatisfiable(format!(
                    "{range} is outside the file ({} bytes)",
                    meta.size
                )));
            }
            return Err(unavailable(e));
        }
    };
    let total = result.meta.size;
    let served = result.range.clone();
    let bytes = result.bytes().await.map_err(unavailable)?;
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!(
            "bytes {}-{}/{total}",
            served.start,
            served.end.saturating_sub(1)
        );
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ASCII"),
        );
    }
    Ok(response)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range only).
fn parse_range(value: &str) -> Option<GetRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    match (start.trim(), end.trim()) {
        ("", n) => Some(GetRange::Suffix(n.parse().ok()?)),
        (a, "") => Some(GetRange::Offset(a.parse().ok()?)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some(GetRange::Bounded(a..b + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99"), Some(GetRange::Bounded(0..100)));
        assert_eq!(parse_range("bytes=100-"), Some(GetRange::Offset(100)));
        assert_eq!(parse_range("bytes=-50"), Some(GetRange::Suffix(50)));
        assert_eq!(parse_range("bytes=5-1"), None);
        assert_eq!(parse_range("bytes=0-1,5-6"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }
}
