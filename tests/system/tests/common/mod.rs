//! Starts the real pipeline for a test: nats-server (JetStream) on a free port, optionally
//! SeaweedFS as S3, and the four service binaries as separate processes. Everything stops
//! when the handles drop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

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

/// SeaweedFS's all-in-one server with an S3 endpoint and a bucket.
pub struct Seaweed {
    pub s3_port: u16,
    pub bucket: String,
    _process: Process,
}

pub const S3_KEY: &str = "avatar-test-key";
pub const S3_SECRET: &str = "avatar-test-secret";

impl Seaweed {
    pub fn start(dir: &Path) -> Self {
        // Six ports in a row plus their gRPC twins (+10000) must be free.
        let base = loop {
            let p = 20000 + (free_port() % 20000);
            let free = (0..6).all(|i| {
                TcpListener::bind(("127.0.0.1", p + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", p + i + 10000)).is_ok()
            });
            if free {
                break p;
            }
        };
        let bucket = "avatar-audio".to_string();
        let data = dir.join("weed");
        std::fs::create_dir_all(&data).unwrap();
        let env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
            ("S3_BUCKET", bucket.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let port = |i: u16| (base + i).to_string();
        let args = [
            "mini".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", port(0)),
            format!("-volume.port={}", port(1)),
            format!("-filer.port={}", port(2)),
            format!("-s3.port={}", port(3)),
            format!("-webdav.port={}", port(4)),
            format!("-admin.port={}", port(5)),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn("seaweedfs", &servers_bin().join("weed"), &args, &env, dir);
        let weed = Self {
            s3_port: base + 3,
            bucket,
            _process: process,
        };
        weed.wait_ready();
        weed
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn storage_env(&self) -> Vec<(String, String)> {
        [
            ("STORAGE_BACKEND", "s3".to_string()),
            ("S3_ENDPOINT", self.endpoint()),
            ("S3_BUCKET", self.bucket.clone()),
            ("S3_ACCESS_KEY_ID", S3_KEY.into()),
            ("S3_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("S3_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Until a real, signed S3 put succeeds.
    fn wait_ready(&self) {
        let config = avatar_runtime::config::StorageConfig::S3 {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            bucket: self.bucket.clone(),
            access_key_id: Some(S3_KEY.into()),
            secret_access_key: Some(S3_SECRET.into()),
            path_style: true,
            allow_http: true,
        };
        let store = avatar_runtime::storage::open(&config).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ready = wait_for(Duration::from_secs(60), || {
            runtime.block_on(async {
                use object_store::ObjectStoreExt;
                store
                    .put(
                        &object_store::path::Path::from("ready"),
                        b"ok".to_vec().into(),
                    )
                    .await
                    .is_ok()
            })
        });
        assert!(ready.is_some(), "SeaweedFS S3 did not come up");
    }
}

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

/// A real Kubernetes control plane (etcd, kube-apiserver with TLS, token authentication and
/// RBAC, kube-controller-manager) on loopback, from `scripts/k8s_control_plane.sh`; stopped,
/// by the PIDs it started, when dropped.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

impl ControlPlane {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(workspace().join("scripts/k8s_control_plane.sh"))
            .arg("up")
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/k8s_control_plane.sh");
        let mut plane = Self {
            env: HashMap::new(),
            dir,
        };
        assert!(
            out.status.success(),
            "the control plane did not start:\n{}",
            plane.logs()
        );
        plane.env = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        plane
    }

    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the control plane's env"))
    }

    /// kubectl as the cluster admin; `input` goes to its stdin.
    pub fn kubectl_with(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(self.var("KUBECTL"))
            .args(args)
            .env("KUBECONFIG", self.var("KUBECONFIG"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// kubectl as the cluster admin; panics with its output unless it succeeds.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_ok(args, None)
    }

    pub fn kubectl_ok(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.kubectl_with(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).unwrap()
    }

    /// A kubeconfig that authenticates as a service account (its token secret, which the
    /// controller manager creates), for a process that must have only that account's rights.
    pub fn service_account_kubeconfig(&self, namespace: &str, account: &str) -> PathBuf {
        let mut secret = String::new();
        let made = wait_for(Duration::from_secs(30), || {
            let out = self.kubectl_with(
                &[
                    "get",
                    "serviceaccount",
                    account,
                    "-n",
                    namespace,
                    "-o",
                    "jsonpath={.secrets[0].name}",
                ],
                None,
            );
            secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            out.status.success() && !secret.is_empty()
        });
        assert!(made.is_some(), "no token secret for {namespace}/{account}");
        let token = self.kubectl(&[
            "get",
            "secret",
            &secret,
            "-n",
            namespace,
            "-o",
            "go-template={{.data.token | base64decode}}",
        ]);
        let path = self
            .dir
            .path()
            .join(format!("{namespace}-{account}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {account}\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: local, user: {account}, namespace: {namespace}}}\ncurrent-context: sa\n",
                self.var("APISERVER"),
                self.var("CA_FILE"),
            ),
        )
        .unwrap();
        path
    }

    /// Stops the API server, keeps it down for `down_for`, starts it again (same port, same
    /// etcd data, same certificate).
    pub fn restart_apiserver(&self, down_for: Duration) {
        let status = Command::new(workspace().join("scripts/k8s_control_plane.sh"))
            .arg("restart-apiserver")
            .arg(self.dir.path())
            .arg(format!("{}", down_for.as_secs_f64()))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the API server did not come back:\n{}",
            self.logs()
        );
    }

    pub fn logs(&self) -> String {
        ["apiserver.log", "controller-manager.log", "etcd.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- {name} ---\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(workspace().join("scripts/k8s_control_plane.sh"))
            .arg("down")
            .arg(self.dir.path())
            .status();
    }
}

/// The chart rendered by `scripts/render_chart.sh` (helm template) with these arguments, as
/// YAML documents.
pub fn render_chart(args: &[&str]) -> Vec<serde_yaml::Value> {
    let out = Command::new(workspace().join("scripts/render_chart.sh"))
        .args(args)
        .output()
        .expect("scripts/render_chart.sh");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn workspace_path(relative: &str) -> PathBuf {
    workspace().join(relative)
}
