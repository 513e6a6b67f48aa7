//! Every service stops within a few seconds of SIGTERM whatever its dependencies' state:
//! Kubernetes sends SIGTERM and, after the grace period (30 s by default), SIGKILL; a service
//! that waits on NATS or the API server costs every rollout that whole period.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use avatar_runtime::shutdown::GRACE;
use common::{Options, Process, Stack, binary, free_port, voices_dir};

const SERVICES: [&str; 6] = [
    "avatar-gateway",
    "avatar-tts",
    "avatar-align",
    "avatar-lipsync",
    "avatar-eyes",
    "avatar-controller",
];

#[test]
fn every_service_stops_at_once_while_its_dependencies_were_never_reachable() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on these ports: NATS and the Kubernetes API never answer.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            free_port()
        ),
    )
    .unwrap();
    let env: HashMap<String, String> = [
        ("NATS_URL", format!("nats://127.0.0.1:{}", free_port())),
        ("PORT", free_port().to_string()),
        ("HOST", "127.0.0.1".into()),
        ("METRICS_PORT", "0".into()),
        ("METRICS_HOST", "127.0.0.1".into()),
        ("DATA_DIR", dir.path().join("data").display().to_string()),
        ("VOICES_DIR", voices_dir().display().to_string()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("LOG_LEVEL", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut processes: Vec<Process> = SERVICES
        .iter()
        .map(|name| Process::spawn(name, &binary(name), &[], &env, dir.path()))
        .collect();
    // Long enough to be deep in their connection loops.
    std::thread::sleep(Duration::from_secs(3));
    for p in &mut processes {
        assert!(p.running(), "{} exited early: {}", p.name, p.log_text());
        let took = p.terminate();
        assert!(
            took < Duration::from_secs(2),
            "{} took {took:?} to stop on SIGTERM while NATS was unreachable:\n{}",
            p.name,
            p.log_text()
        );
    }
}

#[test]
fn services_at_work_stop_within_the_grace_period_once_nats_is_lost() {
    let mut stack = Stack::start(Options::default());
    // A sync render under way (the gateway holds the request, tts synthesises)...
    let url = stack.url("/v1/avatar/render");
    let request = std::thread::spawn(move || {
        let body = r#"{"text": "A render that is under way when NATS goes away and every service is asked to stop. It must not hold any of them for longer than the grace period."}"#;
        std::process::Command::new("curl")
            .args([
                "-s",
                "-m",
                "60",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-d", body, &url])
            .output()
    });
    // The synthesis of that text takes seconds on one thread: stop NATS in the middle of it.
    std::thread::sleep(Duration::from_millis(1500));
    // ... and NATS gone.
    stack.nats.stop();
    std::thread::sleep(Duration::from_millis(500));
    let bound = GRACE + Duration::from_secs(2);
    let mut all: Vec<&mut Process> = vec![
        &mut stack.gateway,
        &mut stack.align,
        &mut stack.lipsync,
        &mut stack.eyes,
    ];
    all.extend(stack.tts.iter_mut());
    for p in all {
        let took = p.terminate();
        assert!(
            took < bound,
            "{} took {took:?} to stop on SIGTERM with NATS gone:\n{}",
            p.name,
            p.log_text()
        );
    }
    let _ = request.join();
}
