//! The phoneme timeline: which phoneme sounds when, exact to the audio's sample count.
//!
//! Times are sample offsets into the synthesised PCM (before any resampling or encoding),
//! so the timeline and the audio cannot drift apart. Milliseconds are derived on demand.

use serde::{Deserialize, Serialize};

use crate::marks::SpokenText;

/// One phoneme (a single IPA code point as the voice's phoneme map knows it, or one of the
/// markers `^` sentence start, `$` sentence end, punctuation, space, stress) and the samples
/// in which it is heard: its own id's, the pad before it (a pad sounds like the phoneme
/// that follows it), fitted to the audio's silences (see the tts crate's `fit` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedPhoneme {
    pub phoneme: String,
    pub start_sample: u64,
    pub end_sample: u64,
}

/// One synthesised sentence: its samples and its range of `phonemes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentenceSpan {
    pub start_sample: u64,
    pub end_sample: u64,
    /// Index of the sentence's first phoneme (its `^`) in the timeline.
    pub first_phoneme: usize,
    /// Index one past its last phoneme (its `$`).
    pub end_phoneme: usize,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PhonemeTimeline {
    pub sample_rate: u32,
    pub total_samples: u64,
    pub phonemes: Vec<TimedPhoneme>,
    pub sentences: Vec<SentenceSpan>,
    /// The written words of the text and when each is heard, in text order (see
    /// [`crate::marks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<SpokenText>,
    /// The text's sentences as the synthesiser spoke them (a long one may be synthesised in
    /// several `sentences`, and is one here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spoken_sentences: Vec<SpokenText>,
}

/// Why a timeline is not usable (e.g. one that arrived in a corrupt job message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    #[error("sample rate is zero")]
    ZeroSampleRate,
    #[error("phoneme {index} starts at sample {start}, expected {expected}")]
    Gap {
        index: usize,
        start: u64,
        expected: u64,
    },
    #[error("phoneme {index} ends before it starts")]
    Negative { index: usize },
    #[error("phonemes end at sample {end}, audio has {total}")]
    Length { end: u64, total: u64 },
    #[error("sentence {index} does not match its phonemes")]
    Sentence { index: usize },
}

impl TimedPhoneme {
    /// True for the phonemes that make no sound: the sentence markers, the pad and the
    /// punctuation Piper keeps as phonemes (pauses). Spaces are word breaks, not silence.
    pub fn is_silence(&self) -> bool {
        symbol_of(&self.phoneme).is_some_and(is_silence_symbol)
    }
}

/// The symbol a phoneme string is, if it is one code point (every phoneme of Piper's espeak
/// voices is; a multi-character entry of a phoneme map is not).
pub fn symbol_of(phoneme: &str) -> Option<char> {
    let mut chars = phoneme.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Piper's markers (`^ $ _`) and the punctuation and prosody symbols in its phoneme maps.
pub fn is_silence_symbol(c: char) -> bool {
    matches!(
        c,
        '^' | '$'
            | '_'
            | '.'
            | ','
            | '!'
            | '?'
            | ';'
            | ':'
            | '('
            | ')'
            | '"'
            | '\''
            | '-'
            | '#'
            | '\u{2193}'
    )
}

/// Symbols that make no sound of their own but change the one around them: stress and length
/// marks, tone digits and diacritics.
pub fn is_mark(c: char) -> bool {
    matches!(
        c,
        'ˈ' | 'ˌ'
            | 'ː'
            | 'ˑ'
            | '˞'
            | 'ʲ'
            | 'ʰ'
            | 'ˤ'
            | '0'..='9'
            | '\u{300}'..='\u{36f}'
    )
}

/// Plosives: sounds whose closure is silent before the burst (p, t, k and their kin).
pub fn is_plosive(c: char) -> bool {
    matches!(
        c,
        'p' | 'b' | 't' | 'd' | 'k' | 'g' | 'ɡ' | 'q' | 'ɢ' | 'c' | 'ɟ' | 'ʈ' | 'ɖ' | 'ʔ'
    )
}

/// A stretch of silence in the audio, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pause {
    pub start_ms: f64,
    pub end_ms: f64,
    /// True when the pause ends a sentence (or is the silence before the first one).
    pub sentence_break: bool,
}

impl Pause {
    pub fn duration_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

impl PhonemeTimeline {
    /// The silences at least `min_ms` long: runs of silent phonemes (and the word breaks
    /// inside them), merged across sentence boundaries.
    pub fn pauses(&self, min_ms: f64) -> Vec<Pause> {
        let sentence_ends: Vec<u64> = self.sentences.iter().map(|s| s.end_sample).collect();
        let mut pauses: Vec<Pause> = Vec::new();
        let mut run: Option<(u64, u64)> = None;
        let flush = |run: &mut Option<(u64, u64)>, pauses: &mut Vec<Pause>| {
            if let Some((start, end)) = run.take() {
                let pause = Pause {
                    start_ms: self.ms(start),
                    end_ms: self.ms(end),
                    sentence_break: start == 0
                        || sentence_ends.iter().any(|&e| (start..=end).contains(&e)),
                };
                if pause.duration_ms() >= min_ms {
                    pauses.push(pause);
                }
            }
        };
        for p in &self.phonemes {
            let silent = p.is_silence() || (p.phoneme == " " && run.is_some());
            if silent {
                run = Some(match run {
                    Some((start, _)) => (start, p.end_sample),
                    None => (p.start_sample, p.end_sample),
                });
            } else {
                flush(&mut run, &mut pauses);
            }
        }
        flush(&mut run, &mut pauses);
        pauses
    }

