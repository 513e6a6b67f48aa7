//! English text to IPA phonemes through espeak-ng, exactly as piper-phonemize 1.1.0 does it.
//!
//! Piper's voices were trained on piper-phonemize, which calls a patched espeak-ng 1.51
//! (`espeak_TextToPhonemesWithTerminator`) to learn how each clause ended and appends that
//! punctuation as a phoneme. We load that same library and its data, unpacked from the
//! piper-phonemize wheel by `scripts/setup_runtime.sh`, and follow piper-phonemize's
//! `phonemize_eSpeak` step by step, so the ids are identical by construction; the golden
//! tests (`tests/phonemes.rs`) check it against sequences produced by the Python package.
//!
//! Where each spoken word is in the text comes from the same library: one `espeak_Synth` pass
//! over the text (its audio is discarded) reports a WORD event at the text position of every
//! word it speaks, clause by clause, and the i-th word event of a clause is the i-th
//! space-separated word of that clause's phonemes (`docs/research/espeak-word-positions.md`).
//! The pass changes no phoneme: the golden tests run through it.
//!
//! espeak-ng keeps global state (current voice, buffers), so every call goes through one
//! process-wide lock.

use std::ffi::{CStr, CString, c_char, c_int, c_short, c_uint, c_void};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use unicode_normalization::UnicodeNormalization;

use crate::words::{ClauseEvents, WrittenWords, written_words};

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const ESPEAK_CHARS_AUTO: c_int = 0;
const PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;

// Clause terminators as espeak-ng's ReadClause reports them (translate.h).
const CLAUSE_TYPE_SENTENCE: c_int = 0x0008_0000;
const CLAUSE_PERIOD: c_int = 40 | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COMMA: c_int = 20 | 0x1000 | 0x0004_0000;
const CLAUSE_QUESTION: c_int = 40 | 0x2000 | CLAUSE_TYPE_SENTENCE;
const CLAUSE_EXCLAMATION: c_int = 45 | 0x3000 | CLAUSE_TYPE_SENTENCE;
const CLAUSE_COLON: c_int = 30 | 0x0004_0000;
const CLAUSE_SEMICOLON: c_int = 30 | 0x1000 | 0x0004_0000;

type InitializeFn = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceFn = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemesFn =
    unsafe extern "C" fn(*mut *const c_void, c_int, c_int, *mut c_int) -> *const c_char;
type SynthCallback = unsafe extern "C" fn(*mut c_short, c_int, *mut EspeakEvent) -> c_int;
type SetSynthCallbackFn = unsafe extern "C" fn(SynthCallback);
type SynthFn = unsafe extern "C" fn(
    *const c_void,
    usize,
    c_uint,
    c_int,
    c_uint,
    c_uint,
    *mut c_uint,
    *mut c_void,
) -> c_int;

/// `espeak_EVENT` (speak_lib.h).
#[repr(C)]
struct EspeakEvent {
    kind: c_int,
    unique_identifier: c_uint,
    text_position: c_int,
    length: c_int,
    audio_position: c_int,
    sample: c_int,
    user_data: *mut c_void,
    id: [u8; 8],
}

const EVENT_LIST_TERMINATED: c_int = 0;
const EVENT_WORD: c_int = 1;
const EVENT_END: c_int = 5;
const POS_CHARACTER: c_int = 1;
/// Audio block length for `espeak_Initialize`, in ms: it sizes the event list of a block
/// (200 per second + 20); the default 60 ms holds 32 and drops the rest without a word.
const BUFFER_MS: c_int = 500;

/// A word (`true`) or clause end event and its text position (1-based chars).
type Event = (bool, c_int);

