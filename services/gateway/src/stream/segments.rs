//! A stream's segments rendered through the pipeline, a few at once, and answered in order
//! in the stream's time and text.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use futures::StreamExt;
use tokio::sync::mpsc;

use avatar_domain::segment::Segment;
use avatar_domain::{EyeEvent, RenderRequest, RenderResult, RenderSpec, RenderStatus, VoiceCheck};

use super::protocol::*;
use crate::answers::Waited;
use crate::error::{ApiError, ErrorKind};
use crate::state::App;

/// Hands a segment to the renderer, counting its characters as waiting until it starts.
pub(super) async fn queue_segment(
    segments: &mpsc::Sender<Segment>,
    queued: &AtomicUsize,
    segment: Segment,
) {
    queued.fetch_add(segment.text.chars().count(), Ordering::Relaxed);
    let _ = segments.send(segment).await;
}

/// Renders the segments that arrive on `queue`, up to [`MAX_SEGMENTS_IN_FLIGHT`] at once,
/// and sends them in order in the stream's time and text, then `done`.
pub(super) async fn render_segments(
    app: App,
    spec: RenderSpec,
    queue: mpsc::Receiver<Segment>,
    out: mpsc::Sender<ServerMessage>,
    queued: Arc<AtomicUsize>,
) {
    let gone = out.clone();
    let segments = futures::stream::poll_fn({
        let mut queue = queue;
        move |cx| queue.poll_recv(cx)
    })
    // Taken from the queue only when a place in flight is free: from then on it is started.
    .inspect({
        let queued = queued.clone();
        move |segment| {
            queued.fetch_sub(segment.text.chars().count(), Ordering::Relaxed);
        }
    })
    .filter(|s| std::future::ready(s.is_speakable()))
    .enumerate()
    .map(|(seq, segment)| {
        let (app, spec) = (app.clone(), spec.clone());
        let gone = gone.clone();
        let taken = std::time::Instant::now();
        async move {
            // A client that left cancels the segments not started yet.
            let outcome = if gone.is_closed() {
                Err(ApiError::new(ErrorKind::Cancelled, "the client left"))
            } else {
                render_segment(&app, &spec, &segment).await
            };
            (seq as u32, segment, outcome, taken)
        }
    })
    .buffered(MAX_SEGMENTS_IN_FLIGHT);
    futures::pin_mut!(segments);
    let (mut offset_ms, mut count, mut failed, mut words) = (0u64, 0u32, 0u32, 0u32);
    let mut eyes_so_far: Vec<EyeEvent> = Vec::new();
    while let Some((seq, segment, outcome, taken)) = segments.next().await {
        count += 1;
        let outcome_name = match &outcome {
            Ok(r) if r.cached => "cached",
            Ok(_) => "completed",
            Err(e) if e.status == StatusCode::GONE => "cancelled",
            Err(_) => "failed",
        };
        app.metrics
            .stream_segments
            .with_label_values(&[outcome_name])
            .inc();
        app.metrics
            .stream_segment_seconds
            .observe(taken.elapsed().as_secs_f64());
        let message = match outcome {
            Ok(result) => {
                let message = in_stream(result, seq, &segment, offset_ms, &mut eyes_so_far);
                offset_ms += message.duration_ms;
                words += message.words.len() as u32;
                ServerMessage::Segment(Box::new(message))
            }
            Err(e) => {
                failed += 1;
                match ServerMessage::from(e) {
                    ServerMessage::Error {
                        error,
                        message,
                        field,
                        ..
                    } => ServerMessage::Error {
                        error,
                        message,
                        field,
                        seq: Some(seq),
                    },
                    other => other,
                }
            }
        };
        if out.send(message).await.is_err() {
            // The client is gone: the segments not started are dropped with the stream.
            return;
        }
    }
    let _ = out
        .send(ServerMessage::Done {
            segments: count,
            failed_segments: failed,
            duration_ms: offset_ms,
            words,
        })
        .await;
}

/// A segment's result moved into the stream's time and text.
fn in_stream(
    mut result: RenderResult,
    seq: u32,
    segment: &Segment,
    offset_ms: u64,
    eyes_so_far: &mut Vec<EyeEvent>,
) -> StreamSegment {
    result.locate_marks_in(&segment.text);
    let shift = |t: &mut u64| *t += offset_ms;
    result
        .mouth_cues
        .iter_mut()
        .for_each(|c| shift(&mut c.t_ms));
    for w in &mut result.words {
        shift(&mut w.t_ms);
        shift(&mut w.end_ms);
        w.start += segment.start;
        w.end += segment.start;
    }
    for s in &mut result.sentences {
        shift(&mut s.t_ms);
        shift(&mut s.end_ms);
        s.start += segment.start;
        s.end += segment.start;
    }
    let before = eyes_so_far.len();
    eyes::stitch(
        eyes_so_far,
        result.eye_events.into_iter().map(|mut e| {
            e.t_ms += offset_ms;
            e
        }),
    );
    let eye_events = eyes_so_far[before..].to_vec();
    // Only the recent past matters for the spacing of the next ones.
    if eyes_so_far.len() > 16 {
        eyes_so_far.drain(..eyes_so_far.len() - 16);
    }
    StreamSegment {
        seq,
        offset_ms,
        duration_ms: result.duration_ms,
        render_id: result.render_id,
        audio_url: result.audio_url,
        cached: result.cached,
        text_start: segment.start,
        text_end: segment.start + segment.text.encode_utf16().count(),
        mouth_cues: result.mouth_cues,
        eye_events,
        words: result.words,
        sentences: result.sentences,
    }
}

/// One segment as a render of its own: from the gateway's memory, the cache, or the
/// pipeline (submitted and waited for).
async fn render_segment(
    app: &App,
    template: &RenderSpec,
    segment: &Segment,
) -> Result<RenderResult, ApiError> {
    let request = RenderRequest {
        text: segment.text.clone(),
        voice_id: Some(template.voice_id.clone()),
        speed: Some(template.speed),
        viseme_set: Some(template.viseme_set),
    };
    // The voice was checked when the stream started.
    let valid = request.check(Some(&template.voice_id), |_| VoiceCheck::Known)?;
    let id = valid.id.clone();
    if let Some(hit) = app.cache.get(&id)
        && let Ok(mut result) = serde_json::from_slice::<RenderResult>(&hit)
    {
        result.cached = true;
        return Ok(result);
    }
    let Waited { record, cached, .. } = app
        .submit_and_wait(valid, None, app.config.sync_timeout)
        .await?;
    match record.status {
        RenderStatus::Completed => {
            let mut result = app.completed_result(&record).await?;
            app.remember(&result);
            result.cached = cached;
            Ok(result)
        }
        RenderStatus::Failed => {
            let failure = record.reason();
            let mut error = ApiError::new(ErrorKind::RenderFailed, failure.message);
            if let Some(field) = failure.field {
                error = error.field(field);
            }
            Err(error)
        }
        RenderStatus::Pending | RenderStatus::Rendering => Err(ApiError::new(
            ErrorKind::SegmentTimeout,
            format!(
                "the segment was not rendered within {} s (render {id} goes on; poll it)",
                app.config.sync_timeout.as_secs()
            ),
        )),
    }
}
