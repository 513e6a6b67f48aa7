//! The stage workers. Each binary in `src/bin` runs one stage library ([`tts`], [`align`],
//! [`lipsync`], [`eyes`]) as a JetStream consumer through `avatar-runtime`'s worker loop; the stage
//! libraries themselves know nothing of NATS, HTTP or storage.

use std::process::ExitCode;

use avatar_runtime::config::Env;
use avatar_runtime::config::WorkerConfig;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::worker::StageHandler;

pub mod align;
pub mod config;
pub mod eyes;
pub mod lipsync;
pub mod live;
pub mod tts;

/// The whole `main` of a stage worker that needs only the common settings: reads them
/// (metrics on `metrics_port` unless `METRICS_PORT` says otherwise; a bad setting exits with
/// 2), then serves `handler` until SIGTERM.
pub async fn main_of(name: &str, metrics_port: u16, handler: impl StageHandler) -> ExitCode {
    let shutdown = Shutdown::install();
    let mut env = Env::from_process();
    let config = WorkerConfig::from_env(&mut env, metrics_port);
    if let Err(e) = env.finish() {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    start(&config);
    avatar_runtime::worker::serve(config, handler, &shutdown).await;
    ExitCode::SUCCESS
}

/// Logging and the TLS provider, once the settings are read.
pub fn start(config: &WorkerConfig) {
    avatar_runtime::telemetry::init_logging(&config.log_level);
    avatar_runtime::tls::install_crypto_provider();
}
