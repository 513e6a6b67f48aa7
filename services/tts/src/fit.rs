//! The timeline fitted to the audio: Piper's durations put silence on symbols that do not
//! own it, and the mouth must follow what is heard (docs/lipsync-accuracy.md).

use avatar_domain::timeline::{is_mark, is_plosive, is_silence_symbol};

use crate::voice::SAMPLES_PER_FRAME;

/// A frame quieter than this, relative to the sentence's peak, is silent: between a stop's
/// closure and a vowel's fading end (docs/research/timing-measurements.md).
const SILENT_DB: f32 = -55.0;

/// A sound after a pause starts this many frames (about 23 ms) before its first audible
/// frame: a mouth a little early reads as in sync, a late one does not (ITU-R BT.1359).
const ONSET_LEAD_FRAMES: usize = 2;

/// Moves the boundaries of one sentence's groups (`ends[i]`, in samples) to where the audio
/// says the sound is (docs/research/timing-measurements.md): a sound's silent first frames
/// after a pause go to the pause; a plosive's silent closure before it goes to the plosive,
/// whose span ends one frame after its burst.
///
/// A sound keeps at least one frame of its own; pauses are never given to a plosive.
/// `peak` is the sentence's largest absolute sample.
pub(crate) fn fit_to_audio(symbols: &[Option<char>], ends: &mut [u64], audio: &[f32], peak: f32) {
    const FRAME: usize = SAMPLES_PER_FRAME as usize;
    if peak <= 0.0 || symbols.is_empty() {
        return;
    }
    let threshold = peak * 10f32.powf(SILENT_DB / 20.0);
    let silent: Vec<bool> = audio
        .chunks(FRAME)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt() < threshold)
        .collect();
    let frame_of = |sample: u64| (sample as usize).div_ceil(FRAME);
    let is_pause = |i: usize| symbols[i].is_some_and(is_silence_symbol);
    let is_sound =
        |i: usize| symbols[i].is_none_or(|c| !is_silence_symbol(c) && c != ' ' && !is_mark(c));
    let start_of = |ends: &[u64], i: usize| if i == 0 { 0 } else { ends[i - 1] };

    for i in 0..symbols.len() {
        if is_pause(i) {
            // The first sound after the pause, past word breaks and marks.
            let Some(first) = (i + 1..symbols.len()).find(|&j| !is_pause(j) && is_sound(j)) else {
                continue;
            };
            if (i + 1..first).any(is_pause) {
                continue;
            }
            // The sound starts after the pause's last silent frame (Piper's span for the
            // pause may end before it or after the sound's first frames), or, if the pause
            // has no silent frame, where Piper put it or at its first loud frame after.
            let (lo, hi) = (frame_of(start_of(ends, i)), frame_of(ends[i]));
            let search_from = (lo..hi.min(silent.len()))
                .rev()
                .find(|&f| silent[f])
                .map_or(hi, |f| f + 1);
            let earliest = start_of(ends, i) + SAMPLES_PER_FRAME;
            let latest = ends[first].saturating_sub(SAMPLES_PER_FRAME);
            let led = (search_from..silent.len())
                .find(|&f| !silent[f])
                .map_or(latest, |f| {
                    (f.saturating_sub(ONSET_LEAD_FRAMES) * FRAME) as u64
                });
            let boundary = if search_from == hi {
                led.max(ends[i])
            } else {
                led.max(earliest.min(ends[i]))
            }
            .min(latest.max(ends[i]));
            for end in &mut ends[i..first] {
                *end = boundary;
            }
        } else if symbols[i].is_some_and(is_plosive) && i > 0 {
            // Back over the silent frames before it, up to the sound before (which keeps a
            // frame) and never into a pause.
            let Some(sound) = (0..i).rev().find(|&j| is_pause(j) || is_sound(j)) else {
                continue;
            };
            if is_pause(sound) {
                continue;
            }
            let earliest = start_of(ends, sound) + SAMPLES_PER_FRAME;
            let mut closure = start_of(ends, i);
            while closure >= earliest + SAMPLES_PER_FRAME
                && closure % SAMPLES_PER_FRAME == 0
                && silent[(closure / SAMPLES_PER_FRAME) as usize - 1]
            {
                closure -= SAMPLES_PER_FRAME;
            }
            for end in &mut ends[sound..i] {
                *end = (*end).min(closure);
            }
            // The closure ends with the burst: the lips (for a p or b) part there, and the
            // aspiration after it already has the next sound's shape.
            let last = symbols.len() - 1;
            if i < last && !is_pause(i + 1) {
                let first = frame_of(start_of(ends, i));
                let own_end = (ends[i] / SAMPLES_PER_FRAME) as usize;
                if first < own_end && silent[first] {
                    let burst = (first..own_end).find(|&f| !silent[f]);
                    if let Some(burst) = burst {
                        ends[i] = ends[i].min(((burst + 1) * FRAME) as u64);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio of `frames` frames, loud (0.5) except the silent frames listed.
    fn audio(frames: usize, silent: &[usize]) -> Vec<f32> {
        let frame = SAMPLES_PER_FRAME as usize;
        (0..frames * frame)
            .map(|i| {
                if silent.contains(&(i / frame)) {
                    0.0
                } else {
                    0.5
                }
            })
            .collect()
    }

    fn fitted(symbols: &str, frames: &[u64], silent: &[usize]) -> Vec<u64> {
        let symbols: Vec<Option<char>> = symbols.chars().map(Some).collect();
        let mut ends: Vec<u64> = frames
            .iter()
            .scan(0, |end, f| {
                *end += f * SAMPLES_PER_FRAME;
                Some(*end)
            })
            .collect();
        let total = frames.iter().sum::<u64>() as usize;
        let audio = audio(total, silent);
        let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        fit_to_audio(&symbols, &mut ends, &audio, peak);
        ends.iter().map(|e| e / SAMPLES_PER_FRAME).collect()
    }

    #[test]
    fn the_silent_start_of_a_sound_after_a_pause_goes_to_the_pause() {
        // "a, ðə": the ð got 8 frames, the first 6 of them silent like the comma; it starts
        // ONSET_LEAD_FRAMES before its first loud frame.
        let ends = fitted(
            "a, ðə",
            &[4, 3, 1, 8, 4],
            &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
        );
        assert_eq!(ends, [4, 12, 12, 16, 20]);
        // A sound that is silent all through keeps its last frame.
        let ends = fitted("a,ð", &[4, 3, 4], &[4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(ends, [4, 10, 11]);
        // Sound right after the pause: nothing moves.
        assert_eq!(fitted("a,ðə", &[4, 3, 2, 2], &[4, 5, 6]), [4, 7, 9, 11]);
        // The sound already loud in the pause's last frames ("^ɪn": Piper gave the ^ the
        // first 3 frames of the ɪ): it starts there, ONSET_LEAD_FRAMES early.
        assert_eq!(fitted("^ɪn", &[8, 1, 4], &[0, 1, 2, 3, 4]), [3, 9, 13]);
        // A pause with no silent frame keeps its span.
        assert_eq!(fitted("a,ð", &[4, 3, 4], &[]), [4, 7, 11]);
    }

    #[test]
    fn the_silent_closure_before_a_plosive_goes_to_the_plosive() {
        // "ɑːpɪ": 4 of the length mark's 5 frames are the p's silent closure (and the p
        // ends a frame after its burst).
        let ends = fitted("ɑːpɪ", &[5, 5, 2, 4], &[6, 7, 8, 9]);
        assert_eq!(ends, [5, 6, 11, 16]);
        // Across a word break too ("big boat"'s g, silent before the b)...
        let ends = fitted("ɪ bo", &[4, 2, 2, 4], &[3, 4, 5]);
        assert_eq!(ends, [3, 3, 7, 12]);
        // ... but the sound before keeps a frame, and a pause stays a pause.
        let ends = fitted("ɪp", &[3, 2], &[0, 1, 2]);
        assert_eq!(ends, [1, 5]);
        assert_eq!(fitted("ɪ,p", &[3, 3, 2], &[3, 4, 5]), [3, 6, 8]);
        // Voiced closures (not silent) stay where Piper put them.
        assert_eq!(fitted("ɑːbɪ", &[5, 5, 2, 4], &[]), [5, 10, 12, 16]);
    }

    #[test]
    fn a_plosive_ends_one_frame_after_its_burst() {
        // "ɑpɪ": closure in frames 5-6, burst in 7, aspiration 8-9 goes to the ɪ.
        let ends = fitted("ɑpɪ", &[5, 5, 4], &[5, 6]);
        assert_eq!(ends, [5, 8, 14]);
        // Before a pause the release stays with the plosive.
        assert_eq!(
            fitted("ɑp.", &[5, 5, 4], &[5, 6, 10, 11, 12, 13]),
            [5, 10, 14]
        );
    }
}
