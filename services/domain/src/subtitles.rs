//! Subtitles: a render's words as WebVTT cues, with a timestamp tag before every word for
//! karaoke-style highlighting.
//!
//! Cues follow the usual subtitling rules: at most [`MAX_LINES`] lines of at most
//! [`MAX_LINE_CHARS`] characters (a longer word stands on a line of its own), never across a
//! sentence, broken where the text breaks (after a sentence's or a clause's punctuation)
//! where the lengths allow. A cue shows the text as written, whitespace collapsed, with the
//! punctuation attached to its words (`"Hello,"`, `(see`), and is on screen from its first
//! word's first sound to its last word's last.

use crate::marks::{SentenceMark, WordMark};

/// The longest line, in characters (Unicode scalar values).
pub const MAX_LINE_CHARS: usize = 42;
/// The most lines in a cue.
pub const MAX_LINES: usize = 2;

/// The WebVTT file of a render's `words` and `sentences`, located (in UTF-16 code units) in
/// `text`. No words give a file with no cues.
pub fn webvtt(text: &str, words: &[WordMark], sentences: &[SentenceMark]) -> String {
    let tokens = tokens(text, words, sentences);
    let mut cues: Vec<Cue> = Vec::new();
    let mut first = 0;
    while first < tokens.len() {
        let sentence = tokens[first].sentence;
        let end = first
            + tokens[first..]
                .iter()
                .take_while(|t| t.sentence == sentence)
                .count();
        cues.extend(layout(&tokens[first..end]).into_iter().map(|lines| {
            Cue {
                lines: lines
                    .into_iter()
                    .map(|(from, to)| (first + from, first + to))
                    .collect(),
            }
        }));
        first = end;
    }
    let times = cue_times(&tokens, &cues);
    let mut out = String::from("WEBVTT\n\n");
    for (n, (cue, &(start, end))) in cues.iter().zip(&times).enumerate() {
        out += &format!("{}\n{} --> {}\n", n + 1, timestamp(start), timestamp(end));
        let mut last_tag = start;
        for (l, &(from, to)) in cue.lines.iter().enumerate() {
            if l > 0 {
                out.push('\n');
            }
            for (i, token) in tokens[from..to].iter().enumerate() {
                if i > 0 && token.space_before {
                    out.push(' ');
                }
                // Every word but the cue's first is announced by its time, which must lie
                // after the cue's start and the previous tag and before the cue's end.
                let tag = token.t_ms.max(last_tag + 1);
                if (l, i) != (0, 0) && tag < end {
                    out += &format!("<{}>", timestamp(tag));
                    last_tag = tag;
                }
                escape(&token.text, &mut out);
            }
        }
        out += "\n\n";
    }
    out
}

/// A written word as shown: with the punctuation attached to it, whitespace collapsed.
#[derive(Debug)]
struct Token {
    text: String,
    chars: usize,
    /// Whether the text has whitespace between this token and the one before.
    space_before: bool,
    t_ms: u64,
    end_ms: u64,
    /// How good a place to break the text right after this token is.
    after: Break,
    /// The sentence mark it is in (a cue never spans two).
    sentence: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// After a sentence's end (`.`, `!`, `?`, `…`, `。`).
    Sentence,
    /// After a clause's punctuation (`,`, `;`, `:`, a dash, `、`).
    Clause,
    /// Between two words.
    Word,
}

/// A cue's lines, each a range of token indices.
type Lines = Vec<(usize, usize)>;

struct Cue {
    lines: Lines,
}

