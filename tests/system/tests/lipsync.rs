//! Lip-sync of a recording through the whole system: the gateway checks and stores the upload
//! (here in a real S3 server, SeaweedFS), the align worker aligns it (pocketsphinx), the
//! lipsync and eyes workers finish it, and the answers are a render's. The recording is speech
//! this same stack synthesised, so its words' true onsets are the synthesiser's own.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Options, Stack, check_completed, run};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const TEXT: &str = "Maybe the bright blue boat will float past the old mill tomorrow.";

fn onsets(result: &Value) -> Vec<f64> {
    result["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["t_ms"].as_f64().unwrap())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes `bytes` as another kind of file with ffmpeg (an independent encoder).
fn transcode(bytes: &[u8], dir: &std::path::Path, extension: &str) -> Vec<u8> {
    let input = dir.join("in.ogg");
    let output = dir.join(format!("out.{extension}"));
    std::fs::write(&input, bytes).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-i"])
        .arg(&input)
        .args(["-ar", "44100", "-ac", "2"])
        .arg(&output)
        .status()
        .expect("ffmpeg (scripts/setup_system.sh test installs it)");
    assert!(status.success());
    std::fs::read(output).unwrap()
}

/// A request body: raw with its content type, or a form.
enum Body {
    Raw(&'static str, Vec<u8>),
    Form(Form),
}

/// POSTs `body` to `path`: the status and the JSON answer.
async fn send(stack: &Stack, path: &str, body: Body) -> (u16, Value) {
    // A fresh connection each: a server that refuses a body unread (413) closes its
    // connection, which a pooled client would otherwise reuse for the next request.
    let request = stack
        .http
        .post(stack.url(path))
        .header("Connection", "close");
    let request = match body {
        Body::Raw(content_type, bytes) => request.header("Content-Type", content_type).body(bytes),
        Body::Form(form) => request.multipart(form),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

#[test]
fn a_recording_is_lip_synced_through_the_pipeline() {
    let stack = Stack::start(Options {
        s3: true,
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(async {
        // The recording, and the truth: the synthesiser's own word timings.
        let (status, truth, _) = stack
            .post(
                "/v1/avatar/render",
                &json!({"text": TEXT, "viseme_set": "rhubarb"}),
            )
            .await;
        assert_eq!(status, 200, "{truth}");
        let ogg = stack.fetch(truth["audio_url"].as_str().unwrap()).await;

        // Raw body, transcript as a query parameter (as the client wrote it: marks located in
        // it, leading space and all).
        let sent = format!("  {TEXT}");
        let query =
            serde_urlencoded::to_string([("transcript", sent.as_str()), ("viseme_set", "rhubarb")])
                .unwrap();
        let (status, body) = send(
            &stack,
            &format!("/v1/avatar/lipsync?{query}"),
            Body::Raw("audio/ogg", ogg.clone()),
        )
        .await;
        assert_eq!(status, 200, "{body}\n{}", stack.logs());
        check_completed(&body);
        assert_eq!(body["viseme_set"], "rhubarb");
        assert_eq!(body["cached"], false);
        assert!(body.get("transcript").is_none(), "{body}");
        let words = body["words"].as_array().unwrap();
        assert_eq!(words.len(), truth["words"].as_array().unwrap().len());
        for (w, t) in words.iter().zip(truth["words"].as_array().unwrap()) {
            assert_eq!(w["text"], t["text"]);
            assert_eq!(w["aligned"], true, "{w}");
            let (start, end) = (
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(&sent[start..end], w["text"].as_str().unwrap());
        }
        let errors: Vec<f64> = onsets(&body)
            .iter()
            .zip(onsets(&truth))
            .map(|(a, t)| (a - t).abs())
            .collect();
        assert!(
            median(errors.clone()) <= 40.0,
            "word onset errors {errors:?}"
        );
        assert!(
            (body["duration_ms"].as_f64().unwrap() - truth["duration_ms"].as_f64().unwrap()).abs()
                <= 10.0
        );
        // The lips close for every b, p and m: rhubarb's A.
        let closures = body["mouth_cues"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["viseme"] == "A")
            .count();
        assert!(closures >= 6, "{closures} closures: {}", body["mouth_cues"]);

        // The upload is stored in the bucket and served as what it is.
        let url = body["audio_url"].as_str().unwrap();
        assert!(url.ends_with("-recording.ogg"), "{url}");
        let served = stack.http.get(url).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], "audio/ogg");
        assert_eq!(served.bytes().await.unwrap().to_vec(), ogg);
        assert!(stack.audio_files().is_empty(), "nothing on local disk");

        // Polling and subtitles, as for a render.
        let id = body["render_id"].as_str().unwrap();
        let (status, polled) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(polled["mouth_cues"], body["mouth_cues"]);
        assert_eq!(polled["words"], body["words"]);
        let vtt = stack
            .http
            .get(stack.url(&format!("/v1/avatar/render/{id}/subtitles.vtt")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            vtt.starts_with("WEBVTT") && vtt.contains("tomorrow."),
            "{vtt}"
        );

        // The same upload again is a cache hit; another transcript is another render.
        let (status, again) = send(
            &stack,
            &format!("/v1/avatar/lipsync?{query}"),
            Body::Raw("audio/ogg", ogg.clone()),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(again["cached"], true);
        assert_eq!(again["words"], body["words"]);

        // A form with an MP3 of it (44.1 kHz stereo, another encoder), recognised: no
        // transcript. Best effort, and said so.
        let mp3 = transcode(&ogg, work.path(), "mp3");
        let form = Form::new()
            .part("audio", Part::bytes(mp3.clone()).file_name("take-1.mp3"))
            .text("viseme_set", "oculus");
        let (status, heard) = send(&stack, "/v1/avatar/lipsync", Body::Form(form)).await;
        assert_eq!(status, 200, "{heard}\n{}", stack.logs());
        assert_ne!(heard["render_id"], body["render_id"]);
        assert!(
            heard["audio_url"]
                .as_str()
                .unwrap()
                .ends_with("-recording.mp3")
        );
        let transcript = heard["transcript"].as_str().unwrap();
        // Recognition is best effort (13-47 % word error on clean speech): most words heard.
        let said: Vec<String> = TEXT
            .split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .collect();
        let heard_words = transcript
            .split_whitespace()
            .filter(|w| said.contains(&w.to_lowercase()))
            .count();
        assert!(heard_words * 2 >= said.len(), "{transcript}");
        for w in heard["words"].as_array().unwrap() {
            assert_eq!(w["aligned"], false, "{w}");
            let c = w["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c), "{w}");
        }
        let served = stack
            .http
            .get(heard["audio_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(served.headers()["content-type"], "audio/mpeg");

        // Another engine's word timings (here the synthesiser's, in seconds): taken as given.
        let timed: Vec<Value> = truth["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                json!({"word": w["text"], "start": w["t_ms"].as_f64().unwrap() / 1000.0,
                       "end": w["end_ms"].as_f64().unwrap() / 1000.0})
            })
            .collect();
        let wav = transcode(&ogg, work.path(), "wav");
        let form = Form::new()
            .part("audio", Part::bytes(wav).mime_str("audio/wav").unwrap())
            .text("timings", json!({"words": timed}).to_string());
        let (status, given) = send(&stack, "/v1/avatar/lipsync_async", Body::Form(form)).await;
        assert_eq!(status, 202, "{given}");
        let poll_url = given["poll_url"].as_str().unwrap();
        let id = poll_url.rsplit('/').next().unwrap();
        let given = stack.wait_final(id, Duration::from_secs(60)).await;
        assert_eq!(given["status"], "completed", "{given}");
        for (a, t) in onsets(&given).iter().zip(onsets(&truth)) {
            assert!((a - t).abs() <= 1.0, "{a} vs {t}");
        }
    });
}

#[test]
fn bad_recordings_are_refused_naming_the_field_and_nothing_is_kept() {
    let stack = Stack::start(Options::default());
    run(async {
        let speech = {
            let (_, truth, _) = stack
                .post("/v1/avatar/render", &json!({"text": "Hi there."}))
                .await;
            stack.fetch(truth["audio_url"].as_str().unwrap()).await
        };
        let files_before = stack.audio_files().len();
        let silent = {
            let mut wav =
                b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0data"
                    .to_vec();
            wav.extend((32_000u32).to_le_bytes());
            wav.extend(vec![0u8; 32_000]);
            let riff = (wav.len() - 8) as u32;
            wav[4..8].copy_from_slice(&riff.to_le_bytes());
            wav
        };
        let cases: Vec<(&str, Body, u16, &str)> = vec![
            (
                "/v1/avatar/lipsync",
                Body::Raw(
                    "multipart/form-data; boundary=XyZ",
                    b"--XyZ\r\nContent-Disposition: form-data; name=\"audio\"\r\n\r\ncut short"
                        .to_vec(),
                ),
                400,
                "body",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw("application/json", b"{\"text\":\"hi\"}".to_vec()),
                415,
                "Content-Type",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw("text/plain", b"just some words".to_vec()),
                422,
                "audio",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw("audio/wav", Vec::new()),
                422,
                "audio",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw("audio/wav", silent.clone()),
                422,
                "audio",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw(
                    "audio/ogg",
                    speech[..speech.len() / 3].iter().rev().copied().collect(),
                ),
                422,
                "audio",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Raw("audio/ogg", vec![0u8; 26 * 1024 * 1024]),
                413,
                "audio",
            ),
            (
                "/v1/avatar/lipsync?transcript=",
                Body::Raw("audio/ogg", speech.clone()),
                422,
                "transcript",
            ),
            (
                "/v1/avatar/lipsync?pitch=2",
                Body::Raw("audio/ogg", speech.clone()),
                422,
                "pitch",
            ),
            (
                "/v1/avatar/lipsync?viseme_set=lips",
                Body::Raw("audio/ogg", speech.clone()),
                422,
                "viseme_set",
            ),
            (
                "/v1/avatar/lipsync_async",
                Body::Form(Form::new().text("transcript", "Hi there.")),
                422,
                "audio",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Form(
                    Form::new()
                        .part("audio", Part::bytes(speech.clone()))
                        .text("transcript", "x".repeat(5001)),
                ),
                422,
                "transcript",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Form(
                    Form::new()
                        .part("audio", Part::bytes(speech.clone()))
                        .text("timings", "{\"words\": 3}"),
                ),
                422,
                "timings",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Form(
                    Form::new()
                        .part("audio", Part::bytes(speech.clone()))
                        .text("transcript", "Hi.")
                        .text("timings", "[]"),
                ),
                422,
                "timings",
            ),
            (
                "/v1/avatar/lipsync",
                Body::Form(
                    Form::new()
                        .part("audio", Part::bytes(speech.clone()))
                        .part("audio", Part::bytes(speech.clone())),
                ),
                422,
                "audio",
            ),
        ];
        for (path, body, want, field) in cases {
            let (status, answer) = send(&stack, path, body).await;
            assert_eq!(status, want, "{path} {field}: {answer}");
            assert_eq!(answer["field"], field, "{path}: {answer}");
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        // Nothing was stored for any of them, and the pipeline still works.
        assert_eq!(
            stack.audio_files().len(),
            files_before,
            "{:?}",
            stack.audio_files()
        );
        let (status, ok) = send(
            &stack,
            "/v1/avatar/lipsync?transcript=Hi+there.",
            Body::Raw("audio/ogg", speech),
        )
        .await;
        assert_eq!(status, 200, "{ok}");
        assert_eq!(ok["words"].as_array().unwrap().len(), 2);
    });
}
