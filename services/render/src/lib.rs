//! The render engine: the three stages in a row, in one process.
//!
//! This is the embedded default for one-off renders (the `avatar-render` command) and the
//! reference for what the distributed pipeline computes: the same [`tts::synthesize`],
//! [`lipsync::mouth_cues`] and [`eyes::eye_events`], so there is one implementation of
//! each stage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use avatar_align::{AlignError, Aligner};
use avatar_domain::{
    FieldError, NO_VOICES_YET, PhonemeTimeline, Refused, RenderRequest, RenderResult, ValidSpec,
    VoiceCheck,
};
use avatar_domain::{RecordingSpec, recording_id};
use tts::{AudioFormat, EncodedAudio, RuntimePaths, TtsError, VoiceStore};

pub use avatar_domain::voice::CONTRACT_DEFAULT_VOICE;
use avatar_domain::voice::default_voice;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub voices_dir: PathBuf,
    pub runtime: RuntimePaths,
    /// onnxruntime intra-op threads per synthesis.
    pub threads: usize,
    pub audio_format: AudioFormat,
    /// Opus target bitrate in bits per second.
    pub bitrate: u32,
    /// `None`: [`CONTRACT_DEFAULT_VOICE`] if installed, else the first voice installed.
    pub default_voice: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The request broke the contract; every bad field is listed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The pipeline could not render a valid request.
    #[error(transparent)]
    Tts(TtsError),
}

impl From<TtsError> for RenderError {
    fn from(e: TtsError) -> Self {
        match e.field() {
            Some(field) => RenderError::Invalid(vec![FieldError::new(field, e.to_string())]),
            None => RenderError::Tts(e),
        }
    }
}

/// A finished render: the API response and the audio file it points at.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub result: RenderResult,
    pub audio: EncodedAudio,
    /// The phoneme timeline the cues were computed from.
    pub timeline: PhonemeTimeline,
    pub stages: StageTimes,
}

/// Where a render's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Phonemes, Piper inference and audio encoding (which overlaps the inference).
    pub speech: Duration,
    pub mouth_cues: Duration,
    pub eye_events: Duration,
}

pub struct Engine {
    voices: VoiceStore,
    config: EngineConfig,
    default_voice: String,
}

impl Engine {
    /// Loads the native runtime and opens the voices directory; voices load on first use.
    pub fn new(config: EngineConfig) -> Result<Self, TtsError> {
        let voices = VoiceStore::open(&config.voices_dir, &config.runtime, config.threads)?;
        // The directory is read (every voice's config) only when no default is configured.
        let default_voice = match &config.default_voice {
            Some(configured) => configured.clone(),
            None => {
                let installed = voices.list();
                default_voice(None, installed.iter().map(|v| v.voice_id.as_str()))
                    .unwrap_or(CONTRACT_DEFAULT_VOICE)
                    .to_owned()
            }
        };
        Ok(Self {
            voices,
            config,
            default_voice,
        })
    }

    /// The voice `voice_id`, loaded on first use.
    pub fn voice(&self, voice_id: &str) -> Result<std::sync::Arc<tts::Voice>, TtsError> {
        self.voices.get(voice_id)
    }

    /// Loads a voice now rather than on the first render (e.g. at start-up).
    pub fn preload(&self, voice_id: &str) -> Result<(), TtsError> {
        self.voices.get(voice_id).map(drop)
    }

    /// Validates the request against the contract, with this engine's default voice (the
    /// voice itself is found when it loads), by the one path the services use too.
    pub fn validate(&self, request: &RenderRequest) -> Result<ValidSpec, RenderError> {
        request
            .check(Some(&self.default_voice), |_| VoiceCheck::Known)
            .map_err(|refused| match refused {
                Refused::Invalid(errors) => RenderError::Invalid(errors),
                Refused::NoVoicesYet => {
                    RenderError::Invalid(vec![FieldError::new("voice_id", NO_VOICES_YET)])
                }
            })
    }

