//! The tts stage worker: synthesises each job's text, puts the audio in the
//! object store and passes the phoneme timeline on to the lipsync stage; announces the
//! voices it can speak.

use std::sync::Arc;

use avatar_runtime::config::StorageConfig;
use avatar_runtime::jetstream::{Pipeline, Stage, VOICES_TTL};
use avatar_runtime::job::{Job, Speech};
use avatar_runtime::record::random_id;
use avatar_runtime::shutdown::Shutdown;
use avatar_runtime::storage::{audio_file_name, audio_key};
use avatar_runtime::worker::{Outcome, StageError, StageHandler};
use object_store::{ObjectStore, ObjectStoreExt};
use tts::{AudioFormat, TtsError, VoiceStore};

use crate::config::TtsConfig;

struct TtsStage {
    voices: Arc<VoiceStore>,
    store: Arc<dyn ObjectStore>,
    /// The store is a local directory: its file IO runs on whatever thread calls it when
    /// that thread is outside the async runtime.
    local_store: bool,
    runtime: tokio::runtime::Handle,
    audio_format: AudioFormat,
    bitrate: u32,
}

fn classify(e: TtsError) -> StageError {
    match e.field() {
        Some(field) => StageError::Rejected {
            message: e.to_string(),
            field: Some(field.to_owned()),
        },
        None => StageError::from_source(e),
    }
}

impl StageHandler for TtsStage {
    fn stage(&self) -> Stage {
        Stage::Tts
    }

    async fn process(&self, mut job: Job) -> Result<Outcome, StageError> {
        let voices = self.voices.clone();
        let spec = job.spec.clone();
        let (format, bitrate) = (self.audio_format, self.bitrate);
        let (store, local_store, runtime) =
            (self.store.clone(), self.local_store, self.runtime.clone());
        let render_id = job.render_id.clone();
        // Synthesis, and storing its audio, on a thread of their own outside the runtime:
        // the local store then writes the file right there, with no hand-offs between
        // threads between the end of synthesis and the next stage's job (they cost about
        // 0.3 ms here); other stores need the runtime's I/O and block on it.
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("synthesis".into())
            .spawn(move || {
                let _span = span.enter();
                let synthesised = voices.get(&spec.voice_id).and_then(|voice| {
                    tts::synthesize_encoded(&voice, &spec.text, spec.speed, format, bitrate)
                });
                let stored = synthesised
                    .map_err(classify)
                    .and_then(|(synthesis, audio)| {
                        tracing::debug!("synthesised");
                        let run = random_id();
                        let file = audio_file_name(&render_id, &run, audio.format.extension());
                        let key = audio_key(&file);
                        let put = store.put(&key, audio.bytes.into());
                        let put = if local_store {
                            futures::executor::block_on(put)
                        } else {
                            runtime.block_on(put)
                        };
                        put.map_err(|e| StageError::failed("cannot store the audio", e))?;
                        Ok((synthesis, run, file))
                    });
                let _ = done.send(stored);
            })
            .map_err(|e| StageError::failed("cannot start synthesis", e))?;
        let (synthesis, run, file) = result
            .await
            .map_err(|_| StageError::failed_because("synthesis panicked"))??;
        job.speech = Some(Speech {
            run,
            audio_file: file,
            duration_ms: synthesis.duration_ms(),
            timeline: synthesis.timeline,
            text: None,
        });
        Ok(Outcome::Next(job))
    }

    async fn discard(&self, outcome: Outcome) {
        if let Outcome::Next(Job {
            speech: Some(speech),
            ..
        }) = outcome
            && let Err(e) = self.store.delete(&audio_key(&speech.audio_file)).await
        {
            tracing::warn!(file = %speech.audio_file, error = %e, "cannot delete unwanted audio");
        }
    }
}

/// Keeps this worker's voices in the voices bucket while it runs (entries expire after
/// [`VOICES_TTL`] without a refresh, so a killed worker's voices disappear; a stopped one
/// withdraws them at once) and remembers each voice in the seen-voices bucket.
async fn announce_voices(
    pipeline: Pipeline,
    voices: Arc<VoiceStore>,
    worker_id: String,
    announced: Arc<std::sync::OnceLock<Pipeline>>,
) {
    let _ = announced.set(pipeline.clone());
    loop {
        let listed = voices.list();
        let payload = serde_json::to_vec(&listed).expect("voices serialise");
        if let Err(e) = pipeline.voices.put(&worker_id, payload.into()).await {
            tracing::warn!(error = %e, "cannot announce voices");
        }
        for voice in &listed {
            let payload = serde_json::to_vec(voice).expect("a voice serialises");
            if let Err(e) = pipeline
                .voices_seen
                .put(&voice.voice_id, payload.into())
                .await
            {
                tracing::warn!(error = %e, "cannot remember a voice");
            }
        }
        tokio::time::sleep(VOICES_TTL / 3).await;
    }
}

/// The whole `main` of `avatar-tts`.
pub async fn main() -> std::process::ExitCode {
    let shutdown = Shutdown::install();
    let config = match TtsConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("avatar-tts: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    crate::start(&config.worker);
    let voices = match VoiceStore::open(&config.voices_dir, &config.runtime, config.threads) {
        Ok(v) => Arc::new(v),
        Err(e) => {
            eprintln!("avatar-tts: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let store = match avatar_runtime::storage::open(&config.worker.storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("avatar-tts: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    for voice in &config.preload {
        let started = std::time::Instant::now();
        match voices.get(voice) {
            Ok(_) => tracing::info!(
                voice,
                ms = started.elapsed().as_millis() as u64,
                "voice preloaded"
            ),
            Err(e) => tracing::warn!(voice, error = %e, "cannot preload voice"),
        }
    }
    tracing::info!(voices = ?voices.list().iter().map(|v| &v.voice_id).collect::<Vec<_>>(), "tts worker starting");
    let announcer_voices = voices.clone();
    let pipeline_config = config.worker.pipeline.clone();
    let worker_id = format!("tts-{}", random_id());
    let announced: Arc<std::sync::OnceLock<Pipeline>> = Arc::default();
    let (announcer_id, announcer_state) = (worker_id.clone(), announced.clone());
    tokio::spawn(async move {
        let pipeline = Pipeline::start(pipeline_config, "avatar-tts-voices").await;
        announce_voices(pipeline, announcer_voices, announcer_id, announcer_state).await;
    });
    let stage = TtsStage {
        voices,
        store,
        local_store: matches!(config.worker.storage, StorageConfig::Local { .. }),
        runtime: tokio::runtime::Handle::current(),
        audio_format: config.audio_format,
        bitrate: config.bitrate,
    };
    avatar_runtime::worker::serve(config.worker, stage, &shutdown).await;
    // Stopped: the voices are no longer spoken here (best effort, NATS may be gone).
    if let Some(pipeline) = announced.get() {
        let withdraw = pipeline.voices.delete(&worker_id);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), withdraw).await;
    }
    std::process::ExitCode::SUCCESS
}
