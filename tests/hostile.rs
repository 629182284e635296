//! The reproductions of the hostile-repository review (2026-11-29), one
//! test per finding, through the `kaws` binary against moto (and the real
//! Terraform for C3): a committer's attack is refused or shown, nothing is
//! certified, sealed or run for her, and the repository is left as it was.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Mallory's own key, made with openssl.
fn mallory_key(w: &World) -> PathBuf {
    let p = w.tmp.path().join("mallory.key");
    if !p.exists() {
        openssl_ok(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                p.to_str().unwrap(),
            ],
            w.tmp.path(),
        );
    }
    p
}

/// A CSR signed by Mallory's key, with any CN and O values (as the review
/// made them with python's `cryptography`, which kaws does not use).
fn mallory_csr(w: &World, out: &Path, cn: &str, orgs: &[&str]) {
    let script = r#"
import sys, json
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
keyf, out, spec = sys.argv[1:]
d = json.loads(spec)
key = serialization.load_pem_private_key(open(keyf, 'rb').read(), None)
attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in d['o']] + \
        [x509.NameAttribute(NameOID.COMMON_NAME, d['cn'])]
csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
open(out, 'wb').write(csr.public_bytes(serialization.Encoding.PEM))
"#;
    let spec = serde_json::json!({ "cn": cn, "o": orgs }).to_string();
    let key = mallory_key(w);
    run_ok(
        Command::new("python3")
            .args(["-c", script])
            .arg(&key)
            .arg(out)
            .arg(spec),
    );
}

/// A self-signed certificate for Mallory's key.
fn mallory_cert(w: &World, out: &Path, subject: &str) {
    let key = mallory_key(w);
    openssl_ok(
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            subject,
            "-days",
            "30",
            "-out",
            out.to_str().unwrap(),
        ],
        w.tmp.path(),
    );
}

/// A cluster `prod` with an administrator `alice`, signed.
fn prod_with_alice(w: &World) -> String {
    let key = w.kms_key();
    let out = w.cluster_init("prod", &key, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alice_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "alice", "--kms-key", &alice_key]),
    );
    run_ok(w.kaws().args(["admin", "sign", "prod", "alice", "-y"]));
    key
}

/// A `terraform` that only leaves a mark: if kaws ever runs it, the test sees it.
fn fake_terraform(w: &World) -> (PathBuf, PathBuf) {
    let marker = w.tmp.path().join("terraform-ran");
    let script = w.tmp.path().join("fake-terraform");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, marker)
}

/// Run `cmd`, failing the test if it takes longer than `secs` (a hang).
/// With `hold_stdin`, stdin is a pipe kept open, as `sleep 15 | kaws ...`.
fn run_within(mut cmd: Command, secs: u64, hold_stdin: bool) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if hold_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    let _stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kaws(w: &World, args: &[&str]) -> Command {
    let mut c = w.kaws();
    c.args(args);
    c
}

fn with_terraform(w: &World, terraform: &Path, args: &[&str]) -> Command {
    let mut c = w.kaws();
    c.env("KAWS_TERRAFORM", terraform).args(args);
    c
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn key_arn(w: &World, key: &str) -> String {
    w.aws_ok(&[
        "kms",
        "describe-key",
        "--key-id",
        key,
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ])
}

/// The KMS key that sealed a ciphertext, as KMS reports it.
fn sealed_under(w: &World, file: &Path, ctx_file: &str) -> String {
    let blob = format!("fileb://{}", file.display());
    let ctx = format!("kaws:cluster=prod,kaws:file={ctx_file}");
    w.aws_ok(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob,
        "--encryption-context",
        &ctx,
        "--query",
        "KeyId",
        "--output",
        "text",
    ])
}

fn public_key_of_cert(pem: &Path) -> String {
    openssl_ok(
        &["x509", "-in", pem.to_str().unwrap(), "-noout", "-pubkey"],
        Path::new("."),
    )
}

