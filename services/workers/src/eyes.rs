//! The eyes stage worker, the last: adds blinks and saccades to each job and writes
//! the completed render record.

use avatar_domain::RenderResult;
use avatar_runtime::jetstream::Stage;
use avatar_runtime::job::Job;
use avatar_runtime::record::now_ms;
use avatar_runtime::worker::{Outcome, StageError, StageHandler};

pub struct EyesStage;

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
        let mut result = RenderResult::completed(
            job.render_id,
            // Relative to the audio base URL, which whoever answers the client prepends.
            speech.audio_file,
            &speech.timeline,
            speech.text.as_deref().unwrap_or(&job.spec.text),
            job.spec.viseme_set,
            mouth_cues,
            eye_events,
            now_ms().saturating_sub(job.submitted_at_ms),
        );
        // The words heard in a recording without a transcript.
        result.transcript = speech.text;
        Ok(Outcome::Completed(result))
    }
}
