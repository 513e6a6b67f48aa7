//! Written words from espeak-ng's word events: which stretch of the text each spoken word
//! belongs to (see `docs/research/espeak-word-positions.md`).
//!
//! espeak reports a WORD event at the text position of every word it speaks. A written word
//! may be spoken as several (`1,234` is five, a URL a dozen), several written words may be
//! spoken as one (`of the` from its word list), and punctuation that is not spoken has no
//! event. So events are grouped by the written token they fall in (a run of non-whitespace,
//! split at dashes between words), consecutive events of one token make one mark, and a
//! token with letters but no event of its own joins the mark before it in its clause.

use std::ops::Range;

use avatar_domain::segment::is_abbreviation;

/// One clause as espeak read it: its stretch of the text (bytes) and the text position of
/// each word event in it (char indices from the start of the text, 0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClauseEvents {
    pub span: Range<usize>,
    pub events: Vec<usize>,
}

/// The written words of the text (byte ranges, in order) and, per clause, the word each of
/// its events belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WrittenWords {
    pub words: Vec<Range<usize>>,
    /// `of_event[k][i]`: the index in `words` of clause k's event i (none for a clause with
    /// nothing written but dashes).
    pub of_event: Vec<Vec<Option<usize>>>,
}

/// Groups the events of every clause of `text` into written words.
pub fn written_words(text: &str, clauses: &[ClauseEvents]) -> WrittenWords {
    // Byte offset of every char index, and one past the end.
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut out = WrittenWords::default();
    for clause in clauses {
        let tokens = tokens(text, clause.span.clone());
        let token_of = event_tokens(text, &bytes, clause, &tokens);
        let mut of_event = Vec::with_capacity(token_of.len());
        if tokens.is_empty() {
            // Nothing written to locate the clause's words in (only dashes): no words.
            out.of_event.push(vec![None; token_of.len()]);
            continue;
        }
        // (last token of the current mark, mark index)
        let mut current: Option<(usize, usize)> = None;
        for token in token_of {
            // An event after the clause's last token belongs to that token.
            let token = token.unwrap_or(tokens.len() - 1);
            match current {
                Some((t, mark)) if token <= t => of_event.push(Some(mark)),
                _ => {
                    if let Some((t, mark)) = current {
                        out.words[mark].end = tokens[extend(text, &tokens, t, token)].end;
                    }
                    out.words.push(tokens[token].clone());
                    current = Some((token, out.words.len() - 1));
                    of_event.push(Some(out.words.len() - 1));
                }
            }
        }
        // Word tokens after the clause's last event were spoken with it.
        if let Some((t, mark)) = current {
            let last = extend(text, &tokens, t, tokens.len());
            out.words[mark].end = out.words[mark].end.max(tokens[last].end);
        }
        out.of_event.push(of_event);
    }
    for word in &mut out.words {
        *word = trim_punctuation(text, word.clone());
    }
    out
}

/// The last token a mark ending at token `t` covers when the next mark starts at token
/// `next`: the tokens between them that have letters or digits but no event of their own
/// were spoken with it (`of the` from espeak's word list is one word).
fn extend(text: &str, tokens: &[Range<usize>], t: usize, next: usize) -> usize {
    let mut last = t;
    while last + 1 < next.min(tokens.len()) && has_word_chars(&text[tokens[last + 1].clone()]) {
        last += 1;
    }
    last
}

