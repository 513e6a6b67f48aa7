//! What must survive: killed workers, a restarted NATS, renders that can never succeed,
//! more requests than allowed, services started before NATS.

mod common;

use std::time::{Duration, Instant};

use common::{Options, Stack, check_completed, probe_ms, run};
use serde_json::json;

/// About 1,300 characters: several seconds of synthesis on one thread.
fn long_text() -> String {
    "The lighthouse keeper climbed the stairs every evening, polished the lens, and watched the boats come home. "
        .repeat(12)
}

async fn status_of(stack: &Stack, id: &str) -> String {
    let (_, body) = stack.get(&format!("/v1/avatar/render/{id}")).await;
    body["status"].as_str().unwrap_or("").to_owned()
}

#[test]
fn a_killed_tts_worker_does_not_lose_the_job() {
    let mut stack = Stack::start(Options {
        env: vec![("JOB_ACK_WAIT_SECONDS".into(), "2".into())],
        ..Default::default()
    });
    let id = run(async {
        let (status, accepted, _) = stack
            .post("/v1/avatar/render_async", &json!({"text": long_text()}))
            .await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["render_id"].as_str().unwrap().to_owned();
        // Wait until the worker has it, then kill the worker in the middle of synthesis.
        let started = Instant::now();
        while status_of(&stack, &id).await != "rendering" {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never started rendering"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        id
    });
    stack.tts[0].kill();
    run(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            status_of(&stack, &id).await,
            "rendering",
            "completed without a worker?"
        );
    });
    stack.add_tts_worker();
    run(async {
        let done = stack.wait_final(&id, Duration::from_secs(120)).await;
        check_completed(&done);
        // Audio and cues from one synthesis run: the decoded audio is exactly as long as the
        // timeline the cues were made from (durations differ from run to run).
        let audio = stack.fetch(done["audio_url"].as_str().unwrap()).await;
        let ms = probe_ms(&audio);
        assert!(
            (ms - done["duration_ms"].as_f64().unwrap()).abs() <= 20.0,
            "audio {ms} ms vs {}",
            done["duration_ms"]
        );
        assert_eq!(stack.audio_files().len(), 1, "{:?}", stack.audio_files());
    });
}

#[test]
fn jobs_queued_across_a_nats_restart_all_complete() {
    let mut stack = Stack::start(Options::default());
    // No tts worker for a while: jobs pile up in the stream.
    stack.tts[0].kill();
    let ids: Vec<String> = run(async {
        let mut ids = Vec::new();
        for i in 0..5 {
            let (status, body, _) = stack
                .post(
                    "/v1/avatar/render_async",
                    &json!({"text": format!("Queued job number {i} survives the restart.")}),
                )
                .await;
            assert_eq!(status, 202, "{body}");
            ids.push(body["render_id"].as_str().unwrap().to_owned());
        }
        ids
    });
    stack.nats.restart(Duration::from_secs(1));
    stack.add_tts_worker();
    run(async {
        for id in &ids {
            let done = stack.wait_final(id, Duration::from_secs(90)).await;
            check_completed(&done);
        }
        // And the gateway is healthy again.
        let (status, health) = stack.get("/health").await;
        assert_eq!(status, 200, "{health}");
        // New renders work after the restart too.
        let (status, body, _) = stack
            .post("/v1/avatar/render", &json!({"text": "After the restart."}))
            .await;
        assert_eq!(status, 200, "{body}");
    });
}

