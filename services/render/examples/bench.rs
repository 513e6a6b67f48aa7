//! Measures the Rust side of `make bench` (scripts/bench.py runs it and prints the table).
//!
//!   bench synth  VOICES_DIR VOICE THREADS RUNS TEXT_FILE   synthesis only (tts::synthesize)
//!   bench render VOICES_DIR VOICE THREADS RUNS TEXT_FILE   the whole offline render
//!   bench lines  VOICES_DIR VOICE THREADS RUNS -           one render of each line read from
//!                                                          stdin, answered as it is read
//!
//! Prints one JSON object: model load time, per-run times and audio length, peak RSS (for
//! `lines`, one `{"total_ms", "audio_ms"}` line per render).

use std::time::{Duration, Instant};

use avatar_domain::RenderRequest;
use avatar_render::{Engine, EngineConfig};
use tts::{AudioFormat, RuntimePaths};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, voices_dir, voice, threads, runs, text_file] = &args[..] else {
        eprintln!("usage: bench synth|render VOICES_DIR VOICE THREADS RUNS TEXT_FILE");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS");
    let runs: usize = runs.parse().expect("RUNS");
    let text = if mode == "lines" {
        String::new()
    } else {
        std::fs::read_to_string(text_file).expect("TEXT_FILE")
    };
    let engine = Engine::new(EngineConfig {
        voices_dir: voices_dir.into(),
        runtime: RuntimePaths::from_env(),
        threads,
        audio_format: AudioFormat::Ogg,
        bitrate: tts::audio::DEFAULT_BITRATE,
        default_voice: Some(voice.clone()),
    })
    .expect("engine");
    let loading = Instant::now();
    engine.preload(voice).expect("voice");
    let load_ms = ms(loading.elapsed());
    let request = RenderRequest {
        text: text.clone(),
        ..Default::default()
    };
    let phonemizer = tts::Phonemizer::get().expect("loaded with the voice");

    let mut results = Vec::new();
    if mode == "lines" {
        let warm_up = RenderRequest {
            text: "Warming up.".into(),
            ..Default::default()
        };
        engine
            .render(&warm_up, |id, _| id.to_owned())
            .expect("warm-up render");
        let render = |line: &str| {
            let request = RenderRequest {
                text: line.to_owned(),
                ..Default::default()
            };
            let started = Instant::now();
            let r = engine
                .render(&request, |id, _| id.to_owned())
                .expect("render");
            serde_json::json!({"total_ms": ms(started.elapsed()), "audio_ms": r.result.duration_ms})
        };
        // Paired with another system's renders of the same texts, one at a time.
        use std::io::Write;
        for line in std::io::stdin().lines() {
            let result = render(&line.expect("stdin"));
            let mut out = std::io::stdout().lock();
            writeln!(out, "{result}")
                .and_then(|()| out.flush())
                .expect("stdout");
        }
        return;
    }
    // One warm-up run (first-run allocations, caches), then the measured runs.
    for run in 0..=runs {
        let record = match mode.as_str() {
            "synth" => {
                let voice = engine.voice(voice).expect("voice");
                let started = Instant::now();
                let s = tts::synthesize(&voice, &text, 1.0).expect("synthesis");
                let synth_ms = ms(started.elapsed());
                // Opus encoding alone (resampling included), for the record.
                let started = Instant::now();
                let ogg = tts::audio::encode_ogg_opus(
                    &s.samples,
                    s.sample_rate(),
                    tts::audio::DEFAULT_BITRATE,
                );
                let encode_ms = ms(started.elapsed());
                drop(ogg);
                serde_json::json!({"total_ms": synth_ms, "audio_ms": s.duration_ms(), "encode_ms": encode_ms})
            }
            "render" => {
                let started = Instant::now();
                let phonemes = phonemizer.phonemize(&text, "en-us").expect("phonemes");
                let phonemize_ms = ms(started.elapsed());
                drop(phonemes);
                let started = Instant::now();
                let r = engine
                    .render(&request, |id, f| format!("{id}.{}", f.extension()))
                    .expect("render");
                serde_json::json!({
                    "total_ms": ms(started.elapsed()),
                    "audio_ms": r.result.duration_ms,
                    "phonemize_ms": phonemize_ms,
                    "speech_ms": ms(r.stages.speech),
                    "mouth_cues_ms": ms(r.stages.mouth_cues),
                    "eye_events_ms": ms(r.stages.eye_events),
                    "audio_bytes": r.audio.bytes.len(),
                })
            }
            other => panic!("unknown mode {other}"),
        };
        if run > 0 {
            results.push(record);
        }
    }
    println!(
        "{}",
        serde_json::json!({"load_ms": load_ms, "runs": results, "peak_rss_kb": peak_rss_kb()})
    );
}
