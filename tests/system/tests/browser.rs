//! The web demo in headless Chromium (Debian's, driven by playwright-core) against the real
//! running stack: the checks are in `tests/browser/avatar.test.mjs`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Options, Stack};

#[test]
fn the_web_demo_speaks_in_sync_in_a_real_browser() {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let browser_tests = workspace.join("tests/browser");
    assert!(
        browser_tests.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (make test does)"
    );
    let stack = Stack::start(Options::default());
    let artifacts = browser_tests.join("artifacts");
    // The screenshot checked below must be this run's.
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(browser_tests.join("avatar.test.mjs"))
        .arg(stack.url(""))
        .arg(&artifacts)
        .output()
        .expect("node");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(out.status.success(), "{report}\n{}", stack.logs());
    assert!(artifacts.join("avatar-speaking.png").exists());
}
