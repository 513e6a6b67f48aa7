//! The gateway's shared state, and the reading and checking of a render request (how it is
//! answered is in `answers.rs`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::HeaderMap;

use avatar_domain::{RenderRequest, ValidSpec};
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::record::RenderRecord;
use avatar_runtime::submit::resubmit;
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::VoiceRegistry;
use avatar_runtime::watcher::RecordWatcher;

use crate::cache::ResponseCache;
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorKind};
use crate::limits::{MAX_WAITERS_PER_RENDER, RenderSlots};
use crate::parse::{parse_request, read_body};

/// Everything a handler needs, shared behind one `Arc`: handlers get it per request, and
/// cloning the NATS handles inside per request costs more than the request itself.
pub type App = Arc<AppState>;

pub struct AppState {
    pub config: Arc<GatewayConfig>,
    pub pipeline: Pipeline,
    pub watcher: RecordWatcher,
    pub voices: VoiceRegistry,
    pub cache: ResponseCache,
    pub store: Arc<dyn object_store::ObjectStore>,
    pub metrics: Arc<Metrics>,
    /// Renders being waited for; beyond `MAX_CONCURRENT_REQUESTS` requests are shed.
    pub slots: RenderSlots,
    /// Streams open; beyond `MAX_CONCURRENT_STREAMS` new ones get 503.
    pub streams: Arc<tokio::sync::Semaphore>,
    pending_jobs: Mutex<Option<(Instant, u64)>>,
}

impl AppState {
    pub async fn new(
        config: GatewayConfig,
        pipeline: Pipeline,
        store: Arc<dyn object_store::ObjectStore>,
        metrics: Arc<Metrics>,
    ) -> App {
        let cache = ResponseCache::new(config.cache_bytes, config.pipeline.cache_ttl);
        Arc::new(Self {
            watcher: RecordWatcher::start(pipeline.clone()),
            // The voices known before the first request (remembered ones too).
            voices: VoiceRegistry::start(pipeline.clone()).await,
            slots: RenderSlots::new(config.max_concurrent_requests, MAX_WAITERS_PER_RENDER),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_streams)),
            config: Arc::new(config),
            pipeline,
            cache,
            store,
            metrics,
            pending_jobs: Mutex::default(),
        })
    }

    /// Reads, parses and validates a render request; every problem names its field. Returns
    /// the request as sent (its text is what the client's marks are located in) and the
    /// validated spec.
    pub async fn read_request(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(RenderRequest, ValidSpec), ApiError> {
        let bytes = read_body(headers, body, self.config.max_body_bytes).await?;
        let request = parse_request(&bytes)?;
        let valid = self.validate_settings(&request)?;
        Ok((request, valid))
    }

    /// Validates a request against the contract and the voices known (every problem names
    /// its field); the spec comes with its render id.
    pub fn validate_settings(&self, request: &RenderRequest) -> Result<ValidSpec, ApiError> {
        // Validation comes first: a client's mistake is a 4xx whatever the workers' state.
        Ok(self
            .voices
            .check_request(request, self.config.default_voice.as_deref())?)
    }

    /// The record of a render: a 404 naming `render_id` for an id that is malformed or names
    /// no render. A render whose job was lost (its record outlived the lease) is resubmitted
    /// here, so a client that only polls is never stuck.
    pub async fn find_record(&self, render_id: &str) -> Result<RenderRecord, ApiError> {
        let unknown = || {
            ApiError::new(ErrorKind::NotFound, format!("no render {render_id:?}"))
                .field("render_id")
        };
        if !avatar_domain::is_render_id(render_id) {
            return Err(unknown());
        }
        let value = self
            .pipeline
            .renders
            .get(render_id.to_owned())
            .await
            .map_err(|e| ApiError::unavailable(format!("the render store is unavailable: {e}")))?;
        let record = value
            .and_then(|v| RenderRecord::from_bytes(&v).ok())
            .ok_or_else(unknown)?;
        if !record.is_final() && avatar_runtime::submit::stale(&record, &self.pipeline) {
            return Ok(match resubmit(&self.pipeline, &record).await {
                Ok(submitted) => submitted.record().clone(),
                Err(_) => record,
            });
        }
        Ok(record)
    }

    pub async fn pending_jobs(&self) -> Option<u64> {
        if let Some((at, n)) = *self
            .pending_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < Duration::from_secs(1)
        {
            return Some(n);
        }
        let n = tokio::time::timeout(Duration::from_secs(2), self.pipeline.pending_jobs())
            .await
            .ok()?
            .ok()?;
        *self
            .pending_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), n));
        Some(n)
    }
}

/// Where a poll's completed answer is remembered (its marks located in the submitted text,
/// which other answers' are not).
pub fn poll_key(render_id: &str) -> String {
    format!("poll:{render_id}")
}
