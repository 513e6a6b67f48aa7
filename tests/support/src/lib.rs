//! What the test suites of several crates share (a dev-dependency only): the real voices,
//! an independent reading of audio files (ffprobe), a voice whose model is broken, the
//! fields of a completed result, and real servers as child processes (nats-server).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The voice every test speaks with (the one fetchable from a package registry).
pub const VOICE: &str = "en_US-joe-medium";

/// The workspace's root directory: found at run time from the test's own package (cargo
/// runs a test in its package's directory), so that a test binary built in another checkout
/// sharing the cache (`CARGO_TARGET_DIR`) never reads that checkout's files.
pub fn workspace() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    start
        .and_then(|dir| {
            dir.ancestors()
                .find(|d| d.join("Cargo.lock").is_file() && d.join("services").is_dir())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// `VOICES_DIR`, or the workspace's `voices/` that `scripts/download_voices.sh` fills.
pub fn voices_dir() -> PathBuf {
    std::env::var_os("VOICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("voices"))
}

/// What ffprobe reads from an audio file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub duration_ms: f64,
}

/// Reads `path` with ffprobe, an independent decoder; panics if it cannot.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,sample_rate,channels",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_owned()
    };
    Probe {
        codec: field("codec_name"),
        sample_rate: field("sample_rate").parse().unwrap(),
        channels: field("channels").parse().unwrap(),
        duration_ms: field("duration").parse::<f64>().unwrap() * 1000.0,
    }
}

/// [`probe`] of audio held in memory.
pub fn probe_bytes(bytes: &[u8]) -> Probe {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    probe(file.path())
}

/// Puts a voice `name` in `dir` whose config is real (the test voice's) and whose model is
/// not a model: it lists like a voice and fails when it is loaded.
pub fn broken_voice(dir: &Path, name: &str) {
    std::fs::copy(
        voices_dir().join(format!("{VOICE}.onnx.json")),
        dir.join(format!("{name}.onnx.json")),
    )
    .expect("the test voice's config (scripts/download_voices.sh en_US-joe-medium)");
    std::fs::write(
        dir.join(format!("{name}.onnx")),
        b"this is not an onnx model",
    )
    .unwrap();
}

/// Asserts that a completed result has exactly the contract's fields plus `viseme_set`,
/// `words` and `sentences`.
pub fn assert_result_fields(result: &Value) {
    let mut keys: Vec<&str> = result
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {result}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "audio_url",
            "cached",
            "duration_ms",
            "eye_events",
            "mouth_cues",
            "processing_time_ms",
            "render_id",
            "sentences",
            "status",
            "viseme_set",
            "words"
        ],
        "{result}"
    );
}

/// A free TCP port on loopback (bound and released; fine for tests), chosen below the kernel's
/// ephemeral range (32768-60999 by default). A port from that range (what binding port 0
/// gives) can be taken, between the check and the server's bind, as the source port of any
/// outgoing connection: a gateway failed to start so ("Address already in use") while the
/// workers of parallel tests connected to their NATS servers.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    loop {
        // A stride co-prime with COUNT visits every port before repeating one.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + seed.wrapping_add(n.wrapping_mul(101)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The servers' bin directory from `scripts/setup_servers.sh`.
pub fn servers_bin() -> PathBuf {
    setup_dir("setup_servers.sh")
}

/// The test-only tools' bin directory from `scripts/setup_test_tools.sh` (schemathesis,
/// pocketsphinx).
pub fn test_tools_bin() -> PathBuf {
    setup_dir("setup_test_tools.sh")
}

/// Runs one of the idempotent set-up scripts and returns the directory it prints.
fn setup_dir(script: &str) -> PathBuf {
    let out = Command::new(workspace().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A child process killed when dropped; its output goes to a log file.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        log_dir: &Path,
    ) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(program)
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye, no acks.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        unsafe_kill(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM; how long the process took to exit (SIGKILL after 30 s, as Kubernetes would).
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        unsafe_kill(self.child.id(), "-TERM");
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        started.elapsed()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nats-server with JetStream, its store in a directory that survives restarts.
pub struct Nats {
    pub port: u16,
    pub dir: PathBuf,
    process: Option<Process>,
}

impl Nats {
    pub fn start(dir: &Path) -> Self {
        Self::start_on(dir, free_port())
    }

    /// On a port chosen beforehand (say, one the services were told before it was up).
    pub fn start_on(dir: &Path, port: u16) -> Self {
        let mut nats = Self {
            port,
            dir: dir.to_owned(),
            process: None,
        };
        nats.launch();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and store.
    pub fn launch(&mut self) {
        let bin = servers_bin().join("nats-server");
        let store = self.dir.join("js");
        let port = self.port.to_string();
        let process = Process::spawn(
            "nats-server",
            &bin,
            &[
                "-a",
                "127.0.0.1",
                "-p",
                &port,
                "-js",
                "-sd",
                store.to_str().unwrap(),
            ],
            &HashMap::new(),
            &self.dir,
        );
        wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        })
        .expect("nats-server listening");
        self.process = Some(process);
    }

    /// Stops the server (gracefully) and starts it again on the same port and store.
    pub fn restart(&mut self, down_for: Duration) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        std::thread::sleep(down_for);
        self.launch();
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}
