//! Environment variables, parsed in one place per binary with every problem reported at once.
//!
//! Each binary builds its configuration from an [`Env`] and calls [`Env::finish`]: a bad
//! `SYNC_TIMEOUT_SECONDS` and a bad `S3_BUCKET` are both reported in one start-up error,
//! not one per restart.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Defaults, named.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_JOB_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_JOB_MAX_DELIVER: i64 = 5;
pub const DEFAULT_RENDER_LEASE: Duration = Duration::from_secs(300);
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// The services' log filter (`LOG_LEVEL`).
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Where clients fetch audio from (`AUDIO_BASE_URL`): the gateway's `/audio`, run locally.
pub const DEFAULT_AUDIO_BASE_URL: &str = "http://localhost:8080/audio";

/// All configuration problems found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// A source of variables that remembers every problem it was asked about.
pub struct Env {
    vars: HashMap<String, String>,
    errors: Vec<String>,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            errors: Vec::new(),
        }
    }

    /// The value if set and not empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// The configured default voice: `DEFAULT_VOICE`, else the file name of the seed's
    /// `PIPER_MODEL` (a model path).
    pub fn default_voice(&self) -> Option<String> {
        self.optional("DEFAULT_VOICE").or_else(|| {
            self.optional("PIPER_MODEL").and_then(|m| {
                std::path::Path::new(&m)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
        })
    }

    /// `LOG_LEVEL`: a level or a tracing filter.
    pub fn log_level(&self) -> String {
        self.string("LOG_LEVEL", DEFAULT_LOG_LEVEL)
    }

    /// `AUDIO_BASE_URL`, the prefix of every `audio_url` a client is given, without a
    /// trailing `/`.
    pub fn audio_base_url(&self) -> String {
        self.string("AUDIO_BASE_URL", DEFAULT_AUDIO_BASE_URL)
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    /// A required variable; its absence is recorded as an error.
    pub fn required(&mut self, name: &str, why: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.errors.push(format!("{name} is required {why}"));
            String::new()
        })
    }

    pub fn parse<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: Display,
    {
        match self.optional(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|e| {
                self.errors.push(format!("{name}={raw:?}: {e}"));
                default
            }),
        }
    }

    /// A whole number of seconds, at least `min`.
    pub fn seconds(&mut self, name: &str, default: Duration, min: u64) -> Duration {
        let secs = self.parse(name, default.as_secs());
        if secs < min {
            self.errors
                .push(format!("{name}={secs}: must be at least {min}"));
            return default;
        }
        Duration::from_secs(secs)
    }

    /// `true/false/1/0/yes/no`.
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.optional(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => {
                self.errors
                    .push(format!("{name}={v:?}: expected true or false"));
                default
            }
        }
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.errors))
        }
    }
}

/// NATS and the pipeline's JetStream settings, shared by every service.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub nats_url: String,
    /// How long a finished render stays cached (the KV bucket's max age).
    pub cache_ttl: Duration,
    /// How long a worker may hold a job without reporting progress.
    pub ack_wait: Duration,
    /// Deliveries of one job before it is declared failed.
    pub max_deliver: i64,
    /// How old a pending or rendering record may get before an identical request takes it
    /// over (a job lost to a purge or a broken queue never blocks a render for good).
    pub render_lease: Duration,
}

impl PipelineConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let max_deliver = env.parse("JOB_MAX_DELIVER", DEFAULT_JOB_MAX_DELIVER);
        if max_deliver < 1 {
            env.error(format!("JOB_MAX_DELIVER={max_deliver}: must be at least 1"));
        }
        Self {
            nats_url: env.string("NATS_URL", DEFAULT_NATS_URL),
            cache_ttl: env.seconds("CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL, 1),
            ack_wait: env.seconds("JOB_ACK_WAIT_SECONDS", DEFAULT_JOB_ACK_WAIT, 1),
            max_deliver: max_deliver.max(1),
            render_lease: env.seconds("RENDER_LEASE_SECONDS", DEFAULT_RENDER_LEASE, 1),
        }
    }
}

