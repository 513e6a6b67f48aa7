//! Audio files: speech encoded as a file a browser plays (Ogg Opus, RFC 7845, by default, WAV
//! as the fallback), files users bring decoded to mono samples ([`decode`]) and checked against the contract's
//! limits ([`decode_recording`]), and resampling
//! between any two rates ([`resample`]).
//!
//! Opus only runs at 48 kHz, so the synthesiser's 22 050 Hz PCM is resampled first (rubato,
//! with its start-up delay trimmed, so sample 0 stays sample 0). The encoder's look-ahead is
//! declared as pre-skip and the final granule position trims the last frame's padding, so a
//! conforming decoder returns exactly the synthesised length: mouth-cue times computed on
//! the PCM hold for the decoded file.

use std::io::Cursor;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Opus's sample rate, and so the unit of Ogg Opus granule positions.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// 20 ms frames: Opus's best trade of overhead and delay for speech.
const FRAME_SAMPLES: usize = 960;
/// Frames per Ogg page: one page a second keeps the overhead low and seeking fine-grained.
const FRAMES_PER_PAGE: usize = 50;
/// The default target bitrate: clear speech at about 3 KB per second.
pub const DEFAULT_BITRATE: u32 = 24_000;
/// Largest Opus packet (RFC 6716).
const MAX_PACKET: usize = 1275;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// Ogg Opus, `audio/ogg`.
    #[default]
    Ogg,
    /// 16-bit PCM WAV, `audio/wav`.
    Wav,
}

impl AudioFormat {
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Ogg => "ogg",
            AudioFormat::Wav => "wav",
        }
    }
}

impl FromStr for AudioFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ogg" | "opus" => Ok(AudioFormat::Ogg),
            "wav" => Ok(AudioFormat::Wav),
            _ => Err(format!("unknown audio format {s:?}; expected ogg or wav")),
        }
    }
}

/// An encoded audio file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAudio {
    pub format: AudioFormat,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("resampling failed: {0}")]
    Resample(String),
    #[error("opus encoder: {0}")]
    Opus(#[from] opus::Error),
    #[error("ogg writer: {0}")]
    Ogg(#[from] std::io::Error),
    #[error("the encoder thread panicked")]
    Panicked,
}

/// Encodes mono samples in [-1, 1] at `sample_rate` as `format`. If Opus encoding fails, the
/// audio is not lost: it is written as WAV with a logged warning.
pub fn encode(
    samples: &[f32],
    sample_rate: u32,
    format: AudioFormat,
    bitrate: u32,
) -> EncodedAudio {
    match format {
        AudioFormat::Ogg => or_wav(
            encode_ogg_opus(samples, sample_rate, bitrate),
            samples,
            sample_rate,
        ),
        AudioFormat::Wav => EncodedAudio {
            format: AudioFormat::Wav,
            bytes: encode_wav(samples, sample_rate),
        },
    }
}

/// The Ogg Opus file, or if encoding failed, WAV of the same samples with a warning: the
/// audio is never lost to an encoder problem.
pub fn or_wav(ogg: Result<Vec<u8>, AudioError>, samples: &[f32], sample_rate: u32) -> EncodedAudio {
    match ogg {
        Ok(bytes) => EncodedAudio {
            format: AudioFormat::Ogg,
            bytes,
        },
        Err(e) => {
            tracing::warn!(error = %e, "Ogg Opus encoding failed; writing WAV instead");
            EncodedAudio {
                format: AudioFormat::Wav,
                bytes: encode_wav(samples, sample_rate),
            }
        }
    }
}

/// 16-bit PCM WAV, samples scaled by 32767 and clipped as Piper does.
pub fn encode_wav(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("in-memory WAV header");
        let mut samples_writer = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            samples_writer.write_sample(to_i16(s));
        }
        samples_writer.flush().expect("in-memory WAV data");
        writer.finalize().expect("in-memory WAV");
    }
    out.into_inner()
}

fn to_i16(s: f32) -> i16 {
    (s * 32767.0).clamp(-32767.0, 32767.0) as i16
}

mod decode;
pub mod live;
mod ogg_opus;
pub mod recording;
mod resample;
#[cfg(test)]
mod tests;

pub use decode::{DecodeError, DecodedAudio, SILENCE_DBFS, decode};
pub use live::{LiveAudio, LiveSettingError};
pub use ogg_opus::{OggOpusEncoder, encode_ogg_opus};
pub use recording::{Container, decode_recording};
pub use resample::{StreamResampler, resample, resample_to_opus_rate, resampled_len};
