//! Audio in a real S3 server (SeaweedFS): written by the tts worker, served by the gateway.

mod common;

use common::{Options, Stack, check_completed, probe_ms, run};
use serde_json::json;

#[test]
fn audio_goes_to_s3_and_is_served_through_the_gateway() {
    let stack = Stack::start(Options {
        s3: true,
        ..Default::default()
    });
    run(async {
        let (status, body, _) = stack
            .post(
                "/v1/avatar/render",
                &json!({"text": "Stored in a bucket far away."}),
            )
            .await;
        assert_eq!(status, 200, "{body}\n{}", stack.logs());
        check_completed(&body);
        // Nothing on the local disk: the audio is in the bucket.
        assert!(stack.audio_files().is_empty(), "{:?}", stack.audio_files());
        let seaweed = stack.seaweed.as_ref().unwrap();
        let store = avatar_runtime::storage::open(&avatar_runtime::config::StorageConfig::S3 {
            endpoint: Some(seaweed.endpoint()),
            region: "us-east-1".into(),
            bucket: seaweed.bucket.clone(),
            access_key_id: Some(common::S3_KEY.into()),
            secret_access_key: Some(common::S3_SECRET.into()),
            path_style: true,
            allow_http: true,
        })
        .unwrap();
        let url = body["audio_url"].as_str().unwrap();
        let file = url.rsplit('/').next().unwrap();
        use object_store::ObjectStoreExt;
        let in_bucket = store
            .get(&avatar_runtime::storage::audio_key(file))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        // The browser's URL (through the gateway) gives the same bytes.
        let served = stack.http.get(url).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], "audio/ogg");
        let served = served.bytes().await.unwrap();
        assert_eq!(served, in_bucket);
        let ms = probe_ms(&served);
        assert!((ms - body["duration_ms"].as_f64().unwrap()).abs() <= 20.0);
        // Ranges work against S3 too.
        let part = stack
            .http
            .get(url)
            .header("Range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(part.bytes().await.unwrap(), served.slice(10..20));
        // A range past the end is a 416 from S3 too, judged from the object's size.
        let refused = stack
            .http
            .get(url)
            .header("Range", format!("bytes={}-", served.len()))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 416);
    });
}
