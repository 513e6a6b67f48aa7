//! Each worker's settings, read from the environment once at start-up: the common ones
//! ([`WorkerConfig`]) for every stage, and the tts worker's own ([`TtsConfig`]).

use std::path::PathBuf;

use avatar_runtime::config::{ConfigError, Env, WorkerConfig};
use tts::{AudioFormat, RuntimePaths};

/// The metrics and health ports of the workers when `METRICS_PORT` is not set.
pub const TTS_METRICS_PORT: u16 = 9101;
pub const LIPSYNC_METRICS_PORT: u16 = 9102;
pub const EYES_METRICS_PORT: u16 = 9103;
/// 9104 is the controller's.
pub const ALIGN_METRICS_PORT: u16 = 9105;

/// `avatar-tts`'s settings: the common ones and its own.
pub struct TtsConfig {
    pub worker: WorkerConfig,
    pub voices_dir: PathBuf,
    pub preload: Vec<String>,
    pub runtime: RuntimePaths,
    pub threads: usize,
    pub audio_format: AudioFormat,
    pub bitrate: u32,
}

impl TtsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = Env::from_process();
        let worker = WorkerConfig::from_env(&mut env, TTS_METRICS_PORT);
        // The seed's PIPER_MODEL (a model path) names a voices directory and a default voice.
        let piper_model = env.optional("PIPER_MODEL").map(PathBuf::from);
        let voices_dir = env
            .optional("VOICES_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                piper_model
                    .as_ref()
                    .and_then(|m| m.parent().map(PathBuf::from))
            })
            .unwrap_or_else(|| PathBuf::from(tts::DEFAULT_VOICES_DIR));
        let default_voice = env.default_voice();
        let preload = env
            .optional("TTS_PRELOAD_VOICES")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_else(|| default_voice.into_iter().collect());
        let threads = env.parse("TTS_THREADS", tts::default_threads());
        let audio_format = env.parse("AUDIO_FORMAT", AudioFormat::Ogg);
        let bitrate = env.parse("AUDIO_BITRATE", tts::audio::DEFAULT_BITRATE);
        if !(6_000..=256_000).contains(&bitrate) {
            env.error(format!("AUDIO_BITRATE={bitrate}: must be 6000 to 256000"));
        }
        let runtime = RuntimePaths::from_vars(|name| env.optional(name));
        env.finish()?;
        Ok(Self {
            worker,
            voices_dir,
            preload,
            runtime,
            threads,
            audio_format,
            bitrate,
        })
    }
}
