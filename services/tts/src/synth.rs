//! One synthesis run: text -> phonemes -> ids -> Piper, sentence by sentence, with the
//! phoneme timeline taken from the same run as the audio.

use avatar_domain::timeline::{is_silence_symbol, symbol_of};
use avatar_domain::{PhonemeTimeline, SentenceSpan, SpokenText, TimedPhoneme};

use crate::TtsError;
use crate::audio::{self, AudioError, AudioFormat, EncodedAudio, OggOpusEncoder};
use crate::fit::fit_to_audio;
use crate::ids::{PhonemeGroup, phoneme_groups};
use crate::voice::{SAMPLES_PER_FRAME, Voice};

/// Sentences longer than this many phonemes are synthesised in pieces, split at clause
/// punctuation or else between words. The VITS decoder's memory grows with the length of
/// the audio it makes in one go (about 64 channels x 4 bytes per output sample in its
/// last layers), so this bounds a render's peak memory whatever the text.
pub const MAX_CHUNK_PHONEMES: usize = 400;

/// Speech audio and its phoneme timeline, from one run of the model.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// Mono samples in [-1, 1] at `timeline.sample_rate`, peak-normalised per sentence as
    /// Piper does.
    pub samples: Vec<f32>,
    pub timeline: PhonemeTimeline,
}

impl Synthesis {
    pub fn sample_rate(&self) -> u32 {
        self.timeline.sample_rate
    }

    /// The audio length in whole milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.timeline.duration_ms()
    }
}

/// Speaks `text` with `voice` at `speed` (1.0 normal; 2.0 twice as fast), which divides the
/// voice's length scale.
pub fn synthesize(voice: &Voice, text: &str, speed: f64) -> Result<Synthesis, TtsError> {
    synthesize_with(voice, text, speed, |_| {})
}

/// [`synthesize`], handing each sentence's finished samples to `on_audio` as soon as it is
/// synthesised (e.g. to an encoder running alongside).
pub fn synthesize_with(
    voice: &Voice,
    text: &str,
    speed: f64,
    mut on_audio: impl FnMut(&[f32]),
) -> Result<Synthesis, TtsError> {
    let config = &voice.config;
    let phonemized = voice
        .phonemizer
        .phonemize_marked(text, &config.espeak.voice)?;
    let scales = [
        config.inference.noise_scale,
        (f64::from(config.inference.length_scale) / speed) as f32,
        config.inference.noise_w,
    ];

    let mut samples = Vec::new();
    let mut timeline = PhonemeTimeline {
        sample_rate: config.audio.sample_rate,
        ..Default::default()
    };
    // Each written word's samples: from its first phoneme's start to its last one's end.
    let mut word_samples: Vec<Option<(u64, u64)>> = vec![None; phonemized.words.len()];
    for sentence in phonemized
        .sentences
        .iter()
        .filter(|s| !s.phonemes.is_empty())
    {
        let sentence_start = timeline.total_samples;
        let first_word = word_samples.iter().rposition(Option::is_some);
        let mut offset = 0;
        for chunk in split_long(&sentence.phonemes, MAX_CHUNK_PHONEMES) {
            let words = &sentence.word_of[offset..offset + chunk.len()];
            offset += chunk.len();
            let groups = phoneme_groups(&config.phoneme_id_map, chunk, words);
            let ids: Vec<i64> = groups.iter().flat_map(|g| g.ids.iter().copied()).collect();
            let run = voice.infer(&ids, scales)?;
            let start = samples.len();
            let first_phoneme = timeline.phonemes.len();
            append_sentence(&mut samples, &mut timeline, &groups, run.audio, &run.frames);
            // The space between two words is heard as the start of the second: with it,
            // word onsets agree with a forced alignment of the audio (without, they came
            // 11 to 29 ms late in median on every text of the lip-sync corpus).
            let mut space_start = None;
            for (group, timed) in groups.iter().zip(&timeline.phonemes[first_phoneme..]) {
                let Some(span) = group.word.and_then(|w| word_samples.get_mut(w)) else {
                    space_start = (group.phoneme == " ").then_some(timed.start_sample);
                    continue;
                };
                let start = space_start.take().unwrap_or(timed.start_sample);
                let (s, e) = span.get_or_insert((start, timed.end_sample));
                *s = (*s).min(start);
                *e = (*e).max(timed.end_sample);
            }
            on_audio(&samples[start..]);
        }
        // The sentence is heard from its first word to its last (its audio if it has none).
        let spoken: Vec<(u64, u64)> = word_samples[first_word.map_or(0, |w| w + 1)..]
            .iter()
            .flatten()
            .copied()
            .collect();
        let (start_sample, end_sample) = match (spoken.first(), spoken.last()) {
            (Some(first), Some(last)) => (first.0, last.1),
            _ => (sentence_start, timeline.total_samples),
        };
        timeline.spoken_sentences.push(SpokenText {
            start_sample,
            end_sample,
            text_start: sentence.text.start,
            text_end: sentence.text.end,
            ..SpokenText::default()
        });
    }
    if samples.is_empty() {
        return Err(TtsError::NothingToSpeak);
    }
    timeline.words = phonemized
        .words
        .iter()
        .zip(word_samples)
        .filter_map(|(text, samples)| {
            let (start_sample, end_sample) = samples?;
            Some(SpokenText {
                start_sample,
                end_sample,
                text_start: text.start,
                text_end: text.end,
                ..SpokenText::default()
            })
        })
        .collect();
    Ok(Synthesis { samples, timeline })
}

