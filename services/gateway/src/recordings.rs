//! Lip-sync of a recording: `POST /v1/avatar/lipsync` (synchronous) and
//! `/v1/avatar/lipsync_async`. The audio comes as the raw body (any `Content-Type` but JSON,
//! the kind of file is found from its bytes) with `transcript` and `viseme_set` as query
//! parameters, or as `multipart/form-data` with the parts `audio`, `transcript`, `timings` and
//! `viseme_set`. It is checked and decoded here, so every client mistake is a 4xx naming the
//! field before anything is stored; then stored under its render id (a hash of the bytes and
//! what came with them) and its job goes to the align stage. The answers, polling included,
//! are a render's.

use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use object_store::ObjectStoreExt;

use avatar_domain::recording::MAX_TIMINGS_BYTES;
use avatar_domain::request::MAX_AUDIO_BYTES;
use avatar_domain::{FieldError, RecordingRequest, RecordingSpec, RenderStatus, recording_id};
use avatar_runtime::record::Recording;
use avatar_runtime::storage::{audio_key, recording_file_name};
use avatar_runtime::submit::submit_recording;

use crate::answers::{Asker, Found, Waited};
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::responses::{AcceptedResponse, FailedResponse, accepted};
use crate::state::App;

/// The largest request body of a lip-sync request: the audio, the timings and room for the
/// form's own framing and a transcript.
pub const MAX_RECORDING_BODY_BYTES: usize = MAX_AUDIO_BYTES + MAX_TIMINGS_BYTES + 256 * 1024;

/// The fields a lip-sync request may have besides its audio.
const FIELDS: [&str; 3] = ["transcript", "timings", "viseme_set"];

/// The form of a lip-sync request (documentation only: the handler reads the body itself).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LipsyncForm {
    /// The recording: WAV, FLAC, MP3, Ogg Opus or Vorbis, WebM Opus or M4A/AAC, any sample
    /// rate, mono or stereo; at most 25 MiB and 10 minutes.
    #[schema(value_type = String, format = Binary)]
    audio: Vec<u8>,
    /// What the recording says (at most 5000 characters): its words are force-aligned.
    /// Without it (and without `timings`) the words are recognised, best effort (English).
    transcript: Option<String>,
    /// The speaking engine's own timings (JSON): ElevenLabs' character alignment, Azure's
    /// word boundaries, or `{"words": [{"word", "start", "end"}]}` in seconds. Not with
    /// `transcript`.
    timings: Option<String>,
    /// `basic` (default), `rhubarb` or `oculus`.
    viseme_set: Option<String>,
}

/// The query parameters of a lip-sync request (documentation only, like [`LipsyncForm`]: the
/// handler reads them itself, to name unknown and repeated ones).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LipsyncQuery {
    /// What the recording says (with a raw body; in a form, a part of its own).
    transcript: Option<String>,
    /// `basic` (default), `rhubarb` or `oculus`.
    viseme_set: Option<String>,
}

/// A recording and what came with it, read from a request.
struct Upload {
    audio: Bytes,
    /// The audio's `Content-Type`, or its file name in a form: a decoding hint.
    hint: Option<String>,
    request: RecordingRequest,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(vec![FieldError::new(field, message)])
}

fn too_large(field: &str, limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::BodyTooLarge,
        format!("the {field} is larger than {limit} bytes"),
    )
    .field(field)
}

