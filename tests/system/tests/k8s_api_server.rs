//! The AvatarRender controller as a real process against a real Kubernetes API server (v1.20,
//! built from Debian's source package by `scripts/k8s_build.sh`: TLS, token authentication,
//! RBAC, with kube-controller-manager), with the real pipeline behind it (nats-server, the
//! workers, the joe voice, SeaweedFS as S3). The CRD is the generated one, applied with
//! kubectl; the controller authenticates as a service account whose only rights are the
//! chart's own ClusterRole (rendered with `helm template`), so a missing verb fails here.
//! The scripted-API tests in `controller.rs` keep the fine-grained call-by-call cases.
//!
//! Longer than 400 lines on purpose: the cluster fixture (control plane, CRD, RBAC, the
//! pipeline) and the two long scenarios that share it, start to finish.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{ControlPlane, Options, Process, Stack, binary, probe_ms, render_chart, run};
use serde_json::Value;

/// Where the test's AvatarRenders live.
const NS: &str = "renders";
/// Where the chart puts the controller's service account (render_chart.sh: release avatar).
const CONTROLLER_NS: &str = "avatar";
const CONTROLLER_ACCOUNT: &str = "avatar-controller";

/// A control plane with the CRD and the chart's RBAC, the pipeline, and the controller.
struct Cluster {
    plane: ControlPlane,
    stack: Stack,
    kubeconfig: PathBuf,
    controller: Process,
    restarts: usize,
}

