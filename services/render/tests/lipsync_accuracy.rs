//! Lip-sync accuracy against the audio itself: every text of `tests/lipsync/corpus.json` is
//! rendered with the real joe voice, and its cues (all three viseme sets, from the one
//! synthesis run) are scored against a forced alignment of its own audio by an independent
//! aligner (pocketsphinx, `scripts/lipsync_score.py`):
//!
//! - vowels of 50 ms or more show an open mouth at their midpoint,
//! - p, b and m show closed lips within 40 ms of their aligned span,
//! - pauses of 200 ms or more show the mouth at rest at their midpoint.
//!
//! Bars, for every set: at least 0.95 of each over the corpus and 0.90 on every text. The
//! table is printed (`make bench` shows it too), with the median offset of cue onsets from
//! aligned phone onsets, the cue rate and the median hold.
//!
//! The word marks of the same renders are scored against the aligner's word boundaries:
//! on every text, the median |difference| of onsets and of ends at most 50 ms and the 90th
//! percentile at most 100 ms, with at least 0.9 of the marks matched to aligned words.

use std::path::PathBuf;
use std::process::Command;

use avatar_domain::{RenderRequest, VisemeSet};
use avatar_render::{Engine, EngineConfig};
use serde_json::{Value, json};
use tts::{AudioFormat, RuntimePaths};

const OVERALL_BAR: f64 = 0.95;
const PER_TEXT_BAR: f64 = 0.90;
const WORD_MEDIAN_MS: f64 = 50.0;
const WORD_P90_MS: f64 = 100.0;
const WORDS_MATCHED: f64 = 0.9;

use avatar_test_support::{VOICE, test_tools_bin, voices_dir, workspace};

#[test]
fn cues_agree_with_a_forced_alignment_of_the_audio() {
    // LIPSYNC_CORPUS=file scores other texts the same way (same format).
    let corpus_file = std::env::var_os("LIPSYNC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("tests/lipsync/corpus.json"));
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(&corpus_file).unwrap()).unwrap();
    let engine = Engine::new(EngineConfig {
        voices_dir: voices_dir(),
        runtime: RuntimePaths::from_env(),
        threads: 2,
        audio_format: AudioFormat::Ogg,
        bitrate: 24_000,
        default_voice: Some(VOICE.into()),
    })
    .expect("the engine");
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for (i, text) in corpus["texts"].as_array().unwrap().iter().enumerate() {
        let request = RenderRequest {
            text: text["text"].as_str().unwrap().into(),
            speed: text["speed"].as_f64(),
            ..Default::default()
        };
        let rendered = engine
            .render(&request, |id, _| format!("{id}.ogg"))
            .expect("a render");
        let audio = dir.path().join(format!("{i}.ogg"));
        std::fs::write(&audio, &rendered.audio.bytes).unwrap();
        let cues: serde_json::Map<String, Value> = VisemeSet::ALL
            .iter()
            .map(|&set| {
                let cues = lipsync::mouth_cues(&rendered.timeline, set);
                (set.as_str().to_owned(), serde_json::to_value(cues).unwrap())
            })
            .collect();
        items.push(json!({
            "name": text["name"],
            "audio": audio,
            "align_text": text["align_text"],
            "cues": cues,
            "words": rendered.result.words,
        }));
    }
    let job = dir.path().join("job.json");
    std::fs::write(&job, json!({ "items": items }).to_string()).unwrap();
    let out = Command::new(test_tools_bin().join("python"))
        .arg(workspace().join("scripts/lipsync_score.py"))
        .arg(&job)
        .output()
        .expect("scripts/lipsync_score.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The misses themselves, with LIPSYNC_DEBUG=1.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let scores: Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut failures = Vec::new();
    println!(
        "\nLip-sync against a pocketsphinx forced alignment (joe voice; open: vowels >= 50 ms, \
         closed: p b m within 40 ms, rest: pauses >= 200 ms)"
    );
    for set in VisemeSet::ALL {
        let set = set.as_str();
        println!(
            "\n{set:8} {:28} {:>11} {:>11} {:>9} {:>9} {:>8} {:>8}",
            "text", "open", "closed", "rest", "onset ms", "cues/s", "hold ms"
        );
        let mut totals = [(0u64, 0u64); 3];
        for item in scores["items"].as_array().unwrap() {
            let s = &item["sets"][set];
            let mut cells = Vec::new();
            for (k, check) in ["open", "closed", "rest"].iter().enumerate() {
                let (ok, n) = (s[check][0].as_u64().unwrap(), s[check][1].as_u64().unwrap());
                totals[k].0 += ok;
                totals[k].1 += n;
                if n > 0 && (ok as f64) < PER_TEXT_BAR * n as f64 {
                    failures.push(format!("{set} {}: {check} {ok}/{n}", item["name"]));
                }
                cells.push(if n == 0 {
                    "-".to_owned()
                } else {
                    format!("{ok}/{n} {:.2}", ok as f64 / n as f64)
                });
            }
            println!(
                "{:8} {:28} {:>11} {:>11} {:>9} {:>9} {:>8} {:>8}",
                "",
                item["name"].as_str().unwrap(),
                cells[0],
                cells[1],
                cells[2],
                s["onset_median_ms"]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:+.0}")),
                s["cues_per_s"]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.1}")),
                s["median_hold_ms"]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
        for (k, check) in ["open", "closed", "rest"].iter().enumerate() {
            let (ok, n) = totals[k];
            let rate = ok as f64 / n.max(1) as f64;
            println!("{:8} {:28} {check}: {ok}/{n} = {rate:.3}", "", "corpus");
            if n == 0 || rate < OVERALL_BAR {
                failures.push(format!("{set} corpus: {check} {ok}/{n} = {rate:.3}"));
            }
        }
    }
    println!(
        "\nWord marks against the aligner's word boundaries (|difference|, ms; bias: median \
         signed onset difference)\n{:28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "text", "matched", "onset50", "onset90", "end50", "end90", "bias"
    );
    for item in scores["items"].as_array().unwrap() {
        let w = &item["words"];
        let name = item["name"].as_str().unwrap();
        let (matched, marks) = (
            w["matched"][0].as_u64().unwrap(),
            w["matched"][1].as_u64().unwrap(),
        );
        let ms = |key: &str| w[key].as_f64();
        let cell = |key: &str| ms(key).map_or("-".into(), |v| format!("{v:.0}"));
        println!(
            "{name:28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            format!("{matched}/{marks}"),
            cell("onset_median_ms"),
            cell("onset_p90_ms"),
            cell("end_median_ms"),
            cell("end_p90_ms"),
            ms("onset_bias_ms").map_or("-".into(), |v| format!("{v:+.0}"))
        );
        if marks == 0 || (matched as f64) < WORDS_MATCHED * marks as f64 {
            failures.push(format!("words {name}: {matched}/{marks} marks matched"));
        }
        for (key, bar) in [
            ("onset_median_ms", WORD_MEDIAN_MS),
            ("end_median_ms", WORD_MEDIAN_MS),
            ("onset_p90_ms", WORD_P90_MS),
            ("end_p90_ms", WORD_P90_MS),
        ] {
            if ms(key).is_none_or(|v| v > bar) {
                failures.push(format!("words {name}: {key} {:?} > {bar}", ms(key)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "below the bars ({OVERALL_BAR} over the corpus, {PER_TEXT_BAR} per text; words: \
         median {WORD_MEDIAN_MS} ms, p90 {WORD_P90_MS} ms):\n{}",
        failures.join("\n")
    );
}
