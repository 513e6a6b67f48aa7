//! Any rate to any rate (the synthesiser's 22 050 Hz to Opus's 48 kHz, an upload's 44.1 kHz
//! to the aligner's 16 kHz), with the resampler's delay removed.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::{AudioError, OPUS_SAMPLE_RATE};

/// Resamples mono audio to 48 kHz with the resampler's delay removed: output sample `i`
/// corresponds to input time `i / 48000` s.
pub fn resample_to_opus_rate(samples: &[f32], sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    resample(samples, sample_rate, OPUS_SAMPLE_RATE)
}

/// Resamples mono audio from `from` Hz to `to` Hz with the resampler's delay removed: output
/// sample `i` corresponds to input time `i / to` s, and there are exactly
/// `round(len * to / from)` of them.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let mut out = Vec::with_capacity(resampled_len(samples.len() as u64, from, to) as usize);
    let mut resampler = StreamResampler::new(from, to)?;
    resampler.push(samples, |chunk| out.extend_from_slice(chunk))?;
    resampler.finish(|chunk| out.extend_from_slice(chunk))?;
    Ok(out)
}

/// The number of samples at `to` Hz that `n` samples at `from` Hz become.
pub fn resampled_len(n: u64, from: u32, to: u32) -> u64 {
    (n * u64::from(to) + u64::from(from) / 2) / u64::from(from)
}

/// Resamples a stream in fixed chunks, so memory stays constant whatever the length, and
/// hands out exactly `round(n * to / from)` samples with the resampler's start-up delay
/// trimmed.
pub struct StreamResampler {
    pub(super) rate: u32,
    pub(super) to: u32,
    /// `None` when the input is already at the output rate.
    pub(super) fft: Option<Fft<f32>>,
    pub(super) chunk: usize,
    pub(super) pending: Vec<f32>,
    pub(super) scratch: Vec<f32>,
    /// Delay samples at the start of the output still to drop.
    pub(super) trim: usize,
    pub(super) input_total: u64,
    pub(super) output_total: u64,
}

impl StreamResampler {
    /// A resampler from `rate` Hz to `to` Hz, in chunks of 1024 input samples.
    pub fn new(rate: u32, to: u32) -> Result<Self, AudioError> {
        Self::with_chunk(rate, to, 1024)
    }

    /// A resampler that holds back at most about 20 ms of input (plus its filter's delay):
    /// for live audio, where 1024 samples at 8 kHz would be 128 ms.
    pub fn low_latency(rate: u32, to: u32) -> Result<Self, AudioError> {
        Self::with_chunk(rate, to, (rate as usize / 50).max(64))
    }

    /// A resampler from `rate` Hz to `to` Hz taking `chunk` input samples at a time.
    fn with_chunk(rate: u32, to: u32, chunk: usize) -> Result<Self, AudioError> {
        let resample_error = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
        if rate == 0 || to == 0 {
            return Err(AudioError::Resample("a sample rate of zero".into()));
        }
        let (fft, chunk, scratch, trim) = if rate == to {
            (None, 0, Vec::new(), 0)
        } else {
            let fft = Fft::<f32>::new(rate as usize, to as usize, chunk, 1, FixedSync::Input)
                .map_err(|e| resample_error(&e))?;
            let chunk = fft.input_frames_next();
            let scratch = vec![0.0; fft.output_frames_max()];
            let trim = fft.output_delay();
            (Some(fft), chunk, scratch, trim)
        };
        Ok(Self {
            rate,
            to,
            fft,
            chunk,
            pending: Vec::new(),
            scratch,
            trim,
            input_total: 0,
            output_total: 0,
        })
    }

    /// Resamples `samples`, handing the output to `sink` in chunks.
    pub fn push(
        &mut self,
        samples: &[f32],
        mut sink: impl FnMut(&[f32]),
    ) -> Result<(), AudioError> {
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
    pub fn finish(mut self, mut sink: impl FnMut(&[f32])) -> Result<(), AudioError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let expected = resampled_len(self.input_total, self.rate, self.to);
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
        let expected = resampled_len(self.input_total, self.rate, self.to);
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
