//! Word and sentence marks: when each written word and each sentence of the request's text is
//! spoken, taken from the synthesis run that made the audio.
//!
//! The tts stage records, in the [`PhonemeTimeline`], which stretch of the rendered
//! (normalised) text each word and sentence is and the samples it is heard in
//! ([`SpokenText`], byte offsets). A result carries them as [`WordMark`]s and
//! [`SentenceMark`]s located in UTF-16 code units, the units of a web page's strings
//! (`text.slice(start, end)` in JavaScript), first in the rendered text and, where whoever
//! answers has the client's own text, in that ([`locate_in`]).

use serde::{Deserialize, Serialize};

use crate::PhonemeTimeline;
use crate::request::normalize_text;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

/// A stretch of the rendered text (byte offsets into the normalised text) and the samples of
/// the audio in which it is spoken.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpokenText {
    pub start_sample: u64,
    pub end_sample: u64,
    pub text_start: usize,
    pub text_end: usize,
    /// For a recording's words (the align stage): true when the word was force-aligned to
    /// the transcript, false when it was recognised. `None` for synthesised speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned: Option<bool>,
    /// For a recognised word: the recogniser's posterior probability, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// One written word (`1,234`, `Dr.`, `3:45pm` and a URL are one word each, however many
/// spoken words they become) and when it is heard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WordMark {
    /// Milliseconds from the start of the decoded audio to the word's first sound.
    pub t_ms: u64,
    /// Milliseconds to the end of its last sound.
    pub end_ms: u64,
    /// The word as written in the request's text (`text.slice(start, end)`).
    pub text: String,
    /// Where the word starts in the request's `text`, in UTF-16 code units (JavaScript
    /// string indices).
    pub start: usize,
    /// Where it ends (exclusive), in UTF-16 code units.
    pub end: usize,
    /// Only for lip-sync of a recording: true when the word was force-aligned to the
    /// transcript (its timing measured, the word known), false when it was recognised (the
    /// word itself is a guess; see `confidence`). Absent for synthesised speech, whose
    /// timing is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned: Option<bool>,
    /// Only for recognised words: the recogniser's posterior probability, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// One synthesised sentence and when it is heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SentenceMark {
    pub t_ms: u64,
    pub end_ms: u64,
    /// Where the sentence starts in the request's `text`, in UTF-16 code units.
    pub start: usize,
    /// Where it ends (exclusive), in UTF-16 code units.
    pub end: usize,
}

/// The word and sentence marks of a timeline whose text is `text` (the normalised text it
/// was synthesised from), located in `text`.
pub fn marks(timeline: &PhonemeTimeline, text: &str) -> (Vec<WordMark>, Vec<SentenceMark>) {
    let utf16 = Utf16Index::new(text);
    let ms = |sample: u64| timeline.ms_at(sample);
    let words = timeline
        .words
        .iter()
        .filter_map(|w| {
            let word = text.get(w.text_start..w.text_end)?;
            Some(WordMark {
                t_ms: ms(w.start_sample),
                end_ms: ms(w.end_sample),
                text: word.to_owned(),
                start: utf16.units_at(w.text_start),
                end: utf16.units_at(w.text_end),
                aligned: w.aligned,
                confidence: w.confidence,
            })
        })
        .collect();
    let sentences = timeline
        .spoken_sentences
        .iter()
        .filter(|s| text.is_char_boundary(s.text_start) && text.is_char_boundary(s.text_end))
        .map(|s| SentenceMark {
            t_ms: ms(s.start_sample),
            end_ms: ms(s.end_sample),
            start: utf16.units_at(s.text_start.min(text.len())),
            end: utf16.units_at(s.text_end.min(text.len())),
        })
        .collect();
    (words, sentences)
}

/// A string's char boundaries in bytes and in UTF-16 code units (JavaScript string indices),
/// to convert offsets either way.
pub(crate) struct Utf16Index {
    /// (byte offset, UTF-16 offset) at every char boundary, in order in both.
    bounds: Vec<(usize, usize)>,
}

impl Utf16Index {
    pub(crate) fn new(text: &str) -> Self {
        let mut bounds = Vec::with_capacity(text.len() + 1);
        let mut units = 0;
        for (i, c) in text.char_indices() {
            bounds.push((i, units));
            units += c.len_utf16();
        }
        bounds.push((text.len(), units));
        Self { bounds }
    }