/// Sets one of the text fields, refusing unknown and repeated ones.
fn set_field(request: &mut RecordingRequest, name: &str, value: String) -> Result<(), ApiError> {
    let slot = match name {
        "transcript" => &mut request.transcript,
        "timings" => &mut request.timings,
        "viseme_set" => {
            if request.viseme_set.is_some() {
                return Err(invalid(name, "is given twice"));
            }
            request.viseme_set = Some(
                value
                    .parse()
                    .map_err(|e: FieldError| ApiError::invalid(vec![e]))?,
            );
            return Ok(());
        }
        "audio" => {
            return Err(invalid(
                name,
                "goes in the body (raw) or as a form part, not as a query parameter",
            ));
        }
        _ => {
            return Err(invalid(
                name,
                format!(
                    "is not a field of a lip-sync request (audio, {})",
                    FIELDS.join(", ")
                ),
            ));
        }
    };
    if slot.is_some() {
        return Err(invalid(name, "is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads the audio and its fields from the query and the body, raw or a form.
async fn read_upload(request: Request) -> Result<Upload, ApiError> {
    let mut fields = RecordingRequest::default();
    if let Some(query) = request.uri().query() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| invalid("query", format!("cannot be read: {e}")))?;
        for (name, value) in pairs {
            set_field(&mut fields, &name, value)?;
        }
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let essence = content_type
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if essence == "application/json" {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "send the audio file itself as the body (Content-Type: audio/...), or a \
             multipart/form-data form with an `audio` part; to speak a text, POST JSON to \
             /v1/avatar/render",
        )
        .field("Content-Type"));
    }
    if essence != "multipart/form-data" {
        let audio = axum::body::to_bytes(request.into_body(), MAX_AUDIO_BYTES)
            .await
            .map_err(|_| too_large("audio", MAX_AUDIO_BYTES))?;
        // A declared kind of audio helps the decoder; curl's default form type does not.
        let hint =
            (essence.starts_with("audio/") || essence.starts_with("video/")).then_some(essence);
        return Ok(Upload {
            audio,
            hint,
            request: fields,
        });
    }
    // A form that cannot be read is a 400 on `body`, as malformed JSON is for a render.
    let malformed = |message: String| {
        ApiError::new(
            ErrorKind::InvalidForm,
            format!("the body is not a well-formed multipart/form-data form: {message}"),
        )
        .field("body")
    };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| malformed(e.body_text()))?;
    let mut audio: Option<(Bytes, Option<String>)> = None;
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large("body", MAX_RECORDING_BODY_BYTES)
        } else {
            malformed(e.body_text())
        }
    };
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "audio" {
            if audio.is_some() {
                return Err(invalid("audio", "is given twice"));
            }
            let hint = field
                .content_type()
                .map(str::to_owned)
                .filter(|t| t.starts_with("audio/") || t.starts_with("video/"))
                .or_else(|| {
                    field
                        .file_name()
                        .and_then(|n| n.rsplit_once('.'))
                        .map(|(_, ext)| ext.to_ascii_lowercase())
                });
            let bytes = field.bytes().await.map_err(broken)?;
            if bytes.len() > MAX_AUDIO_BYTES {
                return Err(too_large("audio", MAX_AUDIO_BYTES));
            }
            audio = Some((bytes, hint));
        } else {
            let value = field.text().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large("body", MAX_RECORDING_BODY_BYTES)
                } else {
                    invalid(&name, "is not UTF-8 text")
                }
            })?;
            set_field(&mut fields, &name, value)?;
        }
    }
    let (audio, hint) =
        audio.ok_or_else(|| invalid("audio", "is missing: add the recording as a form part"))?;
    Ok(Upload {
        audio,
        hint,
        request: fields,
    })
}

/// A lip-sync request read and its fields checked: its render id and what to submit.
struct Checked {
    id: String,
    spec: RecordingSpec,
    upload: Upload,
}

/// Reads a request and checks its fields; its render id needs nothing else, so an answer
/// already remembered costs no decoding.
async fn check(request: Request) -> Result<Checked, ApiError> {
    let upload = read_upload(request).await?;
    let spec = upload.request.validate().map_err(ApiError::invalid)?;
    Ok(Checked {
        id: recording_id(&upload.audio, &spec),
        spec,
        upload,
    })
}

/// Checks the audio against the limits by decoding it, off the async threads (up to a second
/// for ten minutes of MP3): the extension it is stored with.
async fn check_audio(checked: &Checked) -> Result<&'static str, ApiError> {
    let (audio, hint) = (checked.upload.audio.clone(), checked.upload.hint.clone());
    let container = tokio::task::spawn_blocking(move || {
        avatar_audio::decode_recording(&audio, hint.as_deref()).map(|(_, container)| container)
    })
    .await
    .map_err(|_| ApiError::new(ErrorKind::DecoderFailed, "the audio decoder failed"))?
    .map_err(|e| ApiError::invalid(vec![e]))?;
    Ok(container.extension())
}

/// Stores the recording (unless its render is completed already) and submits its job.
async fn store_and_submit(
    app: &App,
    checked: &Checked,
    extension: &str,
) -> Result<avatar_runtime::submit::Submitted, ApiError> {
    let file = recording_file_name(&checked.id, extension);
    let already = app
        .pipeline
        .renders
        .get(checked.id.clone())
        .await
        .ok()
        .flatten()
        .and_then(|v| avatar_runtime::record::RenderRecord::from_bytes(&v).ok())
        .is_some_and(|r| r.status == RenderStatus::Completed);
    if !already {
        app.store
            .put(&audio_key(&file), checked.upload.audio.clone().into())
            .await
            .map_err(|e| ApiError::unavailable(format!("the audio store is unavailable: {e}")))?;
    }
    let recording = Recording {
        audio_file: file,
        hint: checked.upload.hint.clone(),
        spec: checked.spec.clone(),
    };
    submit_recording(
        &app.pipeline,
        &checked.id,
        recording,
        checked.upload.request.transcript.as_deref(),
    )
    .await
    .map_err(|e| ApiError::unavailable(e.to_string()))
}