#[test]
fn c1_renew_does_not_certify_a_swapped_certificate_key() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    // Mallory's commit: "bootstrap.pem: fix line endings".
    let original = std::fs::read(dir.join("bootstrap.pem")).unwrap();
    mallory_cert(
        &w,
        &dir.join("bootstrap.pem"),
        "/O=system:masters/CN=kaws:bootstrap",
    );
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["cluster", "renew", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains(
            "bootstrap.pem: its public key is not the one sealed in bootstrap-key.pem.encrypted"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("restore it from git"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot(), "nothing was certified or written");

    // With the certificate restored, the renewed one certifies the key
    // sealed in bootstrap-key.pem.encrypted, as openssl sees it.
    std::fs::write(dir.join("bootstrap.pem"), &original).unwrap();
    run_ok(w.kaws().args(["cluster", "renew", "prod"]));
    let sealed = w.aws_decrypt(
        "prod",
        &dir.join("bootstrap-key.pem.encrypted"),
        "bootstrap-key.pem",
    );
    assert!(sealed.status.success());
    let pem = b64decode(String::from_utf8_lossy(&sealed.stdout).trim());
    let from_key = openssl_stdin(&["pkey", "-pubout"], &pem);
    assert_eq!(
        String::from_utf8_lossy(&from_key.stdout),
        public_key_of_cert(&dir.join("bootstrap.pem"))
    );
    openssl_ok(&["verify", "-CAfile", "ca.pem", "bootstrap.pem"], &dir);
}

#[test]
fn c2_a_committed_kms_key_change_is_refused_with_both_key_ids() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    let tfvars = dir.join("terraform.tfvars.json");
    let original = std::fs::read_to_string(&tfvars).unwrap();
    // Mallory: "use the key ARN instead of the bare id".
    let evil = key_arn(&w, &w.kms_key());
    std::fs::write(&tfvars, original.replace(&key, &evil)).unwrap();
    let before = w.snapshot();
    for args in [
        &["cluster", "renew", "prod", "--new-keys"][..],
        &["cluster", "renew", "prod"][..],
    ] {
        let out = w.kaws().args(args).output().unwrap();
        assert_eq!(code(&out), Some(3), "{args:?}: {}", both(&out));
        let err = stderr(&out);
        assert!(err.contains(&evil), "{err}");
        assert!(err.contains(&key_arn(&w, &key)), "{err}");
        assert!(err.contains("kaws cluster reencrypt"), "{err}");
        assert_eq!(before, w.snapshot(), "{args:?}: nothing was sealed");
    }
    // cluster check names both keys too.
    let out = w
        .kaws()
        .args(["cluster", "check", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(6), "{}", both(&out));
    assert!(stdout(&out).contains(&evil), "{}", stdout(&out));

    // The one way to change keys: reencrypt, then new keys are sealed
    // under the new key, as KMS itself reports.
    std::fs::write(&tfvars, &original).unwrap();
    let next = w.kms_key();
    run_ok(
        w.kaws()
            .args(["cluster", "reencrypt", "prod", "--new-key", &next]),
    );
    run_ok(w.kaws().args(["cluster", "renew", "prod", "--new-keys"]));
    for stem in ["bootstrap", "apiserver", "service-account"] {
        assert_eq!(
            sealed_under(
                &w,
                &dir.join(format!("{stem}-key.pem.encrypted")),
                &format!("{stem}-key.pem")
            ),
            key_arn(&w, &next),
            "{stem}"
        );
    }
}

#[test]
fn c2_a_kept_key_sealed_under_another_kms_key_is_refused() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    // Mallory seals a key of hers under her own KMS key with the right
    // context (the context is no secret) and certifies nothing herself.
    let evil = w.kms_key();
    let pem = w.tmp.path().join("k.pem");
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            pem.to_str().unwrap(),
        ],
        w.tmp.path(),
    );
    let blob = w.tmp.path().join("blob");
    let out = w.aws(&[
        "kms",
        "encrypt",
        "--key-id",
        &evil,
        "--plaintext",
        &format!("fileb://{}", pem.display()),
        "--encryption-context",
        "kaws:cluster=prod,kaws:file=bootstrap-key.pem",
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    assert!(out.status.success());
    std::fs::write(
        &blob,
        b64decode(String::from_utf8_lossy(&out.stdout).trim()),
    )
    .unwrap();
    std::fs::copy(&blob, dir.join("bootstrap-key.pem.encrypted")).unwrap();
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["cluster", "renew", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("bootstrap-key.pem.encrypted: sealed under KMS key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());
    // Nor is it laundered under the cluster's next key by reencrypt.
    let next = w.kms_key();
    let out = w
        .kaws()
        .args([
            "cluster",
            "reencrypt",
            "prod",
            "--new-key",
            &next,
            "--accept-changes",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("bootstrap-key.pem.encrypted: sealed under KMS key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());
}

#[test]
fn c4_a_second_ca_appended_to_ca_pem_is_refused_everywhere() {
    let w = World::new();
    prod_with_alice(&w);
    let dir = w.cluster_dir("prod");
    let evil = w.tmp.path().join("evil-ca.pem");
    mallory_cert(&w, &evil, "/CN=kube-prod-ca");
    let mut ca = std::fs::read(dir.join("ca.pem")).unwrap();
    ca.extend(std::fs::read(&evil).unwrap());
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    let bob_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &bob_key]),
    );
    let before = w.snapshot();

    let out = w
        .kaws()
        .args(["cluster", "check", "prod", "--offline"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(6), "{}", both(&out));
    assert!(
        stderr(&out).contains("ca.pem: holds 2 PEM blocks"),
        "{}",
        both(&out)
    );

    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "bob", "-y", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("2 PEM blocks"), "{}", stderr(&out));

    let kubeconfig = w.tmp.path().join("kc");
    let out = w
        .kaws()
        .args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(!kubeconfig.exists(), "no kubeconfig trusts the second CA");

    let (terraform, ran) = fake_terraform(&w);
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("2 PEM blocks"), "{}", stderr(&out));
    assert!(!ran.exists(), "Terraform never ran over the second CA");
    assert_eq!(before, w.snapshot());
}

#[test]
fn s1_a_committed_lock_symlink_is_never_written_through() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let victim = w.tmp.path().join("bashrc");
    std::fs::write(&victim, b"export PATH=$HOME/bin:$PATH\n").unwrap();
    // `git pull` replaces the ignored lock file kaws left with the link.
    let lock = w.repo.join("clusters/.prod.lock");
    let _ = std::fs::remove_file(&lock);
    std::os::unix::fs::symlink(&victim, &lock).unwrap();

    // Not a git working tree: the lock stays in clusters/, but a link
    // there is refused before anything is written.
    let alice_key = w.kms_key();
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["admin", "create", "prod", "alice", "--kms-key", &alice_key])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(4), "{}", both(&out));
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());
    // A dangling link creates nothing at its target either.
    std::fs::remove_file(&lock).unwrap();
    let nowhere = w.tmp.path().join("nologin");
    std::os::unix::fs::symlink(&nowhere, &lock).unwrap();
    let out = w
        .kaws()
        .args(["cluster", "renew", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(4), "{}", both(&out));
    assert!(!nowhere.exists());

    // In a git working tree (the real case), the lock lives in .git,
    // where no commit reaches: the committed link is ignored.
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(&w.repo)
                .env("HOME", &w.home),
        )
    };
    git(&["init", "-q"]);
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    git(&["add", "-A"]);
    git(&["add", "-f", "clusters/.prod.lock"]);
    git(&["commit", "-qm", "tidy clusters/"]);
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "alice", "--kms-key", &alice_key]),
    );
    run_ok(w.kaws().args(["admin", "sign", "prod", "alice", "-y"]));
    run_ok(w.kaws().args(["cluster", "renew", "prod"]));
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"export PATH=$HOME/bin:$PATH\n",
        "the link's target is untouched"
    );
    assert!(w.repo.join(".git/kaws-prod.lock").is_file());
    assert!(std::fs::symlink_metadata(&lock)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn s4_component_identities_are_refused_as_administrator_names() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    mallory_csr(
        &w,
        &dir.join("kube-prod-apiserver.csr"),
        "kube-prod-apiserver",
        &[],
    );
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "kube-prod-apiserver", "-y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("reserved"), "{}", stderr(&out));
    assert!(!dir.join("kube-prod-apiserver.pem").exists());
    for name in [
        "kube-prod-node",
        "kube-prod-etcd",
        "kube-prod-apiserver-etcd-client",
        "system-masters",
        "kaws-bootstrap",
    ] {
        let out = w
            .kaws()
            .args(["admin", "create", "prod", name, "--kms-key", &key])
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(3), "{name}: {}", both(&out));
        assert!(stderr(&out).contains("reserved"), "{}", stderr(&out));
    }
    assert_eq!(before, w.snapshot());
}

