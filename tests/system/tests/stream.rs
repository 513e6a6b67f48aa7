//! Streaming through the real pipeline: a WebSocket fed word by word as a chat model would,
//! server-sent events for a whole text, the limits and refusals, and a tts worker killed in
//! the middle of a stream.

mod common;

use std::time::{Duration, Instant};

use common::socket::{connect, next, send, until_closed};
use common::{Options, Stack, probe_ms, run};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// `text[start..end]` in UTF-16 code units.
fn utf16_slice(text: &str, start: u64, end: u64) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    String::from_utf16(&units[start as usize..end as usize]).unwrap()
}

/// The checks every finished stream passes: segments in order, back to back in stream time,
/// everything inside its segment, every word located in the stream's text, totals in `done`.
fn check_stream(text: &str, messages: &[Value]) -> Vec<Value> {
    assert_eq!(messages[0]["type"], "started", "{messages:?}");
    let segments: Vec<Value> = messages
        .iter()
        .filter(|m| m["type"] == "segment")
        .cloned()
        .collect();
    let errors: Vec<&Value> = messages.iter().filter(|m| m["type"] == "error").collect();
    assert!(errors.is_empty(), "{errors:?}");
    let done = messages.last().unwrap();
    assert_eq!(done["type"], "done", "{done}");
    let mut offset = 0;
    let mut text_end = 0;
    let mut words = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s["seq"], i as u64);
        assert_eq!(
            s["offset_ms"], offset,
            "segment {i} is not right after the one before"
        );
        let duration = s["duration_ms"].as_u64().unwrap();
        assert!(duration > 0);
        let (start, end) = (
            s["text_start"].as_u64().unwrap(),
            s["text_end"].as_u64().unwrap(),
        );
        assert!(start >= text_end && end > start, "{s}");
        text_end = end;
        let cues = s["mouth_cues"].as_array().unwrap();
        assert_eq!(cues[0]["t_ms"], offset, "the first cue starts the segment");
        for t in cues.iter().map(|c| &c["t_ms"]).chain(
            s["eye_events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["t_ms"]),
        ) {
            let t = t.as_u64().unwrap();
            assert!((offset..=offset + duration).contains(&t), "{t} outside {s}");
        }
        for w in s["words"].as_array().unwrap() {
            let (ws, we) = (w["start"].as_u64().unwrap(), w["end"].as_u64().unwrap());
            assert!(ws >= start && we <= end, "{w} outside its segment");
            assert_eq!(utf16_slice(text, ws, we), w["text"].as_str().unwrap());
            let (t, e) = (w["t_ms"].as_u64().unwrap(), w["end_ms"].as_u64().unwrap());
            assert!(offset <= t && t < e && e <= offset + duration, "{w}");
            words.push(w["text"].as_str().unwrap().to_owned());
        }
        offset += duration;
    }
    // Eye events stay natural across seams: no two blinks closer than one render allows.
    let blinks: Vec<u64> = segments
        .iter()
        .flat_map(|s| s["eye_events"].as_array().unwrap().iter())
        .filter(|e| e["event_type"] == "blink")
        .map(|e| e["t_ms"].as_u64().unwrap())
        .collect();
    for pair in blinks.windows(2) {
        assert!(
            pair[1] >= pair[0] + 1800,
            "blinks at {} and {} ms",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(done["segments"], segments.len() as u64);
    assert_eq!(done["failed_segments"], 0);
    assert_eq!(done["duration_ms"], offset);
    assert_eq!(done["words"], words.len() as u64);
    // Every Latin-script word of the text, in order.
    let expected: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '\''))
        .collect();
    // (A mark may hold two written words espeak speaks as one: "at once", "in the".)
    let latin: Vec<String> = words
        .iter()
        .flat_map(|w| w.split_whitespace())
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '\''))
        .map(str::to_owned)
        .collect();
    assert_eq!(latin, expected);
    segments
}

const TEXT: &str = "When the first words come in, the avatar starts speaking at once. \
                    Café 😀 東京 comes next, and it is spoken too! The third sentence ends the \
                    stream, and nothing is lost.";

