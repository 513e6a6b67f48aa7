//! The stage-worker loop every worker binary runs: pull one job, check it is still wanted,
//! run the stage with in-progress acks, pass the result on (or complete the render), ack.
//!
//! A stage is a pure library function plus a [`StageHandler`] adapting it to a [`Job`].
//! Failures are classified: a rejected request fails the render at once with the field to
//! blame; anything else is retried with back-off until the consumer's `max_deliver`, then
//! fails the render with the reason. Jobs are fetched one at a time, so an idle replica
//! always gets the next job rather than a busy one's buffer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use futures::StreamExt;

use crate::config::{Env, PipelineConfig, StorageConfig};
use crate::jetstream::{JOBS_STREAM, Pipeline, Stage};
use crate::record::{Failure, Job, RenderRecord, now_ms};
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;
use crate::{RenderResult, RenderStatus};

/// What a stage made of a job.
#[derive(Debug)]
pub enum Outcome {
    /// Pass the job, with this stage's output added, to the next stage.
    Next(Job),
    /// The last stage: the render is complete.
    Completed(RenderResult),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// The request can never render (say, nothing in the text can be spoken): fail the
    /// render now and name the field.
    #[error("{message}")]
    Rejected {
        message: String,
        field: Option<String>,
    },
    /// This attempt failed; another may not (a voice file being replaced, storage down).
    #[error("{0}")]
    Failed(String),
}

/// One stage's work on a job.
pub trait StageHandler: Send + Sync + 'static {
    fn stage(&self) -> Stage;
    fn process(&self, job: Job) -> impl Future<Output = Result<Outcome, StageError>> + Send;
    /// Undoes the side effects of a result that is not wanted after all (the render was
    /// completed or resubmitted while the stage worked), e.g. deletes stored audio.
    fn discard(&self, outcome: Outcome) -> impl Future<Output = ()> + Send {
        let _ = outcome;
        async {}
    }
}

/// Settings every worker binary reads.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub pipeline: PipelineConfig,
    /// The object store: audio, and stage outputs too large for a message.
    pub storage: StorageConfig,
    /// Where `/metrics` and `/health` are served (port 0: any free port).
    pub metrics_addr: SocketAddr,
    pub log_level: String,
}

impl WorkerConfig {
    pub fn from_env(env: &mut Env, default_metrics_port: u16) -> Self {
        let port = env.parse("METRICS_PORT", default_metrics_port);
        let host: std::net::IpAddr =
            env.parse("METRICS_HOST", std::net::Ipv4Addr::UNSPECIFIED.into());
        Self {
            pipeline: PipelineConfig::from_env(env),
            storage: StorageConfig::from_env(env),
            metrics_addr: SocketAddr::new(host, port),
            log_level: env.string("LOG_LEVEL", "info"),
        }
    }
}

/// Runs a worker until Ctrl-C or SIGTERM: connects (waiting for NATS), serves metrics and
/// health, and processes jobs. A stop abandons the job under way (JetStream redelivers it)
/// and ends within the shutdown grace period even while NATS is unreachable.
pub async fn serve<H: StageHandler>(config: WorkerConfig, handler: H, shutdown: &Shutdown) {
    let stage = handler.stage();
    let body = async {
        let metrics = Metrics::new(stage.name());
        // Metrics and health answer from the start (health "starting" until NATS is reached).
        let connected: Arc<OnceLock<Pipeline>> = Arc::default();
        let health_state = connected.clone();
        match crate::telemetry::serve_worker_endpoints(
            config.metrics_addr,
            metrics.clone(),
            move || Pipeline::health_of(health_state.get()),
        )
        .await
        {
            Ok(addr) => {
                tracing::info!(stage = stage.name(), %addr, "metrics and health endpoints up")
            }
            Err(e) => {
                tracing::error!(error = %e, addr = %config.metrics_addr, "cannot serve metrics")
            }
        }
        let service = format!("avatar-{}", stage.name());
        let connecting = Pipeline::start(config.pipeline.clone(), &service);
        let Some(pipeline) = shutdown.unless_requested(connecting).await else {
            return;
        };
        let _ = connected.set(pipeline.clone());
        let store = match crate::storage::open(&config.storage) {
            Ok(store) => store,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the object store");
                return;
            }
        };
        let worker = Worker {
            pipeline,
            store,
            handler: Arc::new(handler),
            metrics,
        };
        tokio::select! {
            () = worker.run() => {},
            () = shutdown.requested() => tracing::info!(stage = stage.name(), "stopping"),
        }
    };
    shutdown.run(body).await;
}

