//! The guides, pasted: every ```sh block of each guide runs, in order, in
//! one bash per guide, against moto, with the kaws under test on PATH and
//! the example's placeholders filled. A block that needs real servers
//! (kubectl, ssh, terraform apply) is fenced ```sh no-run in the guide,
//! and says so there; everything else must work as written.
//!
//! The guides follow one story in one directory: create the repository and
//! the first cluster, give alice access, move the KMS key, recover a key by
//! hand, renew certificates, remove an administrator.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The ```sh blocks of a guide that are meant to run, in order.
fn runnable_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let info = info.trim().to_string();
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        // Indented fences inside lists keep their indentation in the body.
        let indent = body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let body: String = body
            .lines()
            .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
            .collect();
        let words: Vec<&str> = info.split_whitespace().collect();
        if words.first() == Some(&"sh") && !words.contains(&"no-run") {
            blocks.push(body);
        }
    }
    blocks
}

struct Guide {
    file: &'static str,
    /// Directory (under the work directory) the reader starts in.
    cwd: &'static str,
    /// Placeholders of the example and what stands in for them here.
    fill: &'static [(&'static str, &'static str)],
}

/// The fingerprint of alice's CSR, computed by openssl alone (the command
/// docs/concepts/administrators.md gives), in place of the example's digits.
const ALICE_FINGERPRINT: &str = "$(openssl req -in clusters/prod/alice.csr -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)";

const EXAMPLE_FINGERPRINT: &str =
    "3f5a9d0e7b1c44a28e6f0b5d2c9a7e13f4b8d6a0c2e5f7a9b1d3c5e7f9a0c2e1";

const OPS_FINGERPRINT: &str = "$(openssl req -in clusters/prod/ops.csr -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)";

const OPS_EXAMPLE_FINGERPRINT: &str =
    "0b6f1e4a9c2d7e5f8a3b6c9d2e5f8a1b4c7d0e3f6a9b2c5d8e1f4a7b0c3d6e9f";

/// Guides that hold only blocks needing real servers; the test makes sure
/// each is fenced so, rather than forgotten.
const NOTHING_TO_RUN: &[&str] = &[
    "change-topology.md",
    "cluster-lifecycle.md",
    "node-pools.md",
    "etcd-backup.md",
    "flatcar-updates.md",
    "ssh-key-rotation.md",
    "move-state-to-s3.md",
    "upgrade-kaws.md",
];

fn guides() -> Vec<Guide> {
    vec![
        Guide {
            file: "create-repository.md",
            cwd: "",
            fill: &[("Z0123456789ABCDEFGHIJ", "$ZONE_ID")],
        },
        Guide {
            file: "give-admin-access.md",
            cwd: "infra",
            // The reader answers the prompt; a pasted script has no
            // terminal, so it answers with --yes.
            fill: &[
                (EXAMPLE_FINGERPRINT, ALICE_FINGERPRINT),
                (
                    "kaws admin sign prod alice ",
                    "kaws admin sign prod alice --yes ",
                ),
            ],
        },
        Guide {
            file: "first-admin.md",
            cwd: "infra",
            fill: &[
                (OPS_EXAMPLE_FINGERPRINT, OPS_FINGERPRINT),
                (
                    "kaws admin sign prod ops ",
                    "kaws admin sign prod ops --yes ",
                ),
            ],
        },
        Guide {
            file: "upgrade-kubernetes.md",
            cwd: "infra",
            fill: &[],
        },
        Guide {
            file: "expiring-certificates.md",
            cwd: "infra",
            fill: &[],
        },
        Guide {
            file: "rotate-kms-key.md",
            cwd: "infra",
            fill: &[],
        },
        Guide {
            file: "emergency-key-recovery.md",
            cwd: "infra",
            fill: &[],
        },
        Guide {
            file: "renew-certificates.md",
            cwd: "infra",
            // The reader answers the prompt; a pasted script has no
            // terminal, so it answers with --yes.
            fill: &[
                (EXAMPLE_FINGERPRINT, ALICE_FINGERPRINT),
                (
                    "kaws admin sign prod alice ",
                    "kaws admin sign prod alice --yes ",
                ),
            ],
        },
        Guide {
            file: "remove-admin.md",
            cwd: "infra",
            fill: &[],
        },
    ]
}

#[test]
fn every_guide_works_when_pasted() {
    let w = World::new();
    let work = w.tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // A remote for `git push` and `git pull`.
    let remote = w.tmp.path().join("remote.git");
    run_ok(Command::new("git").args(["init", "-q", "--bare", remote.to_str().unwrap()]));
    let (zone, _) = w.aws_fixtures("example.com", "ops");
    let kaws = assert_cmd::cargo::cargo_bin("kaws");
    let bin = kaws.parent().unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guides");
    let mut ran = Vec::new();
    for g in guides() {
        let text = std::fs::read_to_string(docs.join(g.file)).unwrap();
        let mut script = String::from("set -eo pipefail\n");
        for b in runnable_blocks(&text) {
            let mut b = b;
            for (from, to) in g.fill {
                b = b.replace(from, to);
            }
            // The reader's `git init` gets the remote their team already has.
            b = b.replace(
                "git init\n",
                "git init -q\ngit remote add origin \"$KAWS_TEST_REMOTE\"\n",
            );
            script.push_str(&b);
        }
        let mut cmd = Command::new("bash");
        w.env(&mut cmd);
        cmd.current_dir(work.join(g.cwd))
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("ZONE_ID", &zone)
            .env("KAWS_TEST_REMOTE", &remote)
            .env("GIT_AUTHOR_NAME", "kaws test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "kaws test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_CONFIG_COUNT", "2")
            .env("GIT_CONFIG_KEY_0", "push.autoSetupRemote")
            .env("GIT_CONFIG_VALUE_0", "true")
            .env("GIT_CONFIG_KEY_1", "init.defaultBranch")
            .env("GIT_CONFIG_VALUE_1", "main")
            .env("KUBECONFIG", w.home.join(".kube/config"));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "docs/guides/{} fails when pasted (exit {:?}):\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            g.file,
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        ran.push(g.file);
    }
    // Every guide is either run above or has nothing that can run here.
    for e in std::fs::read_dir(&docs).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ran.contains(&name.as_str()) {
            continue;
        }
        assert!(
            NOTHING_TO_RUN.contains(&name.as_str()),
            "docs/guides/{name} is in no list of tests/guides.rs"
        );
        let text = std::fs::read_to_string(e.path()).unwrap();
        assert!(
            runnable_blocks(&text).is_empty(),
            "docs/guides/{name} has sh blocks that could run: add it to guides()"
        );
    }
    // No plaintext key was left in any file by following the guides.
    let scan = w
        .kaws_in(&work.join("infra"))
        .args(["cluster", "check", "prod", "--offline", "-o", "json"])
        .output()
        .unwrap();
    assert!(!stdout(&scan).contains("\"exposed\""), "{}", stdout(&scan));
    eprintln!("guides run: {ran:?}");
}
