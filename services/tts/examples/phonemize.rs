//! Prints the phonemes of each stdin line (a JSON string) as JSON, one line per input:
//! a development aid for comparing against piper-phonemize on many texts at once
//! (see `scripts/phonemize_diff.py`).
use std::io::BufRead;

fn main() {
    let voice = std::env::args().nth(1).unwrap_or_else(|| "en-us".into());
    let paths = tts::RuntimePaths::from_env();
    let phonemizer =
        tts::Phonemizer::load(&paths.espeak_lib, &paths.espeak_data).expect("espeak-ng");
    for line in std::io::stdin().lock().lines() {
        let text: String = serde_json::from_str(&line.unwrap()).expect("a JSON string per line");
        let sentences = phonemizer.phonemize(&text, &voice).expect("phonemize");
        let sentences: Vec<String> = sentences.into_iter().map(String::from_iter).collect();
        println!("{}", serde_json::to_string(&sentences).unwrap());
    }
}