impl Cluster {
    fn start() -> Self {
        let plane = ControlPlane::start();
        let crd = common::workspace_path("crd/avatarrender.yaml");
        plane.kubectl(&["apply", "-f", crd.to_str().unwrap()]);
        plane.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/avatarrenders.avatar.pipeline.dev",
            "--timeout=60s",
        ]);
        plane.kubectl(&["create", "namespace", NS]);
        plane.kubectl(&["create", "namespace", CONTROLLER_NS]);

        // The chart's own ServiceAccount, ClusterRole and ClusterRoleBinding (not its
        // Deployment: no kubelet here, the controller runs as a process of this test).
        let rbac: Vec<serde_yaml::Value> =
            render_chart(&["--show-only", "templates/controller.yaml"])
                .into_iter()
                .filter(|doc| doc["kind"].as_str() != Some("Deployment"))
                .collect();
        let kinds: Vec<&str> = rbac.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"],
            "the chart's controller RBAC"
        );
        let yaml = rbac
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        plane.kubectl_ok(&["apply", "-f", "-"], Some(&yaml));
        let kubeconfig = plane.service_account_kubeconfig(CONTROLLER_NS, CONTROLLER_ACCOUNT);

        let stack = Stack::start(Options {
            s3: true,
            ..Options::default()
        });
        let controller = spawn_controller(&stack, &kubeconfig, 0);
        let cluster = Self {
            plane,
            stack,
            kubeconfig,
            controller,
            restarts: 0,
        };
        cluster.wait_controller_healthy();
        cluster
    }

    fn restart_controller(&mut self) {
        self.restarts += 1;
        self.controller = spawn_controller(&self.stack, &self.kubeconfig, self.restarts);
        self.wait_controller_healthy();
    }

    fn wait_controller_healthy(&self) {
        let healthy = common::wait_for(Duration::from_secs(30), || {
            self.controller.log_text().contains("controller starting")
        });
        assert!(
            healthy.is_some(),
            "the controller did not start: {}",
            self.controller.log_text()
        );
    }

    fn apply(&self, yaml: &str) {
        self.plane
            .kubectl_ok(&["apply", "-n", NS, "-f", "-"], Some(yaml));
    }

    fn render(&self, name: &str) -> Value {
        self.plane.get_json(&["avatarrender", name, "-n", NS])
    }

    /// Until the resource's status is `phase` for its current generation.
    fn wait_phase(&self, name: &str, phase: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let obj = self.render(name);
            let generation = &obj["metadata"]["generation"];
            if obj["status"]["phase"] == phase && &obj["status"]["observedGeneration"] == generation
            {
                return obj;
            }
            assert!(
                started.elapsed() < timeout,
                "{name} did not reach {phase}: {obj}\n--- controller ---\n{}\n{}",
                tail(&self.controller.log_text(), 40),
                self.stack.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The events recorded about a resource: (type, reason, message).
    fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let list = self.plane.get_json(&[
            "events",
            "-n",
            NS,
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    e["message"]
                        .as_str()
                        .or(e["note"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Waits until an event with `reason` has been recorded about `name`.
    fn wait_event(&self, name: &str, reason: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.events(name).iter().any(|(_, r, _)| r == reason) {
            assert!(
                started.elapsed() < timeout,
                "no {reason} event for {name}: {:?}",
                self.events(name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn controller_metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.stack.worker_metrics(&self.controller);
        common::metric(&text, name, labels).unwrap_or(0.0)
    }
}

fn spawn_controller(stack: &Stack, kubeconfig: &std::path::Path, n: usize) -> Process {
    let mut env: HashMap<String, String> = stack.env.clone();
    env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
    Process::spawn(
        &format!("controller-{n}"),
        &binary("avatar-controller"),
        &[],
        &env,
        stack.dir.path(),
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn avatar_render(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: avatar.pipeline.dev/v1alpha1\nkind: AvatarRender\nmetadata:\n  name: {name}\nspec: {spec}\n"
    )
}

/// Checks a Completed resource's status against what the gateway serves at its URLs.
fn check_completed(cluster: &Cluster, obj: &Value) {
    let status = &obj["status"];
    let id = status["renderId"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{status}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{status}");
    let duration = status["durationMs"].as_u64().unwrap();
    assert!(duration > 300, "{status}");
    let cues = status["mouthCueCount"].as_u64().unwrap();
    assert!(cues > 2, "{status}");
    assert!(status["eyeEventCount"].is_u64(), "{status}");
    let ready = &status["conditions"][0];
    assert_eq!(ready["type"], "Ready", "{status}");
    assert_eq!(ready["status"], "True", "{status}");
    assert_eq!(
        ready["observedGeneration"], obj["metadata"]["generation"],
        "{status}"
    );

    let audio_url = status["audioUrl"].as_str().unwrap();
    let result_url = status["resultUrl"].as_str().unwrap();
    assert!(
        audio_url.starts_with(&cluster.stack.url("/audio/")),
        "{audio_url}"
    );
    assert_eq!(
        result_url,
        cluster.stack.url(&format!("/results/{id}.json"))
    );
    run(async {
        let audio = cluster.stack.http.get(audio_url).send().await.unwrap();
        assert_eq!(audio.status(), 200, "{audio_url}");
        let bytes = audio.bytes().await.unwrap();
        assert_eq!(&bytes[..4], b"OggS", "{audio_url}");
        let probed = probe_ms(&bytes);
        assert!(
            (probed - duration as f64).abs() < 30.0,
            "ffprobe says {probed} ms, the status {duration} ms"
        );
        let result: Value = cluster
            .stack
            .http
            .get(result_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        common::check_completed(&result);
        assert_eq!(result["render_id"], id);
        assert_eq!(result["audio_url"], audio_url);
        assert_eq!(result["duration_ms"].as_u64(), Some(duration));
        assert_eq!(result["mouth_cues"].as_array().unwrap().len() as u64, cues);
        assert_eq!(
            result["eye_events"].as_array().unwrap().len() as u64,
            status["eyeEventCount"].as_u64().unwrap()
        );
    });
}

#[test]
fn avatar_renders_complete_through_the_real_pipeline_with_the_charts_rbac() {
    let cluster = Cluster::start();

    // The repository's examples, applied as a user would.
    for example in [
        "crd/examples/avatarrender-hello.yaml",
        "crd/examples/avatarrender-full.yaml",
    ] {
        let path = common::workspace_path(example);
        cluster
            .plane
            .kubectl(&["apply", "-n", NS, "-f", path.to_str().unwrap()]);
    }
    let hello = cluster.wait_phase("hello", "Completed", Duration::from_secs(120));
    check_completed(&cluster, &hello);
    assert_eq!(hello["status"]["cached"], false);
    let full = cluster.wait_phase("welcome-rhubarb", "Completed", Duration::from_secs(120));
    check_completed(&cluster, &full);

    // The printer columns.
    let table = cluster.plane.kubectl(&["get", "avr", "-n", NS]);
    let header = table.lines().next().unwrap();
    for column in ["NAME", "PHASE", "DURATION", "CACHED", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains("Completed")),
        "{table}"
    );

    // Events, as `kubectl describe` shows them.
    let events = cluster.events("hello");
    for reason in ["Submitted", "Completed"] {
        assert!(
            events.iter().any(|(t, r, _)| t == "Normal" && r == reason),
            "no {reason} event for hello: {events:?}"
        );
    }

    // A second resource with the same spec is served from the cache.
    cluster.apply(&avatar_render(
        "hello-again",
        &serde_json::to_string(&hello["spec"]).unwrap(),
    ));
    let again = cluster.wait_phase("hello-again", "Completed", Duration::from_secs(30));
    assert_eq!(again["status"]["cached"], true, "{again}");
    assert_eq!(again["status"]["renderId"], hello["status"]["renderId"]);

    // A changed spec renders again, for the new generation.
    cluster.plane.kubectl(&[
        "patch",
        "avr",
        "hello",
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"text":"A changed text, rendered again.","speed":1.2}}"#,
    ]);
    let changed = cluster.wait_phase("hello", "Completed", Duration::from_secs(120));
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_ne!(changed["status"]["renderId"], hello["status"]["renderId"]);
    check_completed(&cluster, &changed);

    // What the schema lets through but the pipeline cannot render ends Failed, naming the
    // field, with a Warning event; nothing is retried.
    cluster.apply(&avatar_render("blank", r#"{text: "   \t  "}"#));
    cluster.apply(&avatar_render(
        "no-such-voice",
        r#"{text: "Hello there.", voiceId: "xx_XX-nobody-medium"}"#,
    ));
    let blank = cluster.wait_phase("blank", "Failed", Duration::from_secs(30));
    let message = blank["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.text"), "{message}");
    let unknown = cluster.wait_phase("no-such-voice", "Failed", Duration::from_secs(30));
    let message = unknown["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.voiceId"), "{message}");
    assert!(
        message.contains("en_US-joe-medium"),
        "names what is available: {message}"
    );
    for name in ["blank", "no-such-voice"] {
        let events = cluster.events(name);
        assert!(
            events
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "InvalidSpec"),
            "{name}: {events:?}"
        );
        let obj = cluster.render(name);
        assert_eq!(obj["status"]["conditions"][0]["status"], "False");
        assert_eq!(obj["status"]["conditions"][0]["reason"], "InvalidSpec");
    }

    // Deleting a resource while it renders: no error loop, nothing retried for it.
    let errors_before =
        cluster.controller_metric("avatar_reconciles_total", &[("outcome", "error")]);
    cluster.apply(&avatar_render(
        "deleted-mid-render",
        r#"{text: "This resource is deleted while its speech is still being synthesised, which must not leave the controller retrying anything for it. It keeps going for a while, so that the deletion surely lands in the middle."}"#,
    ));
    cluster.wait_phase("deleted-mid-render", "Rendering", Duration::from_secs(30));
    cluster.plane.kubectl(&[
        "delete",
        "avr",
        "deleted-mid-render",
        "-n",
        NS,
        "--wait=true",
    ]);
    std::thread::sleep(Duration::from_secs(8));
    let errors_after =
        cluster.controller_metric("avatar_reconciles_total", &[("outcome", "error")]);
    let log = cluster.controller.log_text();
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("deleted-mid-render") && (l.contains("WARN") || l.contains("ERROR")))
        .collect();
    assert!(
        retries.is_empty() && errors_after == errors_before,
        "errors after deleting a rendering resource ({errors_before} -> {errors_after}): {retries:#?}"
    );
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
}

#[test]
fn controller_and_api_server_restarts_resume_each_render_exactly_once() {
    let mut cluster = Cluster::start();
    let synthesised = |cluster: &Cluster| {
        let text = cluster.stack.worker_metrics(&cluster.stack.tts[0]);
        common::metric(
            &text,
            "avatar_jobs_total",
            &[("stage", "tts"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };

    // Killed (SIGKILL) while the render is under way: the new process follows the render by
    // the id in the status instead of submitting it again.
    cluster.apply(&avatar_render(
        "resumed",
        r#"{text: "The controller that submitted this render is killed while the speech is synthesised. Its successor reads the render id from the status and waits for that very render, so it is synthesised exactly once."}"#,
    ));
    let rendering = cluster.wait_phase("resumed", "Rendering", Duration::from_secs(30));
    // Events are best effort: one the killed process had not yet sent is lost, so the kill
    // comes after it (the status, written first, is what the successor relies on).
    cluster.wait_event("resumed", "Submitted", Duration::from_secs(10));
    cluster.controller.kill();
    cluster.restart_controller();
    let done = cluster.wait_phase("resumed", "Completed", Duration::from_secs(120));
    assert_eq!(done["status"]["renderId"], rendering["status"]["renderId"]);
    check_completed(&cluster, &done);
    let submitted = cluster
        .events("resumed")
        .into_iter()
        .filter(|(_, r, _)| r == "Submitted" || r == "Resubmitted")
        .count();
    assert_eq!(submitted, 1, "{:?}", cluster.events("resumed"));
    assert_eq!(synthesised(&cluster), 1.0, "one synthesis for one render");
    // The new process does not touch the finished resource again.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster
            .events("resumed")
            .iter()
            .filter(|(_, r, _)| r == "Completed")
            .count(),
        1,
        "{:?}",
        cluster.events("resumed")
    );

    // The API server goes away for a while and comes back: the controller carries on.
    cluster.plane.restart_apiserver(Duration::from_secs(4));
    cluster.apply(&avatar_render(
        "after-restart",
        r#"{text: "Created after the API server came back.", visemeSet: oculus}"#,
    ));
    let after = cluster.wait_phase("after-restart", "Completed", Duration::from_secs(120));
    check_completed(&cluster, &after);
    assert!(
        cluster.controller.running(),
        "the controller exited: {}",
        tail(&cluster.controller.log_text(), 30)
    );
    assert_eq!(synthesised(&cluster), 2.0);

    // NATS gone and a reconciliation waiting on it: SIGTERM still stops the controller
    // within the shutdown grace period, not Kubernetes' 30 s.
    cluster.stack.nats.stop();
    cluster.apply(&avatar_render("nats-down", r#"{text: "NATS is down."}"#));
    std::thread::sleep(Duration::from_secs(2));
    let took = cluster.controller.terminate();
    assert!(
        took < avatar_runtime::shutdown::GRACE + Duration::from_secs(2),
        "the controller took {took:?} to stop: {}",
        tail(&cluster.controller.log_text(), 20)
    );
}