/// Synchronous lip-sync of a recording: waits up to `SYNC_TIMEOUT_SECONDS`.
///
/// The body is the audio file itself (any `Content-Type` but JSON; `transcript` and
/// `viseme_set` as query parameters), or a `multipart/form-data` form. With a transcript the
/// words are force-aligned; with `timings` they are taken as given; with neither they are
/// recognised (best effort, English; the result then has `transcript` and every word
/// `aligned: false` with a `confidence`). The result is a render's: `audio_url` serves the
/// uploaded file.
#[utoipa::path(
    post,
    tag = "lipsync",
    path = "/v1/avatar/lipsync",
    params(LipsyncQuery),
    request_body(
        content(
            (LipsyncForm = "multipart/form-data"),
            (Vec<u8> = "application/octet-stream"),
        ),
        description = "A form with the recording as `audio`, or the recording itself",
    ),
    responses(
        (status = 200, description = "The completed lip-sync", body = avatar_domain::RenderResult),
        (status = 202, description = "Still aligning after SYNC_TIMEOUT_SECONDS: poll `poll_url`", body = AcceptedResponse),
        (status = 400, description = "The form is malformed (`field`: `body`)", body = ErrorBody),
        (status = 413, description = "The audio is larger than 25 MiB", body = ErrorBody),
        (status = 415, description = "The body is JSON (send the audio itself)", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`): not audio, an unsupported codec, damaged, silent, longer than 10 minutes, an empty transcript, unreadable timings", body = ErrorBody),
        (status = 500, description = "The lip-sync failed", body = FailedResponse),
        (status = 503, description = "Overloaded or NATS unavailable; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn lipsync_sync(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let checked = check(request).await?;
    let id = checked.id.clone();
    let sent = checked
        .upload
        .request
        .transcript
        .clone()
        .unwrap_or_default();
    let normalised = checked.spec.render_spec().text;
    if let Some(answer) = app.memory_answer(&id, &sent, &normalised) {
        return Ok(answer);
    }
    let extension = check_audio(&checked).await?;
    let _slot = app.enter_slot(&id)?;
    let Waited { record, cached, .. } = app
        .wait_for_submission(
            &id,
            app.config.sync_timeout,
            store_and_submit(&app, &checked, extension),
        )
        .await?;
    if cached {
        app.metrics.cache_hits.with_label_values(&["kv"]).inc();
    }
    let response = app
        .answer(
            &record,
            Found::cached_if(cached),
            Asker::Waiter,
            Some(&sent),
        )
        .await;
    tracing::debug!(
        render_id = %id,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        status = ?record.status,
        "sync lip-sync answered"
    );
    Ok(response)
}

/// Asynchronous lip-sync of a recording: answers at once with the poll URL. The request is
/// the synchronous one's.
#[utoipa::path(
    post,
    tag = "lipsync",
    path = "/v1/avatar/lipsync_async",
    params(LipsyncQuery),
    request_body(
        content(
            (LipsyncForm = "multipart/form-data"),
            (Vec<u8> = "application/octet-stream"),
        ),
        description = "A form with the recording as `audio`, or the recording itself",
    ),
    responses(
        (status = 202, description = "Queued (or joined an identical lip-sync under way)", body = AcceptedResponse),
        (status = 200, description = "Already done: poll `poll_url` for the result", body = AcceptedResponse),
        (status = 400, description = "The form is malformed (`field`: `body`)", body = ErrorBody),
        (status = 413, description = "The audio is larger than 25 MiB", body = ErrorBody),
        (status = 415, description = "The body is JSON (send the audio itself)", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`)", body = ErrorBody),
        (status = 503, description = "NATS unavailable; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
pub async fn lipsync_async(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let checked = check(request).await?;
    let id = checked.id.clone();
    if app.cache.get(&id).is_some() {
        return Ok((StatusCode::OK, Json(accepted(&id, RenderStatus::Completed))).into_response());
    }
    let extension = check_audio(&checked).await?;
    let submitted = store_and_submit(&app, &checked, extension).await?;
    let record = submitted.record();
    let status = if record.status == RenderStatus::Completed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(accepted(&id, record.status))).into_response())
}
