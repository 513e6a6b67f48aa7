//! The stage-worker loop every worker binary runs: pull one job, check it is still wanted,
//! run the stage with in-progress acks, pass the result on (or complete the render), ack.
//!
//! A stage is a pure library function plus a [`StageHandler`] adapting it to a [`Job`].
//! Failures are classified: a rejected request fails the render at once with the field to
//! blame; anything else is retried with back-off until the consumer's `max_deliver`, then
//! fails the render with the reason. Jobs are fetched one at a time, so an idle replica
//! always gets the next job rather than a busy one's buffer.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::PublishErrorKind;
use futures::StreamExt;

mod records;

use crate::config::WorkerConfig;
use crate::jetstream::{JOBS_STREAM, Pipeline, Stage};
use crate::job::Job;
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;
use avatar_domain::{RenderResult, RenderStatus};

/// What a stage made of a job. (One per job, moved once: the variants' sizes do not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Pass the job, with this stage's output added, to the next stage.
    Next(Job),
    /// The last stage: the render is complete.
    Completed(RenderResult),
}

/// Whatever failed underneath a stage.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a stage did not finish a job. The message is what the render's record says if the
/// render fails; the source, when there is one, is the error behind it.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The request can never render (say, nothing in the text can be spoken): fail the
    /// render now and name the field.
    #[error("{message}")]
    Rejected {
        message: String,
        field: Option<String>,
    },
    /// This attempt failed; another may not (a voice file being replaced, storage down).
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Source>,
    },
}

impl StageError {
    /// A failed attempt: "`context`: `source`".
    pub fn failed(context: &str, source: impl Into<Source>) -> Self {
        let source = source.into();
        StageError::Failed {
            message: format!("{context}: {source}"),
            source: Some(source),
        }
    }

    /// A failed attempt whose message is the error's own.
    pub fn from_source(source: impl Into<Source>) -> Self {
        let source = source.into();
        StageError::Failed {
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// A failed attempt with nothing underneath it.
    pub fn failed_because(message: impl Into<String>) -> Self {
        StageError::Failed {
            message: message.into(),
            source: None,
        }
    }
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
            self.fail_or_retry(
                &message,
                &job,
                StageError::failed("cannot read the job's stored payload", e),
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
            if stage.is_first() {
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
            .map_err(|e| StageError::failed("cannot store the job's payload", e))?;
        self.pipeline
            .publish_job_bytes(stage, next, payload)
            .await
            .map_err(|e| {
                let context = format!("cannot queue the {} job", stage.name());
                if e.kind() == PublishErrorKind::MaxPayloadExceeded {
                    StageError::Rejected {
                        message: format!("{context}: {e}"),
                        field: None,
                    }
                } else {
                    StageError::failed(&context, e)
                }
            })
    }
}
