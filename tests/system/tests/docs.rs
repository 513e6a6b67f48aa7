//! The documentation against the code: every environment variable a service reads is in the
//! configuration page and every one the page names is read somewhere, and every relative link
//! in the README and `docs/` leads to a file and heading that exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use avatar_test_support::workspace;

/// Every file under `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && name != "target" && name != "node_modules" {
            files(&path, suffix, out);
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

/// The string literals of `text` that look like an environment variable.
fn variables(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() >= 4
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let root = workspace();
    let mut sources = Vec::new();
    files(&root.join("services"), ".rs", &mut sources);
    let mut read = BTreeSet::new();
    let mut literals = BTreeSet::new();
    for file in sources
        .iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        literals.extend(variables(&text));
        // The names handed to the one environment reader (`avatar_runtime::config::Env`).
        for reader in [
            ".parse(",
            ".seconds(",
            ".flag(",
            ".string(",
            ".optional(",
            ".required(",
        ] {
            for piece in text.split(reader).skip(1) {
                if let Some(name) = piece
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|r| r.split('"').next())
                    && variables(&format!("\"{name}\"")).contains(name)
                {
                    read.insert(name.to_owned());
                }
            }
        }
    }
    let page = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let documented: BTreeSet<String> = page
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .split(',')
                .map(|v| v.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(read.len() > 20, "{read:?}");
    let undocumented: Vec<&String> = read
        .iter()
        .filter(|v| !page.contains(&format!("`{v}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "read but not in docs/configuration.md: {undocumented:?}"
    );
    // Paths and libraries the set-up scripts export are read by the scripts, not the services.
    let scripts = ["RUNTIME_DIR"];
    let unread: Vec<&String> = documented
        .iter()
        .filter(|v| !literals.contains(*v) && !scripts.contains(&v.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in docs/configuration.md but read nowhere: {unread:?}"
    );
}

/// GitHub's anchor of a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut code = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                code = !code;
            }
            !code && l.starts_with('#')
        })
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_leads_somewhere() {
    let root = workspace();
    let mut pages = vec![root.join("README.md")];
    files(&root.join("docs"), ".md", &mut pages);
    let mut broken = Vec::new();
    let mut links = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            if target.starts_with("http") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            links += 1;
            let (file, heading) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if !heading.is_empty()
                && !anchors(&std::fs::read_to_string(&path).unwrap()).contains(heading)
            {
                broken.push(format!("{}: {target} (no such heading)", page.display()));
            }
        }
    }
    assert!(links > 20, "{links} links");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
