//! The AvatarRender controller against a scripted Kubernetes API (tower-test), with the real
//! pipeline behind it (nats-server, workers, voice): each reconciliation's API calls, status
//! patches and events are asserted exactly.
//!
//! Longer than 400 lines on purpose: the scripted API has to be answered call by call, and
//! each scenario spells out every request the controller makes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use avatar_controller::{
    AvatarRender, AvatarRenderSpec, AvatarRenderStatus, Context, Phase, Settings,
};
use avatar_domain::{RenderRequest, VisemeSet};
use avatar_runtime::config::{PipelineConfig, StorageConfig};
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::VoiceRegistry;
use common::{Options, Stack, run};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

const NAMESPACE: &str = "default";

/// The scripted API server: every request the controller makes is checked and answered here.
struct ApiServer(mock::Handle<Request<Body>, Response<Body>>);

impl ApiServer {
    async fn next(
        &mut self,
    ) -> (
        http::Method,
        String,
        Value,
        mock::SendResponse<Response<Body>>,
    ) {
        let (request, send) = tokio::time::timeout(Duration::from_secs(10), self.0.next_request())
            .await
            .expect("the controller made no API call")
            .expect("the client was dropped");
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let body = request.into_body().collect_bytes().await.unwrap();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (method, path, json, send)
    }

