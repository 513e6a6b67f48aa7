//! The phoneme ids match piper-phonemize 1.1.0 exactly, on golden sequences generated once
//! with the Python package (`scripts/golden_phonemes.py`) for ordinary prose, a torture
//! text (numbers, abbreviations, quotes, ellipsis, URLs, emoji, non-Latin letters) and more;
//! through the same espeak calls that locate the words, whose invariants are checked too.

mod common;

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Golden {
    espeak_voice: String,
    texts: BTreeMap<String, GoldenText>,
}

#[derive(Deserialize)]
struct GoldenText {
    text: String,
    sentences: Vec<GoldenSentence>,
}

#[derive(Deserialize)]
struct GoldenSentence {
    phonemes: String,
    ids: Vec<i64>,
}

#[test]
fn ids_identical_to_piper_phonemize() {
    let golden: Golden =
        serde_json::from_str(include_str!("data/phonemes_golden.json")).expect("golden file");
    let voice = common::joe();
    assert_eq!(golden.espeak_voice, voice.config.espeak.voice);
    assert!(golden.texts.contains_key("prose") && golden.texts.contains_key("torture"));
    let phonemizer = tts::Phonemizer::get().expect("loaded by the voice store");
    let map = &voice.config.phoneme_id_map;
    let mut total_ids = 0;
    for (name, expected) in &golden.texts {
        let sentences = phonemizer
            .phonemize(&expected.text, &voice.config.espeak.voice)
            .unwrap();
        let got: Vec<String> = sentences.iter().map(|s| s.iter().collect()).collect();
        let want: Vec<&str> = expected
            .sentences
            .iter()
            .map(|s| s.phonemes.as_str())
            .collect();
        assert_eq!(got, want, "phonemes of {name:?}");
        for (sentence, golden_sentence) in sentences.iter().zip(&expected.sentences) {
            let ids = tts::phoneme_ids(map, sentence);
            assert_eq!(ids, golden_sentence.ids, "ids of {name:?}");
            total_ids += ids.len();
        }
        // The word events of espeak's synthesis pass line up with the phonemes of every
        // clause, and every spoken phoneme belongs to a written word of the text.
        let marked = phonemizer
            .phonemize_marked(&expected.text, &voice.config.espeak.voice)
            .unwrap();
        assert_eq!(
            marked.unmatched_clauses, 0,
            "clauses without words in {name:?}"
        );
        for sentence in &marked.sentences {
            for (p, word) in sentence.phonemes.iter().zip(&sentence.word_of) {
                let separator = *p == ' ' || ".,;:!?".contains(*p);
                assert_eq!(word.is_none(), separator, "{p:?} in {name:?}");
            }
        }
        for word in &marked.words {
            let text = &expected.text[word.clone()];
            assert!(
                !text.trim().is_empty() && text.trim() == text,
                "{text:?} in {name:?}"
            );
        }
    }
    assert!(total_ids > 1500, "golden data covers only {total_ids} ids");
}
