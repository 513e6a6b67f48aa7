//! The pipeline's NATS JetStream layout: one work-queue stream of jobs with a durable pull
//! consumer per stage, a KV bucket of render records (cache, job status and sync-wait signal
//! in one) and a KV bucket where tts workers announce their voices.
//!
//! Everything is created or checked at start-up, idempotently, by whichever service starts
//! first; a service whose NATS is not up yet waits for it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};

use crate::config::PipelineConfig;

/// The work-queue stream of jobs.
pub const JOBS_STREAM: &str = "AVATAR_JOBS";
/// Render records by render id.
pub const RENDERS_BUCKET: &str = "avatar_renders";
/// Voices by tts worker id; each entry expires unless its worker refreshes it.
pub const VOICES_BUCKET: &str = "avatar_voices";
/// How long a worker's voice announcement lives without a refresh.
pub const VOICES_TTL: Duration = Duration::from_secs(30);
/// Every voice ever announced, by voice id, kept as long as rendered results are cached: a
/// request for one is valid while no worker is live, and waits for the next.
pub const VOICES_SEEN_BUCKET: &str = "avatar_voices_seen";
/// How far apart two publishes of the same job id count as one.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The stages, in pipeline order: a text render starts at tts, lip-sync of a recording at
/// align; both go on to lipsync and eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Tts,
    Align,
    Lipsync,
    Eyes,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Tts, Stage::Align, Stage::Lipsync, Stage::Eyes];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Tts => "tts",
            Stage::Align => "align",
            Stage::Lipsync => "lipsync",
            Stage::Eyes => "eyes",
        }
    }

    /// The subject its jobs are published on, e.g. `avatar.jobs.tts`.
    pub fn subject(self) -> String {
        format!("avatar.jobs.{}", self.name())
    }

    /// Its durable consumer's name.
    pub fn consumer(self) -> &'static str {
        self.name()
    }

    /// Whether a render starts here (its job then claims the render record).
    pub fn is_first(self) -> bool {
        matches!(self, Stage::Tts | Stage::Align)
    }

    /// The stage after this one, if any.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Tts | Stage::Align => Some(Stage::Lipsync),
            Stage::Lipsync => Some(Stage::Eyes),
            Stage::Eyes => None,
        }
    }
}

/// Handles on the pipeline's JetStream resources.
#[derive(Clone)]
pub struct Pipeline {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub renders: kv::Store,
    pub voices: kv::Store,
    pub voices_seen: kv::Store,
    pub config: PipelineConfig,
}

/// Connects to NATS. The first connection is retried in the background
/// (`retry_on_initial_connect`), and every later loss reconnects by itself.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                other => tracing::debug!(event = %other, "NATS event"),
            }
        })
        .connect(url)
        .await
}

impl Pipeline {
    /// Connects and creates or checks the stream, consumers and buckets, waiting (with
    /// back-off, logging) until NATS answers.
    pub async fn start(config: PipelineConfig, service: &str) -> Self {
        let client = loop {
            match connect(&config.nats_url, service).await {
                Ok(client) => break client,
                Err(e) => {
                    tracing::warn!(url = %config.nats_url, error = %e, "cannot reach NATS yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut delay = Duration::from_millis(200);
        loop {
            match Self::setup(client.clone(), config.clone()).await {
                Ok(pipeline) => return pipeline,
                Err(e) => {
                    tracing::warn!(url = %config.nats_url, error = %e, "waiting for NATS JetStream");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Creates or checks everything once.
    pub async fn setup(
        client: async_nats::Client,
        config: PipelineConfig,
    ) -> Result<Self, async_nats::Error> {
        let js = jetstream::new(client.clone());
        let stream_config = stream::Config {
            name: JOBS_STREAM.into(),
            description: Some("avatar pipeline jobs, one subject per stage".into()),
            subjects: Stage::ALL.iter().map(|s| s.subject()).collect(),
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            // A job older than the cache is of no use to anyone.
            max_age: config.cache_ttl,
            ..Default::default()
        };
        let stream = js.get_or_create_stream(stream_config.clone()).await?;
        if stream.cached_info().config.duplicate_window != stream_config.duplicate_window
            || stream.cached_info().config.subjects != stream_config.subjects
            || stream.cached_info().config.max_age != stream_config.max_age
        {
            js.update_stream(stream_config).await?;
        }
        for stage in Stage::ALL {
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(stage.consumer().into()),
                    description: Some(format!("{} workers", stage.name())),
                    filter_subject: stage.subject(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver,
                    ..Default::default()
                })
                .await?;
        }
        let renders = js
            .create_or_update_key_value(kv::Config {
                bucket: RENDERS_BUCKET.into(),
                description: "render records by render id: pending, rendering, completed, failed"
                    .into(),
                history: 1,
                max_age: config.cache_ttl,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        let voices = js
            .create_or_update_key_value(kv::Config {
                bucket: VOICES_BUCKET.into(),
                description: "voices each tts worker can speak".into(),
                history: 1,
                max_age: VOICES_TTL,
                storage: stream::StorageType::Memory,
                ..Default::default()
            })
            .await?;
        let voices_seen = js
            .create_or_update_key_value(kv::Config {
                bucket: VOICES_SEEN_BUCKET.into(),
                description: "every voice a tts worker has announced, by voice id".into(),
                history: 1,
                max_age: config.cache_ttl,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        Ok(Self {
            client,
            jetstream: js,
            renders,
            voices,
            voices_seen,
            config,
        })
    }

    /// Jobs waiting in the queue or being worked on, over all stages.
    pub async fn pending_jobs(&self) -> Result<u64, async_nats::Error> {
        // Getting the stream is a stream-info request: its answer is the count.
        let stream = self.jetstream.get_stream(JOBS_STREAM).await?;
        Ok(stream.cached_info().state.messages)
    }

    /// Jobs waiting for one stage (not yet delivered to a worker).
    pub async fn queue_depth(&self, stage: Stage) -> Result<u64, async_nats::Error> {
        // One consumer-info request, whose answer is the count.
        let consumer: consumer::PullConsumer = self
            .jetstream
            .get_consumer_from_stream(stage.consumer(), JOBS_STREAM)
            .await?;
        Ok(consumer.cached_info().num_pending)
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The health of a service that may still be connecting (`None`): the endpoints answer
    /// from the start, so a liveness probe sees a live process while NATS is unreachable
    /// and a readiness probe sees it is not ready.
    pub fn health_of(pipeline: Option<&Pipeline>) -> (bool, serde_json::Value) {
        match pipeline {
            Some(p) => p.health(),
            None => (
                false,
                serde_json::json!({"status": "starting", "nats_connected": false}),
            ),
        }
    }

    /// A worker's or the controller's health: whether NATS is connected, and the JSON body.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let connected = self.connected();
        let status = if connected { "healthy" } else { "unhealthy" };
        (
            connected,
            serde_json::json!({"status": status, "nats_connected": connected}),
        )
    }
}