/// The words as tokens: each word's span widened by the punctuation attached to it (an
/// opening quote before, a comma or closing quote after, a free-standing dash after it).
fn tokens(text: &str, words: &[WordMark], sentences: &[SentenceMark]) -> Vec<Token> {
    let bytes_at = crate::marks::Utf16Index::new(text);
    // Word spans in bytes, in order and not overlapping.
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(words.len());
    let mut floor = 0;
    for word in words {
        let start = bytes_at.byte_at(word.start).max(floor);
        let end = bytes_at.byte_at(word.end).max(start);
        spans.push((start, end));
        floor = end;
    }
    // Where each token's shown text starts and ends: the gap between two words goes to the
    // word before, except the run attached to the next word's start (after the gap's last
    // whitespace). Free-standing text goes with it only if it is punctuation or symbols
    // (words the marks do not have are not shown as if spoken).
    let mut shown: Vec<(usize, usize)> = spans.clone();
    for i in 0..spans.len() {
        let gap_start = spans[i].1;
        let gap_end = spans.get(i + 1).map_or(text.len(), |s| s.0);
        let gap = &text[gap_start..gap_end];
        // The run attached to the next word starts after the gap's last whitespace.
        let lead = match gap.rfind(char::is_whitespace) {
            Some(at) if i + 1 < spans.len() => {
                at + gap[at..].chars().next().map_or(1, char::len_utf8)
            }
            _ => gap.len(),
        };
        if let Some(next) = shown.get_mut(i + 1) {
            next.0 = gap_start + lead;
        }
        let rest = gap[..lead].trim_end();
        let attached = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let keep = if rest[attached..].chars().any(char::is_alphanumeric) {
            attached
        } else {
            rest.len()
        };
        shown[i].1 = gap_start + keep;
    }
    // The first word's opening punctuation, attached to it.
    if let Some(first) = shown.first_mut() {
        let before = &text[..first.0];
        first.0 = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
    }
    let mut tokens: Vec<Token> = Vec::with_capacity(words.len());
    let mut previous_end = None;
    for ((word, &(start, end)), &(word_start, word_end)) in words.iter().zip(&shown).zip(&spans) {
        let mut shown_text = collapse(&text[start..end]);
        if shown_text.is_empty() {
            // A word the text does not have where its mark says: shown as the mark has it.
            shown_text = collapse(&word.text);
        }
        if shown_text.is_empty() {
            continue;
        }
        let space_before = match previous_end {
            Some(previous) => {
                previous < start && text[previous..start].contains(char::is_whitespace)
            }
            None => false,
        };
        previous_end = Some(end);
        let after = classify(&text[word_end..end], &text[word_start..word_end]);
        let unit = word.start;
        let sentence = sentences
            .iter()
            .position(|s| s.start <= unit && unit < s.end);
        tokens.push(Token {
            chars: shown_text.chars().count(),
            text: shown_text,
            space_before,
            t_ms: word.t_ms,
            end_ms: word.end_ms.max(word.t_ms),
            after,
            sentence,
        });
    }
    tokens
}

/// How good a break after a word is, from the punctuation after it (or, with none, at the
/// end of the word itself: `Hello,` as one word).
fn classify(trailing: &str, word: &str) -> Break {
    const CLOSING: &[char] = &[
        '"', '\'', ')', ']', '}', '»', '”', '’', '」', '』', '）', '*',
    ];
    const SENTENCE: &[char] = &['.', '!', '?', '…', '。', '！', '？', '‼', '⁇'];
    const CLAUSE: &[char] = &[
        ',', ';', ':', '—', '–', '-', '、', '，', '；', '：', '‒', '―', '/',
    ];
    let trimmed = trailing.trim_end_matches(|c: char| c.is_whitespace() || CLOSING.contains(&c));
    match trimmed.chars().next_back() {
        Some(c) if SENTENCE.contains(&c) => Break::Sentence,
        Some(c) if CLAUSE.contains(&c) => Break::Clause,
        Some(_) => Break::Word,
        // A word's own final '.' is part of it (`Dr.`), not a sentence's end.
        None => match word.chars().next_back() {
            Some(c) if CLAUSE.contains(&c) => Break::Clause,
            _ => Break::Word,
        },
    }
}

