//! What the controller writes on a resource: its status (phase, condition, the render's
//! figures) and its events.

use avatar_runtime::record::RenderRecord;
use avatar_runtime::storage::result_key;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use object_store::ObjectStoreExt;
use serde_json::json;

use crate::context::{Context, Error};
use crate::crd::{AvatarRender, AvatarRenderStatus, Phase};

pub(crate) fn ready(ok: bool, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

pub(crate) fn rendering(record: &RenderRecord, generation: Option<i64>) -> AvatarRenderStatus {
    AvatarRenderStatus {
        phase: Some(Phase::Rendering),
        render_id: Some(record.render_id.clone()),
        message: Some("rendering".into()),
        observed_generation: generation,
        conditions: vec![ready(
            false,
            "Rendering",
            "the render is queued or in progress",
            generation,
        )],
        ..Default::default()
    }
}

/// Stores the full result and reports it.
pub(crate) async fn complete(
    obj: &AvatarRender,
    ctx: &Context,
    record: &RenderRecord,
    cached: bool,
) -> Result<(), Error> {
    let generation = obj.metadata.generation;
    let stored = avatar_runtime::spill::load_result(&ctx.store, record).await?;
    let Some(mut result) = stored else {
        return Err(Error::MissingResult(record.render_id.clone()));
    };
    result.resolve_audio_url(&ctx.settings.audio_base_url);
    result.locate_marks_in(&obj.spec.text);
    result.cached = cached;
    let body = serde_json::to_vec(&result).expect("a result serialises");
    ctx.store
        .put(&result_key(&record.render_id), body.into())
        .await?;
    let status = AvatarRenderStatus {
        phase: Some(Phase::Completed),
        render_id: Some(record.render_id.clone()),
        audio_url: Some(result.audio_url.clone()),
        duration_ms: Some(result.duration_ms),
        mouth_cue_count: Some(result.mouth_cues.len() as u32),
        eye_event_count: Some(result.eye_events.len() as u32),
        word_count: Some(result.words.len() as u32),
        sentence_count: Some(result.sentences.len() as u32),
        result_url: Some(format!(
            "{}/{}.json",
            ctx.settings.results_base_url, record.render_id
        )),
        cached: Some(cached),
        message: Some(format!(
            "{} ms of speech{}",
            result.duration_ms,
            if cached { ", from the cache" } else { "" }
        )),
        observed_generation: generation,
        conditions: vec![ready(
            true,
            "Completed",
            "the render is complete",
            generation,
        )],
    };
    set_status(obj, ctx, status).await?;
    let note = format!(
        "render {} completed: {} ms of speech, {} mouth cues{}",
        record.render_id,
        result.duration_ms,
        result.mouth_cues.len(),
        if cached { " (cached)" } else { "" }
    );
    publish(ctx, obj, EventType::Normal, "Completed", &note).await;
    Ok(())
}

/// Ends the resource `Failed` with the reason.
pub(crate) async fn fail(
    obj: &AvatarRender,
    ctx: &Context,
    reason: &str,
    message: &str,
    render_id: Option<&str>,
) -> Result<(), Error> {
    let generation = obj.metadata.generation;
    set_status(
        obj,
        ctx,
        AvatarRenderStatus {
            phase: Some(Phase::Failed),
            render_id: render_id.map(str::to_owned),
            message: Some(message.to_owned()),
            observed_generation: generation,
            conditions: vec![ready(false, reason, message, generation)],
            ..Default::default()
        },
    )
    .await?;
    publish(ctx, obj, EventType::Warning, reason, message).await;
    Ok(())
}

pub(crate) async fn set_status(
    obj: &AvatarRender,
    ctx: &Context,
    status: AvatarRenderStatus,
) -> Result<(), Error> {
    let api: Api<AvatarRender> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({ "status": status });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Events are best effort: a refused event does not fail the reconciliation.
pub(crate) async fn publish(
    ctx: &Context,
    obj: &AvatarRender,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: "Render".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "cannot publish an event");
    }
}