/// The token each event of `clause` falls in, never going backwards.
fn event_tokens(
    text: &str,
    bytes: &[usize],
    clause: &ClauseEvents,
    tokens: &[Range<usize>],
) -> Vec<Option<usize>> {
    let mut token_of: Vec<Option<usize>> = Vec::with_capacity(clause.events.len());
    for &c in &clause.events {
        let at = bytes.get(c).copied().unwrap_or(text.len());
        let at = at.clamp(clause.span.start, clause.span.end.saturating_sub(1));
        let previous = token_of.iter().rev().flatten().next().copied();
        let inside = tokens.iter().position(|t| t.contains(&at));
        let token = match (previous, inside) {
            // A sub-word of a one-character token (`½` is "a half", the second event one
            // character on, on the space after it): it stays with that token.
            (Some(t), None)
                if text[tokens[t].clone()].chars().count() == 1 && tokens[t].end == at =>
            {
                Some(t)
            }
            (_, Some(t)) => Some(t),
            (_, None) => tokens.iter().position(|t| t.start > at),
        };
        // Never backwards.
        token_of.push(match (previous, token) {
            (Some(p), Some(t)) if t < p => Some(p),
            (p, None) => p,
            (_, t) => t,
        });
    }
    // espeak gives some words the position of the word before (`most of` reports "of" one
    // character into "most"; a second ideograph at the first's position): a plain word has
    // one event, so a plain word with more passes the extra ones on to the eventless word
    // tokens that follow it.
    let mut i = 0;
    while i < token_of.len() {
        let Some(t) = token_of[i] else {
            i += 1;
            continue;
        };
        let run = token_of[i..].iter().take_while(|&&x| x == Some(t)).count();
        let next_evented = token_of[i + run..].iter().flatten().next().copied();
        let limit = next_evented.unwrap_or(tokens.len());
        if run > 1 && is_plain_word(&text[trim_punctuation(text, tokens[t].clone())]) {
            let mut target = t;
            for slot in &mut token_of[i + 1..i + run] {
                if target + 1 < limit && has_word_chars(&text[tokens[target + 1].clone()]) {
                    target += 1;
                    *slot = Some(target);
                } else {
                    break;
                }
            }
        }
        i += run;
    }
    token_of
}

/// Letters (and apostrophes) only: a word espeak speaks as one.
fn is_plain_word(token: &str) -> bool {
    token
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’'))
}

/// The written tokens of `span`: runs of non-whitespace, split at dashes standing between
/// words (`—`, `–`, `--`), and one token per ideograph or kana (written without spaces).
fn tokens(text: &str, span: Range<usize>) -> Vec<Range<usize>> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    let slice = &text[span.clone()];
    let mut chars = slice.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = span.start + i;
        let next = chars.peek().map(|&(_, n)| n);
        let dash = matches!(c, '—' | '–' | '―') || (c == '-' && next == Some('-'));
        if c.is_whitespace() || dash {
            if let Some(s) = start.take() {
                tokens.push(s..at);
            }
            if c == '-' && next == Some('-') {
                chars.next();
            }
            continue;
        }
        if is_ideographic(c) {
            if let Some(s) = start.take() {
                tokens.push(s..at);
            }
            tokens.push(at..at + c.len_utf8());
            continue;
        }
        start.get_or_insert(at);
    }
    if let Some(s) = start {
        tokens.push(s..span.end);
    }
    tokens
}

/// Scripts written without spaces between words.
fn is_ideographic(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x3134F) // extensions B-G
}

fn has_word_chars(token: &str) -> bool {
    token.chars().any(char::is_alphanumeric)
}

