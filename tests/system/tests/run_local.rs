//! `make run`'s runner (scripts/run_local.sh) keeps the local stack alive: each worker and
//! nats-server killed with SIGKILL while renders are queued is started again, the others keep
//! running, and every render completes with audio and cues from one synthesis run. It prints
//! its URL only once the gateway is ready, and Ctrl-C stops everything.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{VOICE, blocking_get, check_completed, free_port, probe_ms, voices_dir, wait_for};
use serde_json::{Value, json};

fn pid_of(data: &Path, service: &str) -> Option<u32> {
    std::fs::read_to_string(data.join(format!("run/{service}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn signal(pid: i64, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), "--", &pid.to_string()])
        .status();
}

fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-m", "120", "-w", "\n%{http_code}", "-X", "POST"])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn killed_services_are_restarted_and_every_queued_render_completes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let bin_dir = common::binary("avatar-gateway")
        .parent()
        .unwrap()
        .to_owned();
    let mut runner = Command::new(common::workspace_path("scripts/run_local.sh"));
    // A background job of a non-interactive shell (`make test &`, nohup, some CI runners)
    // starts with SIGINT ignored, and bash cannot trap a signal ignored at entry: the runner
    // gets the default disposition back, as a terminal's Ctrl-C would find it.
    // SAFETY: `signal` is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        runner.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut runner = runner
        .env("BIN_DIR", &bin_dir)
        .env("PORT", port.to_string())
        .env("NATS_PORT", free_port().to_string())
        .env("METRICS_PORT_BASE", "0")
        .env("DATA_DIR", &data)
        .env("VOICES_DIR", voices_dir())
        .env("DEFAULT_VOICE", VOICE)
        .env("TTS_THREADS", "1")
        .env("HOST", "127.0.0.1")
        .env("JOB_ACK_WAIT_SECONDS", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("scripts/run_local.sh");
    let group = runner.id() as i64;
    let stdout = runner.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let stop_all = |runner: &mut std::process::Child| {
        signal(-group, "INT");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = runner.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(-group, "KILL");
        false
    };

    // The URL is printed once the gateway is ready, not before.
    let mut printed = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) && printed.is_none() {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200))
            && line.contains("is ready: http://localhost:")
        {
            printed = Some(blocking_get(&format!("http://127.0.0.1:{port}/readyz")));
        }
    }
    let Some(Some((ready, body))) = printed else {
        stop_all(&mut runner);
        panic!("no URL printed within 2 minutes");
    };
    assert_eq!(
        ready, 200,
        "the URL was printed before /readyz said ready: {body}"
    );

    let services = ["tts", "lipsync", "eyes", "nats-server"];
    let mut ids = Vec::new();
    for (i, service) in services.iter().enumerate() {
        // Renders queued, then the service killed as an OOM kill would.
        for j in 0..2 {
            let (status, answer) = post(
                port,
                "/v1/avatar/render_async",
                &json!({"text": format!("Render {j} queued before the {service} process, number {i}, is killed without warning.")}),
            );
            assert_eq!(status, 202, "{answer}");
            ids.push(answer["render_id"].as_str().unwrap().to_owned());
        }
        let victim = pid_of(&data, service).expect("a pid file");
        signal(victim as i64, "KILL");
        let restarted = wait_for(Duration::from_secs(20), || {
            pid_of(&data, service).is_some_and(|pid| pid != victim && alive(pid))
        });
        assert!(restarted.is_some(), "{service} was not restarted");
        // The others kept running.
        for other in services.iter().filter(|s| *s != service) {
            let pid = pid_of(&data, other).unwrap();
            assert!(alive(pid), "{other} stopped when {service} was killed");
        }
    }

    // Every render completes, audio and cues from one run: the file the result names is as
    // long as its cues say. (A synthesis whose next job could not be queued, say while
    // nats-server was down, is redone as a new run, and its first file stays behind: the
    // first job may have reached the queue all the same, so deleting that file could break a
    // render. At most one such file per kill.)
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(180);
        let done = loop {
            let (_, body) = blocking_get(&format!("http://127.0.0.1:{port}/v1/avatar/render/{id}"))
                .map(|(s, b)| (s, serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)))
                .unwrap_or((0, Value::Null));
            if body["status"] == "completed" || body["status"] == "failed" {
                break body;
            }
            assert!(Instant::now() < deadline, "render {id} not done: {body}");
            std::thread::sleep(Duration::from_millis(250));
        };
        check_completed(&done);
        let files: Vec<String> = std::fs::read_dir(data.join("audio"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(id.as_str()))
            .collect();
        assert!(
            (1..=services.len()).contains(&files.len()),
            "render {id}: {files:?}"
        );
        let named = done["audio_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert!(
            files.iter().any(|f| f == named),
            "render {id}: {named} not in {files:?}"
        );
        let audio = std::fs::read(data.join("audio").join(named)).unwrap();
        let probed = probe_ms(&audio);
        let said = done["duration_ms"].as_f64().unwrap();
        assert!(
            (probed - said).abs() < 30.0,
            "{id}: audio {probed} ms, cues {said} ms"
        );
    }

    // Ctrl-C stops every process.
    let pids: Vec<u32> = services
        .iter()
        .chain(&["gateway"])
        .filter_map(|s| pid_of(&data, s))
        .collect();
    assert!(stop_all(&mut runner), "the runner did not stop on Ctrl-C");
    let gone = wait_for(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)));
    assert!(gone.is_some(), "services left running after Ctrl-C");
}
