//! The align stage worker: the first stage of lip-sync for an uploaded recording. Reads the
//! recording from the object store, decodes it and aligns what is known of its words
//! (transcript, another engine's timings, or nothing: recognised), and passes the phoneme
//! timeline on to the lipsync stage, as the tts stage does for synthesised speech. It also
//! takes live streams of audio ([`crate::live`]).

use std::sync::Arc;

use avatar_align::{AlignError, Aligner, AlignerConfig};
use avatar_runtime::config::{Env, WorkerConfig};
use avatar_runtime::jetstream::Stage;
use avatar_runtime::job::{Job, Speech};
use avatar_runtime::record::random_id;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::storage::audio_key;
use avatar_runtime::worker::{Outcome, StageError, StageHandler};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::config::ALIGN_METRICS_PORT;

struct AlignStage {
    aligner: Arc<Aligner>,
    store: Arc<dyn ObjectStore>,
}

fn rejected(field: &str, message: String) -> StageError {
    StageError::Rejected {
        message,
        field: Some(field.to_owned()),
    }
}

impl StageHandler for AlignStage {
    fn stage(&self) -> Stage {
        Stage::Align
    }

    async fn process(&self, mut job: Job) -> Result<Outcome, StageError> {
        let recording = job.recording.clone().ok_or_else(|| StageError::Rejected {
            message: "the job carries no recording".into(),
            field: None,
        })?;
        let bytes = self
            .store
            .get(&audio_key(&recording.audio_file))
            .await
            .map_err(|e| StageError::failed("cannot read the recording", e))?
            .bytes()
            .await
            .map_err(|e| StageError::failed("cannot read the recording", e))?;
        let aligner = self.aligner.clone();
        let words = recording.spec.words.clone();
        let hint = recording.hint.clone();
        let span = tracing::Span::current();
        // Decoding and alignment are CPU work of up to seconds: off the async threads.
        let aligned = tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let (audio, _) = avatar_audio::decode_recording(&bytes, hint.as_deref())
                .map_err(|e| rejected(&e.field, format!("{}: {}", e.field, e.message)))?;
            aligner
                .align_recording(&audio, &words)
                .map_err(|e| match e {
                    AlignError::NoWords => rejected("transcript", format!("transcript: {e}")),
                    e => StageError::failed("cannot align the recording", e),
                })
        })
        .await
        .map_err(|_| StageError::failed_because("alignment panicked"))??;
        let text = recording
            .spec
            .transcript()
            .is_none()
            .then(|| aligned.text.clone());
        job.speech = Some(Speech {
            run: random_id(),
            audio_file: recording.audio_file,
            duration_ms: aligned.timeline.duration_ms(),
            timeline: aligned.timeline,
            text,
        });
        Ok(Outcome::Next(job))
    }
}

/// The whole `main` of `avatar-align`.
pub async fn main() -> std::process::ExitCode {
    let shutdown = Shutdown::install();
    let mut env = Env::from_process();
    let worker = WorkerConfig::from_env(&mut env, ALIGN_METRICS_PORT);
    let aligner_config = AlignerConfig::from_vars(|name| env.optional(name));
    let live_sessions = env.parse("LIVE_SESSIONS", crate::live::DEFAULT_LIVE_SESSIONS);
    if let Err(e) = env.finish() {
        eprintln!("avatar-align: {e}");
        return std::process::ExitCode::from(2);
    }
    crate::start(&worker);
    let started = std::time::Instant::now();
    let aligner = match Aligner::load(&aligner_config) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("avatar-align: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let store = match avatar_runtime::storage::open(&worker.storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("avatar-align: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(
        load_ms = started.elapsed().as_millis() as u64,
        "align worker starting"
    );
    // Live streams on a connection of their own, beside the stage's consumer.
    let live = {
        let (url, aligner, shutdown) = (
            worker.pipeline.nats_url.clone(),
            aligner.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let connected = shutdown
                .unless_requested(avatar_runtime::jetstream::connect(
                    &url,
                    "avatar-align-live",
                ))
                .await;
            match connected {
                Some(Ok(client)) => {
                    crate::live::serve(client, aligner, live_sessions, &shutdown).await;
                }
                Some(Err(e)) => tracing::error!(error = %e, "no live streams: cannot connect"),
                None => {}
            }
        })
    };
    avatar_runtime::worker::serve(worker, AlignStage { aligner, store }, &shutdown).await;
    live.abort();
    std::process::ExitCode::SUCCESS
}
