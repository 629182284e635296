//! `kaws admin create|sign|install|list`, judged by openssl and kubectl,
//! with a real mutual-TLS handshake against `openssl s_server`.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cluster(w: &World, name: &str) -> String {
    let key = w.kms_key();
    let out = w.cluster_init(name, &key, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    key
}

fn create(w: &World, c: &str, name: &str, extra: &[&str]) -> String {
    let key = w.kms_key();
    let out = w
        .kaws()
        .args(["admin", "create", c, name, "--kms-key", &key])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text.lines().find(|l| l.contains("fingerprint")).unwrap();
    line.rsplit(' ').next().unwrap().to_string()
}

/// Signs without a terminal: only with --yes (see
/// `without_a_terminal_only_yes_signs`).
fn sign(w: &World, c: &str, name: &str, extra: &[&str]) -> std::process::Output {
    w.kaws()
        .args(["admin", "sign", c, name, "--yes"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The fingerprint as anyone can compute it without kaws.
fn openssl_fingerprint(csr: &Path) -> String {
    let pubkey = openssl_ok(
        &["req", "-in", csr.to_str().unwrap(), "-noout", "-pubkey"],
        Path::new("."),
    );
    let der = openssl_stdin(&["pkey", "-pubin", "-outform", "DER"], pubkey.as_bytes());
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&der.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

#[test]
fn create_sign_install_and_a_real_mtls_handshake() {
    let w = World::new();
    cluster(&w, "prod");
    let d = w.cluster_dir("prod");
    let fp = create(
        &w,
        "prod",
        "alice",
        &["--group", "system:masters", "--group", "ops"],
    );

    // The CSR verifies with openssl and the printed fingerprint is openssl's.
    let csr = d.join("alice.csr");
    let v = openssl(&["req", "-in", "alice.csr", "-noout", "-verify"], &d);
    assert!(v.status.success(), "{}", stderr(&v));
    assert_eq!(fp.len(), 64);
    assert_eq!(fp, openssl_fingerprint(&csr));
    let subj = openssl_ok(&["req", "-in", "alice.csr", "-noout", "-subject"], &d);
    assert!(
        subj.contains("CN = alice")
            && subj.contains("O = system:masters")
            && subj.contains("O = ops"),
        "{subj}"
    );
    assert!(d.join("alice-key.pem.encrypted").is_file());

    // Listed as requested.
    let list = stdout(
        &w.kaws()
            .args(["admin", "list", "prod", "--output", "json"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], "alice");
    assert_eq!(v[0]["state"], "requested");
    assert_eq!(v[0]["fingerprint"], fp.as_str());

    // Signed, with the fingerprint received out of band.
    let out = sign(&w, "prod", "alice", &["--fingerprint", &fp]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&fp),
        "the signer is shown the fingerprint"
    );
    openssl_ok(&["verify", "-CAfile", "ca.pem", "alice.pem"], &d);
    let text = openssl_ok(&["x509", "-in", "alice.pem", "-noout", "-text"], &d);
    assert!(
        text.contains("TLS Web Client Authentication") && !text.contains("Server Authentication"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    let list = stdout(
        &w.kaws()
            .args(["admin", "list", "prod", "-o", "json"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["state"], "signed");
    assert_eq!(v[0]["groups"], serde_json::json!(["system:masters", "ops"]));

    // Signing again needs --renew.
    let again = sign(&w, "prod", "alice", &[]);
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("--renew"));
    let renewed = sign(&w, "prod", "alice", &["--renew", "--days", "30"]);
    assert!(renewed.status.success(), "{}", stderr(&renewed));

    // Install into a kubeconfig that already holds other entries.
    let kc = w.tmp.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster:\n    server: https://other.example\nusers:\n- name: bob\n  user:\n    token: bobs-token\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: bob\n",
    )
    .unwrap();
    let out = w
        .kaws()
        .args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(&kc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let view = run_ok(
        Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(&kc),
    );
    let v: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(v["current-context"], "other");
    let users = v["users"].as_array().unwrap();
    assert!(users
        .iter()
        .any(|u| u["name"] == "bob" && u["user"]["token"] == "bobs-token"));
    assert!(users.iter().any(|u| u["name"] == "alice-prod"));
    let clusters = v["clusters"].as_array().unwrap();
    assert!(clusters.iter().any(|c| c["name"] == "other"));
    assert!(
        clusters
            .iter()
            .any(|c| c["name"] == "prod"
                && c["cluster"]["server"] == "https://kubernetes.example.com")
    );

    // A real mutual-TLS handshake: s_server with the apiserver pair demands a
    // client certificate from the cluster CA; kubectl presents alice's.
    let api_key = w.tmp.path().join("apiserver-key.pem");
    let out = w.aws_decrypt(
        "prod",
        &d.join("apiserver-key.pem.encrypted"),
        "apiserver-key.pem",
    );
    std::fs::write(&api_key, b64decode(&stdout(&out))).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-Verify",
            "1",
            "-verify_return_error",
            "-CAfile",
            "ca.pem",
            "-cert",
            "apiserver.pem",
            "-key",
        ])
        .arg(&api_key)
        .arg("-www")
        .current_dir(&d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // kubectl runs `kaws admin credential`, which needs the test's AWS.
    let kubectl = |kubeconfig: &Path, extra: &[&str]| {
        let mut c = Command::new("kubectl");
        w.env(&mut c);
        c.arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--context",
                "prod",
                "--server",
                &format!("https://127.0.0.1:{port}"),
                "--tls-server-name",
                "kubernetes.example.com",
            ])
            .args(extra)
            .args(["get", "--raw", "/"])
            .output()
            .unwrap()
    };
    let ok = kubectl(&kc, &[]);

    // Another cluster's administrator is refused by this server.
    cluster(&w, "other");
    create(&w, "other", "mallory", &[]);
    assert!(sign(&w, "other", "mallory", &[]).status.success());
    let kc2 = w.tmp.path().join("kubeconfig2");
    let out = w
        .kaws()
        .args(["admin", "install", "other", "mallory", "--kubeconfig"])
        .arg(&kc2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ca1 = d.join("ca.pem");
    let mut refused = Command::new("kubectl");
    w.env(&mut refused);
    let refused = refused
        .arg("--kubeconfig")
        .arg(&kc2)
        .args([
            "--context",
            "other",
            "--server",
            &format!("https://127.0.0.1:{port}"),
            "--tls-server-name",
            "kubernetes.example.com",
            "--certificate-authority",
        ])
        .arg(&ca1)
        .args(["get", "--raw", "/"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        ok.status.success(),
        "kubectl with alice's credentials: {}",
        stderr(&ok)
    );
    assert!(
        stdout(&ok).contains("s_server") || stdout(&ok).contains("Ciphers"),
        "{}",
        stdout(&ok)
    );
    assert!(
        !refused.status.success(),
        "a certificate from another CA must be refused"
    );
}

#[test]
fn the_signer_decides_what_the_certificate_says() {
    let w = World::new();
    cluster(&w, "c1");
    let d = w.cluster_dir("c1");
    // An openssl-made CSR asking for CA:TRUE, serverAuth and a SAN.
    let cnf = w.tmp.path().join("req.cnf");
    std::fs::write(
        &cnf,
        "[req]\ndistinguished_name=dn\nreq_extensions=ext\nprompt=no\n[dn]\nCN=eve\nO=system:masters\n[ext]\nbasicConstraints=critical,CA:TRUE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:evil.example.com\nkeyUsage=keyCertSign\n",
    )
    .unwrap();
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
            w.tmp.path().join("eve.key").to_str().unwrap(),
            "-out",
            d.join("eve.csr").to_str().unwrap(),
            "-config",
            cnf.to_str().unwrap(),
        ],
        &d,
    );
    let out = sign(&w, "c1", "eve", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = openssl_ok(&["x509", "-in", "eve.pem", "-noout", "-text"], &d);
    assert!(
        text.contains("CA:FALSE") && !text.contains("CA:TRUE"),
        "{text}"
    );
    assert!(
        !text.contains("Server Authentication") && text.contains("TLS Web Client Authentication"),
        "{text}"
    );
    assert!(
        !text.contains("evil.example.com") && !text.contains("Certificate Sign"),
        "{text}"
    );
    assert!(text.contains("Digital Signature"), "{text}");
    let serial = openssl_ok(&["x509", "-in", "eve.pem", "-noout", "-serial"], &d);
    assert!(
        serial.trim().len() >= "serial=".len() + 16,
        "at least 64 bits: {serial}"
    );
    // Never past the CA.
    let ca_end = openssl_ok(&["x509", "-in", "ca.pem", "-noout", "-enddate"], &d);
    let out = sign(&w, "c1", "eve", &["--renew", "--days", "3650"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eve_end = openssl_ok(&["x509", "-in", "eve.pem", "-noout", "-enddate"], &d);
    let check = Command::new("openssl")
        .args(["x509", "-in", "eve.pem", "-noout", "-checkend", "0"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(check.status.success());
    // 3650 days from now end seconds after the CA (made a moment earlier
    // for 3650 days): only the cap keeps eve's end at or before the CA's.
    assert!(
        not_after(&eve_end) <= not_after(&ca_end),
        "{eve_end} vs {ca_end}"
    );
}

/// openssl's `notAfter=Nov 28 01:02:03 2036 GMT` as (year, month, day,
/// hour, minute, second), which compare in time order.
fn not_after(line: &str) -> (u32, u32, u32, u32, u32, u32) {
    let text = line.trim().trim_start_matches("notAfter=");
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "{line}");
    assert_eq!(parts[4], "GMT", "{line}");
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[0]).expect(line) as u32 + 1;
    let hms: Vec<u32> = parts[2].split(':').map(|x| x.parse().unwrap()).collect();
    (
        parts[3].parse().unwrap(),
        month,
        parts[1].parse().unwrap(),
        hms[0],
        hms[1],
        hms[2],
    )
}

#[test]
fn the_ca_cap_comparison_is_by_date() {
    // Month names sort "Apr" < "Dec" < "Jan" as text, not as dates.
    assert!(
        not_after("notAfter=Jan  2 00:00:00 2027 GMT")
            > not_after("notAfter=Dec 31 23:59:59 2026 GMT")
    );
    assert!(
        not_after("notAfter=Apr  1 00:00:01 2030 GMT")
            > not_after("notAfter=Apr  1 00:00:00 2030 GMT")
    );
}

/// A CA operation never proceeds silently: without a terminal to ask on,
/// `admin sign` shows what it would sign and refuses unless --yes is given.
#[test]
fn without_a_terminal_only_yes_signs() {
    let w = World::new();
    cluster(&w, "c3");
    create(&w, "c3", "gina", &[]);
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["admin", "sign", "c3", "gina"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("Subject:     CN=gina"),
        "what would be signed is shown: {err}"
    );
    assert!(
        err.contains("not a terminal") && err.contains("--yes") && err.contains("help:"),
        "{err}"
    );
    assert_eq!(before, w.snapshot(), "nothing written");
    assert!(!w.cluster_dir("c3").join("gina.pem").exists());
    let out = w
        .kaws()
        .args(["admin", "sign", "c3", "gina", "--yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    openssl_ok(
        &["verify", "-CAfile", "ca.pem", "gina.pem"],
        &w.cluster_dir("c3"),
    );
}

#[test]
fn bad_csrs_are_refused_and_nothing_is_written() {
    let w = World::new();
    cluster(&w, "c2");
    let d = w.cluster_dir("c2");
    let fp = create(&w, "c2", "bob", &[]);

    // A wrong fingerprint.
    let before = w.snapshot();
    let wrong = "0".repeat(64);
    let out = sign(&w, "c2", "bob", &["--fingerprint", &wrong]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("fingerprint") && stderr(&out).contains("do not sign"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());

    // One bit flipped in the signature (the last bytes of the DER).
    let pem = std::fs::read_to_string(d.join("bob.csr")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = b64decode(&b64);
    let n = der.len();
    der[n - 3] ^= 0x01;
    let tampered = openssl_stdin(&["req", "-inform", "DER", "-outform", "PEM"], &der);
    assert!(tampered.status.success(), "{}", stderr(&tampered));
    std::fs::write(d.join("bob.csr"), &tampered.stdout).unwrap();
    let before = w.snapshot();
    let out = sign(&w, "c2", "bob", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature does not verify"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("bob.csr"));
    assert_eq!(before, w.snapshot());
    std::fs::write(d.join("bob.csr"), pem).unwrap();
    assert!(
        sign(&w, "c2", "bob", &["--fingerprint", &fp.to_uppercase()])
            .status
            .success()
    );

    // A CSR whose CN is not the name.
    let carol_key = w.tmp.path().join("carol.key");
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
            carol_key.to_str().unwrap(),
            "-subj",
            "/CN=admin",
            "-out",
            "carol.csr",
        ],
        &d,
    );
    let before = w.snapshot();
    let out = sign(&w, "c2", "carol", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("not for carol"), "{}", stderr(&out));
    assert_eq!(before, w.snapshot());

    // A weak RSA key.
    openssl_ok(
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            w.tmp.path().join("dave.key").to_str().unwrap(),
            "-subj",
            "/CN=dave",
            "-out",
            "dave.csr",
        ],
        &d,
    );
    let out = sign(&w, "c2", "dave", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("1024 bits"), "{}", stderr(&out));
    assert!(!d.join("dave.pem").exists());

    // Garbage and a missing CSR.
    std::fs::write(d.join("erin.csr"), b"\x00\xffnot a csr").unwrap();
    let out = sign(&w, "c2", "erin", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("erin.csr"));
    let out = sign(&w, "c2", "frank", &[]);
    assert!(
        stderr(&out).contains("no such CSR") && stderr(&out).contains("kaws admin create"),
        "{}",
        stderr(&out)
    );

    // Install before signing says what to do; a broken kubeconfig is never clobbered.
    create(&w, "c2", "gina", &[]);
    let out = w
        .kaws()
        .args([
            "admin",
            "install",
            "c2",
            "gina",
            "--kubeconfig",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("not signed yet") && stderr(&out).contains("kaws admin sign"),
        "{}",
        stderr(&out)
    );
    let broken = w.tmp.path().join("broken-kubeconfig");
    std::fs::write(&broken, "clusters: [unclosed").unwrap();
    let out = w
        .kaws()
        .args(["admin", "install", "c2", "bob", "--kubeconfig"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("left untouched"));
    assert_eq!(std::fs::read(&broken).unwrap(), b"clusters: [unclosed");
}