/// Collapses every run of whitespace (and control characters) to one space, trimmed.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for part in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|p| !p.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// What a cue costs: fewer, fuller cues are better; a break that does not follow the text's
/// punctuation costs more, inside a cue and between cues.
mod cost {
    pub const CUE: f64 = 10.0;
    pub const CUE_AFTER_CLAUSE: f64 = 2.0;
    pub const CUE_AFTER_WORD: f64 = 10.0;
    pub const LINE_AFTER_WORD: f64 = 3.0;
    /// Per character of difference between a cue's two lines.
    pub const UNEVEN: f64 = 0.08;
    /// Per character a cue is shorter than `SHORT_CUE`.
    pub const SHORT: f64 = 0.3;
    pub const SHORT_CUE: usize = 15;
}

const _: () = assert!(MAX_LINES == 2, "the layout sets one or two lines");

/// One sentence's tokens as cues of lines (token index ranges), the cheapest layout.
fn layout(tokens: &[Token]) -> Vec<Lines> {
    let n = tokens.len();
    // widths[i]: the length of tokens[..i] set on one line, each with the space before it.
    let mut widths = Vec::with_capacity(n + 1);
    widths.push(0);
    for token in tokens {
        widths.push(widths[widths.len() - 1] + token.chars + usize::from(token.space_before));
    }
    // The length of tokens[from..to] on one line (less the space before the first).
    let line_chars = |from: usize, to: usize| -> usize {
        widths[to] - widths[from] - usize::from(tokens[from].space_before)
    };
    // A line is a single token (however long) or words within the limit.
    let fits = |from: usize, to: usize| to == from + 1 || line_chars(from, to) <= MAX_LINE_CHARS;
    // The best way to set tokens[from..to] as one cue: its lines and their cost.
    let cue = |from: usize, to: usize| -> Option<(Lines, f64)> {
        if fits(from, to) {
            return Some((vec![(from, to)], 0.0));
        }
        (from + 1..to)
            .filter(|&k| fits(from, k) && fits(k, to))
            .map(|k| {
                let uneven = line_chars(from, k).abs_diff(line_chars(k, to)) as f64;
                let at = match tokens[k - 1].after {
                    Break::Sentence | Break::Clause => 0.0,
                    Break::Word => cost::LINE_AFTER_WORD,
                };
                (vec![(from, k), (k, to)], at + uneven * cost::UNEVEN)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    // best[i]: the cheapest layout of tokens[i..], as (cost, end of its first cue, its lines).
    type Plan = (f64, usize, Lines);
    let mut best: Vec<Option<Plan>> = vec![None; n + 1];
    best[n] = Some((0.0, n, Vec::new()));
    for from in (0..n).rev() {
        let mut choice: Option<Plan> = None;
        for to in from + 1..=n {
            // Longer cues only get harder to set: stop at the first that cannot be.
            let Some((lines, mut total)) = cue(from, to) else {
                break;
            };
            total += cost::CUE;
            if to < n {
                total += match tokens[to - 1].after {
                    Break::Sentence => 0.0,
                    Break::Clause => cost::CUE_AFTER_CLAUSE,
                    Break::Word => cost::CUE_AFTER_WORD,
                };
            }
            let chars = line_chars(from, to);
            total += cost::SHORT_CUE.saturating_sub(chars) as f64 * cost::SHORT;
            total += best[to].as_ref().map_or(0.0, |b| b.0);
            if choice.as_ref().is_none_or(|c| total < c.0) {
                choice = Some((total, to, lines));
            }
        }
        best[from] = choice;
    }
    let mut cues = Vec::new();
    let mut at = 0;
    while at < n {
        let Some((_, next, lines)) = best[at].take() else {
            break;
        };
        cues.push(lines);
        at = next;
    }
    cues
}

/// Each cue's start and end: its first word's start to its last word's end, made to last at
/// least a millisecond and never to overlap the next.
fn cue_times(tokens: &[Token], cues: &[Cue]) -> Vec<(u64, u64)> {
    let raw: Vec<(u64, u64)> = cues
        .iter()
        .map(|cue| {
            let (from, to) = (cue.lines[0].0, cue.lines[cue.lines.len() - 1].1);
            let latest = tokens[from..to].iter().map(|t| t.t_ms).max().unwrap_or(0);
            // Long enough for the last word's tag too.
            (tokens[from].t_ms, tokens[to - 1].end_ms.max(latest + 1))
        })
        .collect();
    let mut times = Vec::with_capacity(raw.len());
    let mut previous_end = 0;
    for (i, &(start, end)) in raw.iter().enumerate() {
        let start = start.max(previous_end);
        let next_start = raw.get(i + 1).map_or(u64::MAX, |r| r.0);
        let end = end.min(next_start).max(start + 1);
        times.push((start, end));
        previous_end = end;
    }
    times
}

/// `hh:mm:ss.ttt`.
fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text with `&`, `<` and `>` as character references.
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks for every whitespace-separated word of `text` (punctuation at either end left
    /// out of the word), 300 ms each with 50 ms between, and one sentence mark per sentence
    /// ending in `.`, `!` or `?`.
    fn marks(text: &str) -> (Vec<WordMark>, Vec<SentenceMark>) {
        let units = |byte: usize| text[..byte].encode_utf16().count();
        let mut words = Vec::new();
        let mut t = 100;
        for (i, part) in text.split_whitespace().map(|p| {
            let i = p.as_ptr() as usize - text.as_ptr() as usize;
            (i, p)
        }) {
            let core = part.trim_matches(|c: char| !c.is_alphanumeric());
            if core.is_empty() {
                continue;
            }
            let start = i + part.find(core).unwrap();
            words.push(WordMark {
                aligned: None,
                confidence: None,
                t_ms: t,
                end_ms: t + 300,
                text: core.to_owned(),
                start: units(start),
                end: units(start + core.len()),
            });
            t += 350;
        }
        let mut sentences = Vec::new();
        let mut from = 0;
        for (i, c) in text.char_indices() {
            if matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(char::is_whitespace)
                || i + c.len_utf8() == text.len()
            {
                let end = i + c.len_utf8();
                let inside: Vec<&WordMark> = words
                    .iter()
                    .filter(|w| w.start >= units(from) && w.end <= units(end))
                    .collect();
                if let (Some(a), Some(b)) = (inside.first(), inside.last()) {
                    sentences.push(SentenceMark {
                        t_ms: a.t_ms,
                        end_ms: b.end_ms,
                        start: units(from),
                        end: units(end),
                    });
                }
                from = end;
            }
        }
        (words, sentences)
    }

    #[derive(Debug)]
    struct ParsedCue {
        start: u64,
        end: u64,
        lines: Vec<String>,
        tags: Vec<u64>,
    }

    fn parse_time(s: &str) -> u64 {
        let (hms, ms) = s.split_once('.').unwrap();
        let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{s}");
        assert_eq!(ms.len(), 3, "{s}");
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<u64>().unwrap()
    }

    /// A strict reading of the file: header, numbered cues, well-formed times and tags.
    fn parse(vtt: &str) -> Vec<ParsedCue> {
        let body = vtt.strip_prefix("WEBVTT\n\n").expect("header");
        let mut cues = Vec::new();
        for (n, block) in body.split("\n\n").filter(|b| !b.is_empty()).enumerate() {
            let mut lines = block.lines();
            assert_eq!(lines.next().unwrap(), (n + 1).to_string(), "{block}");
            let (a, b) = lines.next().unwrap().split_once(" --> ").unwrap();
            let (start, end) = (parse_time(a), parse_time(b));
            let mut shown = Vec::new();
            let mut tags = Vec::new();
            for line in lines {
                let mut text = String::new();
                let mut rest = line;
                while let Some(open) = rest.find('<') {
                    text += &rest[..open];
                    let close = rest[open..].find('>').unwrap() + open;
                    tags.push(parse_time(&rest[open + 1..close]));
                    rest = &rest[close + 1..];
                }
                text += rest;
                let text = text
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
                shown.push(text);
            }
            cues.push(ParsedCue {
                start,
                end,
                lines: shown,
                tags,
            });
        }
        cues
    }

    /// Every rule a file must keep, whatever the text.
    fn check(vtt: &str, words: &[WordMark]) -> Vec<ParsedCue> {
        let cues = check_rules(vtt);
        let shown_words: usize = cues.iter().map(|c| c.tags.len() + 1).sum();
        assert_eq!(
            shown_words,
            words.len(),
            "one tag per word but the first\n{vtt}"
        );
        cues
    }

    /// The rules without the tag count (marks too close together to tag every word).
    fn check_rules(vtt: &str) -> Vec<ParsedCue> {
        let cues = parse(vtt);
        let mut previous_end = 0;
        for cue in &cues {
            assert!(cue.start < cue.end, "{cue:?}");
            assert!(cue.start >= previous_end, "overlap: {cue:?}\n{vtt}");
            previous_end = cue.end;
            assert!(
                !cue.lines.is_empty() && cue.lines.len() <= MAX_LINES,
                "{cue:?}"
            );
            for line in &cue.lines {
                let chars = line.chars().count();
                assert!(
                    chars <= MAX_LINE_CHARS || !line.contains(' '),
                    "line of {chars} chars: {line:?}"
                );
                assert_eq!(line.trim(), line);
                assert!(!line.is_empty());
            }
            let mut last = cue.start;
            for &tag in &cue.tags {
                assert!(tag > last && tag < cue.end, "tag {tag} in {cue:?}");
                last = tag;
            }
        }
        cues
    }

    #[test]
    fn no_words_is_just_the_header() {
        assert_eq!(webvtt("Hello.", &[], &[]), "WEBVTT\n\n");
    }

    #[test]
    fn a_short_sentence_is_one_cue_with_a_tag_per_word() {
        let text = "Hello there, world!";
        let (words, sentences) = marks(text);
        let vtt = webvtt(text, &words, &sentences);
        assert_eq!(
            vtt,
            "WEBVTT\n\n1\n00:00:00.100 --> 00:00:01.100\n\
             Hello <00:00:00.450>there, <00:00:00.800>world!\n\n"
        );
        check(&vtt, &words);
    }

    #[test]
    fn long_text_is_cut_into_cues_of_two_short_lines_within_sentences() {
        let text = "The quick brown fox jumps over the lazy dog, and then it runs far away \
                    into the deep and quiet forest where nobody can find it; the hunters \
                    searched for days and nights without any luck at all. It was never \
                    seen again! Was it? Nobody knows: perhaps it still lives there, \
                    perhaps not, and perhaps the whole story is only a tale that old \
                    people tell the children on long winter evenings by the fire.";
        let (words, sentences) = marks(text);
        assert_eq!(sentences.len(), 4);
        let vtt = webvtt(text, &words, &sentences);
        let cues = check(&vtt, &words);
        assert!(cues.len() >= 5, "{vtt}");
        assert!(cues.iter().any(|c| c.lines.len() == 2), "{vtt}");
        // No cue spans a sentence: each cue's text lies inside one sentence.
        for cue in &cues {
            let shown = cue.lines.join(" ");
            let sentence_ends = shown
                .char_indices()
                .filter(|&(i, c)| matches!(c, '.' | '!' | '?') && i + 1 < shown.len())
                .count();
            assert_eq!(sentence_ends, 0, "a cue crosses a sentence: {shown:?}");
        }
        // The cues together are the text.
        let all: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
        assert_eq!(
            all.join(" "),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        // Breaks follow the punctuation where it allows: the first sentence's clauses end
        // lines or cues.
        assert!(
            cues.iter()
                .flat_map(|c| &c.lines)
                .any(|l| l.ends_with("dog,")),
            "{vtt}"
        );
        assert!(
            cues.iter()
                .flat_map(|c| &c.lines)
                .any(|l| l.ends_with("find it;")),
            "{vtt}"
        );
    }

    #[test]
    fn sentence_marks_bound_cues_even_when_both_would_fit() {
        let text = "Hi. Go on";
        let (words, sentences) = marks(text);
        assert_eq!(sentences.len(), 2);
        let vtt = webvtt(text, &words, &sentences);
        let cues = check(&vtt, &words);
        assert_eq!(cues.len(), 2, "{vtt}");
        assert_eq!(cues[0].lines, ["Hi."]);
        assert_eq!(cues[1].lines, ["Go on"]);
        // Without sentence marks the text is one cue.
        let vtt = webvtt(text, &words, &[]);
        assert_eq!(check(&vtt, &words).len(), 1, "{vtt}");
    }

    #[test]
    fn markup_characters_are_escaped() {
        let text = "Fish & chips <b>now</b> --> a > b";
        let (words, sentences) = marks(text);
        let vtt = webvtt(text, &words, &sentences);
        for escaped in ["Fish &amp; ", "&lt;b&gt;now&lt;/b&gt; --&gt; ", "&gt; "] {
            assert!(vtt.contains(escaped), "{escaped}: {vtt}");
        }
        assert!(!vtt.contains("<b>") && !vtt.contains("</b>"), "{vtt}");
        let cues = check(&vtt, &words);
        assert_eq!(cues[0].lines, [text]);
        assert_eq!(
            vtt.matches("-->").count(),
            cues.len(),
            "only the timing lines"
        );
    }

    #[test]
    fn a_word_longer_than_a_line_stands_alone() {
        let long = "https://example.com/a/very/long/path/that/never/ends/at/all";
        assert!(long.chars().count() > MAX_LINE_CHARS);
        let text = format!("Visit {long} today for more news about it");
        let words: Vec<WordMark> = ["Visit", long, "today", "for", "more", "news", "about", "it"]
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let start = text.find(w).unwrap();
                WordMark {
                    aligned: None,
                    confidence: None,
                    t_ms: 200 * i as u64,
                    end_ms: 200 * i as u64 + 150,
                    text: (*w).into(),
                    start,
                    end: start + w.len(),
                }
            })
            .collect();
        let vtt = webvtt(&text, &words, &[]);
        let cues = check(&vtt, &words);
        let lines: Vec<&String> = cues.iter().flat_map(|c| &c.lines).collect();
        assert!(lines.iter().any(|l| l.as_str() == long), "{vtt}");
    }

    #[test]
    fn offsets_are_utf16_units_with_emoji_and_cjk() {
        // 😀 is two UTF-16 units; the CJK characters one each; no spaces between CJK words.
        let text = "😀 Café «naïve» 東京タワーへ行きます。 Then 🎉 done.";
        let units = |s: &str| text[..text.find(s).unwrap()].encode_utf16().count();
        let word = |s: &str, t: u64| WordMark {
            aligned: None,
            confidence: None,
            t_ms: t,
            end_ms: t + 200,
            text: s.into(),
            start: units(s),
            end: units(s) + s.encode_utf16().count(),
        };
        let words = vec![
            word("Café", 0),
            word("naïve", 300),
            word("東京", 600),
            word("タワー", 900),
            word("へ", 1200),
            word("行きます", 1500),
            word("Then", 2000),
            word("done", 2400),
        ];
        let split = units("Then");
        let sentences = vec![
            SentenceMark {
                t_ms: 0,
                end_ms: 1700,
                start: 0,
                end: split,
            },
            SentenceMark {
                t_ms: 2000,
                end_ms: 2600,
                start: split,
                end: text.encode_utf16().count(),
            },
        ];
        let vtt = webvtt(text, &words, &sentences);
        let cues = check(&vtt, &words);
        assert_eq!(cues.len(), 2, "{vtt}");
        assert_eq!(
            cues[0].lines,
            ["Café «naïve» 東京タワーへ行きます。"],
            "{vtt}"
        );
        assert_eq!(cues[1].lines, ["Then 🎉 done."], "{vtt}");
        assert!(vtt.contains("«<00:00:00.300>") || vtt.contains("<00:00:00.300>«"));
        assert!(
            vtt.contains("東京<00:00:00.900>タワー<00:00:01.200>へ"),
            "{vtt}"
        );
    }

    #[test]
    fn times_never_overlap_and_tags_stay_inside_their_cue() {
        // Marks as a synthesiser may give them: words sharing a time, a word ending after
        // the next starts, a zero-length word.
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen \
                    fourteen fifteen sixteen seventeen eighteen nineteen twenty";
        let (mut words, _) = marks(text);
        for (i, w) in words.iter_mut().enumerate() {
            w.t_ms = (i as u64 / 3) * 100;
            w.end_ms = w.t_ms + if i % 4 == 0 { 0 } else { 250 };
        }
        let vtt = webvtt(text, &words, &[]);
        let cues = check_rules(&vtt);
        assert!(cues.len() >= 2, "{vtt}");
    }

    #[test]
    fn the_longest_texts_are_laid_out_quickly() {
        // 5000 characters of one-character words in one sentence, and of CJK words with no
        // space between them.
        for text in ["a ".repeat(2500), "東京".repeat(2500)] {
            let words: Vec<WordMark> = text
                .char_indices()
                .filter(|(_, c)| !c.is_whitespace())
                .enumerate()
                .map(|(i, (at, c))| {
                    let start = text[..at].encode_utf16().count();
                    WordMark {
                        aligned: None,
                        confidence: None,
                        t_ms: 10 * i as u64,
                        end_ms: 10 * i as u64 + 8,
                        text: c.to_string(),
                        start,
                        end: start + 1,
                    }
                })
                .collect();
            let started = std::time::Instant::now();
            let vtt = webvtt(&text, &words, &[]);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            let cues = check(&vtt, &words);
            assert!(
                cues.iter()
                    .all(|c| c.lines.len() == 2 || c.lines.len() == 1)
            );
        }
    }

    #[test]
    fn timestamps_have_hours_minutes_seconds_and_milliseconds() {
        assert_eq!(timestamp(0), "00:00:00.000");
        assert_eq!(timestamp(3_723_004), "01:02:03.004");
        assert_eq!(timestamp(100 * 3_600_000), "100:00:00.000");
    }

    #[test]
    fn whitespace_and_line_ends_inside_a_cue_are_collapsed() {
        let text = "First\r\nline,\n\n   second\tline";
        let (words, sentences) = marks(text);
        let vtt = webvtt(text, &words, &sentences);
        let cues = check(&vtt, &words);
        assert_eq!(cues[0].lines, ["First line, second line"]);
    }

    #[test]
    fn free_standing_punctuation_goes_with_the_word_before() {
        let text = "Wait - \"really\" ... yes (maybe) !";
        let (words, sentences) = marks(text);
        let vtt = webvtt(text, &words, &sentences);
        let cues = check(&vtt, &words);
        let shown: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
        assert_eq!(shown, ["Wait - \"really\" ...", "yes (maybe) !"], "{vtt}");
        // Words without marks are not shown as if spoken.
        let text = "Hello, unmarked words — there";
        let (mut words, _) = marks(text);
        words.retain(|w| w.text == "Hello" || w.text == "there");
        let vtt = webvtt(text, &words, &[]);
        let cues = check(&vtt, &words);
        assert_eq!(cues[0].lines, ["Hello, there"], "{vtt}");
    }
}
