//! The API against its own OpenAPI document, by a schema fuzzer (schemathesis, from PyPI):
//! the document the gateway serves drives thousands of generated requests (valid and
//! invalid, and stateful sequences along the document's links) against the real stack, and
//! no answer may be a server error or fall outside the document (status code, content type,
//! headers, body schema), and invalid data must be refused.
//!
//! Not checked: that every schema-valid request is accepted. A well-formed voice id that no
//! worker speaks is valid to the schema and a 422 to the server (the voices are data, not
//! schema), so `positive_data_acceptance` is left out.

mod common;

use std::process::Command;

use common::{Options, Stack};

#[test]
fn the_served_document_holds_under_a_schema_fuzzer() {
    let stack = Stack::start(Options {
        env: vec![
            // Renders answer 202 after this: fuzzed texts of 5,000 characters would otherwise
            // hold every request for their whole synthesis.
            ("SYNC_TIMEOUT_SECONDS".into(), "2".into()),
            ("MAX_CONCURRENT_REQUESTS".into(), "64".into()),
        ],
        ..Default::default()
    });
    let st = avatar_test_support::test_tools_bin().join("st");
    let report = stack.dir.path().join("schemathesis.txt");
    let out = Command::new(&st)
        .arg("run")
        .arg(stack.url("/openapi.json"))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--seed",
            "20261202",
        ])
        .args(["--suppress-health-check", "too_slow,data_too_large"])
        .env("NO_COLOR", "1")
        .current_dir(stack.dir.path())
        .output()
        .expect("schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&report, &text).unwrap();
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        stack.logs()
    );
    // It did test every operation.
    assert!(text.contains("Tested: "), "{text}");
    assert!(!stack.gateway.log_text().contains("panicked"));
}
