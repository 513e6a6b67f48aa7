//! Reconciling AvatarRender resources.
//!
//! A new spec generation is validated exactly like an HTTP request, then submitted through
//! the same code the gateway uses (`avatar_runtime::submit`): a cached render completes at once;
//! otherwise the resource goes `Rendering` and is requeued until its render record is final.
//! A completed render's full result is stored in the object store and the status points at
//! it. Bad specs end `Failed` with the field named and are not retried; transient errors
//! (Kubernetes or NATS unreachable) requeue with exponential back-off.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use avatar_domain::{FieldError, NO_VOICES_YET, Refused, RenderRequest, RenderStatus, ValidSpec};
use avatar_runtime::record::RenderRecord;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::submit::{Submitted, stale, submit};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;

use crate::context::{Context, Error};
use crate::crd::{AvatarRender, AvatarRenderStatus, Phase};
use crate::status::{complete, fail, publish, ready, rendering, set_status};

/// How often a rendering resource looks at its render record.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait for tts workers to announce voices before checking again.
pub const VOICES_WAIT: Duration = Duration::from_secs(5);
/// Back-off after transient errors: 1 s, 2 s, 4 s ... at most this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
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
        ctx.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(&obj));
    }
    outcome.map(|(action, _)| action)
}

/// Transient errors: retry with exponential back-off per resource.
pub fn error_policy(obj: Arc<AvatarRender>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
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
        let value = ctx.pipeline.renders.get(id).await.map_err(Error::Records)?;
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
    let valid = match ctx
        .voices
        .check_request(&request, ctx.settings.default_voice.as_deref())
    {
        Ok(valid) => valid,
        Err(Refused::Invalid(errors)) => {
            let message = describe(&errors);
            fail(obj, ctx, "InvalidSpec", &message, None).await?;
            return Ok((Action::await_change(), "invalid"));
        }
        // A remembered voice with no worker live would have been taken (its job waits in
        // JetStream for one); with no voice ever announced nothing can be judged yet.
        Err(Refused::NoVoicesYet) => {
            set_status(
                obj,
                ctx,
                AvatarRenderStatus {
                    phase: Some(Phase::Pending),
                    message: Some("waiting for a tts worker to announce its voices".into()),
                    observed_generation: generation,
                    conditions: vec![ready(false, "WaitingForWorkers", NO_VOICES_YET, generation)],
                    ..Default::default()
                },
            )
            .await?;
            return Ok((Action::requeue(VOICES_WAIT), "rendering"));
        }
    };

    if observed && status.render_id.as_deref() == Some(valid.id.as_str()) {
        // This generation's render was lost (expired or purged): as a new identical
        // request would, submit it again.
        return resubmit(obj, ctx, valid).await;
    }
    // A new resource or a changed spec: submit (the gateway's code path).
    match submit(&ctx.pipeline, valid, None).await? {
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
            let failure = record.reason();
            let message = match &failure.field {
                Some(field) => format!("{}: {}", spec_field(field), failure.message),
                None => failure.message,
            };
            fail(obj, ctx, "RenderFailed", &message, Some(&record.render_id)).await?;
            Ok((Action::await_change(), "failed"))
        }
        _ if !stale(&record, &ctx.pipeline) => Ok((Action::requeue(POLL_INTERVAL), "rendering")),
        // Lost (its job outlived the lease): submit the record's own spec again.
        _ => resubmit(obj, ctx, ValidSpec::new(record.spec)).await,
    }
}

/// Submits a lost render again, as a new identical request would.
async fn resubmit(
    obj: &AvatarRender,
    ctx: &Context,
    valid: ValidSpec,
) -> Result<(Action, &'static str), Error> {
    let submitted = submit(&ctx.pipeline, valid, None).await?;
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