/// Collects the word and clause-end events of an `espeak_Synth` pass into the `Vec<Event>`
/// passed as user data. Always returns 0: a non-zero return would abort the pass and leave
/// espeak's reader mid-text for the next caller.
unsafe extern "C" fn collect_events(
    _wav: *mut c_short,
    _samples: c_int,
    events: *mut EspeakEvent,
) -> c_int {
    let mut event = events;
    // SAFETY: espeak passes a list ended by an event of kind LIST_TERMINATED, whose
    // user_data is what we passed to espeak_Synth: a `Vec<Event>` borrowed for the call.
    unsafe {
        while !event.is_null() && (*event).kind != EVENT_LIST_TERMINATED {
            let e = &*event;
            if matches!(e.kind, EVENT_WORD | EVENT_END) && !e.user_data.is_null() {
                let out = &mut *(e.user_data as *mut Vec<Event>);
                out.push((e.kind == EVENT_WORD, e.text_position));
            }
            event = event.add(1);
        }
    }
    0
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhonemizeError {
    #[error(
        "cannot load espeak-ng from {path}: {reason} (run scripts/setup_runtime.sh, or set ESPEAK_NG_LIB)"
    )]
    Load { path: PathBuf, reason: String },
    #[error(
        "espeak-ng could not read its data in {0} (run scripts/setup_runtime.sh, or set ESPEAK_NG_DATA)"
    )]
    Data(PathBuf),
    #[error("espeak-ng has no voice {0:?}")]
    UnknownVoice(String),
}

/// espeak-ng, loaded once per process.
pub struct Phonemizer {
    state: Mutex<State>,
}

struct State {
    text_to_phonemes: TextToPhonemesFn,
    set_voice: SetVoiceFn,
    synth: SynthFn,
    /// The espeak voice currently selected, to skip re-selecting it.
    voice: Option<String>,
    _library: libloading::Library,
}

static PHONEMIZER: OnceLock<Phonemizer> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The espeak-ng library at `library` and the functions used from it.
fn open_library(library: &Path) -> Result<(libloading::Library, Functions), PhonemizeError> {
    let load_error = |reason: String| PhonemizeError::Load {
        path: library.to_owned(),
        reason,
    };
    // SAFETY: loading espeak-ng runs no initialisers with preconditions of ours.
    let lib =
        unsafe { libloading::Library::new(library) }.map_err(|e| load_error(e.to_string()))?;
    // SAFETY: the signatures match espeak-ng's speak_lib.h and piper's patch.
    let functions = unsafe {
        Functions {
            initialize: *lib
                .get::<InitializeFn>(b"espeak_Initialize\0")
                .map_err(|e| load_error(e.to_string()))?,
            set_voice: *lib
                .get::<SetVoiceFn>(b"espeak_SetVoiceByName\0")
                .map_err(|e| load_error(e.to_string()))?,
            text_to_phonemes: *lib
                .get::<TextToPhonemesFn>(b"espeak_TextToPhonemesWithTerminator\0")
                .map_err(|e| {
                    load_error(format!("{e} (not the piper-phonemize build of espeak-ng)"))
                })?,
            synth: *lib
                .get::<SynthFn>(b"espeak_Synth\0")
                .map_err(|e| load_error(e.to_string()))?,
            set_synth_callback: *lib
                .get::<SetSynthCallbackFn>(b"espeak_SetSynthCallback\0")
                .map_err(|e| load_error(e.to_string()))?,
        }
    };
    Ok((lib, functions))
}

/// The functions used from espeak-ng.
struct Functions {
    initialize: InitializeFn,
    set_voice: SetVoiceFn,
    text_to_phonemes: TextToPhonemesFn,
    synth: SynthFn,
    set_synth_callback: SetSynthCallbackFn,
}

