//! Starts the real pipeline for a test: nats-server (JetStream) on a free port, optionally
//! SeaweedFS as S3, and the four service binaries as separate processes. Everything stops
//! when the handles drop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod kubernetes;
mod seaweed;
pub mod socket;
#[allow(unused_imports)] // each test file uses its share
pub use kubernetes::{ControlPlane, render_chart};
#[allow(unused_imports)]
pub use seaweed::{S3_KEY, S3_SECRET, Seaweed};

pub use avatar_test_support::{Nats, Process, VOICE, free_port, servers_bin, wait_for};

use avatar_test_support::workspace;

/// The service binaries, built next to this test (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

pub use avatar_test_support::voices_dir;

/// Polls an async `check` every 100 ms until it holds or `timeout` passes.
pub async fn wait_for_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// How to start a stack.
#[derive(Clone)]
pub struct Options {
    pub tts_workers: usize,
    pub env: Vec<(String, String)>,
    pub voices_dir: PathBuf,
    pub s3: bool,
    /// Start the services before nats-server is up.
    pub services_first: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tts_workers: 1,
            env: Vec::new(),
            voices_dir: voices_dir(),
            s3: false,
            services_first: false,
        }
    }
}

/// The whole pipeline, started for one test.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub nats: Nats,
    pub seaweed: Option<Seaweed>,
    pub gateway: Process,
    pub tts: Vec<Process>,
    pub align: Process,
    pub lipsync: Process,
    pub eyes: Process,
    pub port: u16,
    pub env: HashMap<String, String>,
    pub options: Options,
    pub http: reqwest::Client,
}

impl Stack {
    pub fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // SeaweedFS takes a handful of ports; pick ours once it has them.
        let seaweed = options.s3.then(|| Seaweed::start(dir.path()));
        let port = free_port();
        let nats_port = free_port();
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("NATS_URL".into(), format!("nats://127.0.0.1:{nats_port}"));
        env.insert("PORT".into(), port.to_string());
        env.insert("HOST".into(), "127.0.0.1".into());
        env.insert(
            "DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        env.insert(
            "AUDIO_BASE_URL".into(),
            format!("http://127.0.0.1:{port}/audio"),
        );
        env.insert(
            "VOICES_DIR".into(),
            options.voices_dir.display().to_string(),
        );
        env.insert("DEFAULT_VOICE".into(), VOICE.into());
        env.insert(
            "WEB_DIR".into(),
            workspace().join("web-demo").display().to_string(),
        );
        env.insert("TTS_THREADS".into(), "1".into());
        env.insert("METRICS_PORT".into(), "0".into());
        env.insert("METRICS_HOST".into(), "127.0.0.1".into());
        env.insert("LOG_LEVEL".into(), "info".into());
        env.insert("RUST_BACKTRACE".into(), "1".into());
        if let Some(s) = &seaweed {
            env.extend(s.storage_env());
        }
        env.extend(options.env.iter().cloned());

