//! The programs that read what a server receives, run on what Ignition wrote:
//! systemd (`systemd-analyze verify`), `shellcheck`, and, where no binary can
//! run here, the pinned versions' upstream flag lists and image entrypoints
//! (tests/fixtures/upstream, each file naming its source).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::Server;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Units Flatcar ships that kaws' units depend on, as stand-ins.
const OS_UNITS: &[&str] = &["docker.service", "containerd.service"];

/// Executables a unit may name that the server has but this machine lacks:
/// Flatcar's, and those kaws' own boot steps install before the unit starts.
const OS_EXECUTABLES: &[&str] = &["/usr/bin/docker"];
const INSTALLED_AT_BOOT: &[(&str, &str)] = &[("/opt/bin/kubelet", "kaws-install-node.service")];

/// `systemd-analyze verify` on every unit Ignition wrote, with the machine's
/// own units and stand-ins for Flatcar's: returns its findings, one a line.
pub fn systemd_verify_dir(work: &Path, unit_dir: &Path, units: &[String]) -> Vec<String> {
    let stand_ins = work.join("os-units");
    std::fs::create_dir_all(&stand_ins).unwrap();
    for u in OS_UNITS {
        std::fs::write(
            stand_ins.join(u),
            format!(
                "[Unit]\nDescription=stand-in for Flatcar's {u}\n[Service]\nExecStart=/bin/true\n"
            ),
        )
        .unwrap();
    }
    let out = Command::new("systemd-analyze")
        .env(
            "SYSTEMD_UNIT_PATH",
            format!("{}:{}:", unit_dir.display(), stand_ins.display()),
        )
        .args(["verify", "--man=no"])
        .args(units.iter().map(|u| unit_dir.join(u)))
        .output()
        .expect("systemd-analyze is installed");
    text(&out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Judge one server's units: no ordering cycle, no unknown setting, no
/// missing unit; a missing executable only where the server has it.
pub fn systemd_verify(work: &Path, s: &Server) {
    let units: Vec<String> = s
        .units
        .keys()
        .filter(|u| !u.contains(".d/"))
        .cloned()
        .collect();
    if units.is_empty() {
        return;
    }
    let unit_dir = s.root.join("etc/systemd/system");
    let findings = systemd_verify_dir(&work.join(&s.name), &unit_dir, &units);
    for line in &findings {
        let missing = line.split_once(": Command ").and_then(|(unit, rest)| {
            rest.strip_suffix(" is not executable: No such file or directory")
                .map(|exe| (unit, exe))
        });
        let ok = match missing {
            Some((_, exe)) if OS_EXECUTABLES.contains(&exe) => true,
            Some((unit, exe)) if INSTALLED_AT_BOOT.iter().any(|(e, _)| *e == exe) => {
                // Installed by a boot step the unit waits for.
                let (_, installer) = INSTALLED_AT_BOOT.iter().find(|(e, _)| *e == exe).unwrap();
                let waits = |key: &str| {
                    s.unit(unit)
                        .lines()
                        .any(|l| l.starts_with(key) && l.contains(installer))
                };
                waits("After=") && waits("Requires=")
            }
            Some((_, exe)) => {
                // Written by Ignition: it must be there, and executable.
                s.modes.get(exe).is_some_and(|m| m & 0o111 != 0)
            }
            None => false,
        };
        assert!(
            ok,
            "{}: systemd-analyze verify: {line}\n(all findings:\n{})",
            s.name,
            findings.join("\n")
        );
    }
    for u in &s.enabled {
        assert!(
            s.unit(u).contains("[Install]"),
            "{}: {u} is enabled but has no [Install] section",
            s.name
        );
    }
}

/// `shellcheck` on every script the server receives: no error, no warning.
pub fn shellcheck(work: &Path, s: &Server) {
    for (path, body) in s.scripts() {
        let file = work.join(format!("{}{}", s.name, path.replace('/', "_")));
        std::fs::write(&file, body).unwrap();
        let out = Command::new("shellcheck")
            .arg(&file)
            .output()
            .expect("shellcheck (Debian package shellcheck) is installed");
        assert!(
            out.status.success(),
            "{}: shellcheck {path}:\n{}",
            s.name,
            text(&out)
        );
    }
}

/// `kubectl config view` on a kubeconfig a server receives: kubectl, the
/// client library the kubelet and kube-proxy share, must load it (a
/// `tokenFile` or key path it names need not exist to be read).
pub fn kubectl_config_view(kubeconfig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeconfig");
    std::fs::write(&file, kubeconfig).unwrap();
    let out = Command::new("kubectl")
        .args(["config", "view", "-o", "json", "--kubeconfig"])
        .arg(&file)
        .output()
        .expect("kubectl is installed");
    assert!(out.status.success(), "kubectl config view:\n{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["current-context"], "default", "{kubeconfig}");
    assert_eq!(v["users"].as_array().map(Vec::len), Some(1), "{kubeconfig}");
}

/// A unit's ExecStart= with continuation lines joined, as systemd reads it.
pub fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= in\n{unit}"));
    line.split_whitespace().map(String::from).collect()
}

/// What runs: the image (if a container), the command words after it, and
/// the flags.
pub struct Invocation {
    pub image: Option<String>,
    pub command: Vec<String>,
    pub flags: Vec<String>,
}

pub fn invocation(unit: &str) -> Invocation {
    let words = exec_start(unit);
    let (image, rest) = if words[0] == "/usr/bin/docker" {
        let at = words
            .iter()
            .position(|w| w.contains("@sha256:"))
            .unwrap_or_else(|| {
                panic!("a container whose image is not pinned by digest: {words:?}")
            });
        (Some(words[at].clone()), words[at + 1..].to_vec())
    } else {
        (None, words)
    };
    let split = rest
        .iter()
        .position(|w| w.starts_with('-'))
        .unwrap_or(rest.len());
    Invocation {
        image,
        command: rest[..split].to_vec(),
        flags: rest[split..].to_vec(),
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream")
}

/// Names listed in a fixture file (comments start with '#').
pub fn fixture_list(name: &str) -> BTreeSet<String> {
    let p = fixtures().join(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every flag is one the pinned version has, and none is deprecated.
pub fn check_flags(server: &str, component: &str, flags: &[String]) {
    let known = fixture_list(&format!("{component}.flags"));
    let deprecated = fixture_list(&format!("{component}.deprecated"));
    assert!(!known.is_empty(), "{component}: empty fixture");
    for f in flags {
        let name = f
            .strip_prefix("--")
            .unwrap_or_else(|| panic!("{server}: {component}: {f:?} is not a --flag"));
        let name = name.split('=').next().unwrap();
        assert!(
            known.contains(name),
            "{server}: {component} {} has no flag --{name} (tests/fixtures/upstream/{component}.flags)",
            "of the pinned version"
        );
        assert!(
            !deprecated.contains(name),
            "{server}: {component}: --{name} is deprecated in the pinned version"
        );
    }
}

/// Top-level fields of a component config are all fields of its kind.
pub fn check_config_fields(server: &str, kind: &str, yaml: &str) {
    let known = fixture_list(&format!("{kind}.fields"));
    let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(v["kind"], kind, "{server}: {yaml}");
    for key in v.as_object().unwrap().keys() {
        assert!(
            known.contains(key.as_str()),
            "{server}: {kind} has no field {key} (tests/fixtures/upstream/{kind}.fields)"
        );
    }
}

/// How each image starts, from tests/fixtures/upstream/entrypoints.txt:
/// `Some(path)` for an ENTRYPOINT (the unit passes flags only), `None` for
/// an image whose command the unit must name.
pub fn entrypoint(image: &str) -> Option<&'static str> {
    let name = image.split('@').next().unwrap();
    let repo = name.rsplit_once(':').map_or(name, |(r, _)| r);
    match repo {
        // ENTRYPOINT ["/go-runner"], which runs the command it is given.
        "registry.k8s.io/kube-apiserver"
        | "registry.k8s.io/kube-controller-manager"
        | "registry.k8s.io/kube-scheduler" => Some("/go-runner"),
        // No ENTRYPOINT: the unit names the binary.
        "registry.k8s.io/kube-proxy" | "registry.k8s.io/etcd" => None,
        "ghcr.io/flannel-io/flannel" => Some("/opt/bin/flanneld"),
        "registry.k8s.io/coredns/coredns" => Some("/coredns"),
        other => {
            panic!("{other}: no recorded entrypoint in tests/fixtures/upstream/entrypoints.txt")
        }
    }
}

/// The fixture names each image's entrypoint as the table above has it.
pub fn entrypoint_table_matches_fixture() {
    let notes = std::fs::read_to_string(fixtures().join("entrypoints.txt")).unwrap();
    for (section, line) in [
        (
            "registry.k8s.io/kube-apiserver",
            "ENTRYPOINT: [\"/go-runner\"]",
        ),
        ("registry.k8s.io/kube-proxy", "ENTRYPOINT: none"),
        ("registry.k8s.io/etcd", "ENTRYPOINT: none"),
        (
            "ghcr.io/flannel-io/flannel:",
            "ENTRYPOINT: [\"/opt/bin/flanneld\"]",
        ),
        (
            "registry.k8s.io/coredns/coredns",
            "ENTRYPOINT: [\"/coredns\"]",
        ),
    ] {
        let start = notes
            .find(&format!("## {section}"))
            .unwrap_or_else(|| panic!("entrypoints.txt has no section {section}"));
        let body = &notes[start..];
        let end = body[3..].find("\n## ").map(|i| i + 3).unwrap_or(body.len());
        assert!(
            body[..end].contains(line),
            "entrypoints.txt: {section} should say {line}"
        );
    }
}