#[test]
fn a_websocket_stream_fed_word_by_word_speaks_segment_by_segment() {
    let stack = Stack::start(Options {
        tts_workers: 2,
        ..Options::default()
    });
    run(async {
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(
            &mut socket,
            json!({"type": "start", "viseme_set": "rhubarb"}),
        )
        .await;
        let started = next(&mut socket).await.unwrap();
        assert_eq!(started["type"], "started");
        assert_eq!(started["viseme_set"], "rhubarb");
        assert!(started["limits"]["max_pending_chars"].as_u64().unwrap() >= 5000);
        // Word by word, as a chat model's tokens arrive.
        for piece in TEXT.split_inclusive(' ') {
            send(&mut socket, json!({"type": "text", "text": piece})).await;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        send(&mut socket, json!({"type": "end"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Normal));
        let mut all = vec![started];
        all.extend(messages);
        let segments = check_stream(TEXT, &all);
        // The first segment is the first clause (speech starts before its sentence ends).
        let first = &segments[0];
        assert_eq!(
            utf16_slice(TEXT, 0, first["text_end"].as_u64().unwrap()).trim_end(),
            "When the first words come in,"
        );
        assert!(segments.len() >= 4, "{}", segments.len());
        // Every segment's audio is there and as long as it says.
        for s in &segments {
            let audio = stack.fetch(s["audio_url"].as_str().unwrap()).await;
            let ms = probe_ms(&audio);
            assert!(
                (ms - s["duration_ms"].as_f64().unwrap()).abs() <= 20.0,
                "{ms} {s}"
            );
        }

        // The same text again: every segment is a cached render of its own.
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(
            &mut socket,
            json!({"type": "start", "viseme_set": "rhubarb"}),
        )
        .await;
        for piece in TEXT.split_inclusive(' ') {
            send(&mut socket, json!({"type": "text", "text": piece})).await;
        }
        send(&mut socket, json!({"type": "end"})).await;
        let (messages, _) = until_closed(&mut socket).await;
        let again = check_stream(TEXT, &messages);
        assert!(again.iter().all(|s| s["cached"] == true), "{again:?}");
        let ids = |s: &[Value]| s.iter().map(|s| s["render_id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&segments));

        // Operators see the streams: segments by outcome, their latency, none left open.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let metrics = stack
            .http
            .get(stack.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let segments_by = |outcome| {
            common::metric(
                &metrics,
                "avatar_stream_segments_total",
                &[("outcome", outcome)],
            )
        };
        assert_eq!(
            segments_by("completed"),
            Some(segments.len() as f64),
            "{metrics}"
        );
        assert_eq!(segments_by("cached"), Some(again.len() as f64));
        assert_eq!(
            common::metric(&metrics, "avatar_streams_open", &[]),
            Some(0.0)
        );
        assert_eq!(
            common::metric(&metrics, "avatar_stream_segment_latency_seconds_count", &[]),
            Some((segments.len() + again.len()) as f64)
        );
    });
}

#[test]
fn server_sent_events_for_a_whole_text_and_the_refusals() {
    let stack = Stack::start(Options {
        env: vec![
            ("STREAM_IDLE_TIMEOUT_SECONDS".into(), "2".into()),
            ("STREAM_IDLE_FLUSH_MS".into(), "400".into()),
            ("MAX_CONCURRENT_STREAMS".into(), "3".into()),
        ],
        ..Options::default()
    });
    run(async {
        // Server-sent events: the same messages for a whole text.
        let response = stack
            .http
            .post(stack.url("/v1/avatar/stream"))
            .json(&json!({"text": TEXT}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let body = response.text().await.unwrap();
        let mut messages = Vec::new();
        for event in body.split("\n\n").filter(|e| e.contains("data:")) {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(str::trim)
                .unwrap();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            let message: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(message["type"], name);
            messages.push(message);
        }
        check_stream(TEXT, &messages);
        // A bad request is refused before any stream starts, naming the field.
        let (code, body, _) = stack
            .post("/v1/avatar/stream", &json!({"text": "hi", "speed": 9}))
            .await;
        assert_eq!(
            (code, body["field"].as_str()),
            (422, Some("speed")),
            "{body}"
        );

        // More than the pending limit in all, in pieces of 2,000 (the client module's): the
        // gateway reads on as its segments go out, so nothing is refused or lost.
        let long: String = (1..=92)
            .map(|n| format!("Sentence number {n} keeps this stream busy for a while. "))
            .collect();
        assert!(long.len() > 5000);
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(&mut socket, json!({"type": "start"})).await;
        let chars: Vec<char> = long.chars().collect();
        for piece in chars.chunks(2000) {
            let piece: String = piece.iter().collect();
            send(&mut socket, json!({"type": "text", "text": piece})).await;
        }
        send(&mut socket, json!({"type": "end"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Normal));
        assert_eq!(check_stream(&long, &messages).len(), 92);

        // Not a WebSocket: a JSON 426 naming the header.
        let (code, body) = stack.get("/v1/avatar/stream").await;
        assert_eq!(
            (code, body["field"].as_str()),
            (426, Some("Upgrade")),
            "{body}"
        );

        // Text before `start`: refused, the connection closed as a policy violation.
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(&mut socket, json!({"type": "text", "text": "hello"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(messages[0]["field"], "type", "{messages:?}");
        assert_eq!(code, Some(CloseCode::Policy));
        // A message over 64 KiB: an error naming the limit, then close 1009.
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(&mut socket, json!({"type": "start"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
        send(
            &mut socket,
            json!({"type": "text", "text": "word ".repeat(14_000)}),
        )
        .await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(
            messages.last().map(|m| m["error"].clone()),
            Some(json!("limit")),
            "{messages:?}"
        );
        // The close frame (1009) may be lost: the unread rest of the message in the gateway's
        // socket turns its close into a TCP reset. The connection ends either way.
        assert!(matches!(code, Some(CloseCode::Size) | None), "{code:?}");

        // A bad setting in `start`: its field named; a better `start` then starts it.
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        for (start, field) in [
            (json!({"type": "start", "speed": 9}), "speed"),
            (
                json!({"type": "start", "voice_id": "xx_nobody"}),
                "voice_id",
            ),
            (json!({"type": "start", "viseme_set": "nope"}), "viseme_set"),
            (json!({"type": "start", "colour": "red"}), "colour"),
            (json!({"type": "start", "speed": null}), "speed"),
            (json!({"type": "start", "text": "too early"}), "text"),
        ] {
            send(&mut socket, start.clone()).await;
            let error = next(&mut socket).await.unwrap();
            assert_eq!(error["type"], "error", "{start}: {error}");
            assert_eq!(error["field"], field, "{start}: {error}");
        }
        send(&mut socket, json!({"type": "start"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
        drop(socket);

        // Within a stream, a bad message is an error and the stream goes on; too much
        // pending text is refused whole (nothing of it spoken) and named.
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(&mut socket, json!({"type": "start"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
        socket
            .send(Message::Text("{not json".into()))
            .await
            .unwrap();
        let error = next(&mut socket).await.unwrap();
        assert_eq!(
            (error["type"].as_str(), error["field"].as_str()),
            (Some("error"), Some("body"))
        );
        send(&mut socket, json!({"type": "shout"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["field"], "type");
        send(
            &mut socket,
            json!({"type": "text", "text": "x".repeat(5001)}),
        )
        .await;
        let error = next(&mut socket).await.unwrap();
        assert_eq!(
            (error["error"].as_str(), error["field"].as_str()),
            (Some("limit"), Some("text")),
            "{error}"
        );
        // Quiet with text pending: it is spoken without a flush (after STREAM_IDLE_FLUSH_MS).
        send(
            &mut socket,
            json!({"type": "text", "text": "Spoken without a full stop"}),
        )
        .await;
        let segment = next(&mut socket).await.unwrap();
        assert_eq!(segment["type"], "segment", "{segment}");
        assert_eq!(segment["words"].as_array().unwrap().len(), 5);
        // Then nothing: closed as idle after STREAM_IDLE_TIMEOUT_SECONDS.
        let quiet = Instant::now();
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(messages.last().unwrap()["error"], "idle", "{messages:?}");
        assert_eq!(code, Some(CloseCode::Away));
        assert!(quiet.elapsed() < Duration::from_secs(10));

        // At most MAX_CONCURRENT_STREAMS at once: the next is a 503 before any upgrade.
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut socket = connect(&stack, "/v1/avatar/stream").await;
            send(&mut socket, json!({"type": "start"})).await;
            assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
            open.push(socket);
        }
        let url = stack.url("/v1/avatar/stream").replace("http://", "ws://");
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
            }
            other => panic!("a fourth stream was not refused: {:?}", other.map(|_| ())),
        }
        drop(open);
    });
}

#[test]
fn a_tts_worker_killed_mid_stream_delays_segments_but_loses_none() {
    let mut stack = Stack::start(Options {
        tts_workers: 2,
        env: vec![("JOB_ACK_WAIT_SECONDS".into(), "2".into())],
        ..Options::default()
    });
    let text = "The first sentence is spoken while both workers are alive. The second one may \
                lose its worker in the middle. The third one follows it. The fourth one ends \
                the stream, and every one of them arrives, in order.";
    run(async {
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        send(&mut socket, json!({"type": "start"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
        send(&mut socket, json!({"type": "text", "text": text})).await;
        send(&mut socket, json!({"type": "end"})).await;
        // Kill one worker while the segments are being rendered.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.tts[0].kill();
        let (mut messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Normal), "{messages:?}");
        messages.insert(0, json!({"type": "started"}));
        let segments = check_stream(text, &messages);
        assert_eq!(segments.len(), 4);
    });
}

#[test]
fn a_client_that_leaves_cancels_the_segments_not_started() {
    let stack = Stack::start(Options::default());
    let sentences: Vec<String> = (1..=12)
        .map(|n| format!("Sentence number {n} of a stream whose client leaves early. "))
        .collect();
    run(async {
        let mut socket = connect(&stack, "/v1/avatar/stream").await;
        let voice = avatar_test_support::VOICE;
        send(&mut socket, json!({"type": "start", "voice_id": voice})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "started");
        send(
            &mut socket,
            json!({"type": "text", "text": sentences.concat()}),
        )
        .await;
        send(&mut socket, json!({"type": "end"})).await;
        let first = next(&mut socket).await.unwrap();
        assert_eq!(
            (first["type"].as_str(), first["seq"].as_u64()),
            (Some("segment"), Some(0))
        );
        drop(socket);
        // What was in flight finishes; nothing after it is ever submitted.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut submitted = 0;
        for sentence in &sentences {
            let spec = avatar_domain::RenderRequest {
                text: sentence.clone(),
                voice_id: Some(voice.into()),
                ..Default::default()
            }
            .validate(voice)
            .unwrap();
            let id = avatar_domain::render_id(&spec);
            let (code, _) = stack.get(&format!("/v1/avatar/render/{id}")).await;
            if code == 200 {
                submitted += 1;
            }
        }
        // The first, those in flight (3) and at most one taken from the queue as it closed.
        assert!(
            (1..=6).contains(&submitted),
            "{submitted} of 12 segments were submitted"
        );
    });
}