#[test]
fn s3_group_floods_are_refused_and_privileged_groups_stand_apart() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");

    // 1,900 filler groups after system:masters: 59 KB, refused by size.
    let filler: Vec<String> = (0..1900).map(|i| format!("view-ns-{i:04}")).collect();
    let mut orgs = vec!["system:masters"];
    orgs.extend(filler.iter().map(String::as_str));
    mallory_csr(&w, &dir.join("alice.csr"), "alice", &orgs);
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "alice", "-y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("view-ns-"),
        "nothing was shown to sign"
    );
    assert_eq!(before, w.snapshot());

    // Twenty small groups fit in the size, not in the count.
    let twenty: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
    let twenty: Vec<&str> = twenty.iter().map(String::as_str).collect();
    mallory_csr(&w, &dir.join("alice.csr"), "alice", &twenty);
    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "alice", "-y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("20 groups"), "{}", stderr(&out));
    assert!(!dir.join("alice.pem").exists());

    // Format characters cannot hide in a group.
    mallory_csr(&w, &dir.join("alice.csr"), "alice", &["dev\u{202e}sretsam"]);
    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "alice", "-y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(!stderr(&out).contains('\u{202e}'));
    assert!(stderr(&out).contains("\\u{202e}"), "{}", stderr(&out));

    // A few groups: one per line, system:masters on its own PRIVILEGED line.
    mallory_csr(
        &w,
        &dir.join("alice.csr"),
        "alice",
        &["developers", "system:masters", "viewers"],
    );
    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "alice", "-y"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let prompt = stderr(&out);
    let lines: Vec<&str> = prompt.lines().collect();
    assert!(lines.contains(&"Groups:      developers"), "{prompt}");
    assert!(lines.contains(&"             viewers"), "{prompt}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PRIVILEGED:  system:masters")),
        "{prompt}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("Groups:") && l.contains("system:masters")),
        "{prompt}"
    );

    // A renewal shows what it adds and drops against the current certificate.
    mallory_csr(
        &w,
        &dir.join("alice.csr"),
        "alice",
        &["developers", "system:masters", "system:nodes"],
    );
    let out = w
        .kaws()
        .args([
            "admin",
            "sign",
            "prod",
            "alice",
            "--renew",
            "-y",
            "--accept-changes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let prompt = stderr(&out);
    assert!(prompt.contains("Added:       system:nodes"), "{prompt}");
    assert!(prompt.contains("Removed:     viewers"), "{prompt}");
    assert!(prompt.contains("PRIVILEGED:  system:nodes"), "{prompt}");
}

#[test]
fn s2_renew_over_a_forged_current_certificate_is_refused() {
    let w = World::new();
    prod_with_alice(&w);
    let dir = w.cluster_dir("prod");
    // Mallory commits both a CSR for her key and a self-signed alice.pem.
    mallory_csr(&w, &dir.join("alice.csr"), "alice", &[]);
    mallory_cert(&w, &dir.join("alice.pem"), "/CN=alice");
    let before = w.snapshot();

    let out = w.kaws().args(["admin", "list", "prod"]).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap()
        .to_string();
    assert!(line.contains("invalid"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not signed by the cluster CA"),
        "{}",
        stdout(&out)
    );

    let out = w
        .kaws()
        .args([
            "admin",
            "sign",
            "prod",
            "alice",
            "--renew",
            "-y",
            "--accept-changes",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("not signed by the cluster CA"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        before,
        w.snapshot(),
        "alice's name did not go to Mallory's key"
    );
}

#[test]
fn m1_links_to_devices_and_oversized_files_are_refused_quickly() {
    let w = World::new();
    let key = prod_with_alice(&w);
    let dir = w.cluster_dir("prod");
    let bob_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &bob_key]),
    );
    let csr = dir.join("bob.csr");
    let saved = std::fs::read(&csr).unwrap();
    for target in ["/dev/zero", "/proc/self/environ", "/etc/passwd"] {
        std::fs::remove_file(&csr).unwrap();
        std::os::unix::fs::symlink(target, &csr).unwrap();
        let out = run_within(kaws(&w, &["admin", "list", "prod"]), 10, false);
        assert!(out.status.success(), "{}", both(&out));
        assert!(
            stdout(&out).contains("symbolic link"),
            "{target}: {}",
            stdout(&out)
        );
        let out = run_within(
            kaws(&w, &["cluster", "check", "prod", "--offline"]),
            10,
            false,
        );
        assert_eq!(code(&out), Some(6), "{}", both(&out));
        let out = run_within(kaws(&w, &["admin", "sign", "prod", "bob", "-y"]), 10, false);
        assert_eq!(code(&out), Some(3), "{}", both(&out));
    }
    std::fs::remove_file(&csr).unwrap();
    std::fs::write(&csr, &saved).unwrap();

    // The CA's ciphertext: a link to /dev/zero, then a 1 MB file.
    let ca_key = dir.join("ca-key.pem.encrypted");
    let saved = std::fs::read(&ca_key).unwrap();
    std::fs::remove_file(&ca_key).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &ca_key).unwrap();
    let out = run_within(kaws(&w, &["admin", "sign", "prod", "bob", "-y"]), 10, false);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    std::fs::remove_file(&ca_key).unwrap();
    std::fs::write(&ca_key, vec![0u8; 1 << 20]).unwrap();
    let out = run_within(
        kaws(&w, &["cluster", "renew", "prod", "--accept-changes"]),
        10,
        false,
    );
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
    std::fs::write(&ca_key, &saved).unwrap();
    assert!(!dir.join("bob.pem").exists());

    // A module file that is a link to /dev/zero: plan refuses it unread.
    let zz = w.repo.join("terraform/modules/kaws/zz.tf");
    std::os::unix::fs::symlink("/dev/zero", &zz).unwrap();
    let (terraform, ran) = fake_terraform(&w);
    let out = run_within(
        with_terraform(&w, &terraform, &["cluster", "plan", "prod"]),
        10,
        false,
    );
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("zz.tf: a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists());
    let _ = key;
}

#[test]
fn m2_fifos_stdin_links_and_link_loops_do_not_hang() {
    let w = World::new();
    prod_with_alice(&w);
    let dir = w.cluster_dir("prod");
    let csr = dir.join("bob.csr");
    run_ok(Command::new("mkfifo").arg(&csr));
    for args in [
        &["admin", "list", "prod"][..],
        &["admin", "sign", "prod", "bob", "-y"][..],
        &["cluster", "check", "prod", "--offline"][..],
    ] {
        let out = run_within(kaws(&w, args), 10, false);
        assert!(
            both(&out).contains("not a regular file"),
            "{args:?}: {}",
            both(&out)
        );
    }
    std::fs::remove_file(&csr).unwrap();
    std::os::unix::fs::symlink("/dev/stdin", &csr).unwrap();
    let out = run_within(kaws(&w, &["admin", "list", "prod"]), 10, true);
    assert!(stdout(&out).contains("symbolic link"), "{}", both(&out));
    std::fs::remove_file(&csr).unwrap();

    // Two links to `.` in the module: 2^40 paths for a walk that follows them.
    let module = w.repo.join("terraform/modules/kaws");
    std::os::unix::fs::symlink(".", module.join("a")).unwrap();
    std::os::unix::fs::symlink(".", module.join("b")).unwrap();
    let (terraform, ran) = fake_terraform(&w);
    let out = run_within(
        with_terraform(&w, &terraform, &["cluster", "plan", "prod"]),
        10,
        false,
    );
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(!ran.exists());
}

#[test]
fn m3_text_from_files_is_escaped_when_printed() {
    let w = World::new();
    prod_with_alice(&w);
    let dir = w.cluster_dir("prod");
    mallory_csr(
        &w,
        &dir.join("bob.csr"),
        "bob",
        &[
            "dev\x1b[2J\x1b[H\x1b[32mALL CLEAN\x1b[0m",
            "x\r\nfake",
            "\u{202e}gpj.exe",
            "a\u{200b}b\u{2028}c",
        ],
    );
    let leftover = dir.join(".kaws-tmp-\x1b[2J\x1b[H\x1b[32mALL CHECKS PASSED\x1b[0m");
    std::fs::write(&leftover, b"").unwrap();
    let raw = |s: &str| {
        s.chars()
            .any(|c| matches!(c, '\x1b' | '\r' | '\u{202e}' | '\u{200b}' | '\u{2028}'))
    };

    let out = w.kaws().args(["admin", "list", "prod"]).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert!(!raw(&both(&out)), "{:?}", both(&out));
    assert!(stdout(&out).contains("dev\\u{1b}[2J"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("x\\u{d}\\u{a}fake"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("\\u{202e}gpj.exe"),
        "{}",
        stdout(&out)
    );

    let out = w
        .kaws()
        .args(["admin", "list", "prod", "-o", "json"])
        .output()
        .unwrap();
    assert!(!raw(&stdout(&out)), "{:?}", stdout(&out));
    let v = json(&stdout(&out));
    let bob = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "bob")
        .unwrap();
    assert_eq!(bob["groups"][2], "\u{202e}gpj.exe", "JSON keeps the value");

    let out = w
        .kaws()
        .args(["cluster", "check", "prod", "--offline"])
        .output()
        .unwrap();
    assert!(!raw(&both(&out)), "{:?}", both(&out));
    assert!(
        stdout(&out).contains(".kaws-tmp-\\u{1b}[2J"),
        "{}",
        stdout(&out)
    );

    let out = w
        .kaws()
        .args(["admin", "sign", "prod", "bob", "-y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(!raw(&both(&out)), "{:?}", both(&out));
}

#[test]
fn m5_kubeconfig_merge_keeps_namespaces_and_refuses_duplicate_names() {
    let w = World::new();
    prod_with_alice(&w);
    let kc = w.tmp.path().join("config");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: prod\n  cluster: {server: 'https://other-prod.internal'}\nusers:\n- name: alice-prod\n  user: {token: secret-token}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: alice-prod, namespace: payments}\n",
    )
    .unwrap();
    let out = w
        .kaws()
        .args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(&kc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stderr(&out).contains("server was \"https://other-prod.internal\""),
        "the replaced server is shown: {}",
        both(&out)
    );
    let view = |path: &Path, jsonpath: &str| {
        Command::new("kubectl")
            .args(["config", "view", "--raw", "--kubeconfig"])
            .arg(path)
            .args(["-o", &format!("jsonpath={jsonpath}")])
            .output()
            .unwrap()
    };
    let ns = view(&kc, "{.contexts[?(@.name==\"prod\")].context.namespace}");
    assert!(ns.status.success(), "{}", stderr(&ns));
    assert_eq!(stdout(&ns), "payments", "kubectl still sees the namespace");
    let token = view(&kc, "{.users[?(@.name==\"alice-prod\")].user.token}");
    assert_eq!(
        stdout(&token),
        "",
        "the old credential is not mixed with the new"
    );

    // Two clusters of the same name: refused, the file untouched, as kubectl does.
    let dup = w.tmp.path().join("dup");
    let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: 'https://a'}\n- name: prod\n  cluster: {server: 'https://b'}\n";
    std::fs::write(&dup, text).unwrap();
    let out = w
        .kaws()
        .args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(&dup)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("two entries of `clusters` are named \"prod\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&dup).unwrap(), text);

    // 200,000 nested flow sequences took the YAML parser over a minute.
    let deep = w.tmp.path().join("deep");
    let text = format!("clusters: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    std::fs::write(&deep, &text).unwrap();
    let mut cmd = w.kaws();
    cmd.args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(&deep);
    let out = run_within(cmd, 10, false);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("nested more than"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&deep).unwrap(), text);
}

#[test]
fn c3_m4_plan_runs_no_code_kaws_did_not_write() {
    let w = World::new();
    let c = "hostile-c3";
    w.applyable_cluster(c, &[]);
    let dir = w.cluster_dir(c);
    let plan = |extra: &[&str]| {
        let mut args = vec!["cluster", "plan", c];
        args.extend(extra);
        args.extend(["--", "-no-color", "-refresh=false", "-lock=false"]);
        tf(&w, &args)
    };
    // The checks do not stand in the way of a repository as kaws wrote it.
    let out = plan(&[]);
    assert!(out.status.success(), "{}", both(&out));
    let before = w.snapshot();
    let pwned = w.tmp.path().join("pwned");
    let creds = format!(
        "[profile kaws]\ncredential_process = sh -c \"touch {}; echo '{{\\\"Version\\\":1,\\\"AccessKeyId\\\":\\\"t\\\",\\\"SecretAccessKey\\\":\\\"t\\\"}}'\"\n",
        pwned.display()
    );
    // Each change is accepted past the seal (--accept-changes): what is
    // tested here is the check that holds even then.
    let refused = |what: &str, expect: &str| {
        let out = plan(&["--accept-changes"]);
        assert_eq!(code(&out), Some(3), "{what}: {}", both(&out));
        assert!(stderr(&out).contains(expect), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains("nothing was run"), "{}", stderr(&out));
        assert!(!pwned.exists(), "{what}: committed code ran");
    };
    // A module change even sealed (approved with `kaws cluster seal`) still
    // needs --accept-changes at every run: the seal is put back after.
    let seal_file = dir.join("seal.json");
    let refused_sealed = |what: &str, expect: &[&str]| {
        let sealed = std::fs::read(&seal_file).unwrap();
        run_ok(w.kaws().args(["cluster", "seal", c, "--yes"]));
        let out = plan(&[]);
        assert_eq!(code(&out), Some(3), "{what}: {}", both(&out));
        for e in expect {
            assert!(stderr(&out).contains(e), "{what}: {}", stderr(&out));
        }
        assert!(stderr(&out).contains("nothing was run"), "{}", stderr(&out));
        assert!(!pwned.exists(), "{what}: committed code ran");
        std::fs::write(&seal_file, sealed).unwrap();
    };

    // (b) An override file and an AWS config beside main.tf.
    std::fs::write(
        dir.join("provider_override.tf"),
        "provider \"aws\" {\n  profile             = \"kaws\"\n  shared_config_files = [\"${path.root}/aws.ini\"]\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("aws.ini"), &creds).unwrap();
    refused("override", "provider_override.tf");
    std::fs::remove_file(dir.join("provider_override.tf")).unwrap();
    std::fs::remove_file(dir.join("aws.ini")).unwrap();

    // Variables around the validated settings, extra configuration, HCL variables.
    for (name, text) in [
        ("zz.auto.tfvars.json", "{\"ssh_key_name\": \"x\\ny\"}\n"),
        ("zz.auto.tfvars", "ssh_key_name = \"x\"\n"),
        ("terraform.tfvars", "ssh_key_name = \"x\"\n"),
        (
            "outputs_extra.tf",
            "output \"x\" { value = filebase64(\"${path.root}/ca-key.pem.encrypted\") }\n",
        ),
        ("extra.tf.json", "{}\n"),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
        refused(name, name);
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    // The table's maps: a role granted a CA's key, a file read from elsewhere.
    let vars_path = dir.join("pki.auto.tfvars.json");
    let vars = std::fs::read_to_string(&vars_path).unwrap();
    for changed in [
        vars.replacen(
            "\"kube-proxy-key.pem\"",
            "\"kube-proxy-key.pem\", \"ca-key.pem\"",
            1,
        ),
        vars.replacen(
            "\"kube-proxy.pem\"",
            "\"kube-proxy.pem\", \"../../../etc/passwd\"",
            1,
        ),
    ] {
        assert_ne!(changed, vars);
        std::fs::write(&vars_path, &changed).unwrap();
        refused(
            "pki.auto.tfvars.json",
            "pki.auto.tfvars.json: is not what kaws writes",
        );
    }
    std::fs::write(&vars_path, &vars).unwrap();
    let plugins = dir.join("terraform.d");
    std::fs::create_dir(&plugins).unwrap();
    refused("terraform.d", "terraform.d (a directory)");
    std::fs::remove_dir(&plugins).unwrap();

    // M4: .terraform as a link to a directory outside the repository.
    let outside = w.tmp.path().join("outside-data");
    std::fs::rename(dir.join(".terraform"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(".terraform")).unwrap();
    let stamp = std::fs::read(outside.join("kaws-init.sha256")).unwrap();
    refused(".terraform link", ".terraform (a symbolic link)");
    assert_eq!(
        std::fs::read(outside.join("kaws-init.sha256")).unwrap(),
        stamp
    );
    std::fs::remove_file(dir.join(".terraform")).unwrap();
    std::fs::rename(&outside, dir.join(".terraform")).unwrap();

    // main.tf.json itself, with code added.
    let main = dir.join("main.tf.json");
    let main_text = std::fs::read_to_string(&main).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&main_text).unwrap();
    doc["data"] = serde_json::json!({"aws_caller_identity": {"x": {}}});
    std::fs::write(&main, doc.to_string()).unwrap();
    refused(
        "main.tf.json",
        "main.tf.json: is not the entry point kaws writes",
    );
    std::fs::write(&main, &main_text).unwrap();
    // A main.tf beside it: an older kaws' entry point, which kaws removes
    // before Terraform runs (it never runs it). A committed file the seal
    // does not hold: listed, and accepted past the seal like the others.
    std::fs::write(
        dir.join("main.tf"),
        "data \"aws_caller_identity\" \"x\" {}\n",
    )
    .unwrap();
    let out = plan(&["--accept-changes"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stderr(&out).contains("replaced"), "{}", stderr(&out));
    assert!(!dir.join("main.tf").exists());
    assert!(!pwned.exists());

    // (a) The module: a provider with a credential process, and its config.
    let module = w.repo.join("terraform/modules/kaws");
    let versions = std::fs::read_to_string(module.join("versions.tf")).unwrap();
    std::fs::write(
        module.join("versions.tf"),
        format!("{versions}\nprovider \"aws\" {{\n  alias               = \"telemetry\"\n  region              = \"us-east-1\"\n  profile             = \"kaws\"\n  shared_config_files = [\"${{path.module}}/templates/telemetry.ini\"]\n}}\ndata \"aws_caller_identity\" \"telemetry\" {{\n  provider = aws.telemetry\n}}\n"),
    )
    .unwrap();
    std::fs::write(module.join("templates/telemetry.ini"), &creds).unwrap();
    refused_sealed(
        "module",
        &[
            "versions.tf: changed",
            "templates/telemetry.ini: not part of kaws' module",
        ],
    );
    std::fs::write(module.join("versions.tf"), &versions).unwrap();
    std::fs::remove_file(module.join("templates/telemetry.ini")).unwrap();

    // (d) kaws.json pointing at a remote module, main.tf.json made to agree.
    let marker = w.repo.join("kaws.json");
    let cfg = std::fs::read_to_string(&marker).unwrap();
    let evil = "git::https://evil.example/kaws.git//terraform/modules/kaws?ref=main";
    std::fs::write(&marker, cfg.replace("../../terraform/modules/kaws", evil)).unwrap();
    std::fs::write(
        &main,
        main_text.replace("../../terraform/modules/kaws", evil),
    )
    .unwrap();
    refused_sealed("source", &[evil]);
    std::fs::write(&marker, &cfg).unwrap();
    std::fs::write(&main, &main_text).unwrap();
    assert_eq!(before, w.snapshot(), "the repository is as it was");

    // Terraform's working data committed to git (a provider binary would
    // run as "previously installed"): refused. The provider lock file is
    // committed, as HashiCorp advises: `kaws init` no longer ignores it.
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(&w.repo)
                .env("HOME", &w.home),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "init"]);
    let lock_hcl = format!("clusters/{c}/.terraform.lock.hcl");
    let tracked = git(&["ls-files", &lock_hcl]);
    assert!(tracked.contains(".terraform.lock.hcl"), "{tracked}");
    let out = plan(&[]);
    assert!(out.status.success(), "{}", both(&out));
    let working = format!("clusters/{c}/.terraform/kaws-init.sha256");
    git(&["add", "-f", &working]);
    git(&["commit", "-qm", "commit working data"]);
    refused("committed working data", ".terraform");
    git(&["rm", "-q", "--cached", &working]);
    git(&["commit", "-qm", "uncommit"]);

    // A change reviewed and accepted runs, and is named on stderr.
    let variables = std::fs::read_to_string(module.join("variables.tf")).unwrap();
    std::fs::write(
        module.join("variables.tf"),
        format!("{variables}\n# reviewed\n"),
    )
    .unwrap();
    let out = plan(&["--accept-changes"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stderr(&out).contains("variables.tf: changed"),
        "{}",
        stderr(&out)
    );
}

/// Mallory's key, sealed under her own KMS key with the context kaws uses
/// for `file` (the context is no secret), written over `<file>.encrypted`.
fn seal_as_mallory(w: &World, evil: &str, dir: &Path, file: &str) {
    // PKCS#8, as kaws seals keys: the key parses, only its sealing differs.
    let pem = w.tmp.path().join("mallory-pkcs8.pem");
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            pem.to_str().unwrap(),
        ],
        w.tmp.path(),
    );
    let out = w.aws(&[
        "kms",
        "encrypt",
        "--key-id",
        evil,
        "--plaintext",
        &format!("fileb://{}", pem.display()),
        "--encryption-context",
        &format!("kaws:cluster=prod,kaws:file={file}"),
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        dir.join(format!("{file}.encrypted")),
        b64decode(String::from_utf8_lossy(&out.stdout).trim()),
    )
    .unwrap();
}

#[test]
fn c2_the_etcd_and_front_proxy_ca_keys_and_the_encryption_configuration_are_opened_as_the_cas() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    let evil = w.kms_key();
    for (stem, args) in [
        (
            "etcd-ca",
            &["cluster", "renew", "prod", "--accept-changes"][..],
        ),
        (
            "front-proxy-ca",
            &["cluster", "renew", "prod", "--accept-changes"][..],
        ),
        (
            "secrets-encryption",
            &["cluster", "renew", "prod", "--new-keys", "--accept-changes"][..],
        ),
    ] {
        let file = format!("{stem}-key.pem.encrypted");
        let original = std::fs::read(dir.join(&file)).unwrap();
        seal_as_mallory(&w, &evil, &dir, &format!("{stem}-key.pem"));
        let before = w.snapshot();
        let out = w.kaws().args(args).output().unwrap();
        assert_eq!(code(&out), Some(3), "{stem}: {}", both(&out));
        assert!(
            stderr(&out).contains(&format!("{file}: sealed under KMS key")),
            "{stem}: {}",
            stderr(&out)
        );
        assert_eq!(before, w.snapshot(), "{stem}: nothing was written");
        let out = w
            .kaws()
            .args(["cluster", "check", "prod"])
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(6), "{stem}: {}", both(&out));
        assert!(
            both(&out).contains("which seals ca-key.pem.encrypted"),
            "{stem}: {}",
            both(&out)
        );
        std::fs::write(dir.join(&file), &original).unwrap();
    }
    // With the files restored, new keys of every row are sealed under the
    // key that seals the CA's, as KMS itself reports.
    run_ok(w.kaws().args(["cluster", "renew", "prod", "--new-keys"]));
    for stem in [
        "etcd",
        "etcd-client",
        "front-proxy-client",
        "secrets-encryption",
    ] {
        assert_eq!(
            sealed_under(
                &w,
                &dir.join(format!("{stem}-key.pem.encrypted")),
                &format!("{stem}-key.pem")
            ),
            key_arn(&w, &key),
            "{stem}"
        );
    }
}

#[test]
fn c1_a_swapped_etcd_certificate_or_ca_certificate_is_not_certified() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    for (file, subject, message) in [
        (
            "etcd-client.pem",
            "/CN=kube-prod-apiserver-etcd-client",
            "etcd-client.pem: its public key is not the one sealed in etcd-client-key.pem.encrypted",
        ),
        (
            "front-proxy-client.pem",
            "/CN=front-proxy-client",
            "front-proxy-client.pem: its public key is not the one sealed in front-proxy-client-key.pem.encrypted",
        ),
        (
            "etcd-ca.pem",
            "/CN=kube-prod-etcd-ca",
            "etcd-ca-key.pem.encrypted does not hold the key of etcd-ca.pem",
        ),
    ] {
        let original = std::fs::read(dir.join(file)).unwrap();
        mallory_cert(&w, &dir.join(file), subject);
        let before = w.snapshot();
        let out = w
            .kaws()
            .args(["cluster", "renew", "prod", "--accept-changes"])
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(3), "{file}: {}", both(&out));
        assert!(stderr(&out).contains(message), "{file}: {}", stderr(&out));
        assert_eq!(before, w.snapshot(), "{file}: nothing was certified");
        std::fs::write(dir.join(file), &original).unwrap();
    }
    run_ok(w.kaws().args(["cluster", "renew", "prod"]));
    // Each leaf chains to its own CA only.
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "etcd-ca.pem",
            "etcd.pem",
            "etcd-client.pem",
        ],
        &dir,
    );
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "front-proxy-ca.pem",
            "front-proxy-client.pem",
        ],
        &dir,
    );
    for (ca, leaf) in [
        ("ca.pem", "etcd-client.pem"),
        ("etcd-ca.pem", "apiserver.pem"),
    ] {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile", ca, leaf])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{leaf} chains to {ca}");
    }
}