/// Where audio is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A directory on the local file system (the embedded default).
    Local { dir: PathBuf },
    /// Any S3-compatible service.
    S3 {
        endpoint: Option<String>,
        region: String,
        bucket: String,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
        path_style: bool,
        allow_http: bool,
    },
}

impl StorageConfig {
    /// `STORAGE_BACKEND` = `local` (default; `DATA_DIR`) or `s3` (`S3_ENDPOINT`, `S3_REGION`,
    /// `S3_BUCKET`, `S3_ACCESS_KEY_ID`/`AWS_ACCESS_KEY_ID`,
    /// `S3_SECRET_ACCESS_KEY`/`AWS_SECRET_ACCESS_KEY`, `S3_PATH_STYLE`, `S3_ALLOW_HTTP`).
    pub fn from_env(env: &mut Env) -> Self {
        match env.string("STORAGE_BACKEND", "local").as_str() {
            "local" => StorageConfig::Local {
                dir: PathBuf::from(env.string("DATA_DIR", DEFAULT_DATA_DIR)),
            },
            "s3" => {
                let endpoint = env.optional("S3_ENDPOINT");
                let plain_http = endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"));
                StorageConfig::S3 {
                    region: env.string("S3_REGION", DEFAULT_S3_REGION),
                    bucket: env.required("S3_BUCKET", "when STORAGE_BACKEND=s3"),
                    access_key_id: env
                        .optional("S3_ACCESS_KEY_ID")
                        .or_else(|| env.optional("AWS_ACCESS_KEY_ID")),
                    secret_access_key: env
                        .optional("S3_SECRET_ACCESS_KEY")
                        .or_else(|| env.optional("AWS_SECRET_ACCESS_KEY")),
                    path_style: env.flag("S3_PATH_STYLE", endpoint.is_some()),
                    allow_http: env.flag("S3_ALLOW_HTTP", plain_http),
                    endpoint,
                }
            }
            other => {
                env.error(format!("STORAGE_BACKEND={other:?}: expected local or s3"));
                StorageConfig::Local {
                    dir: PathBuf::from(DEFAULT_DATA_DIR),
                }
            }
        }
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
            log_level: env.log_level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults() {
        let mut e = env(&[]);
        let p = PipelineConfig::from_env(&mut e);
        assert_eq!(p.nats_url, DEFAULT_NATS_URL);
        assert_eq!(p.cache_ttl, Duration::from_secs(604_800));
        assert_eq!(
            StorageConfig::from_env(&mut e),
            StorageConfig::Local {
                dir: "./data".into()
            }
        );
        e.finish().unwrap();
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut e = env(&[
            ("CACHE_TTL_SECONDS", "a week"),
            ("JOB_MAX_DELIVER", "0"),
            ("STORAGE_BACKEND", "s3"),
            ("S3_PATH_STYLE", "maybe"),
        ]);
        PipelineConfig::from_env(&mut e);
        StorageConfig::from_env(&mut e);
        let err = e.finish().unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 4, "{text}");
        for name in [
            "CACHE_TTL_SECONDS",
            "JOB_MAX_DELIVER",
            "S3_BUCKET",
            "S3_PATH_STYLE",
        ] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn s3_settings() {
        let mut e = env(&[
            ("STORAGE_BACKEND", "s3"),
            ("S3_ENDPOINT", "http://127.0.0.1:8333"),
            ("S3_BUCKET", "audio"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("S3_SECRET_ACCESS_KEY", "SK"),
        ]);
        let s = StorageConfig::from_env(&mut e);
        e.finish().unwrap();
        assert_eq!(
            s,
            StorageConfig::S3 {
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: "us-east-1".into(),
                bucket: "audio".into(),
                access_key_id: Some("AK".into()),
                secret_access_key: Some("SK".into()),
                path_style: true,
                allow_http: true,
            }
        );
    }
}