    /// A status merge patch of `name`; answered with the object carrying that status.
    async fn expect_status_patch(&mut self, obj: &AvatarRender) -> AvatarRenderStatus {
        let (method, path, body, send) = self.next().await;
        assert_eq!(method, http::Method::PATCH, "{path} {body}");
        assert_eq!(
            path,
            format!(
                "/apis/avatar.pipeline.dev/v1alpha1/namespaces/{NAMESPACE}/avatarrenders/{}/status",
                obj.metadata.name.as_ref().unwrap()
            )
        );
        let status: AvatarRenderStatus =
            serde_json::from_value(body["status"].clone()).expect("a status patch");
        let mut answer = obj.clone();
        answer.status = Some(status.clone());
        send.send_response(
            Response::builder()
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
        status
    }

    /// An event about the object; answered as created.
    async fn expect_event(&mut self, type_: &str, reason: &str) -> Value {
        let (method, path, body, send) = self.next().await;
        assert_eq!(method, http::Method::POST, "{path} {body}");
        assert_eq!(
            path,
            format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events")
        );
        assert_eq!(
            (body["type"].as_str(), body["reason"].as_str()),
            (Some(type_), Some(reason)),
            "{body}"
        );
        assert_eq!(body["regarding"]["kind"], "AvatarRender");
        assert_eq!(body["reportingController"], "avatar-controller");
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        body
    }

    /// Answers the next call with a server error.
    async fn fail_next(&mut self) {
        let (_, _, _, send) = self.next().await;
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd is having a bad day", "reason": "InternalError", "code": 500});
        send.send_response(
            Response::builder()
                .status(500)
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
    }

    /// No call arrives.
    async fn expect_silence(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.0.next_request()).await;
        assert!(next.is_err(), "unexpected API call");
    }
}

fn avatar(
    name: &str,
    spec: AvatarRenderSpec,
    generation: i64,
    status: Option<AvatarRenderStatus>,
) -> AvatarRender {
    let mut obj = AvatarRender::new(name, spec);
    obj.metadata.namespace = Some(NAMESPACE.into());
    obj.metadata.generation = Some(generation);
    obj.metadata.uid = Some(format!("uid-{name}"));
    obj.status = status;
    obj
}

fn spec(text: &str) -> AvatarRenderSpec {
    AvatarRenderSpec {
        text: text.into(),
        voice_id: None,
        speed: 1.0,
        viseme_set: VisemeSet::Basic,
    }
}

fn render_id_of(spec: &AvatarRenderSpec) -> String {
    let request = RenderRequest {
        text: spec.text.clone(),
        voice_id: spec.voice_id.clone(),
        speed: Some(spec.speed),
        viseme_set: Some(spec.viseme_set),
    };
    avatar_domain::render_id(&request.validate(common::VOICE).unwrap())
}

/// A controller context on the stack's NATS and store, with a scripted API server.
async fn context(stack: &Stack) -> (Arc<Context>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, NAMESPACE);
    let pipeline = Pipeline::start(
        PipelineConfig {
            nats_url: stack.env["NATS_URL"].clone(),
            ..PipelineConfig::from_env(&mut avatar_runtime::config::Env::from_map(
                Default::default(),
            ))
        },
        "controller-test",
    )
    .await;
    let voices = VoiceRegistry::start(pipeline.clone()).await;
    for _ in 0..100 {
        if !voices.list().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = avatar_runtime::storage::open(&StorageConfig::Local {
        dir: stack.env["DATA_DIR"].clone().into(),
    })
    .unwrap();
    let settings = Settings {
        audio_base_url: stack.url("/audio"),
        results_base_url: stack.url("/results"),
        default_voice: Some(common::VOICE.into()),
        instance: None,
    };
    let ctx = Context::new(
        client,
        pipeline,
        voices,
        store,
        settings,
        Metrics::new("controller-test"),
    );
    (Arc::new(ctx), ApiServer(handle))
}

async fn wait_for_record(stack: &Stack, id: &str, status: &str) {
    for _ in 0..600 {
        let (_, body) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        if body["status"] == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("render {id} never became {status}");
}

/// Reconciles and scripts the API server at the same time.
async fn reconcile_with<F: std::future::Future<Output = T>, T>(
    obj: &AvatarRender,
    ctx: &Arc<Context>,
    script: F,
) -> (
    Result<kube::runtime::controller::Action, avatar_controller::Error>,
    T,
) {
    tokio::join!(
        avatar_controller::reconcile(Arc::new(obj.clone()), ctx.clone()),
        script
    )
}

fn action(result: &Result<kube::runtime::controller::Action, avatar_controller::Error>) -> String {
    format!("{:?}", result.as_ref().expect("reconciled"))
}

#[test]
fn a_new_resource_renders_completes_and_then_rests() {
    let stack = Stack::start(Options::default());
    run(async {
        let (ctx, mut api) = context(&stack).await;
        // As a YAML block scalar may give it: the marks are located in this text as written.
        let spec = spec("\n  Hello from a\r\ncustom resource.\n");
        let id = render_id_of(&spec);
        let created = avatar("hello", spec.clone(), 1, None);

        // Submitted: status Rendering with the render id and generation, a Submitted event.
        let (result, status) = reconcile_with(&created, &ctx, async {
            let status = api.expect_status_patch(&created).await;
            let event = api.expect_event("Normal", "Submitted").await;
            assert!(event["note"].as_str().unwrap().contains(&id));
            status
        })
        .await;
        assert!(
            action(&result).contains("requeue_after: Some(1s)"),
            "{}",
            action(&result)
        );
        assert_eq!(status.phase, Some(Phase::Rendering));
        assert_eq!(status.render_id.as_deref(), Some(id.as_str()));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.conditions[0].type_, "Ready");
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", "Rendering")
        );

        // Requeued while the pipeline works: once the record is completed, Completed.
        wait_for_record(&stack, &id, "completed").await;
        let rendering = avatar("hello", spec.clone(), 1, Some(status));
        let (result, status) = reconcile_with(&rendering, &ctx, async {
            let status = api.expect_status_patch(&rendering).await;
            api.expect_event("Normal", "Completed").await;
            status
        })
        .await;
        assert!(
            action(&result).contains("requeue_after: None"),
            "{}",
            action(&result)
        );
        let (_, full) = stack.get(&format!("/v1/avatar/render/{id}")).await;
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.duration_ms, full["duration_ms"].as_u64());
        assert_eq!(
            status.mouth_cue_count,
            Some(full["mouth_cues"].as_array().unwrap().len() as u32)
        );
        assert_eq!(
            status.eye_event_count,
            Some(full["eye_events"].as_array().unwrap().len() as u32)
        );
        assert_eq!(status.cached, Some(false));
        assert_eq!(status.audio_url.as_deref(), full["audio_url"].as_str());
        assert_eq!(
            status.result_url,
            Some(stack.url(&format!("/results/{id}.json")))
        );
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", "Completed")
        );

