//! The gateway's settings, from the environment, every problem reported at once.

use std::net::SocketAddr;
use std::time::Duration;

use avatar_runtime::config::{ConfigError, Env, PipelineConfig, StorageConfig};

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 10;
/// Largest request body: 5000 characters of up to 4 UTF-8 bytes, JSON escapes and the
/// other fields fit with room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Memory for completed records kept in the gateway (they never change: the id is a hash).
pub const DEFAULT_CACHE_MB: u64 = 64;
pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = 32;
/// A stream's pending text is spoken after this long without new text.
pub const DEFAULT_STREAM_IDLE_FLUSH: Duration = Duration::from_millis(600);
/// A stream is closed after this long without a message from its client.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub pipeline: PipelineConfig,
    pub storage: StorageConfig,
    pub listen: SocketAddr,
    /// Prefix of every `audio_url`; the gateway serves `/audio/{file}` itself.
    pub audio_base_url: String,
    pub sync_timeout: Duration,
    /// Requests that wait for a render at once; more are shed with 503 and `Retry-After`.
    pub max_concurrent_requests: usize,
    pub max_body_bytes: usize,
    pub cache_bytes: u64,
    /// `None`: `en_US-lessac-medium` if a worker has it, else the first voice announced.
    pub default_voice: Option<String>,
    pub log_level: String,
    /// The web demo's files, served at `/` (`None`: not served).
    pub web_dir: Option<std::path::PathBuf>,
    /// Streams open at once (WebSocket and server-sent events); more get 503.
    pub max_concurrent_streams: usize,
    pub stream_idle_flush: Duration,
    pub stream_idle_timeout: Duration,
}

impl GatewayConfig {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let pipeline = PipelineConfig::from_env(&mut env);
        let storage = StorageConfig::from_env(&mut env);
        let host: std::net::IpAddr = env.parse("HOST", std::net::Ipv4Addr::UNSPECIFIED.into());
        let port = env.parse("PORT", DEFAULT_PORT);
        let audio_base_url = env.audio_base_url();
        let sync_timeout = env.seconds("SYNC_TIMEOUT_SECONDS", DEFAULT_SYNC_TIMEOUT, 1);
        let max_concurrent_requests =
            env.parse("MAX_CONCURRENT_REQUESTS", DEFAULT_MAX_CONCURRENT_REQUESTS);
        if max_concurrent_requests == 0 {
            env.error("MAX_CONCURRENT_REQUESTS=0: must be at least 1");
        }
        let max_body_bytes = env.parse("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES);
        let cache_bytes = env.parse("GATEWAY_CACHE_MB", DEFAULT_CACHE_MB) * 1024 * 1024;
        let default_voice = env.default_voice();
        let log_level = env.log_level();
        let web_dir = std::path::PathBuf::from(env.string("WEB_DIR", "web-demo"));
        let web_dir = web_dir.join("index.html").is_file().then_some(web_dir);
        let max_concurrent_streams =
            env.parse("MAX_CONCURRENT_STREAMS", DEFAULT_MAX_CONCURRENT_STREAMS);
        let stream_idle_flush = Duration::from_millis(env.parse(
            "STREAM_IDLE_FLUSH_MS",
            DEFAULT_STREAM_IDLE_FLUSH.as_millis() as u64,
        ));
        if stream_idle_flush.is_zero() {
            env.error("STREAM_IDLE_FLUSH_MS=0: must be at least 1");
        }
        let stream_idle_timeout = env.seconds(
            "STREAM_IDLE_TIMEOUT_SECONDS",
            DEFAULT_STREAM_IDLE_TIMEOUT,
            1,
        );
        env.finish()?;
        Ok(Self {
            pipeline,
            storage,
            listen: SocketAddr::new(host, port),
            audio_base_url,
            sync_timeout,
            max_concurrent_requests,
            max_body_bytes,
            cache_bytes,
            default_voice,
            log_level,
            web_dir,
            max_concurrent_streams,
            stream_idle_flush,
            stream_idle_timeout,
        })
    }
}
