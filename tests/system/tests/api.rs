//! The HTTP API against the real services: the contract's responses, caching, coalescing,
//! health, voices, metrics, OpenAPI, audio, and bad input.
//!
//! Longer than 400 lines on purpose: one suite, each test a whole client session over one
//! started stack, its steps in the order a user takes them.

mod common;

use std::time::Duration;

use common::{Options, Stack, check_completed, probe_ms, run};
use serde_json::{Value, json};

#[test]
fn sync_async_cached_polled_and_audio() {
    let stack = Stack::start(Options::default());
    run(async {
        let text = "Hello! I am a talking avatar, and my lips move with my voice.";
        // Sent with a line end before it: the answer's word marks index the text as sent.
        let (status, first, _) = stack
            .post("/v1/avatar/render", &json!({"text": format!("\n{text}")}))
            .await;
        assert_eq!(status, 200, "{first}");
        avatar_test_support::assert_result_fields(&first);
        check_completed(&first);
        assert_eq!(first["cached"], false);
        assert_eq!(first["viseme_set"], "basic");
        let audio_url = first["audio_url"].as_str().unwrap().to_owned();
        assert!(audio_url.starts_with(&stack.url("/audio/")), "{audio_url}");

        // The audio is there, plays for duration_ms, and serves byte ranges.
        let audio = stack.http.get(&audio_url).send().await.unwrap();
        assert_eq!(audio.status(), 200);
        assert_eq!(audio.headers()["content-type"], "audio/ogg");
        let bytes = audio.bytes().await.unwrap();
        let ms = probe_ms(&bytes);
        assert!(
            (ms - first["duration_ms"].as_f64().unwrap()).abs() <= 20.0,
            "{ms}"
        );
        let part = stack
            .http
            .get(&audio_url)
            .header("Range", "bytes=0-99")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes 0-99/{}", bytes.len())
        );
        assert_eq!(part.bytes().await.unwrap().len(), 100);
        // A range past the end, or selecting nothing, is a 416 naming the header.
        let past_end = format!("bytes={}-", bytes.len());
        for range in [past_end.as_str(), "bytes=-0", "bytes=9-3"] {
            let refused = stack
                .http
                .get(&audio_url)
                .header("Range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 416, "{range}");
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["field"], "Range", "{range}: {body}");
        }
        let missing = stack
            .http
            .get(stack.url(&format!("/audio/{}-abcdefgh.ogg", "0".repeat(64))))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);

        // The same request again: cached, same render, no new synthesis.
        let (status, again, _) = stack
            .post(
                "/v1/avatar/render",
                &json!({"text": format!("  {text}\n"), "speed": 1.0}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(again["cached"], true);
        assert_eq!(again["render_id"], first["render_id"]);
        assert_eq!(again["audio_url"], first["audio_url"]);
        assert_eq!(again["mouth_cues"], first["mouth_cues"]);

        // Word marks index each client's own text (one unit into `first`'s, two into
        // `again`'s); polling gives them in the text the render was submitted with (`first`'s),
        // twice (the second from the gateway's memory).
        let id = first["render_id"].as_str().unwrap().to_owned();
        let (status, polled) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        assert_eq!(status, 200, "{polled}");
        let (_, polled_again) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        assert_eq!(polled_again["words"], polled["words"]);
        let words = polled["words"].as_array().unwrap();
        assert!(words.len() >= 10, "{polled}");
        for (answer, sent, shift) in [
            (&polled, format!("\n{text}"), 1),
            (&first, format!("\n{text}"), 1),
            (&again, format!("  {text}\n"), 2),
        ] {
            let marks = answer["words"].as_array().unwrap();
            assert_eq!(marks.len(), words.len(), "{answer}");
            for (mark, submitted) in marks.iter().zip(words) {
                let (start, end) = (
                    mark["start"].as_u64().unwrap(),
                    mark["end"].as_u64().unwrap(),
                );
                assert_eq!(
                    start,
                    submitted["start"].as_u64().unwrap() - 1 + shift,
                    "{mark}"
                );
                assert_eq!(
                    utf16_slice(&sent, start, end),
                    mark["text"],
                    "{sent:?}: {mark}"
                );
            }
        }
        let subtitles = stack
            .http
            .get(stack.url(&format!("/v1/avatar/render/{id}/subtitles.vtt")))
            .send()
            .await
            .unwrap();
        assert_eq!(subtitles.status(), 200);
        assert_eq!(
            subtitles.headers()["content-type"],
            "text/vtt; charset=utf-8"
        );
        let vtt = subtitles.text().await.unwrap();
        let cues = check_webvtt(&vtt, first["duration_ms"].as_u64().unwrap());
        assert!(!cues.is_empty(), "{vtt}");
        // Every word is in a cue, a timestamp tag before all but each cue's first.
        let tags: usize = cues.iter().map(|c| c.tags).sum();
        assert_eq!(tags + cues.len(), words.len(), "{vtt}");
        let shown: Vec<String> = cues.iter().map(|c| c.lines.join(" ")).collect();
        assert_eq!(shown.join(" "), text, "{vtt}");

        // Async: pending at once, then completed by polling, the marks located in the text
        // as sent (leading spaces, CRLF, a decomposed accent).
        let sent = "  Polling works\r\ntoo, for cafe\u{301} lovers.";
        let (status, accepted, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": sent, "viseme_set": "rhubarb", "speed": 1.3}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["status"], "pending");
        let id = accepted["render_id"].as_str().unwrap().to_owned();
        assert_eq!(accepted["poll_url"], format!("/v1/avatar/render/{id}"));
        let done = stack.wait_final(&id, Duration::from_secs(60)).await;
        check_completed(&done);
        assert_eq!(done["viseme_set"], "rhubarb");
        let located: Vec<String> = done["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let slice = utf16_slice(
                    sent,
                    w["start"].as_u64().unwrap(),
                    w["end"].as_u64().unwrap(),
                );
                assert_eq!(slice, w["text"].as_str().unwrap(), "{w}");
                slice
            })
            .collect();
        assert_eq!(
            located,
            ["Polling", "works", "too", "for", "cafe\u{301}", "lovers"]
        );
        assert!(
            done["mouth_cues"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| "ABCDEFGHX".contains(c["viseme"].as_str().unwrap()))
        );
        let (status, resubmitted, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": sent, "viseme_set": "rhubarb", "speed": 1.3}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(resubmitted["status"], "completed");

        // Unknown renders.
        let (status, body) = stack
            .get(&format!("/v1/avatar/render/{}", "f".repeat(64)))
            .await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        let (status, _) = stack.get("/v1/avatar/render/../../etc/passwd").await;
        assert_eq!(status, 404);
        // Their subtitles: the same JSON 404, for an unknown id and a malformed one.
        for id in ["f".repeat(64), "not-a-render".to_owned()] {
            let (status, body) = stack
                .get(&format!("/v1/avatar/render/{id}/subtitles.vtt"))
                .await;
            assert_eq!(status, 404, "{id}: {body}");
            assert_eq!(body["error"], "not_found", "{id}: {body}");
            assert_eq!(body["field"], "render_id", "{id}: {body}");
        }
    });
}