/// Speech audio encoded while it is synthesised: Opus encoding of each sentence runs on its
/// own thread while the model works on the next, so encoding adds little to a render's time
/// (onnxruntime leaves part of a second core idle). WAV, or Opus failing, encodes at the end.
pub fn synthesize_encoded(
    voice: &Voice,
    text: &str,
    speed: f64,
    format: AudioFormat,
    bitrate: u32,
) -> Result<(Synthesis, EncodedAudio), TtsError> {
    if format == AudioFormat::Wav {
        let synthesis = synthesize(voice, text, speed)?;
        let audio = audio::encode(&synthesis.samples, synthesis.sample_rate(), format, bitrate);
        return Ok((synthesis, audio));
    }
    let rate = voice.config.audio.sample_rate;
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<f32>>();
    std::thread::scope(|scope| {
        let encoder = scope.spawn(move || {
            let mut encoder = OggOpusEncoder::new(rate, bitrate, stream_serial(text))?;
            for chunk in receiver {
                encoder.push(&chunk)?;
            }
            encoder.finish()
        });
        let synthesis = synthesize_with(voice, text, speed, |samples| {
            // A failed encoder has dropped the receiver; its error is reported below.
            let _ = sender.send(samples.to_vec());
        });
        drop(sender);
        let encoded = encoder.join().unwrap_or(Err(AudioError::Panicked));
        let synthesis = synthesis?;
        let audio = audio::or_wav(encoded, &synthesis.samples, rate);
        Ok((synthesis, audio))
    })
}