    /// The UTF-16 offset of byte offset `byte` (not a char boundary: the boundary before it).
    pub(crate) fn units_at(&self, byte: usize) -> usize {
        match self.bounds.binary_search_by_key(&byte, |&(b, _)| b) {
            Ok(i) => self.bounds[i].1,
            Err(i) => self.bounds[i.saturating_sub(1)].1,
        }
    }

    /// The byte offset of UTF-16 offset `units` (inside a surrogate pair: the char's start;
    /// past the end: the end).
    pub(crate) fn byte_at(&self, units: usize) -> usize {
        match self.bounds.binary_search_by_key(&units, |&(_, u)| u) {
            Ok(i) => self.bounds[i].0,
            Err(i) => self.bounds[i.saturating_sub(1)].0,
        }
    }
}

/// Moves marks located in the rendered text (`normalize_text(original)`) to the client's
/// own `original` text: the offsets and each word's `text` then refer to what the client
/// sent (surrounding whitespace, `\r\n` line ends, decomposed accents, control characters).
pub fn locate_in(original: &str, words: &mut [WordMark], sentences: &mut [SentenceMark]) {
    let map = OffsetMap::new(original);
    if map.is_identity() {
        return;
    }
    let original_utf16: Vec<u16> = original.encode_utf16().collect();
    for word in words.iter_mut() {
        word.start = map.at(word.start);
        word.end = map.at(word.end).max(word.start);
        if let Some(units) = original_utf16.get(word.start..word.end) {
            word.text = String::from_utf16_lossy(units);
        }
    }
    for sentence in sentences.iter_mut() {
        sentence.start = map.at(sentence.start);
        sentence.end = map.at(sentence.end).max(sentence.start);
    }
}

/// From UTF-16 offsets in the normalised text to UTF-16 offsets in the original.
struct OffsetMap {
    /// The original offset of every normalised offset 0..=len (UTF-16 units).
    to_original: Vec<usize>,
    identity: bool,
}

impl OffsetMap {
    /// Follows `normalize_text` step by step: line ends, controls to spaces, NFC per run
    /// between whitespace (whitespace never composes, so NFC of the whole is NFC of the runs),
    /// then the trim.
    fn new(original: &str) -> Self {
        // (char after line-end and control handling, its UTF-16 offset in the original)
        let mut cleaned: Vec<(char, usize)> = Vec::with_capacity(original.len());
        let mut units = 0;
        let mut chars = original.chars().peekable();
        while let Some(c) = chars.next() {
            let at = units;
            units += c.len_utf16();
            let c = match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                        units += 1;
                    }
                    '\n'
                }
                c if c.is_control() && c != '\n' && c != '\t' => ' ',
                c => c,
            };
            cleaned.push((c, at));
        }
        let total = units;
        // NFC in groups that compose apart from each other: a starter and the marks after
        // it, joined to the group before when together they compose differently (Hangul
        // syllables, the few starter pairs). Whitespace is a group of its own.
        let mut normalised: Vec<(char, usize)> = Vec::with_capacity(cleaned.len());
        let mut group: Vec<(char, usize)> = Vec::new();
        let mut i = 0;
        while i <= cleaned.len() {
            // The next segment: a starter and the non-starters after it.
            let mut j = i + 1;
            while j < cleaned.len() && canonical_combining_class(cleaned[j].0) != 0 {
                j += 1;
            }
            let segment = &cleaned[i.min(cleaned.len())..j.min(cleaned.len())];
            let joins = !group.is_empty()
                && !segment.is_empty()
                && !segment[0].0.is_whitespace()
                && !group[0].0.is_whitespace()
                && {
                    let apart: String = chars_of(&group)
                        .nfc()
                        .chain(chars_of(segment).nfc())
                        .collect();
                    let together: String =
                        chars_of(&group).chain(chars_of(segment)).nfc().collect();
                    apart != together
                };
            if !joins {
                let end = segment.first().map_or(total, |&(_, at)| at);
                compose_group(&group, end, &mut normalised);
                group.clear();
            }
            group.extend_from_slice(segment);
            i = j;
        }
        compose_group(&group, total, &mut normalised);
        // The trim.
        let first = normalised
            .iter()
            .position(|&(c, _)| !c.is_whitespace())
            .unwrap_or(normalised.len());
        let last = normalised
            .iter()
            .rposition(|&(c, _)| !c.is_whitespace())
            .map_or(first, |i| i + 1);
        let kept = &normalised[first..last];
        let mut to_original = Vec::with_capacity(kept.len() * 2 + 1);
        for (i, &(c, at)) in kept.iter().enumerate() {
            let next = kept.get(i + 1).map_or_else(
                || normalised.get(last).map_or(total, |&(_, at)| at),
                |&(_, at)| at,
            );
            to_original.push(at);
            // The second unit of a surrogate pair maps inside the original char.
            if c.len_utf16() == 2 {
                to_original.push((at + 1).min(next));
            }
        }
        let end = normalised.get(last).map_or(total, |&(_, at)| at);
        to_original.push(end);
        let text: String = kept.iter().map(|&(c, _)| c).collect();
        debug_assert_eq!(text, normalize_text(original));
        let identity = text == original;
        Self {
            to_original,
            identity,
        }
    }

    fn is_identity(&self) -> bool {
        self.identity
    }

    fn at(&self, normalised: usize) -> usize {
        self.to_original
            .get(normalised)
            .or(self.to_original.last())
            .copied()
            .unwrap_or(0)
    }
}

