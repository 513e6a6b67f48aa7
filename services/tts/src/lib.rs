//! Text to speech for the avatar pipeline: English text to espeak-ng phonemes, Piper VITS
//! through onnxruntime, a phoneme timeline from the same run, and Ogg/Opus (or WAV) audio.
//!
//! ```text
//! VoiceStore::open(dir, runtime, threads)?.get(id)? -> Voice
//! synthesize(&voice, text, speed)?                  -> Synthesis { samples, timeline }
//! audio::encode(&synthesis.samples, rate, format, bitrate) -> EncodedAudio
//! ```

mod error;
pub mod espeak;
mod fit;
pub mod ids;
mod native;
mod synth;
pub mod voice;
pub mod words;

/// Encoding lives in its own crate, shared with the stages that decode users' audio.
pub use avatar_audio as audio;
pub use avatar_audio::{AudioFormat, EncodedAudio};
pub use avatar_domain::VoiceInfo;
pub use error::TtsError;
pub use native::{RuntimePaths, runtime_dir};
pub use synth::{MAX_CHUNK_PHONEMES, Synthesis, synthesize, synthesize_encoded, synthesize_with};
pub use voice::{Voice, VoiceStore};
