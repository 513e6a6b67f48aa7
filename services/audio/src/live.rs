//! Live audio as a client sends it, one message at a time (16-bit PCM at any rate and channel
//! count, or one Opus packet per message), made mono at the rate the aligner listens at.

use opus::Channels;

use crate::decode::downmix;
use crate::resample::StreamResampler;
use avatar_domain::LiveFormat;

/// The rates a PCM stream may declare.
pub const PCM_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;
/// The channels a PCM stream may declare (Opus: 1 or 2).
pub const MAX_PCM_CHANNELS: u16 = 8;
/// The longest Opus packet: 120 ms.
const MAX_OPUS_PACKET_MS: usize = 120;

/// A setting of a live stream that cannot be decoded, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LiveSettingError {
    pub field: &'static str,
    pub message: String,
}

/// Decodes a live stream's messages to mono samples at a fixed rate.
pub struct LiveAudio {
    channels: usize,
    codec: Codec,
    /// Decoded frames of the message at hand, interleaved.
    frames: Vec<f32>,
    mono: Vec<f32>,
}

enum Codec {
    Pcm16(Box<StreamResampler>),
    /// Decoding straight at the output rate (Opus decodes at any of its five rates).
    Opus(opus::Decoder),
}

impl LiveAudio {
    /// A decoder of `format` at `sample_rate` with `channels`, to mono at `to` Hz (for Opus,
    /// one of 8, 12, 16, 24 or 48 kHz; the packets' own rate does not matter).
    pub fn new(
        format: LiveFormat,
        sample_rate: u32,
        channels: u16,
        to: u32,
    ) -> Result<Self, LiveSettingError> {
        let setting = |field, message: String| LiveSettingError { field, message };
        let codec = match format {
            LiveFormat::Pcm16 => {
                if !PCM_RATES.contains(&sample_rate) {
                    return Err(setting(
                        "sample_rate",
                        format!(
                            "{sample_rate} Hz: PCM streams are {} to {} Hz",
                            PCM_RATES.start(),
                            PCM_RATES.end()
                        ),
                    ));
                }
                if channels == 0 || channels > MAX_PCM_CHANNELS {
                    return Err(setting(
                        "channels",
                        format!("{channels}: PCM streams have 1 to {MAX_PCM_CHANNELS} channels"),
                    ));
                }
                let resampler = StreamResampler::low_latency(sample_rate, to)
                    .map_err(|e| setting("sample_rate", e.to_string()))?;
                Codec::Pcm16(Box::new(resampler))
            }
            LiveFormat::Opus => {
                let layout = match channels {
                    1 => Channels::Mono,
                    2 => Channels::Stereo,
                    _ => {
                        return Err(setting(
                            "channels",
                            format!("{channels}: Opus streams are mono or stereo"),
                        ));
                    }
                };
                let decoder = opus::Decoder::new(to, layout)
                    .map_err(|e| setting("sample_rate", format!("{to} Hz: {e}")))?;
                Codec::Opus(decoder)
            }
        };
        Ok(Self {
            channels: usize::from(channels),
            codec,
            frames: Vec::new(),
            mono: Vec::new(),
        })
    }

    /// The samples of one message, or why it cannot be decoded (the stream goes on).
    pub fn push(&mut self, message: &[u8], sink: impl FnMut(&[f32])) -> Result<(), String> {
        self.frames.clear();
        self.mono.clear();
        match &mut self.codec {
            Codec::Pcm16(resampler) => {
                let frame = 2 * self.channels;
                if !message.len().is_multiple_of(frame) {
                    return Err(format!(
                        "{} bytes is not a whole number of {frame}-byte frames ({} channels of \
                         16-bit samples)",
                        message.len(),
                        self.channels
                    ));
                }
                self.frames.extend(
                    message
                        .chunks_exact(2)
                        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
                );
                downmix(&self.frames, self.channels, &mut self.mono);
                resampler.push(&self.mono, sink).map_err(|e| e.to_string())
            }
            Codec::Opus(decoder) => {
                if message.is_empty() {
                    return Ok(());
                }
                let rate = decoder.get_sample_rate().map_err(|e| e.to_string())? as usize;
                self.frames
                    .resize(rate * MAX_OPUS_PACKET_MS / 1000 * self.channels, 0.0);
                let n = decoder
                    .decode_float(message, &mut self.frames, false)
                    .map_err(|e| format!("not an Opus packet: {e}"))?;
                downmix(
                    &self.frames[..n * self.channels],
                    self.channels,
                    &mut self.mono,
                );
                let mut sink = sink;
                sink(&self.mono);
                Ok(())
            }
        }
    }

