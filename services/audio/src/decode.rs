//! Audio files a user brings, as mono samples: WAV, FLAC, MP3, Ogg Vorbis, AAC in MP4/M4A
//! (symphonia), and Opus in Ogg or WebM/Matroska (libopus through the `opus` crate: symphonia
//! has no Opus decoder).
//!
//! Timing is what matters here, so every decoder's start-up delay is removed: Ogg Opus by its
//! pre-skip and final granule position, MP3 and AAC by their gapless information. Sample 0 of
//! the result is the first sample a player plays.

use std::io::Cursor;

use opus::Channels as OpusChannels;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_AAC, CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::OPUS_SAMPLE_RATE;

/// Mono audio decoded from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    pub sample_rate: u32,
    /// The channels averaged, in [-1, 1].
    pub samples: Vec<f32>,
    /// How many channels the file had.
    pub channels: u16,
    /// The codec, as users name it (`pcm`, `flac`, `mp3`, `opus`, ...).
    pub codec: String,
}

impl DecodedAudio {
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.sample_rate.max(1))
    }

    /// The loudest 20 ms window's RMS in dBFS (-inf for digital silence).
    pub fn peak_window_dbfs(&self) -> f64 {
        let window = (self.sample_rate as usize / 50).max(1);
        let loudest = self
            .samples
            .chunks(window)
            .map(|w| w.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / w.len() as f64)
            .fold(0.0f64, f64::max);
        10.0 * loudest.log10()
    }

    /// True when no 20 ms of the file is louder than -50 dBFS: nothing to lip-sync.
    pub fn is_silent(&self) -> bool {
        self.peak_window_dbfs() < SILENCE_DBFS
    }
}

/// The pre-skip libopus's encoders declare (6.5 ms at 48 kHz), for containers whose own
/// declaration is not read.
const OPUS_DEFAULT_PRE_SKIP: u32 = 312;
/// AAC-LC's encoder delay as ffmpeg and most encoders write it.
const AAC_PRIMING_SAMPLES: usize = 1024;

/// Quieter than this everywhere is silence (a quiet room recorded at a sane gain peaks well
/// above -40 dBFS in speech).
pub const SILENCE_DBFS: f64 = -50.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "not an audio file this service reads (WAV, FLAC, MP3, Ogg Opus/Vorbis, WebM Opus, M4A/AAC)"
    )]
    NotAudio,
    #[error("the file's codec is not supported: {0}")]
    UnsupportedCodec(String),
    #[error("the audio could not be decoded: {0}")]
    Corrupt(String),
    #[error("the audio is longer than {limit_ms} ms")]
    TooLong { limit_ms: u64 },
    #[error("the file holds no audio samples")]
    Empty,
}

/// Decodes `bytes` (a whole file) to mono. `hint` is a MIME type or file extension, if known;
/// the content decides in the end. Decoding stops with [`DecodeError::TooLong`] as soon as the
/// audio passes `max_ms`, so a huge file costs no more than the limit.
pub fn decode(bytes: &[u8], hint: Option<&str>, max_ms: u64) -> Result<DecodedAudio, DecodeError> {
    // symphonia panics on some damaged files (an assertion in its Matroska reader, say): a
    // damaged upload is the client's problem, not a crash.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if is_ogg_opus(bytes) {
            decode_ogg_opus(bytes, max_ms)
        } else {
            decode_symphonia(bytes, hint, max_ms)
        }
    }))
    .unwrap_or_else(|_| {
        Err(DecodeError::Corrupt(
            "the file is damaged: its decoder gave up".into(),
        ))
    })?;
    if decoded.samples.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(decoded)
}

fn is_ogg_opus(bytes: &[u8]) -> bool {
    // The first page of an Ogg Opus stream carries only the OpusHead packet (RFC 7845 §3).
    bytes.starts_with(b"OggS") && bytes.len() > 36 && &bytes[28..36] == b"OpusHead"
}

