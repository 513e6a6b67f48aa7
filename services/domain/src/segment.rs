//! Cutting a stream of text into segments to speak as it arrives: a segment is a sentence,
//! and the first may end at a clause so that speech starts early.
//!
//! Text arrives in pieces of any size (a chat model's tokens). A sentence is complete when the
//! character after its final punctuation has arrived and is whitespace (`3.5` and `e.g.` are
//! not ends), or at a blank line; nothing is cut before that unless the caller flushes (the
//! client asked, or went quiet). A sentence longer than [`MAX_SEGMENT_CHARS`] is cut at a
//! clause, else between words, so a run-on text still streams.

/// The longest segment cut from text that has no sentence end.
pub const MAX_SEGMENT_CHARS: usize = 400;
/// The first segment may end at a clause (`, ; : —`) once it has this many words.
pub const FIRST_CLAUSE_MIN_WORDS: usize = 4;

/// A stretch of the stream's text to render on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Exactly as received (a substring of the stream's text).
    pub text: String,
    /// Where it starts in the stream's text, in UTF-16 code units.
    pub start: usize,
}

impl Segment {
    /// Whether it has anything to speak: a letter, a digit or a symbol (espeak names emoji
    /// and signs); segments of punctuation and whitespace alone are skipped.
    pub fn is_speakable(&self) -> bool {
        self.text.chars().any(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !c.is_ascii_punctuation()
                && !"…—–―“”‘’«»‹›¡¿。、，！？：；「」『』（）".contains(c)
        })
    }
}

/// The text received and not yet cut into segments.
#[derive(Debug, Default)]
pub struct Segmenter {
    pending: String,
    /// UTF-16 offset of `pending` in the stream's text.
    pending_start: usize,
    /// Segments cut so far.
    cut: usize,
}

impl Segmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Characters received and not yet in a segment.
    pub fn pending_chars(&self) -> usize {
        self.pending.chars().count()
    }

    /// Adds text; returns the segments it completes, in order.
    pub fn push(&mut self, text: &str) -> Vec<Segment> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.next_cut() {
            out.push(self.take(end));
        }
        out
    }

    /// Everything pending as one segment (the client flushed or went quiet), if any.
    pub fn flush(&mut self) -> Option<Segment> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.take(self.pending.len()))
    }

    fn take(&mut self, end: usize) -> Segment {
        let text: String = self.pending.drain(..end).collect();
        let segment = Segment {
            start: self.pending_start,
            text,
        };
        self.pending_start += segment.text.encode_utf16().count();
        self.cut += 1;
        segment
    }

    /// The byte offset in `pending` where the next complete segment ends (its trailing
    /// whitespace included), if one is complete.
    fn next_cut(&self) -> Option<usize> {
        let text = &self.pending;
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut words = 0;
        let mut in_word = false;
        let mut clause_end = None;
        let mut space_end = None;
        for (k, &(i, c)) in chars.iter().enumerate() {
            if c.is_whitespace() {
                if in_word {
                    words += 1;
                }
                in_word = false;
                if k > 0 && chars.get(k + 1).is_some() && k < MAX_SEGMENT_CHARS {
                    space_end = Some(i + c.len_utf8());
                }
            } else {
                in_word = true;
            }
            let next = chars.get(k + 1).map(|&(_, n)| n);
            // A blank line.
            // The first segment ends at its first clause if that comes before the sentence's end.
            let first_clause = clause_end.filter(|_| self.cut == 0);
            if c == '\n' && next == Some('\n') {
                return first_clause.or(Some(after_whitespace(text, i)));
            }
            if matches!(c, '。' | '！' | '？') {
                return first_clause.or(Some(after_whitespace(text, i + c.len_utf8())));
            }
            if matches!(c, '.' | '!' | '?' | '…') {
                // Closing quotes and brackets stay with the sentence.
                let mut j = k + 1;
                while chars.get(j).is_some_and(|&(_, q)| "\"'”’)]}»".contains(q)) {
                    j += 1;
                }
                let Some(&(at, after)) = chars.get(j) else {
                    // The next character decides (`3.` may be `3.5`): wait for it.
                    return None;
                };
                if after.is_whitespace() && !(c == '.' && is_abbreviation(word_before(text, i))) {
                    return first_clause.or(Some(after_whitespace(text, at)));
                }
            }
            if matches!(c, ',' | ';' | ':' | '—' | '–')
                && next.is_some_and(char::is_whitespace)
                && words + usize::from(in_word) >= FIRST_CLAUSE_MIN_WORDS
            {
                clause_end.get_or_insert(after_whitespace(text, i + c.len_utf8()));
            }
            if k + 1 >= MAX_SEGMENT_CHARS {
                // Too long without a sentence end: at a clause, else between words.
                return clause_end.or(space_end).or(Some(i + c.len_utf8()));
            }
        }
        if self.cut == 0 {
            return clause_end;
        }
        None
    }
}

