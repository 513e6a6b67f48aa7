//! `avatar-lipsync`: the lipsync stage worker. Turns each job's phoneme timeline into mouth
//! cues in the requested viseme set and passes the job on to the eyes stage.

use avatar_core::config::Env;
use avatar_core::jetstream::Stage;
use avatar_core::record::Job;
use avatar_core::worker::{Outcome, StageError, StageHandler, WorkerConfig};

struct LipsyncStage;

impl StageHandler for LipsyncStage {
    fn stage(&self) -> Stage {
        Stage::Lipsync
    }

    async fn process(&self, mut job: Job) -> Result<Outcome, StageError> {
        let speech = job.speech.as_ref().ok_or_else(|| StageError::Rejected {
            message: "the job carries no speech timeline".into(),
            field: None,
        })?;
        speech.timeline.check().map_err(|e| StageError::Rejected {
            message: format!("the job's timeline is corrupt: {e}"),
            field: None,
        })?;
        job.mouth_cues = Some(lipsync::mouth_cues(&speech.timeline, job.spec.viseme_set));
        Ok(Outcome::Next(job))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let shutdown = avatar_core::shutdown::Shutdown::install();
    let mut env = Env::from_process();
    let config = WorkerConfig::from_env(&mut env, 9102);
    if let Err(e) = env.finish() {
        eprintln!("avatar-lipsync: {e}");
        return std::process::ExitCode::from(2);
    }
    avatar_core::telemetry::init_logging(&config.log_level);
    avatar_core::tls::install_crypto_provider();
    avatar_core::worker::serve(config, LipsyncStage, &shutdown).await;
    std::process::ExitCode::SUCCESS
}