/// A stage consumer's redelivery settings.
#[derive(Debug, Clone, Copy)]
struct Limits {
    ack_wait: Duration,
    max_deliver: i64,
}

pub struct Worker<H> {
    pub pipeline: Pipeline,
    /// Where stage outputs too large for a message go (see [`crate::spill`]).
    pub store: Arc<dyn object_store::ObjectStore>,
    pub handler: Arc<H>,
    pub metrics: Arc<Metrics>,
}

impl<H: StageHandler> Worker<H> {
    /// Processes jobs forever, recovering from lost connections.
    pub async fn run(&self) {
        let stage = self.handler.stage();
        loop {
            let consumer: PullConsumer = match self.consumer().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(stage = stage.name(), error = %e, "cannot reach the job queue; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // The limits as the server applies them: every service creates or updates the
            // consumers at start-up, so this worker's own settings may not be the ones in force.
            let limits = Limits {
                ack_wait: consumer.cached_info().config.ack_wait,
                max_deliver: consumer.cached_info().config.max_deliver,
            };
            loop {
                let batch = consumer
                    .batch()
                    .max_messages(1)
                    .expires(Duration::from_secs(10))
                    .messages()
                    .await;
                let mut batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(stage = stage.name(), error = %e, "pull failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                };
                let mut idle = true;
                while let Some(message) = batch.next().await {
                    match message {
                        Ok(message) => {
                            idle = false;
                            self.handle(message, limits).await;
                        }
                        Err(e) => {
                            tracing::debug!(stage = stage.name(), error = %e, "pull ended");
                            break;
                        }
                    }
                }
                // Each job's metadata says how many wait behind it (see `handle`); a pull
                // that ended empty asks the server, so the gauge also settles when idle.
                if idle {
                    self.update_queue_depth().await;
                }
            }
        }
    }

    async fn consumer(&self) -> Result<PullConsumer, async_nats::Error> {
        Ok(self
            .pipeline
            .jetstream
            .get_consumer_from_stream(self.handler.stage().consumer(), JOBS_STREAM)
            .await?)
    }

    async fn update_queue_depth(&self) {
        let stage = self.handler.stage();
        if let Ok(depth) = self.pipeline.queue_depth(stage).await {
            self.metrics
                .queue_depth
                .with_label_values(&[stage.name()])
                .set(depth as i64);
        }
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .jobs
            .with_label_values(&[self.handler.stage().name(), outcome])
            .inc();
    }

    async fn handle(&self, message: async_nats::jetstream::Message, limits: Limits) {
        let received = Instant::now();
        let stage = self.handler.stage();
        let (delivered, waiting) = message.info().map_or((1, 0), |i| (i.delivered, i.pending));
        self.metrics
            .queue_depth
            .with_label_values(&[stage.name()])
            .set(waiting as i64);
        let mut job: Job = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(stage = stage.name(), error = %e, "unreadable job dropped");
                let _ = message.ack_with(AckKind::Term).await;
                self.count("skipped");
                return;
            }
        };
        let span = tracing::info_span!("job", stage = stage.name(), render_id = %job.render_id, attempt = delivered);
        let _enter = span.enter();
        tracing::debug!("job received");
        // A job whose timeline or cues were too large for the message: fetch them (a store
        // that does not answer now may answer on the next delivery).
        if let Err(e) = crate::spill::restore_job(&self.store, &mut job).await {
            let reason = format!("cannot read the job's stored payload: {e}");
            self.fail_or_retry(
                &message,
                &job,
                StageError::Failed(reason),
                delivered,
                limits,
            )
            .await;
            return;
        }

        // Tell JetStream we are alive while the stage runs.
        let ack_wait = limits.ack_wait;
        let progress = {
            let message = message.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ack_wait / 3).await;
                    if message.ack_with(AckKind::Progress).await.is_err() {
                        return;
                    }
                }
            })
        };
        // The first stage checks that the job is still wanted (not completed meanwhile, not
        // resubmitted) and marks the render `rendering`, alongside the work rather than
        // before it: the check almost always passes. Later stages are cheap and skip it;
        // the last one's compare-and-set write of the record drops a stale result anyway.
        let started = Instant::now();
        let claim = async {
            if stage == Stage::Tts {
                self.claim(&job).await
            } else {
                Some(job.revision)
            }
        };
        let (claim, outcome) = tokio::join!(claim, self.handler.process(job.clone()));
        let work = started.elapsed();
        tracing::debug!("stage work done");
        progress.abort();
        let Some(revision) = claim else {
            if let Ok(outcome) = outcome {
                self.handler.discard(outcome).await;
            }
            let _ = message.ack().await;
            self.count("skipped");
            return;
        };
        // The record's revision as the claim left it, for every write from here on: the
        // next stage's, and this one's should the job fail.
        job.revision = revision;
        let outcome = outcome.map(|o| match o {
            Outcome::Next(mut next) => {
                next.revision = revision;
                Outcome::Next(next)
            }
            completed => completed,
        });
        self.metrics
            .stage_seconds
            .with_label_values(&[stage.name()])
            .observe(started.elapsed().as_secs_f64());

        let result = match outcome {
            Ok(Outcome::Next(next)) => {
                let next_stage = stage.next().expect("only the last stage completes renders");
                self.pass_on(&next, next_stage).await
            }
            Ok(Outcome::Completed(result)) => {
                self.finish(&job, RenderStatus::Completed, Some(result), None)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::debug!("result passed on");
                // Not waiting for the server's confirmation: a lost ack only means a
                // redelivery, which the checks above make harmless.
                self.count("ok");
                let _ = message.ack().await;
                tracing::info!(
                    work_ms = work.as_secs_f64() * 1000.0,
                    total_ms = received.elapsed().as_secs_f64() * 1000.0,
                    "job done"
                );
            }
            Err(e) => {
                self.fail_or_retry(&message, &job, e, delivered, limits)
                    .await
            }
        }
    }

    /// Publishes the next stage's job, its large parts stored beside the audio. An error
    /// that cannot go away on a retry (a message over the server's limit) fails the render.
    async fn pass_on(&self, next: &Job, stage: Stage) -> Result<(), StageError> {
        let budget = crate::spill::inline_budget(&self.pipeline);
        let payload = crate::spill::job_message(&self.store, next, stage, budget)
            .await
            .map_err(|e| StageError::Failed(format!("cannot store the job's payload: {e}")))?;
        crate::submit::publish_bytes(&self.pipeline, stage, next, payload)
            .await
            .map_err(|e| {
                let message = format!("cannot queue the {} job: {e}", stage.name());
                if e.kind() == PublishErrorKind::MaxPayloadExceeded {
                    StageError::Rejected {
                        message,
                        field: None,
                    }
                } else {
                    StageError::Failed(message)
                }
            })
    }

    /// A failed job: the render fails now if the error is permanent (or the attempts are
    /// used up), otherwise the job is redelivered after a back-off.
    async fn fail_or_retry(
        &self,
        message: &async_nats::jetstream::Message,
        job: &Job,
        error: StageError,
        delivered: i64,
        limits: Limits,
    ) {
        let stage = self.handler.stage();
        match error {
            StageError::Rejected {
                message: reason,
                field,
            } => {
                tracing::info!(%reason, "render rejected");
                let failure = Failure {
                    message: reason,
                    field,
                };
                let _ = self
                    .finish(job, RenderStatus::Failed, None, Some(failure))
                    .await;
                let _ = message.ack_with(AckKind::Term).await;
                self.count("rejected");
            }
            StageError::Failed(reason) if delivered >= limits.max_deliver => {
                tracing::warn!(%reason, attempts = delivered, "render failed for good");
                let failure = Failure {
                    message: format!(
                        "{} stage failed after {delivered} attempt{}: {reason}",
                        stage.name(),
                        if delivered == 1 { "" } else { "s" }
                    ),
                    field: None,
                };
                let _ = self
                    .finish(job, RenderStatus::Failed, None, Some(failure))
                    .await;
                let _ = message.ack_with(AckKind::Term).await;
                self.count("failed");
            }
            StageError::Failed(reason) => {
                let delay = Duration::from_millis(500 * 2u64.pow(delivered.clamp(1, 6) as u32 - 1));
                tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "attempt failed; retrying");
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                self.count("retried");
            }
        }
    }

    /// `None` if the job is no longer wanted; otherwise marks its render `rendering` and
    /// returns the record's revision as left (if known), for the last stage's write.
    async fn claim(&self, job: &Job) -> Option<Option<u64>> {
        let rendering = |mut record: RenderRecord| {
            record.status = RenderStatus::Rendering;
            record.updated_at_ms = now_ms();
            record
        };
        match self.update_own_record(job, rendering).await {
            Ok(Some(revision)) => Some(Some(revision)),
            Ok(None) => {
                tracing::info!("job no longer wanted (completed, failed, resubmitted or gone)");
                None
            }
            Err(e) => {
                // Cannot tell: do the work rather than drop a wanted job.
                tracing::warn!(error = %e, "cannot mark the render rendering");
                Some(None)
            }
        }
    }

    /// Writes the final record, if the render is still this job's submission and not final
    /// (compare-and-set: the first completion wins, a duplicate changes nothing).
    async fn finish(
        &self,
        job: &Job,
        status: RenderStatus,
        result: Option<RenderResult>,
        failure: Option<Failure>,
    ) -> Result<(), StageError> {
        // A result too large for a KV value is stored beside the audio, the record names it.
        let mut stored = RenderRecord {
            result: result.clone(),
            ..job.record()
        };
        let budget = crate::spill::inline_budget(&self.pipeline);
        crate::spill::store_large_result(&self.store, &mut stored, budget)
            .await
            .map_err(|e| StageError::Failed(format!("cannot store the result: {e}")))?;
        let finished = |mut record: RenderRecord| {
            record.status = status;
            record.result = stored.result.clone();
            record.result_file = stored.result_file.clone();
            record.failure = failure.clone();
            record.updated_at_ms = now_ms();
            record
        };
        match self.update_own_record(job, finished).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                tracing::info!("render already finished or resubmitted; result dropped");
                Ok(())
            }
            Err(e) => Err(StageError::Failed(format!(
                "cannot write the render record: {e}"
            ))),
        }
    }

    /// Applies `change` to the job's render record while it is still this job's (same
    /// submission, not final), with compare-and-set writes: first on the revision the job
    /// carries (one round trip when nothing moved since), then on the record as read.
    /// The new revision, or `None` if the record is no longer this job's.
    async fn update_own_record(
        &self,
        job: &Job,
        change: impl Fn(RenderRecord) -> RenderRecord,
    ) -> Result<Option<u64>, String> {
        let renders = &self.pipeline.renders;
        if let Some(revision) = job.revision {
            match renders
                .update(&job.render_id, change(job.record()).to_bytes(), revision)
                .await
            {
                Ok(revision) => return Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        for _ in 0..5 {
            let entry = renders
                .entry(job.render_id.clone())
                .await
                .map_err(|e| e.to_string())?;
            let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
                return Ok(None);
            };
            let Ok(record) = RenderRecord::from_bytes(&entry.value) else {
                return Ok(None);
            };
            if record.submission != job.submission || record.is_final() {
                return Ok(None);
            }
            match renders
                .update(&job.render_id, change(record).to_bytes(), entry.revision)
                .await
            {
                Ok(revision) => return Ok(Some(revision)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the render record kept changing".into())
    }
}