#[test]
fn c4_each_certificate_terraform_hands_out_chains_to_its_own_ca() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    let (terraform, ran) = fake_terraform(&w);
    // A certificate the cluster CA signed where etcd's is expected.
    let etcd = std::fs::read(dir.join("etcd.pem")).unwrap();
    std::fs::copy(dir.join("apiserver.pem"), dir.join("etcd.pem")).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("etcd.pem: not signed by the etcd certificate authority"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists());
    std::fs::write(dir.join("etcd.pem"), &etcd).unwrap();
    // A second CA appended to the front-proxy CA.
    let evil = w.tmp.path().join("evil-ca.pem");
    mallory_cert(&w, &evil, "/CN=kube-prod-front-proxy-ca");
    let mut ca = std::fs::read(dir.join("front-proxy-ca.pem")).unwrap();
    ca.extend(std::fs::read(&evil).unwrap());
    std::fs::write(dir.join("front-proxy-ca.pem"), &ca).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("front-proxy-ca.pem: holds 2 PEM blocks"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists(), "Terraform never ran over the second CA");
    let out = w
        .kaws()
        .args(["cluster", "check", "prod", "--offline"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(6), "{}", both(&out));
    assert!(both(&out).contains("2 PEM blocks"), "{}", both(&out));
}

