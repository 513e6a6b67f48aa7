//! Logging and Prometheus metrics, the same in every service.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Logs to stderr at `LOG_LEVEL` (the seed's `INFO`, `DEBUG`... or a full filter such as
/// `info,tts=debug`).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level.to_ascii_lowercase())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Every metric the pipeline exports. Each service registers all of them and uses its share.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Jobs handled by a stage worker, by outcome (`ok`, `rejected`, `failed`, `retried`,
    /// `skipped`).
    pub jobs: IntCounterVec,
    /// Time a stage spent on one job.
    pub stage_seconds: HistogramVec,
    /// Jobs waiting for each stage.
    pub queue_depth: IntGaugeVec,
    /// HTTP requests by route and status.
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    /// Renders answered, by outcome (`completed`, `cached`, `failed`, `timeout`, `rejected`,
    /// `shed`).
    pub renders: IntCounterVec,
    /// Cache hits by layer (`memory`, `kv`).
    pub cache_hits: IntCounterVec,
    /// Controller reconciliations by outcome (`submitted`, `rendering`, `completed`,
    /// `failed`, `invalid`, `unchanged`, `error`).
    pub reconciles: IntCounterVec,
    pub reconcile_seconds: HistogramVec,
    /// Streams open (WebSocket and server-sent events).
    pub streams_open: prometheus::IntGauge,
    /// Stream segments answered, by outcome (`completed`, `cached`, `failed`, `cancelled`).
    pub stream_segments: IntCounterVec,
    /// Time from a segment's text being complete to its message being sent.
    pub stream_segment_seconds: prometheus::Histogram,
    /// Live lip-sync streams asked of the align workers, by outcome (`taken`, `refused`: no
    /// worker had room or answered).
    pub live_streams: IntCounterVec,
}

impl Metrics {
    pub fn new(service: &str) -> Arc<Self> {
        let registry = Registry::new_custom(
            Some("avatar".into()),
            Some([("service".to_owned(), service.to_owned())].into()),
        )
        .expect("a valid registry");
        let latency_buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let jobs = IntCounterVec::new(
            Opts::new("jobs_total", "Jobs handled by stage workers"),
            &["stage", "outcome"],
        )
        .expect("metric");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("stage_duration_seconds", "Time a stage spent on one job")
                .buckets(latency_buckets.clone()),
            &["stage"],
        )
        .expect("metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new("queue_depth", "Jobs waiting for each stage"),
            &["stage"],
        )
        .expect("metric");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("metric");
        let http_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(latency_buckets),
            &["route"],
        )
        .expect("metric");
        let renders = IntCounterVec::new(
            Opts::new("renders_total", "Renders answered, by outcome"),
            &["outcome"],
        )
        .expect("metric");
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Controller reconciliations by outcome"),
            &["outcome"],
        )
        .expect("metric");
        let reconcile_seconds = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconciliation took"),
            &["outcome"],
        )
        .expect("metric");
        let cache_hits = IntCounterVec::new(
            Opts::new("cache_hits_total", "Cache hits by layer"),
            &["layer"],
        )
        .expect("metric");
        let streams_open =
            prometheus::IntGauge::new("streams_open", "Streams open (WebSocket and SSE)")
                .expect("metric");
        let stream_segments = IntCounterVec::new(
            Opts::new(
                "stream_segments_total",
                "Stream segments answered, by outcome",
            ),
            &["outcome"],
        )
        .expect("metric");
        let stream_segment_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "stream_segment_latency_seconds",
                "From a stream segment's text being complete to its message being sent",
            )
            .buckets(vec![
                0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("metric");
        let live_streams = IntCounterVec::new(
            Opts::new(
                "live_streams_total",
                "Live lip-sync streams asked of the align workers, by outcome",
            ),
            &["outcome"],
        )
        .expect("metric");
        for collector in [
            Box::new(streams_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(live_streams.clone()),
            Box::new(stream_segments.clone()),
            Box::new(stream_segment_seconds.clone()),
            Box::new(jobs.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(queue_depth.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_seconds.clone()),
            Box::new(renders.clone()),
            Box::new(cache_hits.clone()),
            Box::new(reconciles.clone()),
            Box::new(reconcile_seconds.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        Arc::new(Self {
            registry,
            jobs,
            stage_seconds,
            queue_depth,
            http_requests,
            http_seconds,
            renders,
            cache_hits,
            reconciles,
            reconcile_seconds,
            streams_open,
            stream_segments,
            stream_segment_seconds,
            live_streams,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding");
        String::from_utf8(buffer).expect("UTF-8 metrics")
    }
}

/// The content type of [`Metrics::render`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves a worker's `/metrics`, `/health` and its probes on `addr` (port 0: any free port)
/// and returns the bound address. `health` answers whether the worker can work (NATS
/// connected): `/health` and `/readyz` answer with it; `/livez` is 200 while the process runs.
pub async fn serve_worker_endpoints(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: impl Fn() -> (bool, serde_json::Value) + Clone + Send + Sync + 'static,
) -> std::io::Result<SocketAddr> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                        metrics.render(),
                    )
                }
            }),
        )
        .route(
            "/livez",
            get(|| async { axum::Json(serde_json::json!({"status": "alive"})) }),
        );
    let answer = move || {
        let health = health.clone();
        async move {
            let (ok, body) = health();
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, axum::Json(body))
        }
    };
    let app = app
        .route("/health", get(answer.clone()))
        .route("/readyz", get(answer));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}