fn chars_of(run: &[(char, usize)]) -> impl Iterator<Item = char> + Clone + '_ {
    run.iter().map(|&(c, _)| c)
}

/// Appends the NFC of `group` (chars with their original offsets), each composed char at the
/// offset of the first source char whose prefix composes to it; `end` is the group's end.
fn compose_group(group: &[(char, usize)], end: usize, out: &mut Vec<(char, usize)>) {
    let composed: Vec<char> = chars_of(group).nfc().collect();
    if composed.len() == group.len() {
        out.extend(composed.into_iter().zip(group.iter().map(|&(_, at)| at)));
        return;
    }
    let mut k = 0;
    for (i, &c) in composed.iter().enumerate() {
        while k < group.len() && chars_of(&group[..k]).nfc().count() <= i {
            k += 1;
        }
        out.push((c, group.get(k.saturating_sub(1)).map_or(end, |&(_, at)| at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16_slice(text: &str, start: usize, end: usize) -> String {
        let units: Vec<u16> = text.encode_utf16().collect();
        String::from_utf16(&units[start..end]).unwrap()
    }

    fn word(text: &str, normalised: &str, w: &str) -> WordMark {
        let at = normalised.find(w).unwrap();
        let utf16 = Utf16Index::new(normalised);
        let _ = text;
        WordMark {
            aligned: None,
            confidence: None,
            t_ms: 0,
            end_ms: 1,
            text: w.into(),
            start: utf16.units_at(at),
            end: utf16.units_at(at + w.len()),
        }
    }

    #[test]
    fn offsets_are_utf16_units_after_accents_emoji_and_cjk() {
        let text = "Café 😀 東京 naïve word";
        let normalised = normalize_text(text);
        let w = word(text, &normalised, "word");
        assert_eq!(utf16_slice(text, w.start, w.end), "word");
        // 😀 is two UTF-16 units, the CJK characters one each.
        assert_eq!(w.start, "Café 😀 東京 naïve ".encode_utf16().count());
    }

    #[test]
    fn marks_move_to_the_text_as_sent() {
        for original in [
            "  \r\nHello\r\nthere word\t",
            "e\u{301}te\u{301} word and more",
            "bell\u{7}word  ",
            "\u{85}x\u{0}word",
            "plain word",
            "😀\r\n\r\ne\u{301}\u{302} word",
        ] {
            let normalised = normalize_text(original);
            let mut words = vec![word(original, &normalised, "word")];
            let mut sentences = vec![SentenceMark {
                t_ms: 0,
                end_ms: 1,
                start: 0,
                end: normalised.encode_utf16().count(),
            }];
            locate_in(original, &mut words, &mut sentences);
            assert_eq!(words[0].text, "word", "{original:?}");
            assert_eq!(
                utf16_slice(original, words[0].start, words[0].end),
                "word",
                "{original:?}"
            );
            let sentence = utf16_slice(original, sentences[0].start, sentences[0].end);
            assert_eq!(normalize_text(&sentence), normalised, "{original:?}");
        }
    }

    #[test]
    fn a_composed_word_maps_to_its_decomposed_letters() {
        let original = "x e\u{301}te\u{301} y";
        let normalised = normalize_text(original);
        let mut words = vec![word(original, &normalised, "\u{e9}t\u{e9}")];
        locate_in(original, &mut words, &mut []);
        assert_eq!(words[0].text, "e\u{301}te\u{301}");
    }
}
