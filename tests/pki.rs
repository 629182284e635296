//! `kaws init`, `kaws cluster init` and `kaws cluster reencrypt`, judged by
//! openssl and the aws CLI against a real moto server.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;

use kaws::pki::{Material, CLUSTER_CERTS};

/// Which files to judge comes from kaws' table, so no row escapes openssl;
/// what each must hold is written here, by hand. Every leaf certificate:
fn certs() -> Vec<&'static str> {
    CLUSTER_CERTS
        .iter()
        .filter(|c| !c.is_ca && c.material == Material::Certificate)
        .map(|c| c.stem)
        .collect()
}

/// Every private key (not the encryption configuration, not the bootstrap token).
fn keys() -> Vec<&'static str> {
    CLUSTER_CERTS
        .iter()
        .filter(|c| {
            !matches!(
                c.material,
                Material::EncryptionConfig | Material::BootstrapToken
            )
        })
        .map(|c| c.stem)
        .collect()
}

/// The cluster's CA certificates.
const CAS: &[&str] = &["ca.pem", "etcd-ca.pem", "front-proxy-ca.pem"];

/// The CA certificate that must verify a leaf; every other must refuse it.
fn issuer(cert: &str) -> &'static str {
    match cert {
        "etcd" | "etcd-client" => "etcd-ca.pem",
        "front-proxy-client" => "front-proxy-ca.pem",
        _ => "ca.pem",
    }
}

fn ext(dir: &Path, cert: &str, which: &str) -> String {
    openssl_ok(&["x509", "-in", cert, "-noout", "-ext", which], dir)
}

/// The apiserver's EncryptionConfiguration: (name, base64 key) of each
/// secretbox key, in order, after checking what the apiserver needs.
fn encryption_keys(pem: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8(pem.to_vec()).unwrap();
    assert!(text.starts_with("# -----BEGIN KAWS ENCRYPTION CONFIGURATION-----"));
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(v["kind"], "EncryptionConfiguration");
    assert_eq!(v["apiVersion"], "apiserver.config.k8s.io/v1");
    let r = &v["resources"][0];
    assert_eq!(r["resources"], serde_json::json!(["secrets"]));
    assert!(r["providers"][1]["identity"].is_object(), "identity last");
    r["providers"][0]["secretbox"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let secret = k["secret"].as_str().unwrap().to_string();
            assert_eq!(b64decode(&secret).len(), 32, "a 32-byte key");
            (k["name"].as_str().unwrap().to_string(), secret)
        })
        .collect()
}