#[test]
fn voices_health_metrics_and_openapi() {
    let stack = Stack::start(Options::default());
    run(async {
        let (status, voices) = stack.get("/v1/voices").await;
        assert_eq!(status, 200);
        let joe = voices["voices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["voice_id"] == common::VOICE)
            .expect("joe");
        assert_eq!(joe["language"], "en_US");
        assert_eq!(joe["sample_rate"], 22050);
        assert_eq!(voices["default_voice"], common::VOICE);

        let (status, health) = stack.get("/health").await;
        assert_eq!(status, 200);
        assert_eq!(
            health,
            json!({"status": "healthy", "nats_connected": true, "pending_jobs": 0})
        );

        let (status, _, _) = stack
            .post("/v1/avatar/render", &json!({"text": "Count me."}))
            .await;
        assert_eq!(status, 200);
        let (status, metrics) = stack.get("/metrics").await;
        assert_eq!(status, 200);
        let metrics = metrics.as_str().unwrap().to_owned();
        for name in [
            "avatar_http_requests_total",
            "avatar_renders_total",
            "avatar_queue_depth",
            "avatar_http_request_duration_seconds",
        ] {
            assert!(
                metrics.contains(name),
                "{name} missing from gateway metrics"
            );
        }
        assert_eq!(
            common::metric(
                &metrics,
                "avatar_renders_total",
                &[("outcome", "completed")]
            ),
            Some(1.0),
            "{metrics}"
        );
        for worker in [&stack.tts[0], &stack.lipsync, &stack.eyes] {
            common::wait_for(Duration::from_secs(5), || {
                stack.worker_metrics(worker).contains(r#"outcome="ok""#)
            });
            let text = stack.worker_metrics(worker);
            assert!(
                text.contains("avatar_jobs_total"),
                "{}: {text}",
                worker.name
            );
            assert!(
                text.contains("avatar_stage_duration_seconds_bucket"),
                "{}: {text}",
                worker.name
            );
            assert!(text.contains(r#"outcome="ok""#), "{}: {text}", worker.name);
        }

        let (status, openapi) = stack.get("/openapi.json").await;
        assert_eq!(status, 200);
        let committed: Value =
            serde_json::from_str(include_str!("../../../services/gateway/openapi.json")).unwrap();
        assert_eq!(openapi, committed);
    });
}

#[test]
fn identical_concurrent_requests_make_one_synthesis() {
    let stack = Stack::start(Options {
        env: vec![("MAX_CONCURRENT_REQUESTS".into(), "32".into())],
        ..Default::default()
    });
    run(async {
        let body = json!({"text": "Twenty people asked for this at the very same moment."});
        let requests = (0..20).map(|_| stack.post("/v1/avatar/render", &body));
        let answers = futures::future::join_all(requests).await;
        let ids: std::collections::HashSet<String> = answers
            .iter()
            .map(|(status, body, _)| {
                assert_eq!(*status, 200, "{body}");
                check_completed(body);
                body["render_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1);
        let audio: std::collections::HashSet<&str> = answers
            .iter()
            .map(|(_, b, _)| b["audio_url"].as_str().unwrap())
            .collect();
        assert_eq!(audio.len(), 1, "{audio:?}");
        assert_eq!(stack.audio_files().len(), 1, "{:?}", stack.audio_files());
        // Counted right after the job is passed on: possibly a moment after the answer.
        common::wait_for(Duration::from_secs(5), || {
            stack
                .worker_metrics(&stack.tts[0])
                .contains(r#"outcome="ok""#)
        });
        let tts = stack.worker_metrics(&stack.tts[0]);
        assert_eq!(
            common::metric(
                &tts,
                "avatar_jobs_total",
                &[("stage", "tts"), ("outcome", "ok")]
            ),
            Some(1.0),
            "{tts}"
        );
    });
}

/// Sends a raw request; returns status, headers and JSON body.
async fn raw(
    stack: &Stack,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = stack.http.post(stack.url("/v1/avatar/render")).body(body);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} not JSON: {text}")),
    )
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field() {
    let stack = Stack::start(Options::default());
    run(async {
        let json = Some("application/json");
        let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
            (json, r#"{"text": ""}"#.into(), 422, "text"),
            (json, r#"{"text": "   \n\t  "}"#.into(), 422, "text"),
            (
                json,
                json!({"text": "a".repeat(5001)}).to_string(),
                422,
                "text",
            ),
            (
                json,
                r#"{"voice_id": "en_US-joe-medium"}"#.into(),
                422,
                "text",
            ),
            (
                json,
                r#"{"text": "hi", "speed": 0.49}"#.into(),
                422,
                "speed",
            ),
            (
                json,
                r#"{"text": "hi", "speed": 2.01}"#.into(),
                422,
                "speed",
            ),
            (
                json,
                r#"{"text": "hi", "speed": "NaN"}"#.into(),
                422,
                "speed",
            ),
            // null is not a number (nor a string): refused, as in the original API.
            (
                json,
                r#"{"text": "hi", "speed": null}"#.into(),
                422,
                "speed",
            ),
            (
                json,
                r#"{"text": "hi", "voice_id": null}"#.into(),
                422,
                "voice_id",
            ),
            (
                json,
                r#"{"text": "hi", "viseme_set": null}"#.into(),
                422,
                "viseme_set",
            ),
            (json, r#"{"text": null}"#.into(), 422, "text"),
            (
                json,
                r#"{"text": "hi", "voice_id": "en_US-nobody-medium"}"#.into(),
                422,
                "voice_id",
            ),
            (
                json,
                r#"{"text": "hi", "voice_id": "../../etc/passwd"}"#.into(),
                422,
                "voice_id",
            ),
            (
                json,
                r#"{"text": "hi", "viseme_set": "disney"}"#.into(),
                422,
                "viseme_set",
            ),
            (
                json,
                r#"{"text": "hi", "colour": "red"}"#.into(),
                422,
                "colour",
            ),
            (json, r#"{"text": 42}"#.into(), 422, "text"),
            (json, r#"{"text": "hi""#.into(), 400, "body"),
            (json, "not json at all".into(), 400, "body"),
            (json, r#"["text", "hi"]"#.into(), 422, "body"),
            (
                Some("text/plain"),
                r#"{"text": "hi"}"#.into(),
                415,
                "Content-Type",
            ),
            (None, r#"{"text": "hi"}"#.into(), 415, "Content-Type"),
            (
                json,
                json!({"text": "x".repeat(70_000)}).to_string(),
                413,
                "body",
            ),
            (json, r#"{"text": "?!...;:,"}"#.into(), 422, "text"),
        ];
        for (content_type, body, want_status, want_field) in cases {
            let (status, answer) = raw(&stack, content_type, body.clone()).await;
            let shown: String = body.chars().take(60).collect();
            assert_eq!(status, want_status, "{shown}: {answer}");
            if want_status >= 400 {
                assert_eq!(answer["field"], want_field, "{shown}: {answer}");
                assert!(
                    answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{answer}"
                );
            }
        }
        // Nothing above broke the service.
        let (status, health) = stack.get("/health").await;
        assert_eq!((status, &health["status"]), (200, &json!("healthy")));
        assert!(!stack.gateway.log_text().contains("panicked"));
    });
}

#[test]
fn jobs_spread_over_tts_replicas() {
    let stack = Stack::start(Options {
        tts_workers: 2,
        env: vec![("MAX_CONCURRENT_REQUESTS".into(), "32".into())],
        ..Default::default()
    });
    run(async {
        let stack = &stack;
        let requests = (0..8).map(|i| async move {
            let body =
                json!({"text": format!("Replica test number {i}, a sentence of moderate length.")});
            stack.post("/v1/avatar/render", &body).await
        });
        for (status, body, _) in futures::future::join_all(requests).await {
            assert_eq!(status, 200, "{body}");
            check_completed(&body);
        }
        // A worker counts a job right after passing it on, which can be a moment after the
        // client already has its answer.
        let handled = || -> Vec<f64> {
            stack
                .tts
                .iter()
                .map(|w| {
                    common::metric(
                        &stack.worker_metrics(w),
                        "avatar_jobs_total",
                        &[("outcome", "ok")],
                    )
                    .unwrap_or(0.0)
                })
                .collect()
        };
        common::wait_for(Duration::from_secs(5), || {
            handled().iter().sum::<f64>() >= 8.0
        });
        let handled = handled();
        assert_eq!(handled.iter().sum::<f64>(), 8.0, "{handled:?}");
        assert!(
            handled.iter().all(|n| *n >= 2.0),
            "jobs not spread: {handled:?}"
        );
    });
}

/// `text[start..end]` in UTF-16 code units, as JavaScript's `text.slice(start, end)`.
fn utf16_slice(text: &str, start: u64, end: u64) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    String::from_utf16(&units[start as usize..end as usize]).unwrap()
}

/// A WebVTT cue: its shown lines (tags removed, escapes read back) and its timestamp tags.
#[derive(Debug)]
struct VttCue {
    lines: Vec<String>,
    tags: usize,
}

/// Parses a subtitles file and checks the rules: the header, numbered cues, times that
/// increase and stay within the audio, timestamp tags strictly inside their cue and
/// increasing, at most two lines of at most 42 characters.
fn check_webvtt(vtt: &str, duration_ms: u64) -> Vec<VttCue> {
    fn ms(stamp: &str) -> u64 {
        let (hms, millis) = stamp.split_once('.').unwrap_or_else(|| panic!("{stamp}"));
        let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!((parts.len(), millis.len()), (3, 3), "{stamp}");
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + millis.parse::<u64>().unwrap()
    }
    let body = vtt
        .strip_prefix("WEBVTT\n\n")
        .unwrap_or_else(|| panic!("no WEBVTT header: {vtt:?}"));
    let mut cues = Vec::new();
    let mut previous_end = 0;
    for (n, block) in body.split("\n\n").filter(|b| !b.is_empty()).enumerate() {
        let mut lines = block.lines();
        assert_eq!(lines.next(), Some((n + 1).to_string().as_str()), "{block}");
        let (start, end) = lines.next().unwrap().split_once(" --> ").unwrap();
        let (start, end) = (ms(start), ms(end));
        assert!(previous_end <= start && start < end, "{block}");
        assert!(end <= duration_ms + 1, "{block}");
        previous_end = end;
        let mut shown = Vec::new();
        let mut last_tag = start;
        let mut tags = 0;
        for line in lines {
            let mut text = String::new();
            let mut rest = line;
            while let Some(open) = rest.find('<') {
                text += &rest[..open];
                let close = open + rest[open..].find('>').unwrap();
                let tag = ms(&rest[open + 1..close]);
                assert!(last_tag < tag && tag < end, "tag {tag} in {block}");
                last_tag = tag;
                tags += 1;
                rest = &rest[close + 1..];
            }
            text += rest;
            let text = text
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            assert!(text.chars().count() <= 42, "line too long: {text:?}");
            shown.push(text);
        }
        assert!((1..=2).contains(&shown.len()), "{block}");
        cues.push(VttCue { lines: shown, tags });
    }
    cues
}
