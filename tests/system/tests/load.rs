//! The gateway's footprint stays bounded whatever the request rate: 2,000 synchronous
//! requests within 30 s (cache hits plus a few coalesced renders) all succeed. One shared KV
//! watch serves every waiter; a watch per request would exhaust nats-server's consumer limit.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Options, Stack, run};
use serde_json::json;

#[test]
fn two_thousand_sync_requests_in_thirty_seconds_all_succeed() {
    let stack = Stack::start(Options {
        env: vec![("MAX_CONCURRENT_REQUESTS".into(), "64".into())],
        ..Default::default()
    });
    run(async {
        // Five renders already in the cache.
        let cached: Vec<String> = (0..5)
            .map(|i| format!("Cached sentence number {i}."))
            .collect();
        for text in &cached {
            let (status, _, _) = stack
                .post("/v1/avatar/render", &json!({"text": text}))
                .await;
            assert_eq!(status, 200);
        }
        // Three new ones arrive during the burst, each asked for by many requests at once.
        let fresh: Vec<String> = (0..3)
            .map(|i| format!("A fresh sentence, number {i}, during the burst."))
            .collect();
        let total = 2000;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let stack = &stack;
        let clients = (0..32).map(|_| {
            let next = next.clone();
            let (cached, fresh) = (&cached, &fresh);
            async move {
                let mut failures = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return failures;
                    }
                    // Every 40th request asks for one of the fresh renders.
                    let text = if n % 40 == 7 {
                        &fresh[(n / 40) % 3]
                    } else {
                        &cached[n % 5]
                    };
                    let (status, body, _) = stack
                        .post("/v1/avatar/render", &json!({"text": text}))
                        .await;
                    if status != 200 || body["status"] != "completed" {
                        failures.push(format!("{status}: {body}"));
                    }
                }
            }
        });
        let failures: Vec<String> = futures::future::join_all(clients)
            .await
            .into_iter()
            .flatten()
            .collect();
        let elapsed = started.elapsed();
        assert!(
            failures.is_empty(),
            "{} failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
        eprintln!("{total} requests in {elapsed:?}");
        // Three fresh renders, each synthesised once.
        assert_eq!(stack.audio_files().len(), 5 + 3);
    });
}