/// Accumulates decoded interleaved frames as mono and enforces the length limit.
/// Interleaved frames of `channels` samples appended to `out` as their mean.
pub(crate) fn downmix(frames: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(frames);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        frames
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

struct Mono {
    rate: u32,
    channels: usize,
    samples: Vec<f32>,
    max_samples: u64,
    limit_ms: u64,
}

impl Mono {
    fn new(rate: u32, channels: usize, max_ms: u64) -> Self {
        Self {
            rate,
            channels: channels.max(1),
            samples: Vec::new(),
            max_samples: max_ms.saturating_mul(u64::from(rate)) / 1000,
            limit_ms: max_ms,
        }
    }

    fn push_interleaved(&mut self, frames: &[f32]) -> Result<(), DecodeError> {
        downmix(frames, self.channels, &mut self.samples);
        if self.samples.len() as u64 > self.max_samples {
            return Err(DecodeError::TooLong {
                limit_ms: self.limit_ms,
            });
        }
        Ok(())
    }

    fn finish(self, codec: &str) -> DecodedAudio {
        DecodedAudio {
            sample_rate: self.rate,
            samples: self.samples,
            channels: self.channels as u16,
            codec: codec.into(),
        }
    }
}

/// Ogg Opus per RFC 7845: the head's pre-skip dropped, the last page's granule position
/// trimming the final packet's padding.
fn decode_ogg_opus(bytes: &[u8], max_ms: u64) -> Result<DecodedAudio, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt(e.to_string());
    let mut reader = ::ogg::reading::PacketReader::new(Cursor::new(bytes));
    let head = reader.read_packet_expected().map_err(|e| corrupt(&e))?;
    let data = &head.data;
    if data.len() < 19 || &data[..8] != b"OpusHead" {
        return Err(DecodeError::NotAudio);
    }
    let channels = data[9];
    let pre_skip = u64::from(u16::from_le_bytes([data[10], data[11]]));
    let mapping = data[18];
    if mapping != 0 || !(1..=2).contains(&channels) {
        return Err(DecodeError::UnsupportedCodec(format!(
            "Opus with {channels} channels (mapping family {mapping}); mono or stereo only"
        )));
    }
    let serial = head.stream_serial();
    let opus_channels = if channels == 1 {
        OpusChannels::Mono
    } else {
        OpusChannels::Stereo
    };
    let mut decoder =
        opus::Decoder::new(OPUS_SAMPLE_RATE, opus_channels).map_err(|e| corrupt(&e))?;
    let mut mono = Mono::new(OPUS_SAMPLE_RATE, channels as usize, max_ms);
    let mut buf = vec![0f32; 5760 * channels as usize];
    let mut decoded_frames = 0u64;
    let mut end_granule = None;
    let mut packets = 0usize;
    while let Some(packet) = reader.read_packet().map_err(|e| corrupt(&e))? {
        if packet.stream_serial() != serial {
            continue;
        }
        packets += 1;
        if packets == 1 {
            // OpusTags.
            continue;
        }
        let n = decoder
            .decode_float(&packet.data, &mut buf, false)
            .map_err(|e| corrupt(&e))?;
        decoded_frames += n as u64;
        mono.push_interleaved(&buf[..n * channels as usize])?;
        if packet.last_in_stream() {
            end_granule = Some(packet.absgp_page());
            break;
        }
    }
    let mut samples = mono
        .samples
        .split_off((pre_skip as usize).min(mono.samples.len()));
    if let Some(granule) = end_granule {
        // The granule position counts pre-skip too; it may only shorten the stream.
        let keep = granule.saturating_sub(pre_skip).min(decoded_frames);
        samples.truncate(keep as usize);
    }
    mono.samples = samples;
    Ok(mono.finish("opus"))
}