    /// Renders a request: synthesis, audio encoding, mouth cues and eye events.
    /// `audio_url` gives the URL a client fetches the audio from, by render id and format.
    pub fn render(
        &self,
        request: &RenderRequest,
        audio_url: impl FnOnce(&str, AudioFormat) -> String,
    ) -> Result<Rendered, RenderError> {
        let started = Instant::now();
        let ValidSpec { spec, id } = self.validate(request)?;
        let voice = self.voices.get(&spec.voice_id)?;
        let mut stages = StageTimes::default();
        let mut lap = Instant::now();
        let mut time = |slot: &mut Duration| {
            *slot = lap.elapsed();
            lap = Instant::now();
        };
        let (synthesis, audio) = tts::synthesize_encoded(
            &voice,
            &spec.text,
            spec.speed,
            self.config.audio_format,
            self.config.bitrate,
        )?;
        time(&mut stages.speech);
        let mouth_cues = lipsync::mouth_cues(&synthesis.timeline, spec.viseme_set);
        time(&mut stages.mouth_cues);
        let eye_events = eyes::eye_events(&synthesis.timeline, &id);
        time(&mut stages.eye_events);
        let result = RenderResult::completed(
            id.clone(),
            audio_url(&id, audio.format),
            &synthesis.timeline,
            &spec.text,
            spec.viseme_set,
            mouth_cues,
            eye_events,
            started.elapsed().as_millis() as u64,
        );
        Ok(Rendered {
            result,
            audio,
            timeline: synthesis.timeline,
            stages,
        })
    }
}

/// Lip-sync of a recording: its mouth cues, eye events and word marks.
#[derive(Debug, Clone)]
pub struct RecordingLipsync {
    pub result: RenderResult,
    pub timeline: PhonemeTimeline,
    /// The text the word marks index: the normalised transcript, or what was recognised.
    pub text: String,
    /// True when every word was force-aligned to the transcript.
    pub forced: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The upload or what came with it is at fault; every bad field is listed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Align(AlignError),
}

/// Lip-sync of a recording (`bytes`, the whole file, as [`avatar_audio::decode_recording`]
/// decoded it into `audio`), its words force-aligned to the transcript, taken from the
/// engine's own timings, or recognised (see [`avatar_domain::Words`]). The same stages as a text render make
/// the cues, eye events and marks from the timeline; the marks index the normalised
/// transcript (or, without one, the result's `transcript`). `audio_url` gives the URL of the
/// stored recording by render id. `processing_time_ms` is the alignment, cues and eye events
/// (not the decoding).
pub fn lipsync_recording(
    aligner: &Aligner,
    bytes: &[u8],
    audio: &avatar_audio::DecodedAudio,
    spec: &RecordingSpec,
    audio_url: impl FnOnce(&str) -> String,
) -> Result<RecordingLipsync, RecordingError> {
    let started = Instant::now();
    let id = recording_id(bytes, spec);
    let alignment = aligner
        .align_recording(audio, &spec.words)
        .map_err(|e| match e {
            AlignError::NoWords => {
                RecordingError::Invalid(vec![FieldError::new("transcript", e.to_string())])
            }
            e => RecordingError::Align(e),
        })?;
    let mouth_cues = lipsync::mouth_cues(&alignment.timeline, spec.viseme_set);
    let eye_events = eyes::eye_events(&alignment.timeline, &id);
    let mut result = RenderResult::completed(
        id.clone(),
        audio_url(&id),
        &alignment.timeline,
        &alignment.text,
        spec.viseme_set,
        mouth_cues,
        eye_events,
        started.elapsed().as_millis() as u64,
    );
    if spec.transcript().is_none() {
        result.transcript = Some(alignment.text.clone());
    }
    Ok(RecordingLipsync {
        result,
        timeline: alignment.timeline,
        text: alignment.text,
        forced: alignment.forced,
    })
}