impl Phonemizer {
    /// Loads espeak-ng from `library` with the `espeak-ng-data` directory `data` and
    /// initialises it. The first successful call wins; later calls return the same instance.
    pub fn load(library: &Path, data: &Path) -> Result<&'static Phonemizer, PhonemizeError> {
        let _guard = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = PHONEMIZER.get() {
            return Ok(loaded);
        }
        let (lib, f) = open_library(library)?;
        // espeak wants the directory that contains `espeak-ng-data`.
        let parent = data.parent().unwrap_or(Path::new("."));
        let parent_c = CString::new(parent.as_os_str().as_encoded_bytes())
            .map_err(|_| PhonemizeError::Data(data.to_owned()))?;
        if !data.join("phontab").is_file() {
            return Err(PhonemizeError::Data(data.to_owned()));
        }
        // SAFETY: called once, under the loading lock, with a valid C string.
        let rate =
            unsafe { (f.initialize)(AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, parent_c.as_ptr(), 0) };
        if rate <= 0 {
            return Err(PhonemizeError::Data(data.to_owned()));
        }
        // SAFETY: a function that never unwinds, set once before any synthesis.
        unsafe { (f.set_synth_callback)(collect_events) };
        Ok(PHONEMIZER.get_or_init(|| Phonemizer {
            state: Mutex::new(State {
                text_to_phonemes: f.text_to_phonemes,
                set_voice: f.set_voice,
                synth: f.synth,
                voice: None,
                _library: lib,
            }),
        }))
    }

    /// The instance loaded earlier by [`Phonemizer::load`], if any.
    pub fn get() -> Option<&'static Phonemizer> {
        PHONEMIZER.get()
    }

    /// Text to phonemes grouped by sentence, each phoneme one Unicode code point (NFD),
    /// exactly as `piper_phonemize.phonemize_espeak(text, voice)` returns them.
    pub fn phonemize(
        &self,
        text: &str,
        espeak_voice: &str,
    ) -> Result<Vec<Vec<char>>, PhonemizeError> {
        Ok(self
            .phonemize_marked(text, espeak_voice)?
            .sentences
            .into_iter()
            .map(|s| s.phonemes)
            .collect())
    }

    /// [`Phonemizer::phonemize`], each phoneme tagged with the written word of `text` it
    /// speaks, and each sentence with its stretch of `text`.
    pub fn phonemize_marked(
        &self,
        text: &str,
        espeak_voice: &str,
    ) -> Result<Phonemized, PhonemizeError> {
        // piper-phonemize hands espeak a C string: it ends at the first NUL.
        let text = text.split('\0').next().unwrap_or_default();
        let c_text = CString::new(text).expect("NUL removed above");

        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.voice.as_deref() != Some(espeak_voice) {
            let name = CString::new(espeak_voice)
                .map_err(|_| PhonemizeError::UnknownVoice(espeak_voice.into()))?;
            // SAFETY: espeak is initialised and we hold the lock on its global state.
            if unsafe { (state.set_voice)(name.as_ptr()) } != EE_OK {
                state.voice = None;
                return Err(PhonemizeError::UnknownVoice(espeak_voice.into()));
            }
            state.voice = Some(espeak_voice.to_owned());
        }

        // The word events, clause by clause (the synthesis pass, before the phonemes: it
        // resets espeak's reader to the defaults the phonemes are made with).
        let mut events: Vec<Event> = Vec::new();
        // SAFETY: espeak is initialised with synchronous output, so the callback runs inside
        // this call, while `events` and `c_text` live; flags 0 (plain UTF-8 text) leave
        // espeak's sticky SSML and phoneme-input options off, as the phonemes need them.
        let status = unsafe {
            (state.synth)(
                c_text.as_ptr() as *const c_void,
                c_text.as_bytes().len() + 1,
                0,
                POS_CHARACTER,
                0,
                0,
                std::ptr::null_mut(),
                &mut events as *mut Vec<Event> as *mut c_void,
            )
        };
        if status != EE_OK {
            tracing::warn!(
                status,
                "espeak_Synth failed: no word positions for this text"
            );
            events.clear();
        }
        let mut synth_clauses: Vec<(Vec<usize>, Option<usize>)> = vec![(Vec::new(), None)];
        for (word, position) in events {
            let position = usize::try_from(position).unwrap_or(0);
            if word {
                synth_clauses
                    .last_mut()
                    .expect("never empty")
                    .0
                    .push(position.saturating_sub(1));
            } else {
                synth_clauses.last_mut().expect("never empty").1 = Some(position);
                synth_clauses.push((Vec::new(), None));
            }
        }

        // The phonemes, clause by clause, exactly as piper-phonemize makes them.
        let mut clauses = Vec::new();
        let mut cursor = c_text.as_ptr() as *const c_void;
        let mut start = 0;
        while !cursor.is_null() {
            let mut terminator: c_int = 0;
            // SAFETY: `cursor` points into `c_text`, which outlives the loop; espeak advances
            // it within the string or sets it to NULL at the end, and returns a
            // NUL-terminated buffer that stays valid until the next call (copied at once).
            let ipa = unsafe {
                let out = (state.text_to_phonemes)(
                    &mut cursor,
                    ESPEAK_CHARS_AUTO,
                    PHONEMES_IPA,
                    &mut terminator,
                );
                if out.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(out).to_string_lossy().into_owned()
                }
            };
            // espeak reads one character ahead: the pointer is one character past the start
            // of the next clause.
            let end = if cursor.is_null() {
                text.len()
            } else {
                let consumed = (cursor as usize - c_text.as_ptr() as usize).min(text.len());
                let consumed = floor_char_boundary(text, consumed);
                let before = text[..consumed]
                    .chars()
                    .next_back()
                    .map_or(0, char::len_utf8);
                (consumed - before).max(start)
            };
            clauses.push(Clause {
                ipa,
                terminator,
                span: start..end,
            });
            start = end;
        }
        drop(state);

        Ok(assemble(text, espeak_voice, clauses, &synth_clauses))
    }
}

