//! The command line itself: help on every command, the generated reference,
//! completions and man page, snapshots of the main error messages, -q, and
//! secret hygiene at the most verbose logging.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;

fn update() -> bool {
    std::env::var_os("KAWS_UPDATE_SNAPSHOTS").is_some()
}

/// Compare with a committed snapshot; rewrite it with KAWS_UPDATE_SNAPSHOTS=1.
fn snapshot(rel: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if update() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{rel} is out of date (first difference at line {:?}); rerun with KAWS_UPDATE_SNAPSHOTS=1 and review the diff",
            first.map(|n| n + 1)
        );
    }
}

#[test]
fn every_command_has_help_and_the_reference_matches_it() {
    let w = World::new();
    let reference = stdout(&w.kaws().arg("reference").output().unwrap());
    snapshot("docs/reference/commands.md", &reference);
    let commands: Vec<&str> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("## kaws"))
        .collect();
    assert!(commands.len() >= 18, "{commands:?}");
    for c in commands {
        let args: Vec<&str> = c.split_whitespace().collect();
        let out = w.kaws().args(&args).arg("--help").output().unwrap();
        assert!(out.status.success(), "kaws{c} --help");
        assert!(stdout(&out).contains("Usage: kaws"), "kaws{c} --help");
    }
    let v = stdout(&w.kaws().arg("--version").output().unwrap());
    assert!(v.starts_with("kaws "), "{v}");
}

#[test]
fn completions_and_man_page() {
    let w = World::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = w.kaws().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            stdout(&out).contains("reencrypt"),
            "{shell} completes subcommands"
        );
    }
    let man = stdout(&w.kaws().arg("man").output().unwrap());
    assert!(man.contains(".TH kaws"), "{}", &man[..200.min(man.len())]);
}

#[test]
fn main_error_messages() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("snap", &key, &[]).status.success());
    let cases: &[&[&str]] = &[
        &[
            "cluster",
            "init",
            "Bad_Name",
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            "alias/k",
            "--ssh-key",
            "k",
        ],
        &[
            "cluster",
            "init",
            "snap",
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            "alias/k",
            "--ssh-key",
            "k",
        ],
        &[
            "cluster",
            "init",
            "x",
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            "alias/missing",
            "--ssh-key",
            "k",
        ],
        &["cluster", "reencrypt", "nope", "--new-key", "alias/k"],
        &["admin", "sign", "snap", "ghost"],
        &["admin", "install", "snap", "ghost"],
        &["admin", "credential", "snap", "ghost"],
        &["admin", "create", "snap", "ca", "--kms-key", "alias/k"],
        &["admin", "create", "snap", "ops-key", "--kms-key", "alias/k"],
        &[
            "cluster",
            "key-policy",
            "snap",
            "--administrator",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
        ],
        &[
            "cluster",
            "key-policy",
            "snap",
            "--administrator",
            "arn:aws:iam::123456789012:role/a",
            "--administrator",
            "arn:aws:iam::210987654321:role/b",
        ],
    ];
    let mut text = String::new();
    for args in cases {
        let out = w.kaws().args(*args).output().unwrap();
        let err = stderr(&out).replace(&w.repo.display().to_string(), "<repo>");
        text.push_str(&format!(
            "$ kaws {}\n[exit {}]\n{err}\n",
            args.join(" "),
            out.status.code().unwrap_or(-1)
        ));
    }
    let outside = w
        .kaws_in(w.tmp.path())
        .args(["admin", "list", "x"])
        .output()
        .unwrap();
    text.push_str(&format!(
        "$ kaws admin list x   (outside a repository)\n[exit {}]\n{}\n",
        outside.status.code().unwrap_or(-1),
        stderr(&outside).replace(&w.tmp.path().display().to_string(), "<dir>")
    ));
    snapshot("tests/snapshots/errors.txt", &text);
}

#[test]
fn quiet_prints_only_results() {
    let w = World::new();
    let key = w.kms_key();
    let out = w
        .kaws()
        .args([
            "-q",
            "cluster",
            "init",
            "q",
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            &key,
            "--ssh-key",
            "k",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let out = w
        .kaws()
        .args(["-q", "admin", "list", "q"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("NAME"), "results still print");
}

/// With the most verbose logging, no key material reaches the output.
#[test]
fn no_key_material_in_logs_at_any_verbosity() {
    let w = World::new();
    let key = w.kms_key();
    let mut all = String::new();
    let mut run = |args: &[&str]| {
        let out = w
            .kaws()
            .arg("-vvv")
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
    };
    run(&[
        "cluster",
        "init",
        "logs",
        "--domain",
        "example.com",
        "--zone-id",
        "Z1",
        "--kms-key",
        &key,
        "--ssh-key",
        "k",
    ]);
    run(&["admin", "create", "logs", "ann", "--kms-key", &key]);
    run(&["admin", "sign", "logs", "ann", "--yes"]);
    let kc = w.tmp.path().join("kc");
    run(&[
        "admin",
        "install",
        "logs",
        "ann",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    run(&["cluster", "check", "logs"]);
    run(&["cluster", "renew", "logs", "--new-keys"]);
    assert!(all.contains("KMS Decrypt"), "the log is verbose");
    assert!(!all.contains("PRIVATE KEY"));
    assert!(
        !all.contains("LS0tLS1CRUdJTiBQUklWQVRF"),
        "no base64 PEM key"
    );
    // No line of any actual key's body appears either.
    for stem in ["ca", "apiserver", "kube-proxy"] {
        let out = w.aws_decrypt(
            "logs",
            &w.cluster_dir("logs")
                .join(format!("{stem}-key.pem.encrypted")),
            &format!("{stem}-key.pem"),
        );
        let pem = String::from_utf8(b64decode(&stdout(&out))).unwrap();
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
        {
            assert!(!all.contains(line), "{stem} key material in the logs");
        }
    }
}
