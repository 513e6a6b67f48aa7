//! Reconciling AvatarRender resources.
//!
//! A new spec generation is validated exactly like an HTTP request, then submitted through
//! the same code the gateway uses (`avatar_core::submit`): a cached render completes at once;
//! otherwise the resource goes `Rendering` and is requeued until its render record is final.
//! A completed render's full result is stored in the object store and the status points at
//! it. Bad specs end `Failed` with the field named and are not retried; transient errors
//! (Kubernetes or NATS unreachable) requeue with exponential back-off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avatar_core::jetstream::Pipeline;
use avatar_core::record::RenderRecord;
use avatar_core::shutdown::Shutdown;
use avatar_core::storage::result_key;
use avatar_core::submit::{SubmitError, Submitted, stale, submit};
use avatar_core::telemetry::Metrics;
use avatar_core::voices::{CONTRACT_DEFAULT_VOICE, VoiceCheck, VoiceRegistry};
use avatar_core::{FieldError, RenderRequest, RenderStatus, render_id};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;

use crate::crd::{AvatarRender, AvatarRenderStatus, Phase};

/// How often a rendering resource looks at its render record.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait for tts workers to announce voices before checking again.
pub const VOICES_WAIT: Duration = Duration::from_secs(5);
/// Back-off after transient errors: 1 s, 2 s, 4 s ... at most this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The controller's name in events and field managers.
pub const CONTROLLER_NAME: &str = "avatar-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("the render store is unavailable: {0}")]
    Records(String),
    #[error("the object store is unavailable: {0}")]
    Store(String),
}

/// Where the controller's answers point.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of audio URLs (the gateway's `/audio`).
    pub audio_base_url: String,
    /// Prefix of result URLs (the gateway's `/results`).
    pub results_base_url: String,
    pub default_voice: Option<String>,
}

/// Everything a reconciliation needs.
pub struct Context {
    pub client: kube::Client,
    pub pipeline: Pipeline,
    pub voices: VoiceRegistry,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        pipeline: Pipeline,
        voices: VoiceRegistry,
        store: Arc<dyn ObjectStore>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pipeline,
            voices,
            store,
            settings,
            metrics,
            failures: Mutex::default(),
        }
    }
}

/// Runs the controller until a stop is asked for and the reconciliations under way end
/// (the caller bounds how long that may take: see `Shutdown::run`).
pub async fn run(ctx: Arc<Context>, shutdown: &Shutdown) {
    let api: Api<AvatarRender> = Api::all(ctx.client.clone());
    let stop = shutdown.clone();
    // kube wants a Sync trigger: a task's handle is one.
    let stopped = tokio::spawn(async move { stop.requested().await });
    Controller::new(api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(async move {
            let _ = stopped.await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A requeue that fires after the resource was deleted (say, while it
                // rendered): nothing to do, and nothing wrong.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "deleted before its requeue");
                }
                Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
            }
        })
        .await;
}

fn key(obj: &AvatarRender) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Reconciles one AvatarRender.
pub async fn reconcile(obj: Arc<AvatarRender>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let outcome = reconcile_inner(&obj, &ctx).await;
    let label = match &outcome {
        Ok((_, label)) => *label,
        Err(_) => "error",
    };
    ctx.metrics.reconciles.with_label_values(&[label]).inc();
    ctx.metrics
        .reconcile_seconds
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    if outcome.is_ok() {
        ctx.failures.lock().expect("failures").remove(&key(&obj));
    }
    outcome.map(|(action, _)| action)
}

/// Transient errors: retry with exponential back-off per resource.
pub fn error_policy(obj: Arc<AvatarRender>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().expect("failures");
    let n = failures.entry(key(&obj)).or_insert(0);
    *n += 1;
    let delay = Duration::from_secs(1 << (*n - 1).min(16)).min(MAX_BACKOFF);
    tracing::warn!(resource = %key(&obj), error = %error, attempt = *n, retry_in_s = delay.as_secs(), "will retry");
    Action::requeue(delay)
}