fn decode_symphonia(
    bytes: &[u8],
    hint: Option<&str>,
    max_ms: u64,
) -> Result<DecodedAudio, DecodeError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut probe_hint = Hint::new();
    if let Some(hint) = hint {
        let hint = hint.split(';').next().unwrap_or_default().trim();
        if hint.contains('/') {
            probe_hint.mime_type(hint);
        } else {
            probe_hint.with_extension(hint.trim_start_matches('.'));
        }
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(
            &probe_hint,
            source,
            &format_options,
            &MetadataOptions::default(),
        )
        .map_err(|_| DecodeError::NotAudio)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(DecodeError::NotAudio)?
        .clone();
    let params = &track.codec_params;
    let codec_name = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_owned())
        .unwrap_or_else(|| {
            if params.codec == CODEC_TYPE_OPUS {
                "opus".into()
            } else {
                format!("{}", params.codec)
            }
        });
    let channels = params.channels.map_or(1, |c| c.count());
    if params.codec == CODEC_TYPE_OPUS {
        // WebM's CodecDelay is not read by symphonia; libopus's encoders all declare 312.
        let delay = params.delay.unwrap_or(OPUS_DEFAULT_PRE_SKIP);
        return decode_opus_packets(&mut *format, track.id, channels, delay, max_ms);
    }
    // symphonia does not read MP4 edit lists, which is where an AAC file declares its
    // encoder delay: the usual 1024 priming samples are dropped (MP3's gapless header, by
    // contrast, symphonia applies itself).
    let priming = match params.delay {
        Some(d) => d as usize,
        None if params.codec == CODEC_TYPE_AAC => AAC_PRIMING_SAMPLES,
        None => 0,
    };
    let rate = params
        .sample_rate
        .ok_or_else(|| DecodeError::Corrupt("no sample rate".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|_| DecodeError::UnsupportedCodec(codec_name.clone()))?;
    let mut mono: Option<Mono> = None;
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    while let Some(packet) = next_packet(&mut *format, track.id)? {
        let buffer = match decoder.decode(&packet) {
            Ok(b) => b,
            // A damaged packet: skip it, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(SymphoniaError::Unsupported(what)) => {
                return Err(DecodeError::UnsupportedCodec(format!(
                    "{codec_name} ({what})"
                )));
            }
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        };
        let spec = *buffer.spec();
        let frames = buffer.frames();
        if frames == 0 {
            continue;
        }
        let sink = mono.get_or_insert_with(|| Mono::new(spec.rate, spec.channels.count(), max_ms));
        let samples = match &mut interleaved {
            Some(b) if b.capacity() >= buffer.capacity() * spec.channels.count() => b,
            slot => slot.insert(SampleBuffer::new(buffer.capacity() as u64, spec)),
        };
        samples.copy_interleaved_ref(buffer);
        sink.push_interleaved(samples.samples())?;
    }
    let mut mono = mono.unwrap_or_else(|| Mono::new(rate, channels, max_ms));
    if params.codec == CODEC_TYPE_AAC {
        let skip = priming.min(mono.samples.len());
        mono.samples.drain(..skip);
    }
    Ok(mono.finish(&codec_name))
}

/// The next packet of `track_id`, `None` at the end of the file.
fn next_packet(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
) -> Result<Option<symphonia::core::formats::Packet>, DecodeError> {
    loop {
        match format.next_packet() {
            Ok(p) if p.track_id() == track_id => return Ok(Some(p)),
            Ok(_) => {}
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        }
    }
}

/// Opus packets from a container symphonia reads (WebM/Matroska), decoded with libopus; the
/// codec delay the container declares is dropped.
fn decode_opus_packets(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
    channels: usize,
    delay: u32,
    max_ms: u64,
) -> Result<DecodedAudio, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt(e.to_string());
    let opus_channels = match channels {
        1 => OpusChannels::Mono,
        2 => OpusChannels::Stereo,
        n => {
            return Err(DecodeError::UnsupportedCodec(format!(
                "Opus with {n} channels; mono or stereo only"
            )));
        }
    };
    let mut decoder =
        opus::Decoder::new(OPUS_SAMPLE_RATE, opus_channels).map_err(|e| corrupt(&e))?;
    let mut mono = Mono::new(OPUS_SAMPLE_RATE, channels, max_ms);
    let mut buf = vec![0f32; 5760 * channels];
    while let Some(packet) = next_packet(format, track_id)? {
        let n = match decoder.decode_float(&packet.data, &mut buf, false) {
            Ok(n) => n,
            Err(_) => continue,
        };
        mono.push_interleaved(&buf[..n * channels])?;
    }
    let skip = (delay as usize).min(mono.samples.len());
    mono.samples.drain(..skip);
    Ok(mono.finish("opus"))
}
