//! Kubernetes for the tests: a real control plane on loopback, and the chart rendered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{wait_for, workspace};

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
