//! 22 050 Hz (or any rate) to Opus's 48 kHz, with the resampler's delay removed.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::{AudioError, OPUS_SAMPLE_RATE};

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
pub(super) fn opus_rate_len(n: u64, sample_rate: u32) -> u64 {
    (n * u64::from(OPUS_SAMPLE_RATE) + u64::from(sample_rate) / 2) / u64::from(sample_rate)
}

/// Resamples a stream to 48 kHz in fixed chunks, so memory stays constant whatever the
/// length, and hands out exactly `round(n * 48000 / rate)` samples with the resampler's
/// start-up delay trimmed.
pub(super) struct StreamResampler {
    pub(super) rate: u32,
    /// `None` when the input is already at 48 kHz.
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
    pub(super) fn new(rate: u32) -> Result<Self, AudioError> {
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

    pub(super) fn push(
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
    pub(super) fn finish(mut self, mut sink: impl FnMut(&[f32])) -> Result<(), AudioError> {
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