        let start_nats = |dir: &Path| Nats::start_on(dir, nats_port);
        let mut nats = None;
        if !options.services_first {
            nats = Some(start_nats(dir.path()));
        }
        let logs = dir.path();
        let tts = (0..options.tts_workers)
            .map(|i| Process::spawn(&format!("tts-{i}"), &binary("avatar-tts"), &[], &env, logs))
            .collect();
        let align = Process::spawn("align", &binary("avatar-align"), &[], &env, logs);
        let lipsync = Process::spawn("lipsync", &binary("avatar-lipsync"), &[], &env, logs);
        let eyes = Process::spawn("eyes", &binary("avatar-eyes"), &[], &env, logs);
        let gateway = Process::spawn("gateway", &binary("avatar-gateway"), &[], &env, logs);
        let nats = nats.unwrap_or_else(|| {
            std::thread::sleep(Duration::from_secs(2));
            start_nats(dir.path())
        });
        let stack = Self {
            dir,
            nats,
            seaweed,
            gateway,
            tts,
            align,
            lipsync,
            eyes,
            port,
            env,
            options,
            http: {
                avatar_runtime::tls::install_crypto_provider();
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap()
            },
        };
        if stack.options.tts_workers > 0 {
            stack.wait_ready();
        } else {
            stack.wait_serving();
        }
        stack
    }

    /// Until the gateway serves the API (NATS reached), whatever the workers.
    pub fn wait_serving(&self) {
        let serving = wait_for(Duration::from_secs(60), || {
            matches!(blocking_get(&self.url("/health")), Some((200, _)))
        });
        assert!(
            serving.is_some(),
            "the gateway does not serve:\n{}",
            self.logs()
        );
    }

    /// Stops the gateway (SIGTERM) and starts another with the same settings.
    pub fn restart_gateway(&mut self) {
        self.gateway.stop();
        self.gateway = Process::spawn(
            "gateway-restarted",
            &binary("avatar-gateway"),
            &[],
            &self.env,
            self.dir.path(),
        );
        self.wait_serving();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Until the gateway is healthy and a tts worker has announced its voices.
    pub fn wait_ready(&self) {
        let client = blocking_get;
        let ready = wait_for(Duration::from_secs(60), || {
            let health = client(&self.url("/health"));
            let voices = client(&self.url("/v1/voices"));
            matches!(health, Some((200, _))) && voices.is_some_and(|(_, v)| v.contains("voice_id"))
        });
        assert!(
            ready.is_some(),
            "the stack did not become ready; logs:\n{}",
            self.logs()
        );
    }

    /// Starts another tts worker.
    pub fn add_tts_worker(&mut self) {
        let n = self.tts.len();
        let p = Process::spawn(
            &format!("tts-{n}"),
            &binary("avatar-tts"),
            &[],
            &self.env,
            self.dir.path(),
        );
        self.tts.push(p);
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                all += &format!(
                    "--- {} ---\n{}\n",
                    path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        all
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, json, headers)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The bytes at `url` (an `audio_url`, say), which must answer 200.
    pub async fn fetch(&self, url: &str) -> Vec<u8> {
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().await.unwrap().to_vec()
    }

    /// Polls a render until it is completed or failed.
    pub async fn wait_final(&self, render_id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (_, body) = self.get(&format!("/v1/avatar/render/{render_id}")).await;
            if matches!(body["status"].as_str(), Some("completed" | "failed")) {
                return body;
            }
            assert!(
                started.elapsed() < timeout,
                "render {render_id} not done: {body}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Audio files in the local store.
    pub fn audio_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("data/audio"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The metrics text of a worker, found through its log line.
    pub fn worker_metrics(&self, process: &Process) -> String {
        let log = process.log_text();
        let addr = log
            .lines()
            .rev()
            .find_map(|l| {
                l.split("addr=")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("no metrics address in {}", process.log.display()));
        blocking_get(&format!("http://{addr}/metrics"))
            .expect("worker metrics")
            .1
    }
}

/// A tiny blocking GET without a second HTTP client stack: raw HTTP/1.1 over TCP.
pub mod reqwest_free {
    use std::io::{Read, Write};

    pub fn get(url: &str) -> Option<(u16, String)> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let mut stream = std::net::TcpStream::connect(host).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    }
}

pub use reqwest_free::get as blocking_get;

/// Runs a future on a fresh multi-threaded runtime (tests start their stack outside it).
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The audio's length in milliseconds according to ffprobe.
pub fn probe_ms(bytes: &[u8]) -> f64 {
    avatar_test_support::probe_bytes(bytes).duration_ms
}

/// Checks the timing invariants of a completed render body.
pub fn check_completed(body: &Value) {
    assert_eq!(body["status"], "completed", "{body}");
    let duration = body["duration_ms"].as_u64().unwrap();
    assert!(duration > 0);
    let cues = body["mouth_cues"].as_array().unwrap();
    assert_eq!(cues[0]["t_ms"], 0);
    let mut last = None;
    for c in cues {
        let t = c["t_ms"].as_u64().unwrap();
        assert!(t <= duration);
        assert!(last.is_none_or(|l| l < t), "cues not sorted");
        last = Some(t);
    }
    for e in body["eye_events"].as_array().unwrap() {
        assert!(e["t_ms"].as_u64().unwrap() + e["duration_ms"].as_u64().unwrap() <= duration);
    }
}

/// The value of a Prometheus sample with (at least) these labels.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub fn workspace_path(relative: &str) -> PathBuf {
    workspace().join(relative)
}