/// The offset after the whitespace starting at byte `i` of `text`.
fn after_whitespace(text: &str, i: usize) -> usize {
    i + text[i..]
        .char_indices()
        .find(|&(_, c)| !c.is_whitespace())
        .map_or(text.len() - i, |(j, _)| j)
}

/// The token ending at byte `end` of `text` (after the whitespace before it).
fn word_before(text: &str, end: usize) -> &str {
    let start = text[..end]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || "\"'(“‘[".contains(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &text[start..end]
}

/// Abbreviations whose final `.` is part of the word (`Dr.`), not the end of a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "co", "corp",
    "no", "mt", "ave", "gen", "col", "lt", "sgt", "capt", "rev", "hon", "fig", "approx", "dept",
    "est", "vol", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "e.g", "i.e",
];

/// Whether a written token, before its final `.`, is an abbreviation or an initial whose dot
/// belongs to it (`Dr`, `U.S`, `J`, `e.g`), not a sentence end.
pub fn is_abbreviation(stem: &str) -> bool {
    let letters = stem.chars().filter(|c| c.is_alphabetic()).count();
    (stem.contains('.') && !stem.ends_with('.'))
        || (letters == 1 && stem.chars().all(char::is_alphabetic))
        || ABBREVIATIONS.contains(&stem.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(segments: &[Segment]) -> Vec<&str> {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn sentences_are_cut_once_the_next_character_arrives() {
        let mut s = Segmenter::new();
        assert!(s.push("Hello there").is_empty());
        // "there." could still be "there.com": nothing yet.
        assert!(s.push(".").is_empty());
        let out = s.push(" How are");
        assert_eq!(texts(&out), ["Hello there. "]);
        assert_eq!(out[0].start, 0);
        assert!(s.push(" you? I'm fine").len() == 1);
        assert_eq!(s.flush().unwrap().text, "I'm fine");
        assert!(s.flush().is_none());
    }

    #[test]
    fn numbers_abbreviations_and_initials_are_not_ends() {
        let mut s = Segmenter::new();
        assert_eq!(s.push("Hi there. ").len(), 1);
        let out = s.push("It costs 3.5 dollars, says Dr. Lee of the U.S. Army and J. Smith. Next");
        assert_eq!(
            texts(&out),
            ["It costs 3.5 dollars, says Dr. Lee of the U.S. Army and J. Smith. "]
        );
    }

    #[test]
    fn the_first_segment_may_end_at_a_clause_later_ones_not() {
        let mut s = Segmenter::new();
        assert!(
            s.push("Well, ok").is_empty(),
            "too few words before the comma"
        );
        let mut s = Segmenter::new();
        let out = s.push("When the first words come in, we speak them; then");
        assert_eq!(texts(&out), ["When the first words come in, "]);
        assert!(s.push(" the rest waits, for its sentence").is_empty());
        let out = s.push(" to end. ");
        assert_eq!(
            texts(&out),
            ["we speak them; then the rest waits, for its sentence to end. "]
        );
    }

    #[test]
    fn offsets_are_utf16_units_of_the_stream() {
        let mut s = Segmenter::new();
        let text = "Café 😀 is here. 東京です。Then more! ";
        let out = s.push(text);
        assert_eq!(
            texts(&out),
            ["Café 😀 is here. ", "東京です。", "Then more! "]
        );
        let units: Vec<u16> = text.encode_utf16().collect();
        for seg in &out {
            let n = seg.text.encode_utf16().count();
            assert_eq!(
                String::from_utf16(&units[seg.start..seg.start + n]).unwrap(),
                seg.text
            );
        }
    }

    #[test]
    fn quotes_after_the_end_and_blank_lines() {
        let mut s = Segmenter::new();
        let out = s.push("She said \"stop.\" Then\n\nA new paragraph without a stop\n\nX");
        assert_eq!(
            texts(&out),
            [
                "She said \"stop.\" ",
                "Then\n\n",
                "A new paragraph without a stop\n\n"
            ]
        );
    }

    #[test]
    fn punctuation_alone_is_not_spoken_but_emoji_are() {
        let speakable = |text: &str| {
            Segment {
                text: text.into(),
                start: 0,
            }
            .is_speakable()
        };
        assert!(!speakable(" ... — “” \n"));
        assert!(speakable("😀"));
        assert!(speakable("東京。"));
        assert!(speakable("$5"));
    }

    #[test]
    fn a_long_run_on_is_cut_between_words() {
        let mut s = Segmenter::new();
        let run_on = "word ".repeat(200);
        let out = s.push(&run_on);
        assert!(!out.is_empty());
        for seg in &out {
            assert!(seg.text.chars().count() <= MAX_SEGMENT_CHARS);
            assert!(seg.text.ends_with(' '), "{:?}", seg.text);
        }
        let rest = s.flush().map(|s| s.text).unwrap_or_default();
        let joined: String = out
            .iter()
            .map(|s| s.text.as_str())
            .chain([rest.as_str()])
            .collect();
        assert_eq!(joined, run_on);
    }
}
