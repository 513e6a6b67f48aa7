//! Liveness and readiness tell the truth, validation comes before availability, and a
//! render for a voice that was announced before is queued while no tts worker is live.

mod common;

use std::time::Duration;

use common::{Options, Stack, check_completed, run};
use serde_json::json;

/// GET a path: (status, JSON body).
async fn get(stack: &Stack, path: &str) -> (u16, serde_json::Value) {
    stack.get(path).await
}

#[test]
fn ready_only_when_a_render_can_be_accepted_and_client_mistakes_are_always_4xx() {
    // NATS and the gateway, no tts worker yet: alive, not ready, and a client's mistake is
    // still a 422 naming the field, not a 503.
    let mut stack = Stack::start(Options {
        tts_workers: 0,
        env: vec![("SYNC_TIMEOUT_SECONDS".into(), "3".into())],
        ..Default::default()
    });
    run(async {
        let (status, live) = get(&stack, "/livez").await;
        assert_eq!((status, &live["status"]), (200, &json!("alive")));
        let (status, ready) = get(&stack, "/readyz").await;
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["status"], "not_ready");
        assert!(
            ready["reason"].as_str().unwrap().contains("no tts worker"),
            "{ready}"
        );
        let (status, same) = get(&stack, "/ready").await;
        assert_eq!((status, same), (503, ready));
        for (body, field) in [
            (json!({"text": "hi", "speed": null}), "speed"),
            (json!({"text": "hi", "speed": 9}), "speed"),
            (json!({"text": "   "}), "text"),
            (json!({"text": "hi", "viseme_set": "disney"}), "viseme_set"),
            (json!({"text": "hi", "voice_id": "../x"}), "voice_id"),
        ] {
            let (status, answer, _) = stack.post("/v1/avatar/render", &body).await;
            assert_eq!(
                (status, answer["field"].as_str()),
                (422, Some(field)),
                "{body}: {answer}"
            );
        }
        // A valid request cannot be judged or rendered: no voice was ever announced.
        let (status, answer, headers) = stack
            .post("/v1/avatar/render_async", &json!({"text": "Too early."}))
            .await;
        assert_eq!(status, 503, "{answer}");
        assert!(headers.contains_key("retry-after"));
    });

    // A worker announces its voices: ready, and renders work.
    stack.add_tts_worker();
    run(async {
        let became_ready = common::wait_for_async(Duration::from_secs(60), || async {
            get(&stack, "/readyz").await.0 == 200
        })
        .await;
        assert!(became_ready, "{}", stack.logs());
        let (_, ready) = get(&stack, "/readyz").await;
        assert_eq!(ready["voices_live"], 1, "{ready}");
        let (status, body, _) = stack
            .post("/v1/avatar/render", &json!({"text": "Now it speaks."}))
            .await;
        assert_eq!(status, 200, "{body}");
    });

    // Every tts worker stops (a rollout, a scale-down): the voice is remembered, so the
    // gateway stays ready and queues renders instead of refusing them.
    for worker in &mut stack.tts {
        worker.stop();
    }
    let queued = run(async {
        let withdrawn = common::wait_for_async(Duration::from_secs(20), || async {
            get(&stack, "/v1/voices").await.1["voices"]
                .as_array()
                .is_some_and(|v| v.is_empty())
        })
        .await;
        assert!(withdrawn, "a stopped worker withdraws its voices");
        let (status, ready) = get(&stack, "/readyz").await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(
            (
                ready["voices_live"].as_u64(),
                ready["voices_known"].as_u64()
            ),
            (Some(0), Some(1))
        );
        let (status, accepted, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": "Queued while no worker runs."}),
            )
            .await;
        assert_eq!(
            (status, &accepted["status"]),
            (202, &json!("pending")),
            "{accepted}"
        );
        // Its subtitles are not there yet: a JSON 409 naming the status.
        let (status, early) = get(
            &stack,
            &format!(
                "/v1/avatar/render/{}/subtitles.vtt",
                accepted["render_id"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(status, 409, "{early}");
        assert_eq!(early["error"], "render_pending", "{early}");
        assert!(
            early["message"].as_str().unwrap().contains("pending"),
            "{early}"
        );
        // A sync request waits its timeout and hands over the poll URL.
        let (status, waited, _) = stack
            .post(
                "/v1/avatar/render",
                &json!({"text": "Waited for while no worker runs."}),
            )
            .await;
        assert_eq!(status, 202, "{waited}");
        // Unknown voices are still a client's mistake.
        let (status, answer, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": "hi", "voice_id": "xx_XX-nobody"}),
            )
            .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (422, Some("voice_id")),
            "{answer}"
        );
        vec![
            accepted["render_id"].as_str().unwrap().to_owned(),
            waited["render_id"].as_str().unwrap().to_owned(),
        ]
    });

    // A gateway restarted meanwhile remembers the voices (they are kept in NATS).
    stack.restart_gateway();
    run(async {
        let (status, ready) = get(&stack, "/readyz").await;
        assert_eq!(status, 200, "{ready}");
        let (status, accepted, _) = stack
            .post(
                "/v1/avatar/render_async",
                &json!({"text": "Accepted by a fresh gateway."}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
    });

    // A worker comes back: everything queued renders.
    stack.add_tts_worker();
    run(async {
        for id in &queued {
            let done = stack.wait_final(id, Duration::from_secs(120)).await;
            check_completed(&done);
        }
    });
}

#[test]
fn before_nats_is_reached_the_gateway_is_alive_and_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let env: std::collections::HashMap<String, String> = [
        (
            "NATS_URL",
            format!("nats://127.0.0.1:{}", common::free_port()),
        ),
        ("PORT", port.to_string()),
        ("HOST", "127.0.0.1".into()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let gateway = common::Process::spawn(
        "gateway",
        &common::binary("avatar-gateway"),
        &[],
        &env,
        dir.path(),
    );
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let live = common::wait_for(Duration::from_secs(10), || {
        matches!(common::blocking_get(&url("/livez")), Some((200, _)))
    });
    assert!(live.is_some(), "{}", gateway.log_text());
    let (status, ready) = common::blocking_get(&url("/readyz")).unwrap();
    assert_eq!(status, 503);
    assert!(ready.contains("connecting to NATS"), "{ready}");
    let (status, health) = common::blocking_get(&url("/health")).unwrap();
    assert_eq!(status, 503, "{health}");
    let (status, voices) = common::blocking_get(&url("/v1/voices")).unwrap();
    assert_eq!(status, 503, "{voices}");
    assert!(voices.contains("\"error\""), "JSON error body: {voices}");
}