/// Secrets at rest: init seals a configuration with one key; renew keeps
/// it; renew --new-keys puts a new key first and keeps the old one second,
/// so Secrets written before stay readable; check opens and validates it.
#[test]
fn secrets_encryption_is_sealed_and_rekeying_keeps_the_old_key() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("enc", &key, &[]).status.success());
    let d = w.cluster_dir("enc");
    assert!(!d.join("secrets-encryption.pem").exists());
    let blob = std::fs::read(d.join("secrets-encryption-key.pem.encrypted")).unwrap();
    let first = encryption_keys(&decrypt(&w, "enc", "secrets-encryption"));
    assert_eq!(first.len(), 1);
    // Bound to its own name: it does not open as another file.
    let wrong = w.aws_decrypt(
        "enc",
        &d.join("secrets-encryption-key.pem.encrypted"),
        "apiserver-key.pem",
    );
    assert!(!wrong.status.success());

    let out = w.kaws().args(["cluster", "renew", "enc"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(d.join("secrets-encryption-key.pem.encrypted")).unwrap(),
        blob,
        "renew without --new-keys keeps the keys"
    );
    let out = w
        .kaws()
        .args(["cluster", "renew", "enc", "--new-keys"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let second = encryption_keys(&decrypt(&w, "enc", "secrets-encryption"));
    assert_eq!(second.len(), 2, "{second:?}");
    assert_ne!(second[0], first[0], "a new first key encrypts");
    assert_eq!(second[1], first[0], "the old key still decrypts");
    let out = w.kaws().args(["cluster", "check", "enc"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A configuration that is not kaws' is reported, not a panic.
    let junk = w.tmp.path().join("junk");
    std::fs::write(&junk, "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    let junk = format!("fileb://{}", junk.display());
    let ctx_swap = w.aws_ok(&[
        "kms",
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &junk,
        "--encryption-context",
        "kaws:cluster=enc,kaws:file=secrets-encryption-key.pem",
        "--query",
        "CiphertextBlob",
        "--output",
        "text",
    ]);
    std::fs::write(
        d.join("secrets-encryption-key.pem.encrypted"),
        b64decode(ctx_swap.trim()),
    )
    .unwrap();
    let out = w.kaws().args(["cluster", "check", "enc"]).output().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("secrets-encryption-key.pem.encrypted"),
        "{text}"
    );
}

/// Decrypt `<stem>-key.pem.encrypted` with the aws CLI and return the PEM.
fn decrypt(w: &World, cluster: &str, stem: &str) -> Vec<u8> {
    let out = w.aws_decrypt(
        cluster,
        &w.cluster_dir(cluster)
            .join(format!("{stem}-key.pem.encrypted")),
        &format!("{stem}-key.pem"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    b64decode(&stdout(&out))
}

fn pubkey_of_key(pem: &[u8]) -> String {
    let out = openssl_stdin(&["pkey", "-pubout"], pem);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn repository_layout() {
    let w = World::new();
    for p in ["kaws.json", ".gitignore", "clusters", "terraform/README.md"] {
        assert!(w.repo.join(p).exists(), "{p}");
    }
    // A second init into a non-empty directory is refused.
    let out = w
        .kaws_in(w.tmp.path())
        .args(["init", "repo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    // Outside a repository, commands say so.
    let out = w
        .kaws_in(w.tmp.path())
        .args(["cluster", "reencrypt", "x", "--new-key", "alias/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("not inside a kaws repository"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("kaws init"));
}

#[test]
fn cluster_pki_is_valid_by_openssl_and_decrypts_with_the_aws_cli() {
    let w = World::new();
    let key = w.kms_key();
    let out = w.cluster_init("prod", &key, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = w.cluster_dir("prod");

    // The chain and every extension, as openssl reads them: each leaf
    // verifies against its own CA and is refused by every other.
    for cert in certs() {
        let own = issuer(cert);
        let v = openssl_ok(&["verify", "-CAfile", own, &format!("{cert}.pem")], &d);
        assert!(v.contains(": OK"), "{cert} against {own}: {v}");
        for other in CAS.iter().filter(|c| **c != own) {
            let out = openssl(&["verify", "-CAfile", other, &format!("{cert}.pem")], &d);
            assert!(
                !out.status.success(),
                "{cert}.pem verified against {other}: {}",
                stdout(&out)
            );
        }
    }
    // The CAs are apart: neither verifies against the other.
    for ca in CAS {
        openssl_ok(&["verify", "-CAfile", ca, ca], &d);
        for other in CAS.iter().filter(|c| *c != ca) {
            assert!(!openssl(&["verify", "-CAfile", other, ca], &d)
                .status
                .success());
        }
    }
    let etcd_ca = ext(&d, "etcd-ca.pem", "basicConstraints,keyUsage");
    assert!(
        etcd_ca.contains("CA:TRUE") && etcd_ca.contains("Certificate Sign"),
        "{etcd_ca}"
    );
    let subj = openssl_ok(&["x509", "-in", "etcd-ca.pem", "-noout", "-subject"], &d);
    assert!(subj.contains("CN = kube-prod-etcd-ca"), "{subj}");
    // The name --requestheader-allowed-names accepts, for client auth only.
    let fp = openssl_ok(
        &[
            "x509",
            "-in",
            "front-proxy-client.pem",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
        ],
        &d,
    );
    assert!(fp.contains("CN = front-proxy-client"), "{fp}");
    assert!(
        fp.contains("TLS Web Client Authentication") && !fp.contains("Server"),
        "{fp}"
    );

    let ca = ext(&d, "ca.pem", "basicConstraints,keyUsage");
    assert!(ca.contains("critical") && ca.contains("CA:TRUE"), "{ca}");
    assert!(
        ca.contains("Certificate Sign")
            && ca.contains("CRL Sign")
            && ca.contains("Digital Signature"),
        "{ca}"
    );
    let subj = openssl_ok(
        &[
            "x509",
            "-in",
            "ca.pem",
            "-noout",
            "-subject",
            "-startdate",
            "-enddate",
        ],
        &d,
    );
    assert!(subj.contains("CN = kube-prod-ca"), "{subj}");
    let years = |s: &str, tag: &str| -> i32 {
        let line = s.lines().find(|l| l.starts_with(tag)).unwrap();
        line.split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        years(&subj, "notAfter") - years(&subj, "notBefore"),
        10,
        "{subj}"
    );

    let api = ext(
        &d,
        "apiserver.pem",
        "basicConstraints,extendedKeyUsage,subjectAltName",
    );
    assert!(api.contains("CA:FALSE"), "{api}");
    assert!(
        api.contains("TLS Web Server Authentication")
            && api.contains("TLS Web Client Authentication"),
        "{api}"
    );
    for san in [
        "DNS:kubernetes,",
        "DNS:kubernetes.default,",
        "DNS:kubernetes.default.svc,",
        "DNS:kubernetes.default.svc.cluster,",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:kubernetes.example.com",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:10.3.0.1",
    ] {
        assert!(api.contains(san), "{san} missing from {api}");
    }

    // Issue 12: kube-proxy and flannel have identities of their own, client
    // only, in no group.
    for (stem, cn) in [
        ("kube-proxy", "system:kube-proxy"),
        ("flannel", "kaws:flannel"),
    ] {
        let e = ext(
            &d,
            &format!("{stem}.pem"),
            "basicConstraints,extendedKeyUsage",
        );
        assert!(
            e.contains("CA:FALSE")
                && e.contains("Client Authentication")
                && !e.contains("Server Authentication"),
            "{stem}: {e}"
        );
        let subj = openssl_ok(
            &["x509", "-in", &format!("{stem}.pem"), "-noout", "-subject"],
            &d,
        );
        assert!(
            subj.contains(&format!("CN = {cn}")) && !subj.contains("O ="),
            "{subj}"
        );
    }
    assert!(!d.join("node.pem").exists() && !d.join("node-key.pem.encrypted").exists());

    // The kubelet signer: an intermediate under the cluster CA that signs
    // leaves only. openssl, acting as the controller-manager, signs a
    // kubelet's CSR with its key; the apiserver's client-ca.pem (the
    // cluster CA and the signer) accepts the kubelet's certificate, which
    // carries no chain; the etcd and front-proxy CAs refuse it.
    let signer = ext(&d, "kubelet-signer.pem", "basicConstraints,keyUsage");
    assert!(
        signer.contains("CA:TRUE")
            && signer.contains("pathlen:0")
            && signer.contains("Certificate Sign"),
        "{signer}"
    );
    let signer_key = decrypt(&w, "prod", "kubelet-signer");
    let work = tempfile::tempdir().unwrap();
    let wk = work.path();
    std::fs::write(wk.join("signer-key.pem"), &signer_key).unwrap();
    openssl_ok(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "kubelet-key.pem",
            "-out",
            "kubelet.csr",
            "-subj",
            "/O=system:nodes/CN=system:node:ip-10-0-1-2.ec2.internal",
        ],
        wk,
    );
    std::fs::write(
        wk.join("ext.cnf"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let signer_pem = d.join("kubelet-signer.pem");
    openssl_ok(
        &[
            "x509",
            "-req",
            "-in",
            "kubelet.csr",
            "-CA",
            signer_pem.to_str().unwrap(),
            "-CAkey",
            "signer-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "kubelet.pem",
        ],
        wk,
    );
    let mut bundle = std::fs::read(d.join("ca.pem")).unwrap();
    bundle.extend(std::fs::read(&signer_pem).unwrap());
    std::fs::write(wk.join("client-ca.pem"), bundle).unwrap();
    let v = openssl_ok(
        &[
            "verify",
            "-CAfile",
            "client-ca.pem",
            "-purpose",
            "sslclient",
            "kubelet.pem",
        ],
        wk,
    );
    assert!(v.contains(": OK"), "{v}");
    // The cluster CA alone does not know the signer; the other CAs refuse.
    assert!(!openssl(
        &[
            "verify",
            "-CAfile",
            d.join("ca.pem").to_str().unwrap(),
            "kubelet.pem"
        ],
        wk
    )
    .status
    .success());
    for other in ["etcd-ca.pem", "front-proxy-ca.pem"] {
        let mut b = std::fs::read(d.join(other)).unwrap();
        b.extend(std::fs::read(&signer_pem).unwrap());
        std::fs::write(wk.join("wrong.pem"), b).unwrap();
        assert!(
            !openssl(&["verify", "-CAfile", "wrong.pem", "kubelet.pem"], wk)
                .status
                .success(),
            "kubelet certificate accepted under {other}"
        );
    }

    // The bootstrap token: <6>.<16> of [a-z0-9], no newline (a tokenFile).
    let token = decrypt(&w, "prod", "bootstrap-token");
    let token = String::from_utf8(token).unwrap();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16), "token format");
    assert!(token
        .bytes()
        .all(|b| b == b'.' || b.is_ascii_lowercase() || b.is_ascii_digit()));

    let etcd = ext(&d, "etcd.pem", "subjectAltName");
    for n in [
        "etcd-0.example.com",
        "etcd-1.example.com",
        "etcd-2.example.com",
    ] {
        assert!(etcd.contains(n), "{etcd}");
    }

    // Each key decrypts with the aws CLI alone and matches its certificate.
    for stem in keys() {
        let pem = decrypt(&w, "prod", stem);
        assert!(
            pem.starts_with(b"-----BEGIN PRIVATE KEY-----"),
            "{stem} is PKCS#8 PEM"
        );
        let from_key = pubkey_of_key(&pem);
        let from_cert = if stem == "service-account" {
            std::fs::read_to_string(d.join("service-account.pub")).unwrap()
        } else {
            openssl_ok(
                &["x509", "-in", &format!("{stem}.pem"), "-noout", "-pubkey"],
                &d,
            )
        };
        assert_eq!(from_key, from_cert, "{stem}");
        let text = openssl_stdin(&["pkey", "-noout", "-text"], &pem);
        assert!(
            stdout(&text).contains("prime256v1") || stdout(&text).contains("P-256"),
            "{stem} is P-256"
        );
    }

    // The context binds a file to its cluster and to its name.
    let wrong_cluster = w.aws_decrypt("other", &d.join("ca-key.pem.encrypted"), "ca-key.pem");
    assert!(!wrong_cluster.status.success());
    let wrong_file = w.aws_decrypt(
        "prod",
        &d.join("ca-key.pem.encrypted"),
        "kube-proxy-key.pem",
    );
    assert!(!wrong_file.status.success());

    // Nothing in the cluster directory is a plaintext private key.
    for e in std::fs::read_dir(&d).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
            "{:?}",
            e.path()
        );
    }

    // The settings record everything; the entry point exists.
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("terraform.tfvars.json")).unwrap()).unwrap();
    assert_eq!(settings["kms_key_id"], key.as_str());
    assert_eq!(settings["region"], REGION);
    assert_eq!(settings["domain"], "example.com");
    assert!(d.join("main.tf.json").is_file());
    assert!(!d.join("main.tf").exists());

    // A second init of the same cluster is refused and changes nothing.
    let before = w.snapshot();
    let again = w.cluster_init("prod", &key, &[]);
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"));
    assert_eq!(before, w.snapshot());
}

#[test]
fn rsa_keys_on_request() {
    let w = World::new();
    let key = w.kms_key();
    let out = w.cluster_init("rsa", &key, &["--key-algorithm", "rsa-2048"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pem = decrypt(&w, "rsa", "apiserver");
    let text = stdout(&openssl_stdin(&["pkey", "-noout", "-text"], &pem));
    assert!(text.contains("2048 bit"), "{text}");
    let d = w.cluster_dir("rsa");
    let ku = ext(&d, "apiserver.pem", "keyUsage");
    assert!(ku.contains("Key Encipherment"), "{ku}");
    openssl_ok(&["verify", "-CAfile", "ca.pem", "apiserver.pem"], &d);
    openssl_ok(&["verify", "-CAfile", "etcd-ca.pem", "etcd.pem"], &d);
}

/// Rows of the table a cluster made by an older kaws does not have.
const NEWER_ROWS: &[&str] = &["etcd-ca", "front-proxy-ca", "front-proxy-client"];

/// A cluster made before the etcd and front-proxy CAs existed (their files
/// removed, and an HCL main.tf): check, plan and apply say what to run and
/// change nothing; `cluster renew` makes the CAs and the front proxy's
/// client, re-signs etcd's certificates with the new etcd CA keeping their
/// keys, replaces main.tf with main.tf.json, writes pki.auto.tfvars.json,
/// and check is then clean.
#[test]
fn a_cluster_from_before_the_etcd_ca_is_told_to_renew_and_renew_upgrades_it() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("old", &key, &[]).status.success());
    let d = w.cluster_dir("old");
    for stem in NEWER_ROWS {
        std::fs::remove_file(d.join(format!("{stem}.pem"))).unwrap();
        std::fs::remove_file(d.join(format!("{stem}-key.pem.encrypted"))).unwrap();
    }
    // Nor secrets at rest, nor a seal.
    std::fs::remove_file(d.join("secrets-encryption-key.pem.encrypted")).unwrap();
    std::fs::remove_file(d.join("seal.json")).unwrap();
    // An older kaws wrote its entry point as HCL main.tf, and no
    // pki.auto.tfvars.json: renew writes both of this kaws.
    std::fs::remove_file(d.join("main.tf.json")).unwrap();
    std::fs::remove_file(d.join("pki.auto.tfvars.json")).unwrap();
    std::fs::write(
        d.join("main.tf"),
        "# the HCL entry point of an older kaws\n",
    )
    .unwrap();
    let before = w.snapshot();

    for args in [
        &["cluster", "check", "old"][..],
        &["cluster", "check", "old", "--offline"],
    ] {
        let out = w.kaws().args(args).output().unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            text.contains("etcd-ca.pem") && text.contains("kaws cluster renew old"),
            "{args:?}: {text}"
        );
    }
    for action in ["plan", "apply"] {
        let out = w
            .kaws()
            .args(["cluster", action, "old", "--accept-changes"])
            .output()
            .unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{action}: {e}");
        assert!(
            e.contains("etcd-ca.pem")
                && e.contains("kaws cluster renew old")
                && e.contains("help:"),
            "{action}: {e}"
        );
    }
    assert_eq!(before, w.snapshot(), "nothing changed");

    let etcd_key_before = decrypt(&w, "old", "etcd");
    let out = w
        .kaws()
        .args(["cluster", "renew", "old", "--accept-changes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "etcd-ca.pem",
        "etcd-ca-key.pem.encrypted",
        "front-proxy-client.pem",
        "secrets-encryption-key.pem.encrypted",
        "main.tf.json",
        "pki.auto.tfvars.json",
    ] {
        assert!(
            stdout(&out).contains(f) || stderr(&out).contains(f),
            "{f}: {}",
            stdout(&out)
        );
    }
    assert_eq!(
        encryption_keys(&decrypt(&w, "old", "secrets-encryption")).len(),
        1
    );
    assert!(!d.join("main.tf").exists(), "the HCL entry point is gone");
    let printed = w
        .kaws()
        .args(["cluster", "entry-point", "old"])
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read(d.join("main.tf.json")).unwrap(),
        printed.stdout
    );
    // The servers are handed the new files: the table's maps name them.
    let vars = std::fs::read_to_string(d.join("pki.auto.tfvars.json")).unwrap();
    for stem in NEWER_ROWS.iter().chain(&["secrets-encryption"]) {
        assert!(vars.contains(&format!("\"{stem}")), "{stem}: {vars}");
    }
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "front-proxy-ca.pem",
            "front-proxy-client.pem",
        ],
        &d,
    );
    // The etcd key is kept, its certificate now comes from the etcd CA.
    assert_eq!(decrypt(&w, "old", "etcd"), etcd_key_before);
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "etcd-ca.pem",
            "etcd.pem",
            "etcd-client.pem",
        ],
        &d,
    );
    assert!(!openssl(&["verify", "-CAfile", "ca.pem", "etcd.pem"], &d)
        .status
        .success());
    let pem = decrypt(&w, "old", "etcd-ca");
    assert_eq!(
        pubkey_of_key(&pem),
        openssl_ok(&["x509", "-in", "etcd-ca.pem", "-noout", "-pubkey"], &d)
    );
    let out = w.kaws().args(["cluster", "check", "old"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("kube-old-etcd-ca"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn reencrypt_moves_keys_without_changing_them() {
    let w = World::new();
    let k1 = w.kms_key();
    let k2 = w.kms_key();
    assert!(w.cluster_init("re", &k1, &[]).status.success());
    let d = w.cluster_dir("re");
    let certs_before: Vec<Vec<u8>> = ["ca.pem", "apiserver.pem"]
        .iter()
        .map(|f| std::fs::read(d.join(f)).unwrap())
        .collect();
    let all: Vec<&str> = CLUSTER_CERTS.iter().map(|c| c.stem).collect();
    let plain_before: Vec<Vec<u8>> = all.iter().map(|s| decrypt(&w, "re", s)).collect();
    let blobs_before: Vec<Vec<u8>> = all
        .iter()
        .map(|s| std::fs::read(d.join(format!("{s}-key.pem.encrypted"))).unwrap())
        .collect();

    let out = w
        .kaws()
        .args(["cluster", "reencrypt", "re", "--new-key", &k2])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not revocation"));

    for (i, s) in all.iter().enumerate() {
        let blob = std::fs::read(d.join(format!("{s}-key.pem.encrypted"))).unwrap();
        assert_ne!(blob, blobs_before[i], "{s} ciphertext changed");
        assert_eq!(
            decrypt(&w, "re", s),
            plain_before[i],
            "{s} key itself unchanged"
        );
    }
    // The new ciphertext names the new key.
    let blob = format!("fileb://{}", d.join("ca-key.pem.encrypted").display());
    let key_arn = w.aws_ok(&[
        "kms",
        "decrypt",
        "--ciphertext-blob",
        &blob,
        "--encryption-context",
        "kaws:cluster=re,kaws:file=ca-key.pem",
        "--query",
        "KeyId",
        "--output",
        "text",
    ]);
    assert!(key_arn.ends_with(&k2), "{key_arn}");
    let certs_after: Vec<Vec<u8>> = ["ca.pem", "apiserver.pem"]
        .iter()
        .map(|f| std::fs::read(d.join(f)).unwrap())
        .collect();
    assert_eq!(certs_before, certs_after);
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("terraform.tfvars.json")).unwrap()).unwrap();
    assert_eq!(settings["kms_key_id"], k2.as_str());

    // The help says it is not revocation.
    let help = w
        .kaws()
        .args(["cluster", "reencrypt", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&help).contains("not revocation"));
}

#[test]
fn kms_failures_write_nothing() {
    let w = World::new();
    let before = w.snapshot();
    // A key that does not exist.
    let out = w.cluster_init("nokey", "alias/does-not-exist", &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("KMS") && e.contains("alias/does-not-exist"),
        "{e}"
    );
    assert!(e.contains("help:"), "{e}");
    // A disabled key.
    let k = w.kms_key();
    w.aws_ok(&["kms", "disable-key", "--key-id", &k]);
    let out = w.cluster_init("disabled", &k, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("disabled"), "{}", stderr(&out));
    assert_eq!(before, w.snapshot());
    // Not even the lock of a cluster that does not exist.
    for c in ["nokey", "disabled"] {
        let lock = w.repo.join(format!("clusters/.{c}.lock"));
        assert!(!lock.exists(), "{} left behind", lock.display());
    }
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let w = World::new();
    let key = w.kms_key();
    let before = w.snapshot();
    let cases: &[(&str, &[&str], &str)] = &[
        ("../evil", &[], "invalid cluster name"),
        ("Prod", &[], "invalid cluster name"),
        ("a/b", &[], "invalid cluster name"),
        ("ok", &["--domain", "not a domain"], "invalid domain"),
        ("ok", &["--cidr", "10.0.0.1/16"], "host bits"),
        (
            "ok",
            &["--service-cidr", "10.3.0.0/33"],
            "invalid service_cidr",
        ),
        ("ok", &["--kms-key", "not-a-key"], "invalid KMS key"),
        (
            "ok",
            &["--kubernetes-version", "1.2"],
            "invalid kubernetes version",
        ),
        ("ok", &["--ami", "ami-xyz"], "invalid ami"),
    ];
    for (name, extra, msg) in cases {
        let out = w.cluster_init(name, &key, extra);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{name} {extra:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(msg),
            "{name} {extra:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("help:"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
    assert_eq!(before, w.snapshot());
}

/// strace watches every write kaws makes during `cluster init`: no plaintext
/// private key may reach any file, temporary ones included.
#[test]
fn no_plaintext_key_is_written_to_any_file() {
    let _g = exclusive();
    let w = World::new();
    let key = w.kms_key();
    let log = w.tmp.path().join("strace.log");
    let kaws = assert_cmd::cargo::cargo_bin("kaws");
    let mut cmd = std::process::Command::new("strace");
    w.env(&mut cmd);
    cmd.current_dir(&w.repo)
        .args([
            "-f",
            "-qq",
            "-s",
            "1000000",
            "-e",
            "trace=openat,creat,socket,close,write,pwrite64,writev",
            "-o",
        ])
        .arg(&log)
        .arg(&kaws)
        .args([
            "cluster",
            "init",
            "traced",
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            &key,
            "--ssh-key",
            "k",
        ]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut files: std::collections::HashMap<(String, String), String> = Default::default();
    let mut file_writes = 0;
    // The base64 of "-----BEGIN PRIVATE KEY" as it would appear in a JSON body.
    let b64_marker = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS";
    // The base64 of "# -----BEGIN KAWS ENCRYPTION".
    let b64_config = "IyAtLS0tLUJFR0lOIEtBV1MgRU5DUllQVElPT";
    for line in text.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        let fd_of = |r: &str| {
            r.rsplit_once("= ")
                .and_then(|(_, n)| n.trim().parse::<i64>().ok())
        };
        if rest.starts_with("openat(") || rest.starts_with("creat(") {
            if let (Some(fd), Some(path)) = (fd_of(rest), rest.split('"').nth(1)) {
                files.insert((pid.into(), fd.to_string()), path.to_string());
            }
        } else if rest.starts_with("socket(") || rest.starts_with("close(") {
            let fd = if let Some(args) = rest.strip_prefix("close(") {
                args.split(')').next().map(str::to_string)
            } else {
                fd_of(rest).map(|f| f.to_string())
            };
            if let Some(fd) = fd {
                files.retain(|(_, f), _| *f != fd);
            }
        } else if let Some(args) = rest
            .strip_prefix("write(")
            .or_else(|| rest.strip_prefix("pwrite64("))
            .or_else(|| rest.strip_prefix("writev("))
        {
            let fd = args.split(',').next().unwrap_or("").to_string();
            if let Some(path) = files
                .iter()
                .find(|((_, f), _)| *f == fd)
                .map(|(_, p)| p.clone())
            {
                file_writes += 1;
                assert!(
                    !rest.contains("PRIVATE KEY"),
                    "plaintext key written to {path}"
                );
                assert!(
                    !rest.contains(b64_marker),
                    "encoded plaintext key written to {path}"
                );
                // Nor the encryption configuration with its secretbox keys.
                assert!(
                    !rest.contains("BEGIN KAWS ENCRYPTION") && !rest.contains(b64_config),
                    "plaintext encryption configuration written to {path}"
                );
            }
        }
    }
    assert!(file_writes >= 14, "strace saw {file_writes} file writes");
}
