//! The seal (issue 18), through the `kaws` binary against moto: written
//! after every privileged command, opened before each one; a committed
//! change is listed and refused until accepted, and nothing runs over it;
//! a forged seal is refused; a rollback is seen by a machine that saw
//! newer. The aws CLI and sha256sum judge what kaws wrote.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sha2::{Digest, Sha256};

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

fn kaws(w: &World, args: &[&str]) -> Output {
    w.kaws().args(args).output().unwrap()
}

fn seal_json(w: &World) -> serde_json::Value {
    json(&std::fs::read_to_string(w.cluster_dir("prod").join("seal.json")).unwrap())
}

fn generation(w: &World) -> u64 {
    seal_json(w)["seal"]["generation"].as_u64().unwrap()
}

fn check_json(w: &World, offline: bool) -> serde_json::Value {
    let mut args = vec!["cluster", "check", "prod", "-o", "json"];
    if offline {
        args.push("--offline");
    }
    json(&stdout(&kaws(w, &args)))
}

fn git(w: &World, args: &[&str]) -> String {
    run_ok(
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&w.repo)
            .env("HOME", &w.home),
    )
}

/// A `terraform` that only leaves a mark.
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

fn prod(w: &World) -> String {
    let key = w.kms_key();
    let out = w.cluster_init("prod", &key, &[]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("Sealed cluster prod (generation 1"));
    key
}

