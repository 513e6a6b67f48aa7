//! Text to speech for the avatar pipeline: English text to espeak-ng phonemes, Piper VITS
//! through onnxruntime, a phoneme timeline from the same run, and Ogg/Opus (or WAV) audio.
//!
//! ```text
//! VoiceStore::open(dir, runtime, threads)?.get(id)? -> Voice
//! synthesize(&voice, text, speed)?                  -> Synthesis { samples, timeline }
//! audio::encode(&synthesis.samples, rate, format, bitrate) -> EncodedAudio
//! ```

mod error;
mod espeak;
mod fit;
mod ids;
mod native;
mod synth;
mod voice;
mod words;

/// Encoding lives in its own crate, shared with the stages that decode users' audio.
pub use avatar_audio as audio;
pub use avatar_audio::{AudioFormat, EncodedAudio};
pub use avatar_domain::VoiceInfo;
pub use error::TtsError;
pub use espeak::{Phonemized, Phonemizer};
pub use ids::phoneme_ids;
pub use native::{RuntimePaths, runtime_dir};
pub use synth::{MAX_CHUNK_PHONEMES, Synthesis, synthesize, synthesize_encoded, synthesize_with};
pub use voice::{DEFAULT_VOICES_DIR, Voice, VoiceStore, default_threads};
