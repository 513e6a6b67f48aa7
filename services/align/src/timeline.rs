//! Aligned words and phones (10 ms frames at 16 kHz) as a [`PhonemeTimeline`] in the
//! recording's own samples.

use std::ops::Range;

use avatar_domain::{PhonemeTimeline, SentenceSpan, SpokenText, TimedPhoneme};

use crate::{TimedWord, WordSource, arpabet};

/// The aligner places phone onsets early: 10-35 ms against the synthesiser's own timeline
/// and espeak-ng's phoneme events (`../shared/reference/own-audio`, measured again by
/// `services/align/tests/accuracy.rs`). Every boundary is moved this much later.
pub const ONSET_SHIFT_MS: u64 = 15;

/// A word's last consonant held longer than this has swallowed the pause after it (the
/// aligner tends to take the silence after a final stop for its closure); it keeps
/// [`FINAL_CONSONANT_KEEP_MS`] and the rest is silence. So does a word's first stop with the
/// pause before it (its closure is silent: the lips of a `b` after a comma would otherwise
/// shut for the whole pause), keeping its end. (Other first consonants are left as they are:
/// in slow speech an `s` or an `n` is that long.)
const MAX_FINAL_CONSONANT_MS: u64 = 150;
const FINAL_CONSONANT_KEEP_MS: u64 = 100;

/// Silence in the timeline (what Piper's pad and pauses are, too).
const SILENCE: &str = "_";

struct Builder {
    rate: u64,
    /// The unit of the words' phone boundaries: the aligner's 10 ms frames, or milliseconds.
    frames_per_second: u64,
    total: u64,
    shift: u64,
    phonemes: Vec<TimedPhoneme>,
}

impl Builder {
    /// The sample a frame boundary is at, shifted, within the audio.
    fn sample(&self, frame: u32) -> u64 {
        if frame == 0 {
            return 0;
        }
        (u64::from(frame) * self.rate / self.frames_per_second + self.shift).min(self.total)
    }

    fn cursor(&self) -> u64 {
        self.phonemes.last().map_or(0, |p| p.end_sample)
    }

    /// Appends `phoneme` up to `end`, silence first if there is a gap. Never goes backwards.
    fn push(&mut self, phoneme: &str, start: u64, end: u64) {
        let cursor = self.cursor();
        if start > cursor {
            self.push_raw(SILENCE, cursor, start);
        }
        let start = start.max(self.cursor());
        self.push_raw(phoneme, start, end.max(start));
    }

    fn push_raw(&mut self, phoneme: &str, start: u64, end: u64) {
        // Two silences in a row are one.
        if let Some(last) = self.phonemes.last_mut()
            && last.phoneme == SILENCE
            && phoneme == SILENCE
        {
            last.end_sample = end;
            return;
        }
        self.phonemes.push(TimedPhoneme {
            phoneme: phoneme.to_owned(),
            start_sample: start,
            end_sample: end,
        });
    }

    /// A zero-length marker (word break, sentence start or end) at the cursor.
    fn mark(&mut self, marker: &str) {
        let at = self.cursor();
        self.push_raw(marker, at, at);
    }
}