/// The request field names in the resource's terms.
fn spec_field(field: &str) -> String {
    match field {
        "text" => "spec.text".into(),
        "voice_id" => "spec.voiceId".into(),
        "speed" => "spec.speed".into(),
        "viseme_set" => "spec.visemeSet".into(),
        other => format!("spec.{other}"),
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", spec_field(&e.field), e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn reconcile_inner(
    obj: &AvatarRender,
    ctx: &Context,
) -> Result<(Action, &'static str), Error> {
    let generation = obj.metadata.generation;
    let status = obj.status.clone().unwrap_or_default();
    let observed = status.observed_generation == generation && generation.is_some();
    if observed && status.phase.is_some_and(Phase::is_final) {
        return Ok((Action::await_change(), "unchanged"));
    }

    // Following a render under way, by the id in the status: whatever voices the workers
    // announce meanwhile, it is the render this generation asked for.
    if observed
        && status.phase == Some(Phase::Rendering)
        && let Some(id) = status.render_id.as_deref()
    {
        let value = ctx
            .pipeline
            .renders
            .get(id)
            .await
            .map_err(|e| Error::Records(e.to_string()))?;
        // An unreadable or vanished record is submitted again from the spec, below.
        if let Some(record) = value.and_then(|v| RenderRecord::from_bytes(&v).ok()) {
            return follow(obj, ctx, record).await;
        }
    }

    // Validate exactly as the HTTP API does.
    let request = RenderRequest {
        text: obj.spec.text.clone(),
        voice_id: obj.spec.voice_id.clone(),
        speed: Some(obj.spec.speed),
        viseme_set: Some(obj.spec.viseme_set),
    };
    let default_voice = ctx
        .voices
        .default_voice(ctx.settings.default_voice.as_deref())
        .unwrap_or_else(|| CONTRACT_DEFAULT_VOICE.to_owned());
    let spec = match request.validate(&default_voice) {
        Ok(spec) => spec,
        Err(errors) => {
            let message = describe(&errors);
            fail(obj, ctx, "InvalidSpec", &message, None).await?;
            return Ok((Action::await_change(), "invalid"));
        }
    };
    match ctx.voices.check(&spec.voice_id) {
        // A remembered voice with no worker live: the job waits in JetStream for one.
        VoiceCheck::Known | VoiceCheck::Remembered => {}
        VoiceCheck::NoneAnnounced => {
            set_status(
                obj,
                ctx,
                AvatarRenderStatus {
                    phase: Some(Phase::Pending),
                    message: Some("waiting for a tts worker to announce its voices".into()),
                    observed_generation: generation,
                    conditions: vec![ready(
                        false,
                        "WaitingForWorkers",
                        "no tts worker has announced its voices yet",
                        generation,
                    )],
                    ..Default::default()
                },
            )
            .await?;
            return Ok((Action::requeue(VOICES_WAIT), "rendering"));
        }
        VoiceCheck::Unknown { available } => {
            let message = format!(
                "spec.voiceId: unknown voice {:?}; available: {}",
                spec.voice_id,
                available.join(", ")
            );
            fail(obj, ctx, "InvalidSpec", &message, None).await?;
            return Ok((Action::await_change(), "invalid"));
        }
    }

    let id = render_id(&spec);
    if observed && status.render_id.as_deref() == Some(id.as_str()) {
        // This generation's render was lost (expired or purged): as a new identical
        // request would, submit it again.
        return resubmit(obj, ctx, spec).await;
    }
    // A new resource or a changed spec: submit (the gateway's code path).
    match submit(&ctx.pipeline, spec).await? {
        Submitted::Cached(record) => {
            complete(obj, ctx, &record, true).await?;
            Ok((Action::await_change(), "completed"))
        }
        Submitted::InFlight(record, _) | Submitted::Queued(record, _) => {
            set_status(obj, ctx, rendering(&record, generation)).await?;
            publish(
                ctx,
                obj,
                EventType::Normal,
                "Submitted",
                &format!("render {} submitted", record.render_id),
            )
            .await;
            Ok((Action::requeue(POLL_INTERVAL), "submitted"))
        }
    }
}

/// The next step for a resource whose render record is `record`.
async fn follow(
    obj: &AvatarRender,
    ctx: &Context,
    record: RenderRecord,
) -> Result<(Action, &'static str), Error> {
    match record.status {
        RenderStatus::Completed => {
            complete(obj, ctx, &record, false).await?;
            Ok((Action::await_change(), "completed"))
        }
        RenderStatus::Failed => {
            let failure = record.failure.unwrap_or(avatar_core::record::Failure {
                message: "the render failed".into(),
                field: None,
            });
            let message = match &failure.field {
                Some(field) => format!("{}: {}", spec_field(field), failure.message),
                None => failure.message,
            };
            fail(obj, ctx, "RenderFailed", &message, Some(&record.render_id)).await?;
            Ok((Action::await_change(), "failed"))
        }
        _ if !stale(&record, &ctx.pipeline) => Ok((Action::requeue(POLL_INTERVAL), "rendering")),
        // Lost (its job outlived the lease): submit the record's own spec again.
        _ => resubmit(obj, ctx, record.spec).await,
    }
}

/// Submits a lost render again, as a new identical request would.
async fn resubmit(
    obj: &AvatarRender,
    ctx: &Context,
    spec: avatar_core::RenderSpec,
) -> Result<(Action, &'static str), Error> {
    let submitted = submit(&ctx.pipeline, spec).await?;
    let id = &submitted.record().render_id;
    if let Submitted::Cached(record) = &submitted {
        complete(obj, ctx, record, true).await?;
        return Ok((Action::await_change(), "completed"));
    }
    publish(
        ctx,
        obj,
        EventType::Normal,
        "Resubmitted",
        &format!("render {id} was lost and is submitted again"),
    )
    .await;
    Ok((Action::requeue(POLL_INTERVAL), "submitted"))
}

fn ready(ok: bool, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

fn rendering(record: &RenderRecord, generation: Option<i64>) -> AvatarRenderStatus {
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
async fn complete(
    obj: &AvatarRender,
    ctx: &Context,
    record: &RenderRecord,
    cached: bool,
) -> Result<(), Error> {
    let generation = obj.metadata.generation;
    let stored = avatar_core::spill::load_result(&ctx.store, record)
        .await
        .map_err(|e| Error::Store(e.to_string()))?;
    let Some(mut result) = stored else {
        return Err(Error::Records(format!(
            "render {} is completed without a result",
            record.render_id
        )));
    };
    if !result.audio_url.contains("://") {
        result.audio_url = format!("{}/{}", ctx.settings.audio_base_url, result.audio_url);
    }
    result.cached = cached;
    let body = serde_json::to_vec(&result).expect("a result serialises");
    ctx.store
        .put(&result_key(&record.render_id), body.into())
        .await
        .map_err(|e| Error::Store(e.to_string()))?;
    let status = AvatarRenderStatus {
        phase: Some(Phase::Completed),
        render_id: Some(record.render_id.clone()),
        audio_url: Some(result.audio_url.clone()),
        duration_ms: Some(result.duration_ms),
        mouth_cue_count: Some(result.mouth_cues.len() as u32),
        eye_event_count: Some(result.eye_events.len() as u32),
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
async fn fail(
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

async fn set_status(
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
async fn publish(ctx: &Context, obj: &AvatarRender, type_: EventType, reason: &str, note: &str) {
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