    /// Milliseconds from the start of the audio for a sample offset.
    pub fn ms(&self, sample: u64) -> f64 {
        sample as f64 * 1000.0 / f64::from(self.sample_rate)
    }

    /// The audio's length in whole milliseconds (rounded to nearest).
    pub fn duration_ms(&self) -> u64 {
        self.ms_at(self.total_samples)
    }

    /// Whole milliseconds (rounded to nearest) from the start of the audio to `sample`, at
    /// most the audio's length.
    pub fn ms_at(&self, sample: u64) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        let sample = sample.min(self.total_samples);
        (sample * 1000 + u64::from(self.sample_rate) / 2) / u64::from(self.sample_rate)
    }

    /// Checks that the phonemes tile the audio without gaps or overlaps and that every
    /// sentence covers exactly its phonemes.
    pub fn check(&self) -> Result<(), TimelineError> {
        if self.sample_rate == 0 {
            return Err(TimelineError::ZeroSampleRate);
        }
        let mut expected = 0;
        for (index, p) in self.phonemes.iter().enumerate() {
            if p.start_sample != expected {
                return Err(TimelineError::Gap {
                    index,
                    start: p.start_sample,
                    expected,
                });
            }
            if p.end_sample < p.start_sample {
                return Err(TimelineError::Negative { index });
            }
            expected = p.end_sample;
        }
        if expected != self.total_samples {
            return Err(TimelineError::Length {
                end: expected,
                total: self.total_samples,
            });
        }
        for (index, s) in self.sentences.iter().enumerate() {
            let phonemes = self.phonemes.get(s.first_phoneme..s.end_phoneme);
            let ok = match phonemes {
                Some([first, .., last]) => {
                    first.start_sample == s.start_sample && last.end_sample == s.end_sample
                }
                Some([only]) => {
                    only.start_sample == s.start_sample && only.end_sample == s.end_sample
                }
                _ => false,
            };
            if !ok {
                return Err(TimelineError::Sentence { index });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(bounds: &[(u64, u64)], total: u64) -> PhonemeTimeline {
        PhonemeTimeline {
            sample_rate: 22050,
            total_samples: total,
            phonemes: bounds
                .iter()
                .map(|&(s, e)| TimedPhoneme {
                    phoneme: "a".into(),
                    start_sample: s,
                    end_sample: e,
                })
                .collect(),
            sentences: vec![SentenceSpan {
                start_sample: 0,
                end_sample: total,
                first_phoneme: 0,
                end_phoneme: bounds.len(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn check_accepts_a_tiling_and_refuses_gaps() {
        assert_eq!(timeline(&[(0, 256), (256, 512)], 512).check(), Ok(()));
        assert!(matches!(
            timeline(&[(0, 256), (300, 512)], 512).check(),
            Err(TimelineError::Gap { index: 1, .. })
        ));
        assert!(matches!(
            timeline(&[(0, 256)], 512).check(),
            Err(TimelineError::Length { .. })
        ));
    }

    #[test]
    fn pauses_merge_silent_runs() {
        let phonemes = [
            ("^", 0, 2205),
            ("a", 2205, 4410),
            (".", 4410, 6615),
            ("$", 6615, 8820),
        ];
        let t = PhonemeTimeline {
            sample_rate: 22050,
            total_samples: 8820,
            phonemes: phonemes
                .iter()
                .map(|&(p, s, e)| TimedPhoneme {
                    phoneme: p.into(),
                    start_sample: s,
                    end_sample: e,
                })
                .collect(),
            sentences: vec![SentenceSpan {
                start_sample: 0,
                end_sample: 8820,
                first_phoneme: 0,
                end_phoneme: 4,
            }],
            ..Default::default()
        };
        let pauses = t.pauses(50.0);
        assert_eq!(pauses.len(), 2);
        assert_eq!((pauses[0].start_ms, pauses[0].end_ms), (0.0, 100.0));
        assert_eq!((pauses[1].start_ms, pauses[1].end_ms), (200.0, 400.0));
        assert!(pauses[1].sentence_break);
        assert!(t.pauses(150.0).len() == 1);
    }

    #[test]
    fn milliseconds() {
        let t = timeline(&[(0, 22050)], 22050);
        assert_eq!(t.duration_ms(), 1000);
        assert_eq!(t.ms(11025), 500.0);
    }
}
