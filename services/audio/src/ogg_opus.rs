//! Ogg Opus files, written as the audio arrives.

use ::ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Encoder};

use super::resample::{StreamResampler, resampled_len};
use super::{AudioError, FRAME_SAMPLES, FRAMES_PER_PAGE, MAX_PACKET, OPUS_SAMPLE_RATE};

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
            resampler: StreamResampler::new(input_sample_rate, OPUS_SAMPLE_RATE)?,
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
        let real_samples = resampled_len(resampler.input_total, resampler.rate, OPUS_SAMPLE_RATE);
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
