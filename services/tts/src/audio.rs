//! Speech audio as a file a browser plays: Ogg Opus (RFC 7845) by default, WAV as the
//! fallback.
//!
//! Opus only runs at 48 kHz, so the synthesiser's 22 050 Hz PCM is resampled first (rubato,
//! with its start-up delay trimmed, so sample 0 stays sample 0). The encoder's look-ahead is
//! declared as pre-skip and the final granule position trims the last frame's padding, so a
//! conforming decoder returns exactly the synthesised length: mouth-cue times computed on
//! the PCM hold for the decoded file.

use std::io::Cursor;
use std::str::FromStr;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Encoder};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
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

    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Ogg => "audio/ogg",
            AudioFormat::Wav => "audio/wav",
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
}

/// Encodes mono samples in [-1, 1] at `sample_rate` as `format`. If Opus encoding fails, the
/// audio is not lost: it is written as WAV with a logged warning.
pub fn encode(
    samples: &[f32],
    sample_rate: u32,
    format: AudioFormat,
    bitrate: u32,
) -> EncodedAudio {
    if format == AudioFormat::Ogg {
        match encode_ogg_opus(samples, sample_rate, bitrate) {
            Ok(bytes) => {
                return EncodedAudio {
                    format: AudioFormat::Ogg,
                    bytes,
                };
            }
            Err(e) => tracing::warn!(error = %e, "Ogg Opus encoding failed; writing WAV instead"),
        }
    }
    EncodedAudio {
        format: AudioFormat::Wav,
        bytes: encode_wav(samples, sample_rate),
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

/// Resamples mono audio to 48 kHz with the resampler's delay removed: output sample `i`
/// corresponds to input time `i / 48000` s.
pub fn resample_to_opus_rate(samples: &[f32], sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    if sample_rate == OPUS_SAMPLE_RATE || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        sample_rate as usize,
        OPUS_SAMPLE_RATE as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| AudioError::Resample(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    // rubato rounds the length through a float ratio; the exact length is n * 48000 / rate.
    let exact = (samples.len() as u64 * u64::from(OPUS_SAMPLE_RATE) + u64::from(sample_rate) / 2)
        / u64::from(sample_rate);
    let mut out = output.take_data();
    out.resize(exact as usize, 0.0);
    Ok(out)
}

/// Ogg Opus (RFC 7845): an `OpusHead` page, an `OpusTags` page, then 20 ms packets in
/// pages of about a second, the last page flagged end-of-stream.
pub fn encode_ogg_opus(
    samples: &[f32],
    sample_rate: u32,
    bitrate: u32,
) -> Result<Vec<u8>, AudioError> {
    let pcm = resample_to_opus_rate(samples, sample_rate)?;
    let mut encoder = Encoder::new(OPUS_SAMPLE_RATE, Channels::Mono, Application::Voip)?;
    encoder.set_bitrate(Bitrate::Bits(bitrate as i32))?;
    encoder.set_vbr(true)?;
    // The decoder drops this many samples at the start: the encoder's look-ahead.
    let pre_skip = encoder.get_lookahead()? as usize;
    let serial = stream_serial(samples);

    let mut writer = PacketWriter::new(Vec::with_capacity(pcm.len() / 8 + 4096));
    writer.write_packet(
        opus_head(pre_skip as u16, sample_rate),
        serial,
        PacketWriteEndInfo::EndPage,
        0,
    )?;
    writer.write_packet(opus_tags(), serial, PacketWriteEndInfo::EndPage, 0)?;

    // Encode pre-skip + real samples (zero-padded to whole frames); the last granule
    // position says where the real audio ends.
    let total = (pre_skip + pcm.len()) as u64;
    let frames = (pre_skip + pcm.len()).div_ceil(FRAME_SAMPLES).max(1);
    let mut frame = [0f32; FRAME_SAMPLES];
    for k in 0..frames {
        frame.fill(0.0);
        let start = (k * FRAME_SAMPLES).min(pcm.len());
        let end = ((k + 1) * FRAME_SAMPLES).min(pcm.len());
        frame[..end - start].copy_from_slice(&pcm[start..end]);
        let packet = encoder.encode_vec_float(&frame, MAX_PACKET)?;
        let last = k + 1 == frames;
        let granule = if last {
            total
        } else {
            ((k + 1) * FRAME_SAMPLES) as u64
        };
        let end_info = if last {
            PacketWriteEndInfo::EndStream
        } else if (k + 1) % FRAMES_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer.write_packet(packet, serial, end_info, granule)?;
    }
    Ok(writer.into_inner())
}

/// `OpusHead`: version 1, mono, pre-skip, the original input rate, no gain, mapping 0.
fn opus_head(pre_skip: u16, input_sample_rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_sample_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

/// `OpusTags`: the vendor string and one comment naming the pipeline.
fn opus_tags() -> Vec<u8> {
    let vendor = format!("avatar-pipeline {}", env!("CARGO_PKG_VERSION"));
    let comment = "ENCODER=avatar-pipeline tts (libopus)";
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&1u32.to_le_bytes());
    tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    tags.extend_from_slice(comment.as_bytes());
    tags
}

/// A stream serial derived from the audio, so the same audio gives the same file.
fn stream_serial(samples: &[f32]) -> u32 {
    samples.iter().take(4096).fold(0x811c_9dc5u32, |h, s| {
        (h ^ s.to_bits()).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32, rate: u32) -> Vec<f32> {
        let n = (seconds * rate as f32) as usize;
        (0..n)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    /// Decodes an Ogg Opus file with libopus and applies pre-skip and end trimming, as a
    /// player does; returns (pre_skip, samples at 48 kHz).
    pub(crate) fn decode(bytes: &[u8]) -> (usize, Vec<f32>) {
        let mut reader = ogg::reading::PacketReader::new(Cursor::new(bytes));
        let head = reader.read_packet_expected().unwrap();
        assert_eq!(&head.data[..8], b"OpusHead");
        let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
        let tags = reader.read_packet_expected().unwrap();
        assert_eq!(&tags.data[..8], b"OpusTags");
        let mut decoder = opus::Decoder::new(OPUS_SAMPLE_RATE, Channels::Mono).unwrap();
        let mut out = Vec::new();
        let mut last_granule = 0;
        let mut saw_end = false;
        while let Some(packet) = reader.read_packet().unwrap() {
            let mut buf = [0f32; 5760];
            let n = decoder.decode_float(&packet.data, &mut buf, false).unwrap();
            out.extend_from_slice(&buf[..n]);
            last_granule = packet.absgp_page();
            saw_end |= packet.last_in_stream();
        }
        assert!(saw_end, "no end-of-stream page");
        out.truncate(last_granule as usize);
        (pre_skip, out.split_off(pre_skip))
    }

    #[test]
    fn ogg_opus_decodes_to_the_input_length() {
        for seconds in [0.01, 0.5, 1.7, 3.0] {
            let input = tone(seconds, 22050);
            let bytes = encode_ogg_opus(&input, 22050, DEFAULT_BITRATE).unwrap();
            let (pre_skip, decoded) = decode(&bytes);
            assert!(pre_skip > 0);
            let expected = (input.len() as f64 * 48000.0 / 22050.0).round() as usize;
            assert_eq!(decoded.len(), expected, "{seconds} s");
        }
    }

    #[test]
    fn resampling_keeps_time_zero() {
        // A click at 0.5 s stays at 0.5 s after resampling.
        let mut input = vec![0f32; 22050];
        input[11025] = 1.0;
        let out = resample_to_opus_rate(&input, 22050).unwrap();
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 24000).abs() <= 2, "click moved to {peak}");
    }

    #[test]
    fn bitrate_is_honoured() {
        let input = tone(3.0, 22050);
        let low = encode_ogg_opus(&input, 22050, 12_000).unwrap().len();
        let high = encode_ogg_opus(&input, 22050, 48_000).unwrap().len();
        assert!(high > low * 2, "12k: {low} B, 48k: {high} B");
    }

    #[test]
    fn wav_is_16_bit_mono_with_every_sample() {
        let input = tone(0.25, 22050);
        let bytes = encode_wav(&input, 22050);
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(reader.spec().sample_rate, 22050);
        assert_eq!(reader.spec().bits_per_sample, 16);
        assert_eq!(reader.len() as usize, input.len());
    }

    #[test]
    fn formats() {
        assert_eq!("wav".parse::<AudioFormat>().unwrap(), AudioFormat::Wav);
        assert_eq!("OGG".parse::<AudioFormat>().unwrap(), AudioFormat::Ogg);
        assert!("mp3".parse::<AudioFormat>().is_err());
    }
}