/// A stream serial from the text, so a file's serial is stable for a given render.
fn stream_serial(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Adds one sentence's audio and timeline. Each id got `frames[i] * 256` samples; the spans
/// tile the sentence's audio exactly.
///
/// Piper puts a pad (`_`) after every phoneme: after a sound it goes to the next phoneme (it
/// sounds like it), after or before punctuation it stays where it is
/// (docs/research/timing-measurements.md).
fn append_sentence(
    samples: &mut Vec<f32>,
    timeline: &mut PhonemeTimeline,
    groups: &[PhonemeGroup],
    mut audio: Vec<f32>,
    frames: &[f32],
) {
    let per_id: Vec<u64> = frames
        .iter()
        .map(|&f| f.max(0.0).round() as u64 * SAMPLES_PER_FRAME)
        .collect();
    let predicted: u64 = per_id.iter().sum();
    let actual = audio.len() as u64;
    if predicted != actual {
        // Never seen with Piper VITS voices (the decoder makes exactly 256 samples per
        // frame); a voice that differs still gets a timeline that tiles its audio.
        tracing::warn!(predicted, actual, "durations do not match the audio length");
    }

    // Each group's own samples and its trailing pad's.
    let mut id_index = 0;
    let parts: Vec<(u64, u64)> = groups
        .iter()
        .map(|group| {
            let own = group.ids.len() - group.pad_ids;
            let sum = |range: std::ops::Range<usize>| -> u64 {
                per_id.get(range).map(|s| s.iter().sum()).unwrap_or(0)
            };
            let parts = (
                sum(id_index..id_index + own),
                sum(id_index + own..id_index + group.ids.len()),
            );
            id_index += group.ids.len();
            parts
        })
        .collect();

    let start_phoneme = timeline.phonemes.len();
    let sentence_start = timeline.total_samples;
    let mut cursor = 0;
    let symbols: Vec<Option<char>> = groups.iter().map(|g| symbol_of(&g.phoneme)).collect();
    let silent = |i: usize| symbols[i].is_some_and(is_silence_symbol);
    // Whether group `i`'s pad stays with it: after a silence, and before one (where it is the
    // fading end of the sound before the pause), and at the end.
    let pad_stays = |i: usize| silent(i) || i + 1 == groups.len() || silent(i + 1);
    // Each group's end, in samples from the sentence's start.
    let mut ends = Vec::with_capacity(groups.len());
    for i in 0..groups.len() {
        let pad_before = match i.checked_sub(1) {
            Some(prev) if !pad_stays(prev) => parts[prev].1,
            _ => 0,
        };
        let own_pad = if pad_stays(i) { parts[i].1 } else { 0 };
        let owned = pad_before + parts[i].0 + own_pad;
        cursor = if i + 1 == groups.len() {
            actual
        } else {
            (cursor + owned).min(actual)
        };
        ends.push(cursor);
    }
    // Piper's normalize_audio scales each sentence to full peak: silence is judged against
    // the same peak.
    let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    fit_to_audio(&symbols, &mut ends, &audio, peak);
    let mut start = sentence_start;
    for (group, end) in groups.iter().zip(ends) {
        timeline.phonemes.push(TimedPhoneme {
            phoneme: group.phoneme.clone(),
            start_sample: start,
            end_sample: sentence_start + end,
        });
        start = sentence_start + end;
    }
    timeline.total_samples = sentence_start + actual;
    timeline.sentences.push(SentenceSpan {
        start_sample: sentence_start,
        end_sample: timeline.total_samples,
        first_phoneme: start_phoneme,
        end_phoneme: timeline.phonemes.len(),
    });

    // Piper's normalize_audio: scale each sentence to full peak, then clip.
    if peak < 1e-8 {
        audio.iter_mut().for_each(|s| *s = 0.0);
    } else {
        audio
            .iter_mut()
            .for_each(|s| *s = (*s / peak).clamp(-1.0, 1.0));
    }
    samples.extend_from_slice(&audio);
}

/// Splits a sentence longer than `max` phonemes: after the last clause punctuation
/// (`, ; :` and the space Piper puts after it) that fits, else at the last word break,
/// else hard at `max`.
fn split_long(phonemes: &[char], max: usize) -> Vec<&[char]> {
    let mut chunks = Vec::new();
    let mut rest = phonemes;
    while rest.len() > max {
        let window = &rest[..max];
        let at_clause = window
            .windows(2)
            .rposition(|w| matches!(w[0], ',' | ';' | ':') && w[1] == ' ')
            .map(|i| i + 2);
        let at_word = window.iter().rposition(|&c| c == ' ').map(|i| i + 1);
        let cut = at_clause
            .or(at_word)
            .filter(|&c| c > 0 && c < rest.len())
            .unwrap_or(max);
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn short_sentences_stay_whole() {
        let s = chars("həlˈoʊ.");
        assert_eq!(split_long(&s, 400), vec![&s[..]]);
    }

    #[test]
    fn long_sentences_split_at_clauses_then_words() {
        let s = chars("aaaa, bbbb cccc dddd");
        let parts: Vec<String> = split_long(&s, 10)
            .into_iter()
            .map(String::from_iter)
            .collect();
        assert_eq!(parts, ["aaaa, ", "bbbb cccc ", "dddd"]);
        let word = chars(&"x".repeat(25));
        let parts = split_long(&word, 10);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        // Nothing is lost or reordered.
        assert_eq!(parts.concat(), word);
    }
}