#[test]
fn c2_what_an_older_cluster_lacks_is_sealed_under_the_key_that_seals_the_cas() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("prod", &key, &[]).status.success());
    let dir = w.cluster_dir("prod");
    for f in [
        "etcd-ca.pem",
        "etcd-ca-key.pem.encrypted",
        "front-proxy-ca.pem",
        "front-proxy-ca-key.pem.encrypted",
        "front-proxy-client.pem",
        "front-proxy-client-key.pem.encrypted",
        "secrets-encryption-key.pem.encrypted",
    ] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let (terraform, ran) = fake_terraform(&w);
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("kaws cluster renew prod"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists());
    run_ok(
        w.kaws()
            .args(["cluster", "renew", "prod", "--accept-changes"]),
    );
    for stem in [
        "etcd-ca",
        "front-proxy-ca",
        "front-proxy-client",
        "secrets-encryption",
    ] {
        assert_eq!(
            sealed_under(
                &w,
                &dir.join(format!("{stem}-key.pem.encrypted")),
                &format!("{stem}-key.pem")
            ),
            key_arn(&w, &key),
            "{stem}"
        );
    }
    // The kept etcd keys are now certified by the new etcd CA.
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "etcd-ca.pem",
            "etcd.pem",
            "etcd-client.pem",
        ],
        &dir,
    );
    let out = w
        .kaws()
        .args(["cluster", "check", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", both(&out));
}
