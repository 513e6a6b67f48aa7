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
    // It did test every operation (the lip-sync uploads, multipart and raw, among them).
    assert!(text.contains("Tested: "), "{text}");
    let operations = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|l| l.split_once('/'))
        .map(|(selected, total)| (selected.trim().to_owned(), total.trim().to_owned()));
    let documented = avatar_test_support::workspace().join("services/gateway/openapi.json");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(documented).unwrap()).unwrap();
    assert!(document["paths"]["/v1/avatar/lipsync"]["post"].is_object());
    let count: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations,
        Some((count.to_string(), count.to_string())),
        "{text}"
    );
    assert!(!stack.gateway.log_text().contains("panicked"));
}
