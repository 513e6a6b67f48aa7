//! The gateway's router in process: each request goes straight to `router(state)` with
//! `tower::ServiceExt::oneshot` (no socket, no other service), against a real nats-server
//! (the one external it needs), so a contract case runs in milliseconds. What needs the
//! workers, several processes or a real socket stays in `tests/system`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use avatar_gateway::{AppState, GatewayConfig, router};
use avatar_runtime::config::Env;
use avatar_runtime::jetstream::Pipeline;
use avatar_runtime::telemetry::Metrics;
use avatar_test_support::{Nats, workspace};

/// A gateway over a fresh nats-server, with no worker behind it.
struct Gateway {
    router: Router,
    _nats: Nats,
    _dir: tempfile::TempDir,
}

async fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let vars: HashMap<String, String> = [
        ("NATS_URL", nats.url()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        (
            "WEB_DIR",
            workspace().join("web-demo").display().to_string(),
        ),
        ("AUDIO_BASE_URL", "http://gateway.test/audio".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = GatewayConfig::from_env(Env::from_map(vars)).expect("config");
    let store = avatar_runtime::storage::open(&config.storage).expect("store");
    let pipeline = Pipeline::start(config.pipeline.clone(), "avatar-gateway-test").await;
    let app = AppState::new(config, pipeline, store, Metrics::new("gateway")).await;
    Gateway {
        router: router(app),
        _nats: nats,
        _dir: dir,
    }
}

/// The answer's status, content type and body (JSON if it is JSON, else a string).
async fn call(gateway: &Gateway, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = gateway.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, content_type, body)
}

fn request(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::POST).uri(path);
    if let Some(t) = content_type {
        builder = builder.header(header::CONTENT_TYPE, t);
    }
    builder.body(body.into()).unwrap()
}

/// A JSON error naming `field` (if given) with this status.
fn assert_error(answer: &(StatusCode, String, Value), status: u16, field: Option<&str>) {
    let (got, content_type, body) = answer;
    assert_eq!(got.as_u16(), status, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {body}"
    );
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    assert_eq!(body["field"].as_str(), field, "{body}");
}

#[tokio::test]
async fn unknown_paths_are_a_json_404_whatever_the_method() {
    let gateway = gateway().await;
    for (method, path) in [
        (Method::GET, "/v1/nothing"),
        (Method::POST, "/v1/nothing"),
        (Method::POST, "/"),
        (Method::DELETE, "/index.html"),
        (Method::PUT, "/v1/avatar/nothing"),
        (Method::GET, "/no-such-file.css"),
    ] {
        let answer = call(&gateway, request(method.clone(), path)).await;
        assert_error(&answer, 404, None);
        assert_eq!(answer.2["error"], "not_found", "{method} {path}");
    }
    // The demo itself is served.
    let (status, content_type, page) = call(&gateway, request(Method::GET, "/")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.as_str().unwrap().contains("Talking avatar"));
}