/// The timeline of `words` (in order) in audio of `total` samples at `rate` Hz, their phone
/// boundaries counted in frames of `1 / frames_per_second` s. `sentences` are the text's
/// sentences; each word names its own. Every boundary but 0 moves `shift_ms` later
/// ([`ONSET_SHIFT_MS`] for the aligner's, 0 for timings given by the engine itself).
pub(crate) fn build(
    rate: u32,
    total: u64,
    words: &[TimedWord],
    sentences: &[Range<usize>],
    frames_per_second: u32,
    shift_ms: u64,
) -> PhonemeTimeline {
    let mut b = Builder {
        rate: u64::from(rate),
        frames_per_second: u64::from(frames_per_second.max(1)),
        total,
        shift: shift_ms * u64::from(rate) / 1000,
        phonemes: Vec::new(),
    };
    let mut spans: Vec<SentenceSpan> = Vec::new();
    let mut spoken_words = Vec::new();
    let mut spoken_sentences: Vec<SpokenText> = Vec::new();
    let mut current: Option<usize> = None;
    for (i, word) in words.iter().enumerate() {
        let phones: Vec<(&str, &'static [char], u64, u64)> = word
            .phones
            .iter()
            .filter_map(|(name, s, e)| {
                Some((
                    name.as_str(),
                    arpabet::to_ipa(name)?,
                    b.sample(*s),
                    b.sample(*e),
                ))
            })
            .collect();
        let (max_held, keep) = (
            MAX_FINAL_CONSONANT_MS * b.rate / 1000,
            FINAL_CONSONANT_KEEP_MS * b.rate / 1000,
        );
        let last = phones.len().saturating_sub(1);
        let phones: Vec<_> = phones
            .into_iter()
            .enumerate()
            .map(|(k, (name, ipa, mut start, mut end))| {
                if end - start > max_held && !arpabet::is_vowel(name) {
                    if k == last {
                        end = start + keep;
                    } else if k == 0 && arpabet::is_stop(name) {
                        start = end - keep;
                    }
                }
                (ipa, start, end)
            })
            .collect();
        let Some(&(_, first_start, _)) = phones.first() else {
            continue;
        };
        let new_sentence = current != Some(word.sentence);
        if new_sentence {
            close_sentence(&mut b, &mut spans, &mut spoken_sentences);
            if first_start > b.cursor() {
                b.push(SILENCE, b.cursor(), first_start);
            }
            spans.push(SentenceSpan {
                start_sample: b.cursor(),
                end_sample: 0,
                first_phoneme: b.phonemes.len(),
                end_phoneme: 0,
            });
            b.mark("^");
            let text = sentences
                .get(word.sentence)
                .cloned()
                .unwrap_or(word.text.clone());
            spoken_sentences.push(SpokenText {
                start_sample: b.cursor(),
                end_sample: 0,
                text_start: text.start,
                text_end: text.end,
                ..SpokenText::default()
            });
            current = Some(word.sentence);
        } else if i > 0 {
            b.mark(" ");
        }
        let word_start = first_start.max(b.cursor());
        for (ipa, start, end) in phones {
            // A diphthong or affricate is heard as its parts in turn.
            let n = ipa.len() as u64;
            let (start, end) = (start.max(b.cursor()), end.max(start));
            for (k, symbol) in ipa.iter().enumerate() {
                let k = k as u64;
                let mut buf = [0u8; 4];
                b.push(
                    symbol.encode_utf8(&mut buf),
                    start + (end - start) * k / n,
                    start + (end - start) * (k + 1) / n,
                );
            }
        }
        let (aligned, confidence) = match word.source {
            WordSource::Aligned => (true, None),
            WordSource::Recognized { confidence } => (false, Some(confidence)),
        };
        spoken_words.push(SpokenText {
            start_sample: word_start,
            end_sample: b.cursor(),
            text_start: word.text.start,
            text_end: word.text.end,
            aligned: Some(aligned),
            confidence,
        });
    }
    close_sentence(&mut b, &mut spans, &mut spoken_sentences);
    let end = b.total;
    if b.cursor() < end {
        b.push(SILENCE, b.cursor(), end);
    }
    PhonemeTimeline {
        sample_rate: rate,
        total_samples: total,
        phonemes: b.phonemes,
        sentences: spans,
        words: spoken_words,
        spoken_sentences,
    }
}

fn close_sentence(b: &mut Builder, spans: &mut [SentenceSpan], spoken: &mut [SpokenText]) {
    if let Some(span) = spans.last_mut()
        && span.end_phoneme == 0
    {
        b.mark("$");
        span.end_sample = b.cursor();
        span.end_phoneme = b.phonemes.len();
        if let Some(s) = spoken.last_mut() {
            s.end_sample = b.cursor();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FRAMES_PER_SECOND;

    fn word(text: Range<usize>, sentence: usize, phones: &[(&str, u32, u32)]) -> TimedWord {
        TimedWord {
            text,
            sentence,
            source: WordSource::Aligned,
            phones: phones
                .iter()
                .map(|&(p, s, e)| (p.to_owned(), s, e))
                .collect(),
        }
    }

    #[test]
    fn aligned_words_tile_the_audio_with_markers_and_marks() {
        // "my eye. bob" at 16 kHz (160 samples a frame), 1 s long.
        let words = [
            word(0..2, 0, &[("M", 10, 20), ("AY", 20, 40)]),
            word(3..7, 0, &[("AY", 40, 60)]),
            word(8..11, 1, &[("B", 80, 85), ("AA", 85, 95), ("B", 95, 100)]),
        ];
        let t = build(
            16_000,
            16_000,
            &words,
            &[0..7, 8..11],
            FRAMES_PER_SECOND,
            ONSET_SHIFT_MS,
        );
        t.check().expect("a tiled timeline");
        let symbols: String = t.phonemes.iter().map(|p| p.phoneme.as_str()).collect();
        assert_eq!(symbols, "_^maɪ aɪ$_^bɑb$");
        // Shifted 15 ms (240 samples) later; the diphthong split in halves.
        let shift = 240;
        let m = &t.phonemes[2];
        assert_eq!((m.start_sample, m.end_sample), (1600 + shift, 3200 + shift));
        assert_eq!(t.phonemes[3].end_sample, 4800 + shift);
        assert_eq!(t.sentences.len(), 2);
        assert_eq!(t.words.len(), 3);
        assert_eq!(t.words[2].start_sample, 12_800 + shift);
        assert_eq!(t.words[2].end_sample, 16_000);
        assert_eq!(t.words[0].aligned, Some(true));
        assert_eq!(t.spoken_sentences[1].text_start, 8);
    }

    #[test]
    fn a_word_without_phones_is_left_out_and_recognised_words_carry_confidence() {
        let mut recognised = word(0..3, 0, &[("HH", 0, 10), ("AY", 10, 30)]);
        recognised.source = WordSource::Recognized { confidence: 0.5 };
        let words = [recognised, word(4..5, 0, &[("XX", 30, 40)])];
        let sentences: Vec<Range<usize>> = std::iter::once(0..5).collect();
        let t = build(
            22_050,
            22_050,
            &words,
            &sentences,
            FRAMES_PER_SECOND,
            ONSET_SHIFT_MS,
        );
        t.check().unwrap();
        assert_eq!(t.words.len(), 1);
        assert_eq!(t.words[0].confidence, Some(0.5));
        assert_eq!(t.words[0].aligned, Some(false));
        assert_eq!(t.phonemes[0].start_sample, 0);
    }

    #[test]
    fn consonants_that_swallowed_a_pause_give_it_back() {
        // "it. bob": the final t held 300 ms into the pause, the next b's closure from 300 ms
        // before its release; each keeps 100 ms next to its word, the rest is silence.
        let words = [
            word(0..2, 0, &[("IH", 0, 10), ("T", 10, 40)]),
            word(4..7, 1, &[("B", 40, 70), ("AA", 70, 80), ("B", 80, 85)]),
        ];
        let t = build(16_000, 16_000, &words, &[0..3, 4..7], FRAMES_PER_SECOND, 0);
        t.check().expect("a tiled timeline");
        let at = |symbol: &str, nth: usize| {
            let p = t
                .phonemes
                .iter()
                .filter(|p| p.phoneme == symbol)
                .nth(nth)
                .unwrap();
            (p.start_sample, p.end_sample)
        };
        assert_eq!(at("t", 0), (1600, 3200));
        assert_eq!(at("b", 0), (9600, 11_200));
        // The pause between them is silence, and the second word starts at its b's release
        // minus 100 ms; a short b (the last phone, 50 ms) is left as it is.
        assert!(
            t.phonemes
                .iter()
                .any(|p| p.phoneme == "_" && p.start_sample <= 3200 && p.end_sample >= 9600)
        );
        assert_eq!(t.words[1].start_sample, 9600);
        assert_eq!(at("b", 1), (12_800, 13_600));
    }
}