    /// The samples still held back (the resampler's last chunk).
    pub fn finish(self, sink: impl FnMut(&[f32])) -> Result<(), String> {
        match self.codec {
            Codec::Pcm16(resampler) => resampler.finish(sink).map_err(|e| e.to_string()),
            Codec::Opus(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, ms: u32, hz: f32) -> Vec<f32> {
        (0..rate * ms / 1000)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    fn pcm16(samples: &[f32], channels: usize) -> Vec<u8> {
        samples
            .iter()
            .flat_map(|s| std::iter::repeat_n(((s * 32767.0) as i16).to_le_bytes(), channels))
            .flatten()
            .collect()
    }

    /// The amplitude of `hz` in `samples` at `rate`.
    fn energy_at(samples: &[f32], rate: u32, hz: f32) -> f32 {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, s) in samples.iter().enumerate() {
            let phase = std::f32::consts::TAU * hz * i as f32 / rate as f32;
            re += s * phase.cos();
            im += s * phase.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f32
    }

    #[test]
    fn pcm_in_odd_pieces_at_any_rate_comes_out_whole_at_16_khz() {
        for (rate, channels) in [(8_000, 1), (44_100, 2), (48_000, 1), (16_000, 1)] {
            let input = tone(rate, 1000, 440.0);
            let bytes = pcm16(&input, channels);
            let mut live =
                LiveAudio::new(LiveFormat::Pcm16, rate, channels as u16, 16_000).expect("settings");
            let mut out = Vec::new();
            let frame = 2 * channels;
            // Three pieces of 7 frames, then 20 ms at a time.
            let mut pieces: Vec<Vec<u8>> = bytes
                .chunks(7 * frame)
                .take(3)
                .map(<[u8]>::to_vec)
                .collect();
            let done: usize = pieces.iter().map(Vec::len).sum();
            let step = (rate as usize / 50) * frame;
            pieces.extend(bytes[done..].chunks(step).map(<[u8]>::to_vec));
            let (mut fed, mut held_back_ms) = (0usize, 0.0f64);
            for piece in &pieces {
                live.push(piece, |s| out.extend_from_slice(s))
                    .expect("decodes");
                fed += piece.len() / frame;
                let fed_ms = fed as f64 / f64::from(rate) * 1000.0;
                held_back_ms = held_back_ms.max(fed_ms - out.len() as f64 / 16.0);
            }
            live.finish(|s| out.extend_from_slice(s)).expect("finishes");
            assert_eq!(out.len(), 16_000, "{rate} Hz x{channels}: one second");
            assert!(
                held_back_ms < 40.0,
                "{rate} Hz x{channels}: {held_back_ms:.0} ms held back"
            );
            let middle = &out[4_000..12_000];
            assert!(
                energy_at(middle, 16_000, 440.0) > 10.0 * energy_at(middle, 16_000, 1000.0),
                "{rate} Hz x{channels}: the tone survives"
            );
        }
    }

    #[test]
    fn opus_packets_decode_at_16_khz_and_garbage_is_refused() {
        let input = tone(48_000, 400, 300.0);
        let mut encoder =
            opus::Encoder::new(48_000, Channels::Mono, opus::Application::Voip).expect("encoder");
        let mut live = LiveAudio::new(LiveFormat::Opus, 48_000, 1, 16_000).expect("settings");
        let mut out = Vec::new();
        for frame in input.chunks_exact(960) {
            let packet = encoder.encode_vec_float(frame, 4000).expect("encodes");
            live.push(&packet, |s| out.extend_from_slice(s))
                .expect("decodes");
        }
        assert_eq!(out.len(), 16_000 * 400 / 1000);
        assert!(energy_at(&out[1600..], 16_000, 300.0) > 0.1);
        assert!(live.push(&[0xff; 3], |_| ()).is_err());
        // The stream goes on after a bad packet.
        let packet = encoder
            .encode_vec_float(&input[..960], 4000)
            .expect("encodes");
        assert!(live.push(&packet, |_| ()).is_ok());
    }

    #[test]
    fn settings_that_cannot_be_decoded_name_their_field() {
        let field = |format, rate, channels| {
            LiveAudio::new(format, rate, channels, 16_000)
                .err()
                .map(|e| e.field)
        };
        assert_eq!(field(LiveFormat::Pcm16, 7_999, 1), Some("sample_rate"));
        assert_eq!(field(LiveFormat::Pcm16, 16_000, 0), Some("channels"));
        assert_eq!(field(LiveFormat::Pcm16, 16_000, 9), Some("channels"));
        assert_eq!(field(LiveFormat::Opus, 48_000, 3), Some("channels"));
        assert_eq!(field(LiveFormat::Pcm16, 22_050, 2), None);
        let mut live = LiveAudio::new(LiveFormat::Pcm16, 16_000, 2, 16_000).expect("settings");
        assert!(
            live.push(&[0; 6], |_| ())
                .unwrap_err()
                .contains("4-byte frames")
        );
    }
}