/// A word without the punctuation around it: quotes, brackets, `, ; : ! ? …` and a final
/// `.` (kept for abbreviations and initials: `Dr.`, `U.S.`, `J.`).
fn trim_punctuation(text: &str, word: Range<usize>) -> Range<usize> {
    let s = &text[word.clone()];
    let lead = s
        .char_indices()
        .find(|&(_, c)| !"\"'([{«“‘¿¡„‹*_".contains(c))
        .map_or(s.len(), |(i, _)| i);
    let mut end = s.len();
    loop {
        let rest = &s[lead..end];
        let Some(c) = rest.chars().next_back() else {
            break;
        };
        let keep_dot = c == '.' && is_abbreviation(&rest[..rest.len() - 1]);
        if keep_dot || !"\"')]}»”’,;:!?….›*_".contains(c) {
            break;
        }
        end -= c.len_utf8();
    }
    if lead >= end {
        // All punctuation (a spoken `&` or `%` on its own): keep it whole.
        return word;
    }
    word.start + lead..word.start + end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of a one-clause text whose events are at the given chars.
    fn words_of(text: &str, events: &[usize]) -> (Vec<&'static str>, Vec<Option<usize>>) {
        let ww = written_words(
            text,
            &[ClauseEvents {
                span: 0..text.len(),
                events: events.to_vec(),
            }],
        );
        let words = ww
            .words
            .iter()
            .map(|r| &*String::leak(text[r.clone()].to_owned()))
            .collect();
        (words, ww.of_event[0].clone())
    }

    #[test]
    fn one_word_per_written_token_however_many_are_spoken() {
        // "$1,234.56 at 9:45pm, see https://a.b/c?d=1" with espeak's events: several inside
        // the amount, the time and the URL.
        let text = "$1,234.56 at 9:45pm, see https://a.b/c?d=1";
        let (words, of) = words_of(
            text,
            &[
                0, 1, 2, 3, 4, 4, 6, 7, 10, 13, 15, 15, 17, 21, 25, 30, 33, 37, 39,
            ],
        );
        assert_eq!(
            words,
            ["$1,234.56", "at", "9:45pm", "see", "https://a.b/c?d=1"]
        );
        assert_eq!(
            of,
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4].map(Some)
        );
    }

    #[test]
    fn merged_pronunciations_cover_both_words() {
        // espeak speaks "of the" as one word (one event, at "of").
        let (words, _) = words_of("most of the time", &[0, 5, 12]);
        assert_eq!(words, ["most", "of the", "time"]);
    }

    #[test]
    fn punctuation_is_not_a_word_but_abbreviations_keep_their_dot() {
        let (words, _) = words_of(
            "\"Hello,\" said Dr. Lee — (quietly) to J. Smith.",
            &[1, 9, 14, 18, 25, 34, 37, 40],
        );
        assert_eq!(
            words,
            [
                "Hello", "said", "Dr.", "Lee", "quietly", "to", "J.", "Smith"
            ]
        );
    }

    #[test]
    fn a_word_espeak_places_inside_the_one_before_is_its_own() {
        // Positions as espeak reports them: "of" one character into "most", the second
        // ideograph at the first's position.
        let (words, of) = words_of("most of the time.", &[0, 1, 8, 12]);
        assert_eq!(words, ["most", "of", "the", "time"]);
        assert_eq!(of, [0, 1, 2, 3].map(Some));
        let (words, _) = words_of("東京 then", &[0, 0, 3]);
        assert_eq!(words, ["東", "京", "then"]);
        // Not for a number's spoken words, nor when no word follows without an event.
        let (words, _) = words_of("1,234 apples", &[0, 1, 2, 3, 3, 6]);
        assert_eq!(words, ["1,234", "apples"]);
    }

    #[test]
    fn dashes_between_words_split_them() {
        let (words, _) = words_of("won't—can't--shouldn't co-op", &[0, 6, 13, 23]);
        assert_eq!(words, ["won't", "can't", "shouldn't", "co-op"]);
    }

    #[test]
    fn a_one_character_token_keeps_its_sub_words() {
        // "½" is spoken "a half": the second event is one character on, on the space.
        let (words, of) = words_of("½ cup", &[0, 1, 2]);
        assert_eq!(words, ["½", "cup"]);
        assert_eq!(of, [Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn ideographs_are_words_of_their_own() {
        let (words, _) = words_of("in 東京 today", &[0, 3, 4, 6]);
        assert_eq!(words, ["in", "東", "京", "today"]);
    }

    #[test]
    fn a_clause_of_dashes_has_no_word() {
        let (words, of) = words_of("— --", &[0]);
        assert!(words.is_empty());
        assert_eq!(of, [None]);
    }

    #[test]
    fn clauses_never_share_a_mark() {
        let text = "Well...I think so";
        let ww = written_words(
            text,
            &[
                ClauseEvents {
                    span: 0..7,
                    events: vec![0],
                },
                ClauseEvents {
                    span: 7..text.len(),
                    events: vec![7, 9, 15],
                },
            ],
        );
        let words: Vec<&str> = ww.words.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(words, ["Well", "I", "think", "so"]);
        assert_eq!(
            ww.of_event,
            [vec![Some(0)], vec![Some(1), Some(2), Some(3)]]
        );
    }
}
