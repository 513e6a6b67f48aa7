//! The lipsync stage worker: turns each job's phoneme timeline into mouth
//! cues in the requested viseme set and passes the job on to the eyes stage.

use avatar_runtime::jetstream::Stage;
use avatar_runtime::job::Job;
use avatar_runtime::worker::{Outcome, StageError, StageHandler};

pub struct LipsyncStage;

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
