//! Live lip-sync through the whole system: a speaker's audio sent over the gateway's
//! WebSocket as it is captured (paced in real time), decoded and passed over NATS to the align
//! worker, answered at a fixed lag and corrected at each pause. The speech is this same
//! stack's synthesis, decoded by ffmpeg (an independent decoder) to 44.1 kHz stereo PCM, so
//! its words' true onsets are the synthesiser's own; the Opus stream sends the packets of the
//! render's own Ogg file.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::socket::{Socket, connect, next, send, until_closed};
use common::{Options, Stack, run};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const FIRST: &str = "Maybe the bright blue boat will float past the old mill tomorrow.";
const SECOND: &str = "People who plan big parties buy plenty of bread.";
const PATH: &str = "/v1/avatar/lipsync/live";
/// The pause between the two sentences: long enough to end an utterance (300 ms of quiet).
const GAP_MS: u64 = 800;
const RATE: u64 = 44_100;
const CHANNELS: u64 = 2;

/// A render of `text`: its Ogg/Opus bytes and its answer.
async fn render(stack: &Stack, text: &str) -> (Vec<u8>, Value) {
    let (status, body, _) = stack
        .post(
            "/v1/avatar/render",
            &json!({"text": text, "viseme_set": "rhubarb"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (stack.fetch(body["audio_url"].as_str().unwrap()).await, body)
}

/// `ogg` decoded by ffmpeg to 16-bit PCM at 44.1 kHz, stereo.
fn pcm(ogg: &[u8], dir: &std::path::Path) -> Vec<u8> {
    let input = dir.join("in.ogg");
    std::fs::write(&input, ogg).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(&input)
        .args(["-f", "s16le", "-ar", "44100", "-ac", "2", "-"])
        .output()
        .expect("ffmpeg (scripts/setup_system.sh test installs it)");
    assert!(out.status.success());
    out.stdout
}

fn ms_of(bytes: usize) -> u64 {
    bytes as u64 * 1000 / (RATE * CHANNELS * 2)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The synthesiser's word onsets, shifted by `offset_ms`.
fn true_onsets(render: &Value, offset_ms: f64) -> Vec<(String, f64)> {
    render["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["text"].as_str().unwrap().to_owned(),
                w["t_ms"].as_f64().unwrap() + offset_ms,
            )
        })
        .collect()
}

/// Checks the corrections against the truth: every word found, aligned, near its true onset.
fn check_corrections(messages: &[Value], truth: &[(String, f64)]) -> usize {
    let corrections: Vec<&Value> = messages
        .iter()
        .filter(|m| m["type"] == "correction")
        .collect();
    let mut words = Vec::new();
    for c in &corrections {
        assert_eq!(c["aligned"], true, "{c}");
        let text = c["text"].as_str().unwrap();
        let (from, to) = (c["from_ms"].as_f64().unwrap(), c["to_ms"].as_f64().unwrap());
        for w in c["words"].as_array().unwrap() {
            let t = w["t_ms"].as_f64().unwrap();
            assert!(from <= t && t <= to, "{w} outside {from}-{to}");
            let units: Vec<u16> = text.encode_utf16().collect();
            let (start, end) = (
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                String::from_utf16(&units[start..end]).unwrap(),
                w["text"].as_str().unwrap()
            );
            words.push((w["text"].as_str().unwrap().to_owned(), t));
        }
        let cues = c["mouth_cues"].as_array().unwrap();
        assert_eq!(cues[0]["t_ms"].as_f64().unwrap(), from, "{c}");
    }
    let said: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    let expected: Vec<&str> = truth.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(said, expected);
    let errors: Vec<f64> = words
        .iter()
        .zip(truth)
        .map(|((_, t), (_, truth))| (t - truth).abs())
        .collect();
    eprintln!("corrected word onset errors, ms: {errors:?}");
    assert!(median(errors.clone()) <= 40.0, "{errors:?}");
    corrections.len()
}

/// The live `cues` tile the stream from 0 to its end, each window `lag_ms` behind what had
/// been heard; the windows covering `[from, to)` show only the rest shape.
fn check_cues(messages: &[Value], lag_ms: u64, duration_ms: u64) -> Vec<&Value> {
    let cues: Vec<&Value> = messages.iter().filter(|m| m["type"] == "cues").collect();
    assert!(!cues.is_empty());
    let mut end = 0;
    for c in &cues {
        let (from, to) = (c["from_ms"].as_u64().unwrap(), c["to_ms"].as_u64().unwrap());
        assert_eq!(from, end, "windows tile the stream: {c}");
        assert!(to > from, "{c}");
        let shapes = c["mouth_cues"].as_array().unwrap();
        assert_eq!(shapes[0]["t_ms"].as_u64().unwrap(), from, "{c}");
        assert!(
            shapes
                .iter()
                .all(|s| (from..to).contains(&s["t_ms"].as_u64().unwrap()))
        );
        end = to;
    }
    assert!(end.abs_diff(duration_ms) <= 30, "{end} vs {duration_ms}");
    // Before the end, every window trails what was heard by the lag, but for those that
    // end at an utterance's edge (where the pause that ends it was heard in full).
    let edges: Vec<u64> = messages
        .iter()
        .filter(|m| m["type"] == "correction")
        .flat_map(|m| [m["from_ms"].as_u64().unwrap(), m["to_ms"].as_u64().unwrap()])
        .collect();
    let lags: Vec<f64> = cues
        .iter()
        .filter(|c| c["heard_ms"].as_u64().unwrap() + 10 < duration_ms)
        .filter(|c| !edges.contains(&c["to_ms"].as_u64().unwrap()))
        .map(|c| (c["heard_ms"].as_u64().unwrap() - c["to_ms"].as_u64().unwrap()) as f64)
        .collect();
    assert!(lags.iter().all(|&l| l >= lag_ms as f64), "{lags:?}");
    assert!(median(lags.clone()) <= (lag_ms + 100) as f64, "{lags:?}");
    cues
}

/// The rhubarb shape the cues show at `t_ms`.
fn shape_at(cues: &[&Value], t_ms: u64) -> String {
    let window = cues
        .iter()
        .find(|c| (c["from_ms"].as_u64().unwrap()..c["to_ms"].as_u64().unwrap()).contains(&t_ms))
        .unwrap();
    window["mouth_cues"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["t_ms"].as_u64().unwrap() <= t_ms)
        .unwrap()["viseme"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_speaker_is_lip_synced_live_and_corrected_at_each_pause() {
    let stack = Stack::start(Options::default());
    let work = tempfile::tempdir().unwrap();
    run(async {
        let (first_ogg, first) = render(&stack, FIRST).await;
        let (second_ogg, second) = render(&stack, SECOND).await;
        let mut audio = pcm(&first_ogg, work.path());
        let first_ms = ms_of(audio.len());
        let gap_bytes = (GAP_MS * RATE / 1000 * CHANNELS * 2) as usize;
        audio.resize(audio.len() + gap_bytes, 0);
        let second_at = ms_of(audio.len());
        audio.extend(pcm(&second_ogg, work.path()));
        let duration_ms = ms_of(audio.len());

        let mut socket = connect(&stack, PATH).await;
        send(
            &mut socket,
            json!({"type": "start", "format": "pcm16", "sample_rate": RATE,
                   "channels": CHANNELS, "viseme_set": "rhubarb", "transcript": FIRST}),
        )
        .await;
        let ready = next(&mut socket).await.unwrap();
        assert_eq!(ready["type"], "ready", "{ready}\n{}", stack.logs());
        assert_eq!(ready["format"], "pcm16");
        assert_eq!(ready["sample_rate"], RATE);
        assert_eq!(ready["channels"], CHANNELS);
        assert_eq!(ready["viseme_set"], "rhubarb");
        assert_eq!(ready["limits"]["max_audio_ms"], 600_000);
        let lag_ms = ready["lag_ms"].as_u64().unwrap();
        assert!((100..=500).contains(&lag_ms), "{ready}");

        // The audio in 40 ms messages at the pace it was spoken, the second sentence's
        // transcript once its speaker starts it; what comes back is timed as it comes.
        let (mut sink, mut source) = socket.split();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            loop {
                match source.next().await {
                    Some(Ok(Message::Text(text))) => {
                        received.push((
                            Instant::now(),
                            serde_json::from_str::<Value>(&text).unwrap(),
                        ));
                    }
                    Some(Ok(Message::Close(frame))) => return (received, frame.map(|f| f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return (received, None),
                }
            }
        });
        let piece = (40 * RATE / 1000 * CHANNELS * 2) as usize;
        let mut pace = tokio::time::interval(Duration::from_millis(40));
        let started = Instant::now();
        let mut sent_text = false;
        for (i, chunk) in audio.chunks(piece).enumerate() {
            pace.tick().await;
            if !sent_text && i as u64 * 40 >= second_at - 200 {
                let text = json!({"type": "text", "text": format!(" {SECOND}")});
                sink.send(Message::Text(text.to_string().into()))
                    .await
                    .unwrap();
                sent_text = true;
            }
            sink.send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
        }
        let ended = Instant::now();
        let end = json!({"type": "end"});
        sink.send(Message::Text(end.to_string().into()))
            .await
            .unwrap();
        let (received, code) = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("closed within 60 s")
            .unwrap();
        assert_eq!(code, Some(CloseCode::Normal), "{}", stack.logs());
        let messages: Vec<Value> = received.iter().map(|(_, m)| m.clone()).collect();
        let errors: Vec<&Value> = messages.iter().filter(|m| m["type"] == "error").collect();
        assert!(errors.is_empty(), "{errors:?}");

        let cues = check_cues(&messages, lag_ms, duration_ms);
        // Live: the answers came while the speaker spoke, not after. (Wall-clock delays are
        // printed for the record; `make bench` is where speed is measured.)
        let before_end = received
            .iter()
            .filter(|(at, m)| m["type"] == "cues" && *at <= ended)
            .map(|(_, m)| m["to_ms"].as_u64().unwrap() - m["from_ms"].as_u64().unwrap())
            .sum::<u64>();
        assert!(
            before_end as f64 >= 0.85 * duration_ms as f64 - lag_ms as f64,
            "{before_end} of {duration_ms} ms answered before the end"
        );
        // The audio at `t` went out at about `t - 40` ms (in 40 ms messages from `started`).
        let delays: Vec<f64> = received
            .iter()
            .filter(|(_, m)| m["type"] == "cues")
            .map(|(at, m)| {
                let sent_ms = m["to_ms"].as_f64().unwrap() - 40.0;
                at.duration_since(started).as_secs_f64() * 1000.0 - sent_ms
            })
            .collect();
        eprintln!(
            "live cues: {} windows; a window's last shape reached the client a median {:.0} ms \
             after its sound was sent (lag {lag_ms} ms)",
            cues.len(),
            median(delays)
        );
        // The mouth rests in the pause, and moves in the words.
        for t in [first_ms + 200, first_ms + GAP_MS / 2, second_at - 200] {
            assert_eq!(shape_at(&cues, t), "X", "at {t} ms, in the pause");
        }
        let moving = (second_at + 300..duration_ms - 300)
            .step_by(20)
            .filter(|&t| shape_at(&cues, t) != "X")
            .count() as f64;
        assert!(moving / ((duration_ms - 600 - second_at) as f64 / 20.0) > 0.6);

        // Each sentence corrected with its words, where the synthesiser put them.
        let mut truth = true_onsets(&first, 0.0);
        truth.extend(true_onsets(&second, second_at as f64));
        let corrections = check_corrections(&messages, &truth);
        assert!(corrections >= 2, "{corrections} corrections");
        let done = messages.last().unwrap();
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(done["utterances"].as_u64().unwrap(), corrections as u64);
        assert!(done["duration_ms"].as_u64().unwrap().abs_diff(duration_ms) <= 30);

        // Opus packets (the render's own, as WebCodecs would send them), faster than real
        // time, the transcript in `start`.
        let mut socket = connect(&stack, PATH).await;
        send(
            &mut socket,
            json!({"type": "start", "format": "opus", "viseme_set": "rhubarb", "transcript": FIRST}),
        )
        .await;
        let ready = next(&mut socket).await.unwrap();
        assert_eq!(
            (ready["type"].as_str(), ready["sample_rate"].as_u64()),
            (Some("ready"), Some(48_000))
        );
        let mut reader = ogg::reading::PacketReader::new(std::io::Cursor::new(first_ogg));
        let mut packets = 0;
        while let Some(packet) = reader.read_packet().unwrap() {
            packets += 1;
            if packets > 2 {
                // OpusHead and OpusTags are not audio.
                socket
                    .send(Message::Binary(packet.data.into()))
                    .await
                    .unwrap();
            }
        }
        send(&mut socket, json!({"type": "end"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Normal), "{messages:?}");
        // Raw packets decode to the encoder's pre-skip (6.5 ms) and last frame's padding too.
        check_cues(&messages, lag_ms, first_ms + 16);
        // The stream's time starts at the encoder's pre-skip (312 samples at 48 kHz), which raw
        // packets carry no header to declare.
        assert_eq!(check_corrections(&messages, &true_onsets(&first, 6.5)), 1);
    });
}

/// Sends `bytes` as one binary message.
async fn send_binary(socket: &mut Socket, bytes: Vec<u8>) {
    socket.send(Message::Binary(bytes.into())).await.unwrap();
}

#[test]
fn live_mistakes_are_named_and_limits_hold() {
    let mut stack = Stack::start(Options::default());
    run(async {
        // Not a WebSocket: a JSON 426 naming the header.
        let (status, body) = stack.get(PATH).await;
        assert_eq!(status, 426, "{body}");
        assert_eq!(body["field"], "Upgrade");

        // Audio before `start`: refused, closed.
        let mut socket = connect(&stack, PATH).await;
        send_binary(&mut socket, vec![0; 640]).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(messages[0]["field"], "type", "{messages:?}");
        assert_eq!(code, Some(CloseCode::Policy));

        // A bad `start` is named and another may follow; bad audio and messages are named
        // and the stream goes on to its `done`.
        let mut socket = connect(&stack, PATH).await;
        for (start, field) in [
            (json!({"type": "start", "format": "pcm16"}), "sample_rate"),
            (
                json!({"type": "start", "format": "wav", "sample_rate": 16000}),
                "format",
            ),
            (
                json!({"type": "start", "format": "opus", "channels": 3}),
                "channels",
            ),
            (
                json!({"type": "start", "format": "pcm16", "sample_rate": 4000}),
                "sample_rate",
            ),
            (
                json!({"type": "start", "format": "pcm16", "sample_rate": 16000, "voice_id": "x"}),
                "voice_id",
            ),
        ] {
            send(&mut socket, start.clone()).await;
            let error = next(&mut socket).await.unwrap();
            assert_eq!(error["type"], "error", "{start}: {error}");
            assert_eq!(error["field"], field, "{start}: {error}");
        }
        send(
            &mut socket,
            json!({"type": "start", "format": "pcm16", "sample_rate": 16000}),
        )
        .await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");
        send_binary(&mut socket, vec![0; 641]).await;
        let error = next(&mut socket).await.unwrap();
        assert_eq!(
            (error["type"].as_str(), error["field"].as_str()),
            (Some("error"), Some("audio")),
            "{error}"
        );
        for (message, field) in [
            (json!({"type": "flush"}), "type"),
            (json!({"type": "text", "text": 3}), "text"),
            (json!({"type": "start", "format": "opus"}), "type"),
        ] {
            send(&mut socket, message.clone()).await;
            let error = next(&mut socket).await.unwrap();
            assert_eq!(error["field"], field, "{message}: {error}");
        }
        // A second of silence, then the end: nothing was said.
        send_binary(&mut socket, vec![0; 32_000]).await;
        send(&mut socket, json!({"type": "end"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Normal), "{messages:?}");
        let done = messages.last().unwrap();
        assert_eq!(
            (done["type"].as_str(), done["utterances"].as_u64()),
            (Some("done"), Some(0)),
            "{done}"
        );
        assert!(messages.iter().all(|m| m["type"] != "correction"));

        // A message over 64 KiB ends the stream, saying so.
        let mut socket = connect(&stack, PATH).await;
        send(
            &mut socket,
            json!({"type": "start", "format": "pcm16", "sample_rate": 48000}),
        )
        .await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");
        send_binary(&mut socket, vec![0; 70_000]).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert!(matches!(code, Some(CloseCode::Size) | None), "{code:?}");
        if let Some(error) = messages.last() {
            assert_eq!(error["field"], "audio", "{error}");
        }

        // A transcript over its limit ends the stream.
        let mut socket = connect(&stack, PATH).await;
        send(&mut socket, json!({"type": "start", "format": "opus"})).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");
        let piece = "word ".repeat(10_000);
        for _ in 0..3 {
            send(&mut socket, json!({"type": "text", "text": piece})).await;
        }
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Policy), "{messages:?}");
        assert_eq!(messages.last().unwrap()["field"], "text", "{messages:?}");

        // No align worker: refused at once with "try again later", said so.
        stack.align.kill();
        let mut socket = connect(&stack, PATH).await;
        send(&mut socket, json!({"type": "start", "format": "opus"})).await;
        let (messages, code) = until_closed(&mut socket).await;
        assert_eq!(code, Some(CloseCode::Again), "{messages:?}");
        assert_eq!(messages[0]["error"], "unavailable", "{messages:?}");
        let metrics = stack
            .http
            .get(stack.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            common::metric(
                &metrics,
                "avatar_live_streams_total",
                &[("outcome", "refused")]
            ),
            Some(1.0)
        );
        assert!(
            common::metric(
                &metrics,
                "avatar_live_streams_total",
                &[("outcome", "taken")]
            )
            .unwrap()
                >= 3.0
        );
    });
}

#[test]
fn a_full_align_worker_leaves_the_queue_until_a_stream_ends() {
    let stack = Stack::start(Options {
        env: vec![("LIVE_SESSIONS".into(), "1".into())],
        ..Default::default()
    });
    run(async {
        let start = json!({"type": "start", "format": "pcm16", "sample_rate": 16000});
        let mut first = connect(&stack, PATH).await;
        send(&mut first, start.clone()).await;
        assert_eq!(next(&mut first).await.unwrap()["type"], "ready");
        // Its one place taken, the worker is out of the queue group: refused at once (no
        // responders), not after waiting for an answer.
        let asked = Instant::now();
        let mut second = connect(&stack, PATH).await;
        send(&mut second, start.clone()).await;
        let (messages, code) = until_closed(&mut second).await;
        assert_eq!(code, Some(CloseCode::Again), "{messages:?}");
        assert_eq!(messages[0]["error"], "unavailable");
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "refused after {:?}",
            asked.elapsed()
        );
        send(&mut first, json!({"type": "end"})).await;
        let (messages, code) = until_closed(&mut first).await;
        assert_eq!(code, Some(CloseCode::Normal), "{messages:?}");
        // The place is free again: the worker is back in the group.
        let mut taken = false;
        for _ in 0..20 {
            let mut third = connect(&stack, PATH).await;
            send(&mut third, start.clone()).await;
            if next(&mut third).await.unwrap()["type"] == "ready" {
                taken = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(taken, "{}", stack.logs());
    });
}