/// One clause of the phonemizer: its phonemes as espeak wrote them, how it ended and its
/// stretch of the text (bytes).
struct Clause {
    ipa: String,
    terminator: c_int,
    span: Range<usize>,
}

/// A text's phonemes by sentence, tagged with its written words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Phonemized {
    pub sentences: Vec<PhonemizedSentence>,
    /// The written words of the text (byte ranges), in order.
    pub words: Vec<Range<usize>>,
    /// Clauses whose word events did not line up with their phonemes (each is one word).
    pub unmatched_clauses: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhonemizedSentence {
    /// As `piper_phonemize.phonemize_espeak` returns them.
    pub phonemes: Vec<char>,
    /// For each phoneme, the index in [`Phonemized::words`] of the written word it speaks
    /// (`None` for the spaces and punctuation between words).
    pub word_of: Vec<Option<usize>>,
    /// The sentence's stretch of the text (bytes), without surrounding whitespace.
    pub text: Range<usize>,
}

/// Sentences from clauses, as piper-phonemize groups them, each phoneme tagged with its
/// written word where espeak's word events of the clause line up with its phoneme words.
fn assemble(
    text: &str,
    espeak_voice: &str,
    clauses: Vec<Clause>,
    synth_clauses: &[(Vec<usize>, Option<usize>)],
) -> Phonemized {
    let char_at = |byte: usize| text[..byte].chars().count();
    // Events are usable when the synthesis pass read the same clauses: per clause the same
    // end and as many words as the phonemes have (else that clause gets one word).
    let same_clauses = synth_clauses.len() >= clauses.len()
        && clauses
            .iter()
            .zip(synth_clauses)
            .enumerate()
            .all(|(k, (c, s))| {
                k + 1 == clauses.len() || s.1.is_none_or(|end| end == char_at(c.span.end))
            });
    let mut unmatched_clauses = 0;
    let events: Vec<ClauseEvents> = clauses
        .iter()
        .enumerate()
        .map(|(k, clause)| {
            let pieces = clause.ipa.split(' ').filter(|p| !p.is_empty()).count();
            let events = synth_clauses
                .get(k)
                .filter(|_| same_clauses)
                .map(|s| s.0.clone())
                .filter(|e| e.len() == pieces)
                .unwrap_or_else(|| {
                    if pieces > 0 {
                        unmatched_clauses += 1;
                        tracing::debug!(clause = k, "word events do not match the phonemes");
                    }
                    // One word for the whole clause: every piece at its first character.
                    vec![char_at(first_word_char(text, clause.span.clone())); pieces]
                });
            ClauseEvents {
                span: clause.span.clone(),
                events,
            }
        })
        .collect();
    let WrittenWords { words, of_event } = written_words(text, &events);

    let mut out = Phonemized {
        words,
        unmatched_clauses,
        ..Default::default()
    };
    let mut sentence: Option<PhonemizedSentence> = None;
    for (clause, of_event) in clauses.iter().zip(&of_event) {
        let current = sentence.get_or_insert_with(|| PhonemizedSentence {
            text: clause.span.clone(),
            ..Default::default()
        });
        current.text.end = clause.span.end;
        let phonemes = piper_clause_phonemes(&clause.ipa, espeak_voice);
        // The same phonemes piece by piece, each tagged with its word.
        let mut tagged: Vec<Option<usize>> = Vec::with_capacity(phonemes.len());
        let mut piece_index = 0;
        for (i, piece) in clause.ipa.split(' ').enumerate() {
            if i > 0 {
                tagged.push(None);
            }
            let word = if piece.is_empty() {
                None
            } else {
                piece_index += 1;
                of_event.get(piece_index - 1).copied().flatten()
            };
            tagged.extend(
                piper_clause_phonemes(piece, espeak_voice)
                    .iter()
                    .map(|_| word),
            );
        }
        if tagged.len() != phonemes.len() {
            tagged = vec![None; phonemes.len()];
        }
        current.phonemes.extend(phonemes);
        current.word_of.extend(tagged);
        let punctuation = clause_punctuation(clause.terminator);
        current.phonemes.extend_from_slice(punctuation);
        current.word_of.extend(punctuation.iter().map(|_| None));
        if clause.terminator & CLAUSE_TYPE_SENTENCE == CLAUSE_TYPE_SENTENCE {
            out.sentences.extend(sentence.take());
        }
    }
    out.sentences.extend(sentence);
    for s in &mut out.sentences {
        s.text = trim_span(text, s.text.clone());
    }
    out
}

