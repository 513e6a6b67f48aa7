//! No valid request can exceed a message limit: the largest and densest valid texts (5,000
//! characters of CJK, which the English voice spells out one by one; 5,000 characters of
//! one-letter words; 5,000 digits) render through the whole pipeline. Their timelines,
//! cues and results are megabytes of JSON, over NATS's 1 MB `max_payload`: they travel by
//! reference through the object store, and every message stays small.

mod common;

use std::time::Duration;

use common::{Options, Stack, check_completed, probe_ms, run};
use serde_json::json;

fn texts() -> Vec<(&'static str, String)> {
    // A fixed pseudo-random choice: the same texts every run.
    let mut state = 0x2545_f491_u32;
    let mut next = move |n: u32| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state % n
    };
    let cjk: String = (0..5000)
        .map(|_| char::from_u32(0x4e00 + next(0x9fff - 0x4e00)).unwrap())
        .collect();
    let letters: String = (0..2500)
        .map(|_| char::from(b'a' + next(26) as u8).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let digits: String = (0..5000)
        .map(|_| char::from(b'0' + next(10) as u8))
        .collect();
    vec![
        ("cjk", cjk),
        ("one-letter words", letters[..4999].to_owned()),
        ("digits", digits),
    ]
}

#[test]
fn the_largest_valid_texts_render_through_the_pipeline() {
    let stack = Stack::start(Options {
        env: vec![("TTS_THREADS".into(), "2".into())],
        ..Default::default()
    });
    run(async {
        let mut ids = Vec::new();
        for (name, text) in texts() {
            assert!(text.chars().count() <= 5000, "{name}");
            let (status, body, _) = stack
                .post("/v1/avatar/render_async", &json!({"text": text}))
                .await;
            assert_eq!(status, 202, "{name}: {body}");
            ids.push((name, body["render_id"].as_str().unwrap().to_owned()));
        }
        for (name, id) in &ids {
            let done = stack.wait_final(id, Duration::from_secs(900)).await;
            assert_eq!(done["status"], "completed", "{name}: {done}");
            check_completed(&done);
            // Audio and cues from one run: the decoded audio is as long as the cues say.
            let audio_url = done["audio_url"].as_str().unwrap();
            let audio = stack
                .http
                .get(audio_url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let probed = probe_ms(&audio);
            let said = done["duration_ms"].as_f64().unwrap();
            assert!(
                (probed - said).abs() < 30.0,
                "{name}: audio {probed} ms, cues {said} ms"
            );
            eprintln!(
                "{name}: {} ms of speech, {} mouth cues, {} eye events",
                said,
                done["mouth_cues"].as_array().unwrap().len(),
                done["eye_events"].as_array().unwrap().len()
            );
        }
    });
    // The large parts went beside the audio: no retry, no failure on the way.
    let data = stack.dir.path().join("data");
    let count = |dir: &str| std::fs::read_dir(data.join(dir)).map_or(0, |d| d.count());
    assert!(
        count("payloads") >= 2,
        "job payloads stored: {}",
        count("payloads")
    );
    assert!(
        count("records") >= 1,
        "results stored: {}",
        count("records")
    );
    let tts_metrics = stack.worker_metrics(&stack.tts[0]);
    let retried = common::metric(&tts_metrics, "avatar_jobs_total", &[("outcome", "retried")]);
    assert_eq!(retried.unwrap_or(0.0), 0.0, "{tts_metrics}");
}
