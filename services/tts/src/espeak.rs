//! English text to IPA phonemes through espeak-ng, exactly as piper-phonemize 1.1.0 does it.
//!
//! Piper's voices were trained on piper-phonemize, which calls a patched espeak-ng 1.51
//! (`espeak_TextToPhonemesWithTerminator`) to learn how each clause ended and appends that
//! punctuation as a phoneme. We load that same library and its data, unpacked from the
//! piper-phonemize wheel by `scripts/setup_runtime.sh`, and follow piper-phonemize's
//! `phonemize_eSpeak` step by step, so the ids are identical by construction; the golden
//! tests (`tests/phonemes.rs`) check it against sequences produced by the Python package.
//!
//! espeak-ng keeps global state (current voice, buffers), so every call goes through one
//! process-wide lock.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use unicode_normalization::UnicodeNormalization;

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
    /// The espeak voice currently selected, to skip re-selecting it.
    voice: Option<String>,
    _library: libloading::Library,
}

static PHONEMIZER: OnceLock<Phonemizer> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The espeak-ng library at `library` and the three functions used from it.
fn open_library(
    library: &Path,
) -> Result<
    (
        libloading::Library,
        InitializeFn,
        SetVoiceFn,
        TextToPhonemesFn,
    ),
    PhonemizeError,
> {
    let load_error = |reason: String| PhonemizeError::Load {
        path: library.to_owned(),
        reason,
    };
    // SAFETY: loading espeak-ng runs no initialisers with preconditions of ours.
    let lib =
        unsafe { libloading::Library::new(library) }.map_err(|e| load_error(e.to_string()))?;
    // SAFETY: the signatures match espeak-ng's speak_lib.h and piper's patch.
    let (initialize, set_voice, text_to_phonemes) = unsafe {
        (
            *lib.get::<InitializeFn>(b"espeak_Initialize\0")
                .map_err(|e| load_error(e.to_string()))?,
            *lib.get::<SetVoiceFn>(b"espeak_SetVoiceByName\0")
                .map_err(|e| load_error(e.to_string()))?,
            *lib.get::<TextToPhonemesFn>(b"espeak_TextToPhonemesWithTerminator\0")
                .map_err(|e| {
                    load_error(format!("{e} (not the piper-phonemize build of espeak-ng)"))
                })?,
        )
    };
    Ok((lib, initialize, set_voice, text_to_phonemes))
}

impl Phonemizer {
    /// Loads espeak-ng from `library` with the `espeak-ng-data` directory `data` and
    /// initialises it. The first successful call wins; later calls return the same instance.
    pub fn load(library: &Path, data: &Path) -> Result<&'static Phonemizer, PhonemizeError> {
        let _guard = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = PHONEMIZER.get() {
            return Ok(loaded);
        }
        let (lib, initialize, set_voice, text_to_phonemes) = open_library(library)?;
        // espeak wants the directory that contains `espeak-ng-data`.
        let parent = data.parent().unwrap_or(Path::new("."));
        let parent_c = CString::new(parent.as_os_str().as_encoded_bytes())
            .map_err(|_| PhonemizeError::Data(data.to_owned()))?;
        if !data.join("phontab").is_file() {
            return Err(PhonemizeError::Data(data.to_owned()));
        }
        // SAFETY: called once, under the loading lock, with a valid C string.
        let rate = unsafe { initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, parent_c.as_ptr(), 0) };
        if rate <= 0 {
            return Err(PhonemizeError::Data(data.to_owned()));
        }
        Ok(PHONEMIZER.get_or_init(|| Phonemizer {
            state: Mutex::new(State {
                text_to_phonemes,
                set_voice,
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

        let mut cursor = c_text.as_ptr() as *const c_void;
        let mut sentences = Vec::new();
        let mut sentence: Option<Vec<char>> = None;
        while !cursor.is_null() {
            let mut terminator: c_int = 0;
            // SAFETY: `cursor` points into `c_text`, which outlives the loop; espeak advances
            // it within the string or sets it to NULL at the end, and returns a
            // NUL-terminated buffer that stays valid until the next call (copied at once).
            let clause = unsafe {
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
            let phonemes = sentence.get_or_insert_with(Vec::new);
            phonemes.extend(piper_clause_phonemes(&clause, espeak_voice));
            phonemes.extend_from_slice(clause_punctuation(terminator));
            if terminator & CLAUSE_TYPE_SENTENCE == CLAUSE_TYPE_SENTENCE {
                sentences.extend(sentence.take());
            }
        }
        sentences.extend(sentence);
        Ok(sentences)
    }
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
