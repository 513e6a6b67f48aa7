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
use rubato::{Fft, FixedSync, Indexing, Resampler};
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

/// Resamples mono audio to 48 kHz with the resampler's delay removed: output sample `i`
/// corresponds to input time `i / 48000` s.
pub fn resample_to_opus_rate(samples: &[f32], sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut out = Vec::with_capacity(opus_rate_len(samples.len() as u64, sample_rate) as usize);
    let mut resampler = StreamResampler::new(sample_rate)?;
    resampler.push(samples, |chunk| out.extend_from_slice(chunk))?;
    resampler.finish(|chunk| out.extend_from_slice(chunk))?;
    Ok(out)
}

/// The number of 48 kHz samples that `n` samples at `sample_rate` become.
fn opus_rate_len(n: u64, sample_rate: u32) -> u64 {
    (n * u64::from(OPUS_SAMPLE_RATE) + u64::from(sample_rate) / 2) / u64::from(sample_rate)
}

/// Resamples a stream to 48 kHz in fixed chunks, so memory stays constant whatever the
/// length, and hands out exactly `round(n * 48000 / rate)` samples with the resampler's
/// start-up delay trimmed.
struct StreamResampler {
    rate: u32,
    /// `None` when the input is already at 48 kHz.
    fft: Option<Fft<f32>>,
    chunk: usize,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    /// Delay samples at the start of the output still to drop.
    trim: usize,
    input_total: u64,
    output_total: u64,
}

impl StreamResampler {
    fn new(rate: u32) -> Result<Self, AudioError> {
        let resample_error = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
        let (fft, chunk, scratch, trim) = if rate == OPUS_SAMPLE_RATE {
            (None, 0, Vec::new(), 0)
        } else {
            let fft = Fft::<f32>::new(
                rate as usize,
                OPUS_SAMPLE_RATE as usize,
                1024,
                1,
                FixedSync::Input,
            )
            .map_err(|e| resample_error(&e))?;
            let chunk = fft.input_frames_next();
            let scratch = vec![0.0; fft.output_frames_max()];
            let trim = fft.output_delay();
            (Some(fft), chunk, scratch, trim)
        };
        Ok(Self {
            rate,
            fft,
            chunk,
            pending: Vec::new(),
            scratch,
            trim,
            input_total: 0,
            output_total: 0,
        })
    }

    fn push(&mut self, samples: &[f32], mut sink: impl FnMut(&[f32])) -> Result<(), AudioError> {
        self.input_total += samples.len() as u64;
        if self.fft.is_none() {
            self.output_total += samples.len() as u64;
            sink(samples);
            return Ok(());
        }
        self.pending.extend_from_slice(samples);
        let mut offset = 0;
        while self.pending.len() - offset >= self.chunk {
            self.process(offset, None, &mut sink)?;
            offset += self.chunk;
        }
        self.pending.drain(..offset);
        Ok(())
    }

    /// Resamples the rest and pumps the resampler until every sample is out.
    fn finish(mut self, mut sink: impl FnMut(&[f32])) -> Result<(), AudioError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let expected = opus_rate_len(self.input_total, self.rate);
        let rest = self.pending.len();
        self.pending.resize(self.chunk, 0.0);
        self.process(0, Some(rest), &mut sink)?;
        self.pending.fill(0.0);
        while self.output_total < expected {
            self.process(0, Some(0), &mut sink)?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        offset: usize,
        partial: Option<usize>,
        sink: &mut impl FnMut(&[f32]),
    ) -> Result<(), AudioError> {
        let resample_error = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
        let fft = self.fft.as_mut().expect("resampling");
        let input =
            InterleavedSlice::new(&self.pending[offset..offset + self.chunk], 1, self.chunk)
                .map_err(|e| resample_error(&e))?;
        let frames = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, frames)
            .map_err(|e| resample_error(&e))?;
        let indexing = partial.map(|n| Indexing {
            partial_len: Some(n),
            ..Default::default()
        });
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| resample_error(&e))?;
        let mut out = &self.scratch[..produced];
        let skip = self.trim.min(out.len());
        self.trim -= skip;
        out = &out[skip..];
        // Never more than the exact length: the tail of the last chunk is padding.
        let expected = opus_rate_len(self.input_total, self.rate);
        let room = if partial.is_some() {
            (expected - self.output_total.min(expected)) as usize
        } else {
            out.len()
        };
        let out = &out[..out.len().min(room)];
        self.output_total += out.len() as u64;
        sink(out);
        Ok(())
    }
}

/// Ogg Opus (RFC 7845) written as the audio arrives: an `OpusHead` page, an `OpusTags`
/// page, then 20 ms packets in pages of about a second, the last page flagged end-of-stream
/// with the granule position that trims the padding. Memory stays constant whatever the
/// length, and encoding can run while later sentences are still being synthesised.
pub struct OggOpusEncoder {
    resampler: StreamResampler,
    packets: OpusPackets,
}

/// The Opus side of [`OggOpusEncoder`]: 48 kHz samples in, Ogg pages out.
struct OpusPackets {
    encoder: Encoder,
    pre_skip: usize,
    serial: u32,
    writer: PacketWriter<'static, Vec<u8>>,
    /// 48 kHz samples waiting for a full frame.
    frame: Vec<f32>,
    frames: usize,
    /// The newest packet, held back until we know whether it is the last.
    held: Option<Vec<u8>>,
}

