use std::path::PathBuf;

use crate::espeak::PhonemizeError;

/// Everything that can stop a synthesis. Which of these is the client's doing
/// ([`TtsError::field`]) decides between a 4xx naming the field and a failed render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtsError {
    #[error("unknown voice {voice:?}; available: {}", available.join(", "))]
    UnknownVoice {
        voice: String,
        available: Vec<String>,
    },
    #[error("voices directory {0} does not exist (run scripts/download_voices.sh)")]
    VoicesDir(PathBuf),
    #[error("cannot read voice file {path}: {reason}")]
    VoiceFile { path: PathBuf, reason: String },
    #[error("voice config {path} is not a valid Piper config: {reason}")]
    BadVoiceConfig { path: PathBuf, reason: String },
    #[error("voice model {path} is not a usable Piper model: {reason}")]
    BadVoiceModel { path: PathBuf, reason: String },
    #[error(
        "cannot load onnxruntime from {path}: {reason} (run scripts/setup_runtime.sh, or set ORT_DYLIB_PATH)"
    )]
    OnnxRuntime { path: PathBuf, reason: String },
    #[error(transparent)]
    Phonemize(#[from] PhonemizeError),
    #[error("synthesis with voice {voice} failed: {reason}")]
    Inference { voice: String, reason: String },
    #[error("the text contains nothing that can be spoken")]
    NothingToSpeak,
}

impl TtsError {
    /// The request field to blame when the request itself is at fault (an unknown voice,
    /// nothing to speak); `None` when the pipeline is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TtsError::UnknownVoice { .. } => Some("voice_id"),
            TtsError::NothingToSpeak => Some("text"),
            _ => None,
        }
    }
}
