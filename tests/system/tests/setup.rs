//! The README's two commands set the machine up themselves: `make run` and `make test`
//! install the Debian packages they need through scripts/setup_system.sh (`.ci/run` only calls
//! the README's commands), and every system command the build, the stack and the tests call
//! comes from a package in the list of the task that needs it.

mod common;

use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(common::workspace_path(""))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_two_commands_install_what_they_need() {
    let dry_run = |target: &str| run("make", &["-n", target]);
    assert!(
        dry_run("run").contains("scripts/setup_system.sh build\n"),
        "make run does not install the build's packages"
    );
    assert!(
        dry_run("test").contains("scripts/setup_system.sh build test k8s node\n"),
        "make test does not install the tests' packages"
    );
    let ci = std::fs::read_to_string(common::workspace_path(".ci/run")).unwrap();
    assert!(!ci.contains("apt-get"), ".ci/run installs by itself: {ci}");
    assert!(ci.contains("make test"), "{ci}");

    // Every command a task runs is in that task's package list (by the package that owns it).
    let tasks: [(&str, &[&str]); 4] = [
        ("build", &["cmake", "curl"]),
        (
            "test",
            &["ffprobe", "opusinfo", "opusdec", "chromium", "curl"],
        ),
        (
            "k8s",
            &[
                "etcd",
                "/usr/lib/go-1.19/bin/go",
                "rsync",
                "jq",
                "openssl",
                "dpkg-source",
            ],
        ),
        (
            "node",
            &[
                "containerd",
                "runc",
                "ctr",
                "/usr/lib/cni/bridge",
                "/usr/lib/cni/host-local",
                "iptables",
                "dnsmasq",
                "nsenter",
                "unshare",
                "ip",
                "gcc",
            ],
        ),
    ];
    for (task, commands) in tasks {
        let listed = run("scripts/setup_system.sh", &["--list", task]);
        let listed: Vec<&str> = listed.lines().collect();
        for command in commands {
            let path = if command.starts_with('/') {
                command.to_string()
            } else {
                run("sh", &["-c", &format!("command -v {command}")])
                    .trim()
                    .to_owned()
            };
            let real = std::fs::canonicalize(&path)
                .unwrap_or_else(|e| panic!("{command} ({path}): {e}"))
                .display()
                .to_string();
            // dpkg knows a file by the path its package installed, before or after symlinks
            // (/usr/bin vs /bin on a merged /usr).
            let owner = [path.as_str(), real.as_str()]
                .iter()
                .flat_map(|p| [p.to_string(), p.replacen("/usr/", "/", 1)])
                .find_map(|p| {
                    let out = Command::new("dpkg").args(["-S", &p]).output().ok()?;
                    out.status.success().then(|| {
                        String::from_utf8_lossy(&out.stdout)
                            .split(':')
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                })
                .unwrap_or_else(|| panic!("no Debian package owns {command} ({path})"));
            assert!(
                listed.contains(&owner.as_str()),
                "{command} comes from {owner}, which `setup_system.sh {task}` does not install ({listed:?})"
            );
        }
    }
}