#[tokio::test]
async fn render_requests_are_refused_naming_the_field_before_anything_is_queued() {
    let gateway = gateway().await;
    let path = "/v1/avatar/render";
    let json = Some("application/json");
    for (content_type, body, status, field) in [
        (
            None,
            json!({"text": "Hi"}).to_string(),
            415,
            Some("Content-Type"),
        ),
        (
            Some("text/plain"),
            "Hi".to_owned(),
            415,
            Some("Content-Type"),
        ),
        (json, "{\"text\": ".to_owned(), 400, Some("body")),
        (json, "[\"Hi\"]".to_owned(), 422, Some("body")),
        (json, json!({"text": ""}).to_string(), 422, Some("text")),
        (
            json,
            json!({"text": "Hi", "speed": 9}).to_string(),
            422,
            Some("speed"),
        ),
        (
            json,
            json!({"text": "Hi", "viseme_set": "x"}).to_string(),
            422,
            Some("viseme_set"),
        ),
        (
            json,
            json!({"text": "Hi", "colour": "red"}).to_string(),
            422,
            Some("colour"),
        ),
        (
            json,
            json!({"text": "x".repeat(5001)}).to_string(),
            422,
            Some("text"),
        ),
        (
            json,
            json!({"text": "x".repeat(70_000)}).to_string(),
            413,
            Some("body"),
        ),
    ] {
        let answer = call(&gateway, post(path, content_type, body.clone())).await;
        assert_error(&answer, status, field);
        let async_answer = call(
            &gateway,
            post("/v1/avatar/render_async", content_type, body),
        )
        .await;
        assert_eq!(async_answer.0, answer.0, "{}", async_answer.2);
    }
    // Valid, but no tts worker has said what it speaks: 503, try again.
    let response = gateway
        .router
        .clone()
        .oneshot(post(path, json, json!({"text": "Hi"}).to_string()))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn recordings_are_refused_naming_the_field_before_anything_is_stored() {
    let gateway = gateway().await;
    for (path, content_type, body, status, field) in [
        (
            "/v1/avatar/lipsync",
            Some("application/json"),
            b"{}".to_vec(),
            415,
            Some("Content-Type"),
        ),
        (
            "/v1/avatar/lipsync",
            Some("audio/wav"),
            Vec::new(),
            422,
            Some("audio"),
        ),
        (
            "/v1/avatar/lipsync",
            Some("audio/wav"),
            b"not audio at all".to_vec(),
            422,
            Some("audio"),
        ),
        (
            "/v1/avatar/lipsync_async",
            Some("audio/ogg"),
            vec![0; 4096],
            422,
            Some("audio"),
        ),
    ] {
        let answer = call(&gateway, post(path, content_type, body)).await;
        assert_error(&answer, status, field);
    }
    let long = "word ".repeat(2000);
    let query = format!("/v1/avatar/lipsync?transcript={}", long.replace(' ', "+"));
    let answer = call(&gateway, post(&query, Some("audio/wav"), vec![0; 64])).await;
    assert_error(&answer, 422, Some("transcript"));
}

#[tokio::test]
async fn the_service_endpoints_and_sockets_answer_as_documented() {
    let gateway = gateway().await;
    let (status, _, live) = call(&gateway, request(Method::GET, "/livez")).await;
    assert_eq!(
        (status.as_u16(), live["status"].as_str()),
        (200, Some("alive"))
    );
    let (status, _, health) = call(&gateway, request(Method::GET, "/health")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["nats_connected"], true);
    let (status, _, voices) = call(&gateway, request(Method::GET, "/v1/voices")).await;
    assert_eq!(status, 200);
    assert_eq!(voices["voices"], json!([]));
    // No worker: not ready, and it says why.
    let (status, _, ready) = call(&gateway, request(Method::GET, "/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready["reason"].is_string(), "{ready}");
    // The document served is the committed one.
    let (status, content_type, document) =
        call(&gateway, request(Method::GET, "/openapi.json")).await;
    assert_eq!(
        (status.as_u16(), content_type.as_str()),
        (200, "application/json")
    );
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("services/gateway/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(document, committed);
    // Unknown renders and their subtitles: a 404 naming the id.
    let id = "0".repeat(64);
    for path in [
        format!("/v1/avatar/render/{id}"),
        format!("/v1/avatar/render/{id}/subtitles.vtt"),
        "/v1/avatar/render/not-an-id".to_owned(),
    ] {
        let answer = call(&gateway, request(Method::GET, &path)).await;
        assert_error(&answer, 404, Some("render_id"));
    }
    // The sockets without an upgrade: a JSON 426 naming the header.
    for path in ["/v1/avatar/stream", "/v1/avatar/lipsync/live"] {
        let answer = call(&gateway, request(Method::GET, path)).await;
        assert_error(&answer, 426, Some("Upgrade"));
    }
}