/// The seal's authenticator, opened by the aws CLI under the seal's own
/// encryption context, is the digest of its body, and every file digest
/// is the file's, as sha256sum sees it.
fn judge_seal(w: &World, key: &str) {
    let seal = seal_json(w);
    let auth = w.tmp.path().join("auth.bin");
    std::fs::write(
        &auth,
        hex::decode(seal["authenticator"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let out = w.aws(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &format!("fileb://{}", auth.display()),
        "--encryption-context",
        "kaws:cluster=prod,kaws:file=kaws-seal",
        "--query",
        "[Plaintext,KeyId]",
        "--output",
        "text",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut parts = text.split_whitespace();
    let plaintext = b64decode(parts.next().unwrap());
    let key_id = parts.next().unwrap();
    assert!(key_id.ends_with(key), "{key_id} is not {key}");
    assert_eq!(seal["seal"]["kms_key"].as_str().unwrap(), key_id);
    let body = serde_json::to_vec(&seal["seal"]).unwrap();
    let mut h = Sha256::new();
    h.update(b"kaws-seal-v1\0");
    h.update(&body);
    assert_eq!(
        String::from_utf8(plaintext).unwrap(),
        format!("kaws-seal-v1:{}", hex::encode(h.finalize()))
    );
    let files = seal["seal"]["files"].as_object().unwrap();
    for must in [
        "kaws.json",
        "clusters/prod/ca.pem",
        "clusters/prod/terraform.tfvars.json",
        "clusters/prod/main.tf.json",
        "clusters/prod/pki.auto.tfvars.json",
        "terraform/modules/kaws/versions.tf",
    ] {
        assert!(files.contains_key(must), "{must} is not sealed");
    }
    assert!(!files.contains_key("clusters/prod/seal.json"));
    for (path, digest) in files {
        let out = Command::new("sha256sum")
            .arg(w.repo.join(path))
            .output()
            .unwrap();
        assert_eq!(
            stdout(&out).split_whitespace().next().unwrap(),
            digest.as_str().unwrap(),
            "{path}"
        );
    }
}

#[test]
fn the_seal_is_written_after_init_sign_and_renew_and_a_new_request_is_expected() {
    let w = World::new();
    let key = prod(&w);
    judge_seal(&w, &key);
    assert_eq!(check_json(&w, false)["seal"]["state"], "valid");

    // bob's request is expected: signed without --accept-changes.
    let bob_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &bob_key]),
    );
    let check = check_json(&w, false);
    assert_eq!(check["seal"]["requests"][0]["admin"], "bob", "{check}");
    assert_eq!(check["seal"]["differences"], serde_json::json!([]));
    let out = kaws(&w, &["admin", "sign", "prod", "bob", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("Sealed cluster prod (generation 2"));
    assert!(seal_json(&w)["seal"]["files"]
        .as_object()
        .unwrap()
        .contains_key("clusters/prod/bob.pem"));
    judge_seal(&w, &key);

    let out = kaws(&w, &["cluster", "renew", "prod"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(generation(&w), 3);
    assert_eq!(seal_json(&w)["seal"]["command"], "cluster renew");
    judge_seal(&w, &key);

    // Nothing changed: reencrypt under a new key seals under that key.
    let next = w.kms_key();
    run_ok(
        w.kaws()
            .args(["cluster", "reencrypt", "prod", "--new-key", &next]),
    );
    assert_eq!(generation(&w), 4);
    judge_seal(&w, &next);
    let out = kaws(&w, &["cluster", "check", "prod"]);
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains("Seal: valid, generation 4"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn committed_changes_are_listed_and_refused_until_accepted_then_sealed() {
    let w = World::new();
    prod(&w);
    let dir = w.cluster_dir("prod");
    let tfvars = dir.join("terraform.tfvars.json");
    let settings = std::fs::read_to_string(&tfvars).unwrap();
    let refused = |args: &[&str], expect: &[&str]| {
        let before = w.snapshot();
        let out = kaws(&w, args);
        assert_eq!(code(&out), Some(3), "{args:?}: {}", both(&out));
        for e in expect {
            assert!(stderr(&out).contains(e), "{args:?}: {e}: {}", stderr(&out));
        }
        assert!(stderr(&out).contains("did not run"), "{}", stderr(&out));
        assert_eq!(before, w.snapshot(), "{args:?}: nothing was written");
    };

    // A certificate.
    let proxy = std::fs::read(dir.join("kube-proxy.pem")).unwrap();
    std::fs::copy(dir.join("apiserver.pem"), dir.join("kube-proxy.pem")).unwrap();
    refused(
        &["cluster", "renew", "prod"],
        &["clusters/prod/kube-proxy.pem: changed"],
    );
    std::fs::write(dir.join("kube-proxy.pem"), &proxy).unwrap();

    // Settings: ami and domain, shown value by value.
    std::fs::write(
        &tfvars,
        settings
            .replace(
                "\"domain\": \"example.com\"",
                "\"domain\": \"evil.example.com\"",
            )
            .replace("\"ami\": \"\"", "\"ami\": \"ami-0123456789abcdef0\""),
    )
    .unwrap();
    refused(
        &["cluster", "renew", "prod"],
        &[
            "clusters/prod/terraform.tfvars.json: changed",
            "domain: \"example.com\" -> \"evil.example.com\"",
            "ami: \"\" -> \"ami-0123456789abcdef0\"",
        ],
    );

    // An added .tf, refused by admin sign too.
    std::fs::write(dir.join("extra.tf"), "output \"x\" { value = 1 }\n").unwrap();
    let bob_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &bob_key]),
    );
    refused(
        &["admin", "sign", "prod", "bob", "-y"],
        &["clusters/prod/extra.tf: added", "bob: "],
    );
    std::fs::remove_file(dir.join("extra.tf")).unwrap();

    // A module edit: plan refuses before Terraform starts.
    let module = w.repo.join("terraform/modules/kaws/versions.tf");
    let versions = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, format!("{versions}\n# telemetry\n")).unwrap();
    let (terraform, ran) = fake_terraform(&w);
    let before = w.snapshot();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("terraform/modules/kaws/versions.tf: changed"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists(), "Terraform never started");
    assert_eq!(before, w.snapshot());
    std::fs::write(&module, &versions).unwrap();

    // Accepted: the renewal runs over the new settings, and seals them.
    let out = kaws(&w, &["cluster", "renew", "prod", "--accept-changes"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stderr(&out).contains("Accepted with --accept-changes"));
    assert_eq!(generation(&w), 2);
    let sealed = seal_json(&w);
    assert_eq!(
        sealed["seal"]["documents"]["clusters/prod/terraform.tfvars.json"]["domain"],
        "evil.example.com"
    );
    openssl_ok(
        &[
            "x509",
            "-in",
            "apiserver.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        &dir,
    )
    .contains("kubernetes.evil.example.com")
    .then_some(())
    .expect("the renewal used the accepted domain");
    // Sealed now: the next command needs no approval.
    let out = kaws(&w, &["admin", "sign", "prod", "bob", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(generation(&w), 3);

    // A symbolic link where a file belongs cannot even be accepted.
    std::fs::remove_file(dir.join("bootstrap.pem")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("bootstrap.pem")).unwrap();
    let out = kaws(&w, &["cluster", "renew", "prod", "--accept-changes"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("clusters/prod/bootstrap.pem: a symbolic link where a file belongs"),
        "{}",
        stderr(&out)
    );
}

/// Rewrite the seal's body with `edit` and encrypt its digest under `key`
/// with the aws CLI, as a committer with a KMS key of her own would.
fn forge(w: &World, key: &str, edit: impl Fn(&mut serde_json::Value)) {
    let path = w.cluster_dir("prod").join("seal.json");
    let mut seal = seal_json(w);
    edit(&mut seal["seal"]);
    // kaws reads the lists into sorted maps: a forger sorts them too.
    for list in ["files", "documents"] {
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_value(seal["seal"][list].clone()).unwrap();
        seal["seal"][list] = serde_json::to_value(sorted).unwrap();
    }
    let mut h = Sha256::new();
    h.update(b"kaws-seal-v1\0");
    h.update(serde_json::to_vec(&seal["seal"]).unwrap());
    let text = w.tmp.path().join("forged.txt");
    std::fs::write(&text, format!("kaws-seal-v1:{}", hex::encode(h.finalize()))).unwrap();
    let out = w.aws(&[
        "kms",
        "encrypt",
        "--key-id",
        key,
        "--plaintext",
        &format!("fileb://{}", text.display()),
        "--encryption-context",
        "kaws:cluster=prod,kaws:file=kaws-seal",
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    seal["authenticator"] =
        hex::encode(b64decode(String::from_utf8_lossy(&out.stdout).trim())).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&seal).unwrap()).unwrap();
}

fn file_digest(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn a_forged_seal_is_refused() {
    let w = World::new();
    let key = prod(&w);
    let dir = w.cluster_dir("prod");
    let original = std::fs::read(dir.join("seal.json")).unwrap();

    // Edited JSON: Mallory adds her file to the list.
    std::fs::write(dir.join("extra.tf"), "output \"x\" { value = 1 }\n").unwrap();
    let digest = file_digest(&dir.join("extra.tf"));
    let mut seal = seal_json(&w);
    seal["seal"]["files"]["clusters/prod/extra.tf"] = digest.clone().into();
    std::fs::write(
        dir.join("seal.json"),
        serde_json::to_vec_pretty(&seal).unwrap(),
    )
    .unwrap();
    let before = w.snapshot();
    let out = kaws(&w, &["cluster", "renew", "prod"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("NOT valid: seal.json was changed after it was sealed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());
    let out = kaws(&w, &["cluster", "check", "prod"]);
    assert_eq!(code(&out), Some(6), "{}", both(&out));
    assert_eq!(check_json(&w, false)["seal"]["state"], "invalid");

    // Sealed under a KMS key of her own, the settings untouched.
    let evil = w.kms_key();
    std::fs::write(dir.join("seal.json"), &original).unwrap();
    forge(&w, &evil, |b| {
        b["files"]["clusters/prod/extra.tf"] = digest.clone().into();
        b["kms_key"] = w
            .aws_ok(&[
                "kms",
                "describe-key",
                "--key-id",
                &evil,
                "--query",
                "KeyMetadata.Arn",
                "--output",
                "text",
            ])
            .into();
    });
    let (terraform, ran) = fake_terraform(&w);
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains(&format!("encrypted under KMS key arn:aws:kms:us-east-1:123456789012:key/{evil}, but the settings name")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&key), "{}", stderr(&out));
    assert!(!ran.exists(), "Terraform never started");

    // Not even `kaws cluster seal` seals under a key that does not seal
    // the cluster's keys.
    std::fs::remove_file(dir.join("extra.tf")).unwrap();
    std::fs::write(dir.join("seal.json"), &original).unwrap();
    let tfvars = dir.join("terraform.tfvars.json");
    let settings = std::fs::read_to_string(&tfvars).unwrap();
    std::fs::write(&tfvars, settings.replace(&key, &evil)).unwrap();
    let out = kaws(&w, &["cluster", "seal", "prod", "--yes"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("but the cluster's keys and its seal are under"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("kms_key_id: "), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only `kaws cluster reencrypt` changes a cluster's KMS key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(dir.join("seal.json")).unwrap(), original);

    // Both the settings' key and the seal replaced by hers, read on a
    // machine that never saw the cluster sealed (no git record here): KMS
    // says the cluster's keys are sealed under another key.
    let evil_arn = w.aws_ok(&[
        "kms",
        "describe-key",
        "--key-id",
        &evil,
        "--query",
        "KeyMetadata.Arn",
        "--output",
        "text",
    ]);
    let evil_settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tfvars).unwrap()).unwrap();
    let tfvars_digest = file_digest(&tfvars);
    forge(&w, &evil, |b| {
        b["kms_key"] = evil_arn.clone().into();
        b["files"]["clusters/prod/terraform.tfvars.json"] = tfvars_digest.clone().into();
        b["documents"]["clusters/prod/terraform.tfvars.json"] = evil_settings.clone();
    });
    let before = w.snapshot();
    let (terraform, ran) = fake_terraform(&w);
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("someone replaced the cluster's KMS key and its seal"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists(), "Terraform never started");
    assert_eq!(before, w.snapshot());
}

#[test]
fn a_rollback_and_a_swapped_key_are_seen_by_a_machine_that_saw_newer() {
    let w = World::new();
    let key = prod(&w);
    git(&w, &["init", "-q"]);
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-qm", "prod"]);
    let bob_key = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &bob_key]),
    );
    run_ok(w.kaws().args(["admin", "sign", "prod", "bob", "-y"]));
    assert_eq!(generation(&w), 2);
    assert!(w.repo.join(".git/kaws-prod.seal.json").is_file());
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-qm", "bob"]);

    // Mallory reverts to the validly sealed state before bob.
    git(&w, &["revert", "--no-edit", "HEAD"]);
    assert_eq!(generation(&w), 1);
    let out = kaws(&w, &["cluster", "renew", "prod"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("rollback: this seal is generation 1")
            && stderr(&out).contains("this machine has seen generation 2"),
        "{}",
        stderr(&out)
    );
    let out = kaws(&w, &["cluster", "check", "prod"]);
    assert_eq!(code(&out), Some(6), "{}", both(&out));
    // Accepted: sealed above everything seen.
    let out = kaws(&w, &["cluster", "renew", "prod", "--accept-changes"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(generation(&w), 3);

    // Mallory replaces the settings' key and the seal, both under her key:
    // consistent with each other, but not with what this machine saw.
    let evil = w.kms_key();
    let tfvars = w.cluster_dir("prod").join("terraform.tfvars.json");
    let settings = std::fs::read_to_string(&tfvars).unwrap();
    std::fs::write(&tfvars, settings.replace(&key, &evil)).unwrap();
    let digest = file_digest(&tfvars);
    let evil_arn = format!("arn:aws:kms:us-east-1:123456789012:key/{evil}");
    forge(&w, &evil, |b| {
        b["files"]["clusters/prod/terraform.tfvars.json"] = digest.clone().into();
        b["documents"]["clusters/prod/terraform.tfvars.json"]["kms_key_id"] = evil.clone().into();
        b["kms_key"] = evil_arn.clone().into();
        b["generation"] = 9.into();
    });
    let (terraform, ran) = fake_terraform(&w);
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("this machine last saw cluster prod sealed under"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists(), "Terraform never started");
}

#[test]
fn a_cluster_without_a_seal_lists_everything_once_and_check_reports_the_state() {
    let w = World::new();
    prod(&w);
    let dir = w.cluster_dir("prod");
    std::fs::remove_file(dir.join("seal.json")).unwrap();
    let check = check_json(&w, false);
    assert_eq!(check["seal"]["state"], "missing", "{check}");
    let out = kaws(&w, &["cluster", "check", "prod"]);
    assert_eq!(
        code(&out),
        Some(0),
        "a missing seal is a warning: {}",
        both(&out)
    );
    assert!(stdout(&out).contains("Seal: none"), "{}", stdout(&out));

    let out = kaws(&w, &["cluster", "renew", "prod"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("has no seal"), "{err}");
    for f in [
        "clusters/prod/ca.pem: added",
        "kaws.json: added",
        "terraform/modules/kaws/iam.tf: added",
    ] {
        assert!(err.contains(f), "{f}: {err}");
    }
    // No terminal: `cluster seal` needs --yes.
    let out = kaws(&w, &["cluster", "seal", "prod"]);
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(!dir.join("seal.json").exists());
    let out = kaws(&w, &["cluster", "seal", "prod", "--yes"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("Sealed cluster prod (generation 1"));
    let out = kaws(&w, &["cluster", "seal", "prod"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("nothing to seal"), "{}", stdout(&out));
    run_ok(w.kaws().args(["cluster", "renew", "prod"]));

    // Offline, the state is "not verified", and changes are still listed.
    std::fs::write(dir.join("notes.txt"), "hello\n").unwrap();
    let check = check_json(&w, true);
    assert_eq!(check["seal"]["state"], "unverified", "{check}");
    assert_eq!(
        check["seal"]["differences"][0]["path"],
        "clusters/prod/notes.txt"
    );
    let out = kaws(&w, &["cluster", "check", "prod", "--offline"]);
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains("Seal: not verified"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("clusters/prod/notes.txt: added"),
        "{}",
        stdout(&out)
    );
}

/// An older kaws' cluster (HCL main.tf, no pki.auto.tfvars.json) under a
/// valid seal: plan replaces main.tf with main.tf.json and writes
/// pki.auto.tfvars.json, and seals that as its own writing, so nobody is
/// asked to accept kaws' own migration. A committer's edit of
/// pki.auto.tfvars.json, even sealed, is still refused before Terraform.
#[test]
fn kaws_own_migration_is_sealed_as_written_and_an_edited_pki_vars_is_refused() {
    let w = World::new();
    prod(&w);
    let dir = w.cluster_dir("prod");
    std::fs::remove_file(dir.join("main.tf.json")).unwrap();
    std::fs::remove_file(dir.join("pki.auto.tfvars.json")).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        "# the HCL entry point of an older kaws\n",
    )
    .unwrap();
    let out = kaws(&w, &["cluster", "seal", "prod", "--yes"]);
    assert!(out.status.success(), "{}", both(&out));
    let sealed = generation(&w);

    // A `terraform` that makes its working directory, as `init` does.
    let (terraform, ran) = fake_terraform(&w);
    std::fs::write(
        &terraform,
        format!(
            "#!/bin/sh\nmkdir -p .terraform\ntouch '{}'\nexit 0\n",
            ran.display()
        ),
    )
    .unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert!(ran.exists(), "Terraform ran");
    assert!(!both(&out).contains("Accept"), "{}", both(&out));
    assert!(!dir.join("main.tf").exists());
    assert!(dir.join("main.tf.json").is_file());
    assert!(dir.join("pki.auto.tfvars.json").is_file());
    assert!(generation(&w) > sealed, "the migration is sealed");
    let files = &seal_json(&w)["seal"]["files"];
    assert!(files.get("clusters/prod/main.tf").is_none(), "{files}");
    assert!(files.get("clusters/prod/main.tf.json").is_some(), "{files}");
    assert!(
        files.get("clusters/prod/pki.auto.tfvars.json").is_some(),
        "{files}"
    );
    // Nothing left to approve.
    let out = kaws(&w, &["cluster", "seal", "prod"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(both(&out).contains("nothing to seal"), "{}", both(&out));

    // A committer's edit of the table's maps, even sealed, is refused.
    let vars = dir.join("pki.auto.tfvars.json");
    let text = std::fs::read_to_string(&vars).unwrap();
    std::fs::write(
        &vars,
        text.replacen("\"ca.pem\"", "\"ca.pem\", \"ca-key.pem\"", 1),
    )
    .unwrap();
    let out = kaws(&w, &["cluster", "seal", "prod", "--yes"]);
    assert!(out.status.success(), "{}", both(&out));
    std::fs::remove_file(&ran).unwrap();
    let out = w
        .kaws()
        .env("KAWS_TERRAFORM", &terraform)
        .args(["cluster", "plan", "prod", "--accept-changes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", both(&out));
    assert!(
        stderr(&out).contains("pki.auto.tfvars.json"),
        "{}",
        stderr(&out)
    );
    assert!(!ran.exists(), "Terraform never started");
}