/// The byte offset of the first non-whitespace character of `span` (or its start).
fn first_word_char(text: &str, span: Range<usize>) -> usize {
    text[span.clone()]
        .char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map_or(span.start, |(i, _)| span.start + i)
}

/// `span` without the whitespace around it.
fn trim_span(text: &str, span: Range<usize>) -> Range<usize> {
    let s = &text[span.clone()];
    let start = span.start + (s.len() - s.trim_start().len());
    let end = span.end - (s.len() - s.trim_end().len());
    start..end.max(start)
}

/// The largest char boundary of `text` at or before `at`.
fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One clause's phonemes as piper-phonemize keeps them: decomposed (NFD), mapped by the
/// voice's default phoneme map (pt-br: `c` -> `k`), with espeak's language-switch flags
/// (`(en)`, `(fr)` ... around words from another language) removed.
fn piper_clause_phonemes(clause: &str, espeak_voice: &str) -> Vec<char> {
    let map_c_to_k = espeak_voice == "pt-br";
    let mut in_flag = false;
    clause
        .nfd()
        .map(|c| if map_c_to_k && c == 'c' { 'k' } else { c })
        .filter(|&c| {
            if in_flag {
                in_flag = c != ')';
                false
            } else if c == '(' {
                in_flag = true;
                false
            } else {
                true
            }
        })
        .collect()
}

