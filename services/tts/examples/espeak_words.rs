//! Checks, on the golden texts (or stdin lines, JSON strings), the plan in
//! `docs/research/espeak-word-positions.md` for word marks: an `espeak_Synth` pass yields
//! WORD events whose count per clause equals the number of space-separated phoneme words of
//! that clause's `espeak_TextToPhonemesWithTerminator` call, and the pass leaves the phonemes
//! (the ids piper-phonemize gives) unchanged. A development aid, not part of the product:
//!
//! ```text
//! cargo run -p tts --example espeak_words            # the golden texts
//! echo '"Dr. Smith paid $1,234.56."' | cargo run -p tts --example espeak_words -- -
//! ```
use std::ffi::{CStr, CString, c_char, c_int, c_short, c_uint, c_void};
use std::io::BufRead;
use std::sync::Mutex;

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
type SetVoiceFn = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemesFn =
    unsafe extern "C" fn(*mut *const c_void, c_int, c_int, *mut c_int) -> *const c_char;

/// (kind, 1-based character position) of the WORD and END events, in order.
static EVENTS: Mutex<Vec<(c_int, c_int)>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(_wav: *mut c_short, _n: c_int, events: *mut EspeakEvent) -> c_int {
    let mut out = EVENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut event = events;
    // SAFETY: espeak passes a list terminated by an event of kind LIST_TERMINATED.
    unsafe {
        while !event.is_null() && (*event).kind != EVENT_LIST_TERMINATED {
            if matches!((*event).kind, EVENT_WORD | EVENT_END) {
                out.push(((*event).kind, (*event).text_position));
            }
            event = event.add(1);
        }
    }
    0
}

fn main() {
    let voice = "en-us";
    let paths = tts::RuntimePaths::from_env();
    let phonemizer =
        tts::espeak::Phonemizer::load(&paths.espeak_lib, &paths.espeak_data).expect("espeak-ng");
    // The same library (dlopen hands back the one already loaded): its global state is the
    // phonemizer's.
    // SAFETY: the signatures are speak_lib.h's.
    let lib = unsafe { libloading::Library::new(&paths.espeak_lib) }.expect("espeak-ng");
    let (set_callback, synth, set_voice, to_phonemes) = unsafe {
        (
            *lib.get::<SetSynthCallbackFn>(b"espeak_SetSynthCallback\0")
                .unwrap(),
            *lib.get::<SynthFn>(b"espeak_Synth\0").unwrap(),
            *lib.get::<SetVoiceFn>(b"espeak_SetVoiceByName\0").unwrap(),
            *lib.get::<TextToPhonemesFn>(b"espeak_TextToPhonemesWithTerminator\0")
                .unwrap(),
        )
    };
    // SAFETY: a plain function pointer that never unwinds.
    unsafe { set_callback(collect) };

    // (name, text, the golden phonemes per sentence if known)
    let texts: Vec<(String, String, Option<Vec<String>>)> =
        if std::env::args().nth(1).as_deref() == Some("-") {
            std::io::stdin()
                .lock()
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    let text = serde_json::from_str(&l.unwrap()).expect("a JSON string per line");
                    (format!("stdin {i}"), text, None)
                })
                .collect()
        } else {
            let golden: serde_json::Value = serde_json::from_str(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/phonemes_golden.json"
            )))
            .unwrap();
            golden["texts"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, t)| {
                    let sentences = t["sentences"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["phonemes"].as_str().unwrap().to_owned())
                        .collect();
                    (
                        name.clone(),
                        t["text"].as_str().unwrap().to_owned(),
                        Some(sentences),
                    )
                })
                .collect()
        };

    let (mut clauses_total, mut clauses_matching) = (0, 0);
    for (name, text, golden) in texts {
        let c_text = CString::new(text.split('\0').next().unwrap()).unwrap();
        let voice_c = CString::new(voice).unwrap();
        EVENTS.lock().unwrap().clear();
        // SAFETY: espeak is initialised (synchronous output); the text outlives the call.
        let status = unsafe {
            set_voice(voice_c.as_ptr());
            synth(
                c_text.as_ptr() as *const c_void,
                c_text.as_bytes().len() + 1,
                0,
                POS_CHARACTER,
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, 0, "espeak_Synth failed on {name}");
        let events = std::mem::take(&mut *EVENTS.lock().unwrap());
        if std::env::var_os("ESPEAK_EVENTS").is_some() {
            println!("{events:?}");
        }
        // Words per clause, clauses ended by END events.
        let mut per_clause: Vec<Vec<c_int>> = vec![Vec::new()];
        for (kind, position) in &events {
            match *kind {
                EVENT_WORD => per_clause.last_mut().unwrap().push(*position),
                _ => per_clause.push(Vec::new()),
            }
        }

        // The TextToPhonemes loop, as the phonemizer runs it.
        let mut cursor = c_text.as_ptr() as *const c_void;
        let mut clause_words = Vec::new();
        while !cursor.is_null() {
            let mut terminator: c_int = 0;
            // SAFETY: as in tts::espeak.
            let clause = unsafe {
                let out = to_phonemes(&mut cursor, 0, 0x02, &mut terminator);
                if out.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(out).to_string_lossy().into_owned()
                }
            };
            clause_words.push(clause.split(' ').filter(|w| !w.is_empty()).count());
        }
        let mismatches: Vec<String> = clause_words
            .iter()
            .enumerate()
            .filter(|&(k, &n)| per_clause.get(k).map_or(0, Vec::len) != n)
            .map(|(k, n)| {
                format!(
                    "clause {k}: {n} phoneme words, {} WORD events",
                    per_clause.get(k).map_or(0, Vec::len)
                )
            })
            .collect();
        clauses_total += clause_words.len();
        clauses_matching += clause_words.len() - mismatches.len();

        // The phonemes after a Synth pass: still the golden ones?
        let after: Vec<String> = phonemizer
            .phonemize(&text, voice)
            .unwrap()
            .into_iter()
            .map(String::from_iter)
            .collect();
        let same = golden.map(|g| g == after);
        println!(
            "{name}: {} clauses, {} WORD events, {} mismatched clauses, phonemes after Synth {}",
            clause_words.len(),
            events.iter().filter(|(k, _)| *k == EVENT_WORD).count(),
            mismatches.len(),
            match same {
                Some(true) => "= golden",
                Some(false) => "DIFFER from golden",
                None => "(no golden)",
            }
        );
        for m in mismatches.iter().take(5) {
            println!("    {m}");
        }
    }
    println!("clauses whose word counts agree: {clauses_matching} of {clauses_total}");
}