#[test]
fn a_render_that_can_never_succeed_fails_and_does_not_poison_the_cache() {
    let voices = tempfile::tempdir().unwrap();
    let joe = common::voices_dir().join(format!("{}.onnx", common::VOICE));
    std::fs::copy(&joe, voices.path().join(format!("{}.onnx", common::VOICE))).unwrap();
    let config = common::voices_dir().join(format!("{}.onnx.json", common::VOICE));
    std::fs::copy(
        &config,
        voices.path().join(format!("{}.onnx.json", common::VOICE)),
    )
    .unwrap();
    std::fs::copy(&config, voices.path().join("en_US-broken-medium.onnx.json")).unwrap();
    std::fs::write(
        voices.path().join("en_US-broken-medium.onnx"),
        vec![0x42u8; 10_000],
    )
    .unwrap();
    let stack = Stack::start(Options {
        voices_dir: voices.path().to_owned(),
        env: vec![("JOB_MAX_DELIVER".into(), "2".into())],
        ..Default::default()
    });
    run(async {
        let request = json!({"text": "This voice is broken.", "voice_id": "en_US-broken-medium"});
        let started = Instant::now();
        let (status, failed, _) = stack.post("/v1/avatar/render", &request).await;
        assert_eq!(status, 500, "{failed}");
        assert_eq!(failed["status"], "failed");
        let reason = failed["error"].as_str().unwrap();
        assert!(
            reason.contains("en_US-broken-medium.onnx") && reason.contains("after 2 attempts"),
            "{reason}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        // Polling tells the same story.
        let (status, polled) = stack
            .get(&format!(
                "/v1/avatar/render/{}",
                failed["render_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!((status, polled["status"].as_str()), (200, Some("failed")));
        // It has no subtitles: a JSON 409 that says it failed, and why.
        let (status, none) = stack
            .get(&format!(
                "/v1/avatar/render/{}/subtitles.vtt",
                failed["render_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 409, "{none}");
        assert_eq!(none["error"], "render_failed", "{none}");
        let message = none["message"].as_str().unwrap();
        assert!(
            message.contains("failed") && message.contains("en_US-broken-medium.onnx"),
            "{message}"
        );

        // Fix the voice: the same request now renders.
        std::fs::copy(&joe, voices.path().join("en_US-broken-medium.onnx")).unwrap();
        let (status, fixed, _) = stack.post("/v1/avatar/render", &request).await;
        assert_eq!(status, 200, "{fixed}");
        check_completed(&fixed);
        assert_eq!(fixed["render_id"], failed["render_id"]);
        assert_eq!(fixed["cached"], false);
    });
}

#[test]
fn excess_concurrent_requests_are_shed_with_retry_after() {
    let stack = Stack::start(Options {
        env: vec![("MAX_CONCURRENT_REQUESTS".into(), "2".into())],
        ..Default::default()
    });
    run(async {
        let stack = &stack;
        let requests = (0..8).map(|i| {
            let body =
                json!({"text": format!("Request number {i} wants a render of its own, please.")});
            async move { stack.post("/v1/avatar/render", &body).await }
        });
        let answers = futures::future::join_all(requests).await;
        let mut admitted = 0;
        let mut shed = 0;
        for (status, body, headers) in &answers {
            match status {
                200 => {
                    check_completed(body);
                    admitted += 1;
                }
                503 => {
                    assert_eq!(body["error"], "overloaded", "{body}");
                    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                    assert!(retry >= 1);
                    shed += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!(
            admitted >= 2 && shed >= 1,
            "{admitted} admitted, {shed} shed"
        );
        let (_, metrics) = stack.get("/metrics").await;
        let shed_metric = common::metric(
            metrics.as_str().unwrap(),
            "avatar_renders_total",
            &[("outcome", "shed")],
        );
        assert_eq!(shed_metric, Some(shed as f64));
    });
}

#[test]
fn identical_requests_cost_one_slot_of_the_limit() {
    // Twelve identical requests are one render: with room for two renders, none is shed.
    let stack = Stack::start(Options {
        env: vec![("MAX_CONCURRENT_REQUESTS".into(), "2".into())],
        ..Default::default()
    });
    run(async {
        let stack = &stack;
        let body = json!({"text": "Twelve people asked for exactly this sentence at once."});
        let answers = futures::future::join_all(
            (0..12).map(|_| async { stack.post("/v1/avatar/render", &body).await }),
        )
        .await;
        let ids: std::collections::HashSet<String> = answers
            .iter()
            .map(|(status, body, _)| {
                assert_eq!(*status, 200, "{body}");
                check_completed(body);
                body["render_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1);
        // And the slot is free again: two other renders at once are both admitted.
        let others = futures::future::join_all((0..2).map(|i| async move {
            let body = json!({"text": format!("Another render, number {i}.")});
            stack.post("/v1/avatar/render", &body).await
        }))
        .await;
        for (status, body, _) in others {
            assert_eq!(status, 200, "{body}");
        }
    });
}

#[test]
fn services_started_before_nats_wait_for_it() {
    let stack = Stack::start(Options {
        services_first: true,
        ..Default::default()
    });
    run(async {
        let (status, body, _) = stack
            .post("/v1/avatar/render", &json!({"text": "Patience pays."}))
            .await;
        assert_eq!(status, 200, "{body}");
        check_completed(&body);
    });
    for p in [&stack.gateway, &stack.lipsync, &stack.eyes] {
        assert!(!p.log_text().contains("panicked"), "{}", p.log_text());
    }
}

#[test]
fn health_reports_a_lost_nats() {
    let mut stack = Stack::start(Options::default());
    stack.nats.stop();
    run(async {
        let started = Instant::now();
        loop {
            let (status, health) = stack.get("/health").await;
            if status == 503 {
                assert_eq!(health["status"], "unhealthy");
                assert_eq!(health["nats_connected"], false);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "still healthy: {health}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A render request now is a 503 with Retry-After, not a hang or a crash.
        let (status, body, headers) = stack
            .post("/v1/avatar/render", &json!({"text": "Anyone there?"}))
            .await;
        assert_eq!(status, 503, "{body}");
        assert!(headers.contains_key("retry-after"));
    });
}

#[test]
fn a_render_past_its_lease_is_resubmitted_and_the_stale_job_skipped() {
    let mut stack = Stack::start(Options {
        env: vec![("RENDER_LEASE_SECONDS".into(), "2".into())],
        ..Default::default()
    });
    stack.tts[0].kill();
    let id = run(async {
        let (status, body, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": "Nobody picked me up in time."}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["render_id"].as_str().unwrap().to_owned()
    });
    // Past the lease, a poll resubmits the render (a new submission, a new job).
    std::thread::sleep(Duration::from_millis(2500));
    run(async {
        let (status, body) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "{body}"
        );
    });
    stack.add_tts_worker();
    run(async {
        let done = stack.wait_final(&id, Duration::from_secs(60)).await;
        check_completed(&done);
        // The first submission's job was skipped, not rendered twice.
        let worker = stack.tts.last().unwrap();
        common::wait_for(Duration::from_secs(5), || {
            common::metric(
                &stack.worker_metrics(worker),
                "avatar_jobs_total",
                &[("outcome", "skipped")],
            ) == Some(1.0)
        });
        let metrics = stack.worker_metrics(worker);
        assert_eq!(
            common::metric(&metrics, "avatar_jobs_total", &[("outcome", "skipped")]),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            common::metric(&metrics, "avatar_jobs_total", &[("outcome", "ok")]),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(stack.audio_files().len(), 1);
    });
}
