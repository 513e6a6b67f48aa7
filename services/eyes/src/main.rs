//! `avatar-eyes`: the last stage worker. Adds blinks and saccades to each job and writes
//! the completed render record.

use avatar_core::config::Env;
use avatar_core::jetstream::Stage;
use avatar_core::record::{Job, now_ms};
use avatar_core::worker::{Outcome, StageError, StageHandler, WorkerConfig};
use avatar_core::{RenderResult, RenderStatus};

struct EyesStage;

impl StageHandler for EyesStage {
    fn stage(&self) -> Stage {
        Stage::Eyes
    }

    async fn process(&self, job: Job) -> Result<Outcome, StageError> {
        let corrupt = |what: &str| StageError::Rejected {
            message: format!("the job carries no {what}"),
            field: None,
        };
        let speech = job.speech.ok_or_else(|| corrupt("speech timeline"))?;
        let mouth_cues = job.mouth_cues.ok_or_else(|| corrupt("mouth cues"))?;
        let eye_events = eyes::eye_events(&speech.timeline, &job.render_id);
        Ok(Outcome::Completed(RenderResult {
            render_id: job.render_id,
            status: RenderStatus::Completed,
            // Relative to the audio base URL, which whoever answers the client prepends.
            audio_url: speech.audio_file,
            duration_ms: speech.duration_ms,
            mouth_cues,
            eye_events,
            cached: false,
            processing_time_ms: now_ms().saturating_sub(job.submitted_at_ms),
            viseme_set: job.spec.viseme_set,
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let shutdown = avatar_core::shutdown::Shutdown::install();
    let mut env = Env::from_process();
    let config = WorkerConfig::from_env(&mut env, 9103);
    if let Err(e) = env.finish() {
        eprintln!("avatar-eyes: {e}");
        return std::process::ExitCode::from(2);
    }
    avatar_core::telemetry::init_logging(&config.log_level);
    avatar_core::tls::install_crypto_provider();
    avatar_core::worker::serve(config, EyesStage, &shutdown).await;
    std::process::ExitCode::SUCCESS
}
