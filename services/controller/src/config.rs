//! The controller's settings, from the environment, every problem reported at once.

use avatar_runtime::config::{ConfigError, Env, WorkerConfig};

/// The metrics and health port when `METRICS_PORT` is not set.
pub const DEFAULT_METRICS_PORT: u16 = 9104;

/// Where the controller's answers point.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of audio URLs (the gateway's `/audio`).
    pub audio_base_url: String,
    /// Prefix of result URLs (the gateway's `/results`).
    pub results_base_url: String,
    pub default_voice: Option<String>,
    /// This replica's name in the events it records (`POD_NAME`).
    pub instance: Option<String>,
}

/// Everything `avatar-controller` reads at start-up.
pub struct ControllerConfig {
    /// NATS, storage, metrics and logging, as for the stage workers.
    pub worker: WorkerConfig,
    pub settings: Settings,
}

impl ControllerConfig {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let worker = WorkerConfig::from_env(&mut env, DEFAULT_METRICS_PORT);
        let audio_base_url = env.audio_base_url();
        // The gateway serves results next to audio: .../audio -> .../results.
        let derived = match audio_base_url.strip_suffix("/audio") {
            Some(base) => format!("{base}/results"),
            None => format!("{audio_base_url}/../results"),
        };
        let results_base_url = env
            .string("RESULTS_BASE_URL", &derived)
            .trim_end_matches('/')
            .to_owned();
        let default_voice = env.default_voice();
        let instance = env.optional("POD_NAME");
        env.finish()?;
        Ok(Self {
            worker,
            settings: Settings {
                audio_base_url,
                results_base_url,
                default_voice,
                instance,
            },
        })
    }
}