        // The full result is in the object store, served by the gateway, not in the status.
        let (code, stored) = stack.get(&format!("/results/{id}.json")).await;
        assert_eq!(code, 200);
        assert_eq!(stored["mouth_cues"], full["mouth_cues"]);
        assert_eq!(stored["audio_url"], full["audio_url"]);
        // Its word marks locate each word in spec.text as written (UTF-16 offsets).
        let text: Vec<u16> = spec.text.encode_utf16().collect();
        let words: Vec<String> = stored["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                let (start, end) = (w["start"].as_u64().unwrap(), w["end"].as_u64().unwrap());
                let located = String::from_utf16(&text[start as usize..end as usize]).unwrap();
                assert_eq!(located, w["text"].as_str().unwrap(), "{w}");
                located
            })
            .collect();
        assert_eq!(words, ["Hello", "from", "a", "custom", "resource"]);
        assert_eq!(status.word_count, Some(5));
        assert_eq!(status.sentence_count, Some(1));

        // Done: nothing more to do, no API calls.
        let done = avatar("hello", spec, 1, Some(status));
        let (result, ()) = reconcile_with(&done, &ctx, api.expect_silence()).await;
        assert!(action(&result).contains("requeue_after: None"));
    });
}

#[test]
fn a_spec_change_renders_again_and_a_cached_render_completes_at_once() {
    let stack = Stack::start(Options::default());
    run(async {
        let (ctx, mut api) = context(&stack).await;
        // Rendered once through the HTTP API: the resource's first render is a cache hit.
        let first = spec("Rendered before the resource existed.");
        let (code, body, _) = stack
            .post("/v1/avatar/render", &json!({"text": first.text}))
            .await;
        assert_eq!(code, 200, "{body}");
        let obj = avatar("cached", first.clone(), 1, None);
        let (result, status) = reconcile_with(&obj, &ctx, async {
            let status = api.expect_status_patch(&obj).await;
            api.expect_event("Normal", "Completed").await;
            status
        })
        .await;
        assert!(action(&result).contains("requeue_after: None"));
        assert_eq!(status.phase, Some(Phase::Completed));
        assert_eq!(status.cached, Some(true));
        assert_eq!(
            status.render_id,
            body["render_id"].as_str().map(str::to_owned)
        );

        // The spec changes (generation 2): a new render, back to Rendering.
        let mut changed = first.clone();
        changed.viseme_set = VisemeSet::Oculus;
        let obj = avatar("cached", changed.clone(), 2, Some(status));
        let (result, status) = reconcile_with(&obj, &ctx, async {
            let status = api.expect_status_patch(&obj).await;
            api.expect_event("Normal", "Submitted").await;
            status
        })
        .await;
        assert!(action(&result).contains("requeue_after: Some(1s)"));
        assert_eq!(status.phase, Some(Phase::Rendering));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.render_id, Some(render_id_of(&changed)));
        assert_ne!(status.render_id.as_deref(), body["render_id"].as_str());
    });
}