impl OggOpusEncoder {
    /// `serial` names the logical stream; any value is valid for a single-stream file.
    pub fn new(input_sample_rate: u32, bitrate: u32, serial: u32) -> Result<Self, AudioError> {
        let mut encoder = Encoder::new(OPUS_SAMPLE_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(bitrate as i32))?;
        encoder.set_vbr(true)?;
        // The decoder drops this many samples at the start: the encoder's look-ahead.
        let pre_skip = encoder.get_lookahead()? as usize;
        let mut writer = PacketWriter::new(Vec::with_capacity(64 * 1024));
        let head = opus_head(pre_skip as u16, input_sample_rate);
        writer.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        writer.write_packet(opus_tags(), serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self {
            resampler: StreamResampler::new(input_sample_rate)?,
            packets: OpusPackets {
                encoder,
                pre_skip,
                serial,
                writer,
                frame: Vec::with_capacity(FRAME_SAMPLES),
                frames: 0,
                held: None,
            },
        })
    }

    /// Adds mono samples in [-1, 1] at the input sample rate.
    pub fn push(&mut self, samples: &[f32]) -> Result<(), AudioError> {
        let mut encoded = Ok(());
        self.resampler.push(samples, |chunk| {
            if encoded.is_ok() {
                encoded = self.packets.take(chunk);
            }
        })?;
        encoded
    }

    /// Ends the stream and returns the file.
    pub fn finish(self) -> Result<Vec<u8>, AudioError> {
        let Self {
            resampler,
            mut packets,
        } = self;
        let real_samples = opus_rate_len(resampler.input_total, resampler.rate);
        let mut encoded = Ok(());
        resampler.finish(|chunk| {
            if encoded.is_ok() {
                encoded = packets.take(chunk);
            }
        })?;
        encoded?;
        packets.finish(real_samples)
    }
}

impl OpusPackets {
    fn take(&mut self, mut samples: &[f32]) -> Result<(), AudioError> {
        while !samples.is_empty() {
            let n = (FRAME_SAMPLES - self.frame.len()).min(samples.len());
            self.frame.extend_from_slice(&samples[..n]);
            samples = &samples[n..];
            if self.frame.len() == FRAME_SAMPLES {
                self.encode_frame()?;
            }
        }
        Ok(())
    }

    fn encode_frame(&mut self) -> Result<(), AudioError> {
        let packet = self.encoder.encode_vec_float(&self.frame, MAX_PACKET)?;
        self.frame.clear();
        if let Some(previous) = self.held.replace(packet) {
            // `previous` was packet number `frames`: it ends that many frames in.
            let end_info = if self.frames.is_multiple_of(FRAMES_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            let granule = (self.frames * FRAME_SAMPLES) as u64;
            self.writer
                .write_packet(previous, self.serial, end_info, granule)?;
        }
        self.frames += 1;
        Ok(())
    }

    /// Encodes pre-skip + real samples, zero-padded to whole frames; the last granule
    /// position says where the real audio ends.
    fn finish(mut self, real_samples: u64) -> Result<Vec<u8>, AudioError> {
        let total = self.pre_skip as u64 + real_samples;
        while (self.frames as u64) * (FRAME_SAMPLES as u64) < total || self.frames == 0 {
            self.frame.resize(FRAME_SAMPLES, 0.0);
            self.encode_frame()?;
        }
        let last = self.held.take().expect("at least one frame");
        self.writer
            .write_packet(last, self.serial, PacketWriteEndInfo::EndStream, total)?;
        Ok(self.writer.into_inner())
    }
}

/// Ogg Opus of a whole clip at once (see [`OggOpusEncoder`]).
pub fn encode_ogg_opus(
    samples: &[f32],
    sample_rate: u32,
    bitrate: u32,
) -> Result<Vec<u8>, AudioError> {
    let mut encoder = OggOpusEncoder::new(sample_rate, bitrate, stream_serial(samples))?;
    for chunk in samples.chunks(16 * 1024) {
        encoder.push(chunk)?;
    }
    encoder.finish()
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
    fn streaming_in_uneven_pieces_gives_the_same_length() {
        let input = tone(2.3, 22050);
        let mut encoder = OggOpusEncoder::new(22050, DEFAULT_BITRATE, 7).unwrap();
        let mut rest = &input[..];
        for size in [1usize, 5000, 3, 1023, 1024, 1025, 17_000].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            encoder.push(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        let (_, decoded) = decode(&encoder.finish().unwrap());
        assert_eq!(
            decoded.len(),
            (input.len() as f64 * 48000.0 / 22050.0).round() as usize
        );
        // 48 kHz input passes through without resampling.
        let input48 = tone(0.7, 48000);
        let (_, decoded) = decode(&encode_ogg_opus(&input48, 48000, DEFAULT_BITRATE).unwrap());
        assert_eq!(decoded.len(), input48.len());
        // An empty stream is still a valid file.
        let (_, decoded) = decode(&encode_ogg_opus(&[], 22050, DEFAULT_BITRATE).unwrap());
        assert!(decoded.is_empty());
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
    fn a_failed_opus_encode_falls_back_to_wav() {
        let input = tone(0.1, 22050);
        let failed = Err(AudioError::Resample("simulated".into()));
        let audio = or_wav(failed, &input, 22050);
        assert_eq!(audio.format, AudioFormat::Wav);
        let reader = hound::WavReader::new(Cursor::new(audio.bytes)).unwrap();
        assert_eq!(reader.len() as usize, input.len());
    }

    #[test]
    fn formats() {
        assert_eq!("wav".parse::<AudioFormat>().unwrap(), AudioFormat::Wav);
        assert_eq!("OGG".parse::<AudioFormat>().unwrap(), AudioFormat::Ogg);
        assert!("mp3".parse::<AudioFormat>().is_err());
    }
}