/// The phonemes piper-phonemize appends for a clause terminator.
fn clause_punctuation(terminator: c_int) -> &'static [char] {
    match terminator & 0x000F_FFFF {
        CLAUSE_PERIOD => &['.'],
        CLAUSE_QUESTION => &['?'],
        CLAUSE_EXCLAMATION => &['!'],
        CLAUSE_COMMA => &[',', ' '],
        CLAUSE_COLON => &[':', ' '],
        CLAUSE_SEMICOLON => &[';', ' '],
        _ => &[],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The phonemizer from the runtime the tests were given (see `RuntimePaths::from_env`).
    pub(crate) fn phonemizer() -> &'static Phonemizer {
        let paths = crate::RuntimePaths::from_env();
        Phonemizer::load(&paths.espeak_lib, &paths.espeak_data).expect("espeak-ng runtime")
    }

    #[test]
    fn sentences_and_punctuation() {
        let s = phonemizer()
            .phonemize("Hello there. How are you? Fine, thanks", "en-us")
            .unwrap();
        let s: Vec<String> = s.into_iter().map(String::from_iter).collect();
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].ends_with('.'));
        assert!(s[1].ends_with('?'));
        assert!(s[2].contains(", "));
    }

    #[test]
    fn words_are_in_order_inside_the_text_whatever_the_text() {
        let long_clause = "word ".repeat(400);
        let texts = [
            "Hello there. How are you?",
            "\u{FFFD} replaced \u{FFFD}characters, then more words.",
            long_clause.as_str(),
            "...",
            "😀🎉",
            "— -- , ; : !",
            "a\n\nb\n\n\nc",
            "Well...I think so—maybe. U.S.A. e.g. ½ 3:45pm 1,234,567.89",
            "Tab\tseparated\u{a0}nbsp\u{2003}em-space words",
        ];
        let p = phonemizer();
        for text in texts {
            let marked = p.phonemize_marked(text, "en-us").unwrap();
            // The same phonemes as without the words.
            let plain = p.phonemize(text, "en-us").unwrap();
            let phonemes: Vec<Vec<char>> = marked
                .sentences
                .iter()
                .map(|s| s.phonemes.clone())
                .collect();
            assert_eq!(phonemes, plain, "{text:?}");
            let mut end = 0;
            for w in &marked.words {
                assert!(
                    w.start >= end && w.start < w.end && w.end <= text.len(),
                    "{text:?}"
                );
                assert!(text.is_char_boundary(w.start) && text.is_char_boundary(w.end));
                end = w.end;
            }
            for s in &marked.sentences {
                assert_eq!(s.word_of.len(), s.phonemes.len());
                assert!(s.word_of.iter().flatten().all(|&w| w < marked.words.len()));
                assert!(s.text.start <= s.text.end && s.text.end <= text.len());
            }
        }
        // 400 words without punctuation (espeak splits the clause by length): all of them.
        let marked = p.phonemize_marked(&long_clause, "en-us").unwrap();
        assert_eq!(marked.words.len(), 400);
        assert_eq!(marked.unmatched_clauses, 0);
    }

    #[test]
    fn unknown_espeak_voice() {
        let p = phonemizer();
        assert_eq!(
            p.phonemize("hi", "xx-nonexistent"),
            Err(PhonemizeError::UnknownVoice("xx-nonexistent".into()))
        );
        // The failure does not break the next caller.
        assert!(!p.phonemize("hi", "en-us").unwrap().is_empty());
    }

    #[test]
    fn missing_library_is_named() {
        // Opened apart from Phonemizer::load, which returns the instance another test may
        // already have loaded.
        let Err(e) = open_library(Path::new("/nonexistent/libespeak.so")) else {
            panic!("a library that does not exist opened");
        };
        assert!(e.to_string().contains("/nonexistent/libespeak.so"), "{e}");
    }

    #[test]
    fn language_flags_are_dropped_and_pt_br_maps_c_as_piper_does() {
        assert_eq!(
            piper_clause_phonemes("das ɪst (en)kəmpjˈuːtɚ(de) ɡuːt", "de"),
            "das ɪst kəmpjˈuːtɚ ɡuːt".chars().collect::<Vec<_>>()
        );
        assert_eq!(
            piper_clause_phonemes("casa", "pt-br"),
            "kasa".chars().collect::<Vec<_>>()
        );
        assert_eq!(
            piper_clause_phonemes("casa", "pt"),
            "casa".chars().collect::<Vec<_>>()
        );
        // From espeak itself: the French voice flags English words ("(en)wiːkˈɛnd(fr)").
        let phonemes: String = phonemizer()
            .phonemize("Le weekend, j'aime le football.", "fr")
            .unwrap()
            .concat()
            .into_iter()
            .collect();
        assert!(
            !phonemes.contains('(') && !phonemes.contains(')'),
            "{phonemes}"
        );
        assert!(
            phonemes.contains("wiːkˈɛnd"),
            "the flagged word is kept: {phonemes}"
        );
    }
}