#[test]
fn a_failed_render_ends_failed_with_the_pipelines_reason() {
    let voices = tempfile::tempdir().unwrap();
    for ext in ["onnx", "onnx.json"] {
        std::fs::copy(
            common::voices_dir().join(format!("{}.{ext}", common::VOICE)),
            voices.path().join(format!("{}.{ext}", common::VOICE)),
        )
        .unwrap();
    }
    avatar_test_support::broken_voice(voices.path(), "en_US-broken-medium");
    let stack = Stack::start(Options {
        voices_dir: voices.path().to_owned(),
        env: vec![("JOB_MAX_DELIVER".into(), "1".into())],
        ..Default::default()
    });
    run(async {
        let (ctx, mut api) = context(&stack).await;
        let mut broken = spec("This voice cannot speak.");
        broken.voice_id = Some("en_US-broken-medium".into());
        let id = render_id_of(&AvatarRenderSpec {
            voice_id: Some("en_US-broken-medium".into()),
            ..broken.clone()
        });
        let obj = avatar("broken", broken.clone(), 1, None);
        let (_, status) = reconcile_with(&obj, &ctx, async {
            let status = api.expect_status_patch(&obj).await;
            api.expect_event("Normal", "Submitted").await;
            status
        })
        .await;
        wait_for_record(&stack, &id, "failed").await;
        let obj = avatar("broken", broken, 1, Some(status));
        let (result, status) = reconcile_with(&obj, &ctx, async {
            let status = api.expect_status_patch(&obj).await;
            let event = api.expect_event("Warning", "RenderFailed").await;
            assert!(
                event["note"]
                    .as_str()
                    .unwrap()
                    .contains("en_US-broken-medium.onnx"),
                "{event}"
            );
            status
        })
        .await;
        assert!(
            action(&result).contains("requeue_after: None"),
            "failed renders are not retried"
        );
        assert_eq!(status.phase, Some(Phase::Failed));
        let message = status.message.unwrap();
        assert!(
            message.contains("en_US-broken-medium.onnx") && message.contains("after 1 attempt:"),
            "{message}"
        );
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", "RenderFailed")
        );
    });
}

#[test]
fn bad_specs_fail_naming_the_field_and_transient_errors_back_off() {
    let stack = Stack::start(Options::default());
    run(async {
        let (ctx, mut api) = context(&stack).await;
        let cases = [
            (spec("   \n  "), "spec.text"),
            (
                AvatarRenderSpec {
                    speed: 3.0,
                    ..spec("Too fast.")
                },
                "spec.speed",
            ),
            (
                AvatarRenderSpec {
                    voice_id: Some("en_US-nobody-medium".into()),
                    ..spec("Who?")
                },
                "spec.voiceId",
            ),
            (spec(&"a".repeat(5001)), "spec.text"),
        ];
        for (i, (bad, field)) in cases.into_iter().enumerate() {
            let obj = avatar(&format!("bad-{i}"), bad, 1, None);
            let (result, status) = reconcile_with(&obj, &ctx, async {
                let status = api.expect_status_patch(&obj).await;
                let event = api.expect_event("Warning", "InvalidSpec").await;
                assert!(event["note"].as_str().unwrap().contains(field), "{event}");
                status
            })
            .await;
            assert!(
                action(&result).contains("requeue_after: None"),
                "bad specs are not retried"
            );
            assert_eq!(status.phase, Some(Phase::Failed));
            assert!(
                status.message.as_deref().unwrap().starts_with(field),
                "{:?}",
                status.message
            );
        }

        // The API server failing: an error, and growing back-off on repeated failures.
        let obj = Arc::new(avatar("flaky", spec("The API server is flaky."), 1, None));
        let mut delays = Vec::new();
        for _ in 0..3 {
            let (result, ()) = tokio::join!(
                avatar_controller::reconcile(obj.clone(), ctx.clone()),
                api.fail_next()
            );
            let error = result.expect_err("a failed status patch is an error");
            delays.push(format!(
                "{:?}",
                avatar_controller::error_policy(obj.clone(), &error, ctx.clone())
            ));
        }
        assert_eq!(
            delays,
            [
                "Action { requeue_after: Some(1s) }",
                "Action { requeue_after: Some(2s) }",
                "Action { requeue_after: Some(4s) }"
            ]
        );
        let metrics = ctx.metrics.render();
        assert_eq!(
            common::metric(
                &metrics,
                "avatar_reconciles_total",
                &[("outcome", "invalid")]
            ),
            Some(4.0),
            "{metrics}"
        );
        assert_eq!(
            common::metric(&metrics, "avatar_reconciles_total", &[("outcome", "error")]),
            Some(3.0),
            "{metrics}"
        );
    });
}
