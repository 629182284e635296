//! `kaws admin credential`, the kubectl exec credential plugin, judged by a
//! real kubectl in a mutual-TLS handshake with `openssl s_server`, followed
//! by strace; its refusals; and the KMS key health `cluster check` reports.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use common::*;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A cluster `c` with a signed administrator `name`; returns (cluster
/// key id, administrator key id).
fn signed_admin(w: &World, c: &str, name: &str) -> (String, String) {
    let ckey = w.kms_key();
    let out = w.cluster_init(c, &ckey, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let akey = w.kms_key();
    run_ok(w.kaws().args([
        "admin",
        "create",
        c,
        name,
        "--kms-key",
        &akey,
        "--group",
        "system:masters",
    ]));
    run_ok(w.kaws().args(["admin", "sign", c, name, "--yes"]));
    (ckey, akey)
}

/// `kaws admin credential` run from outside the repository, as kubectl would.
fn credential(w: &World, c: &str, name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = w.kaws_in(&w.home);
    cmd.args(["admin", "credential", c, name, "--repository"])
        .arg(&w.repo);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The refusal of a plugin: non-zero, nothing on stdout, one line on
/// stderr that names kaws and says what to do.
fn refused(out: &Output, code: i32, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(out));
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("kaws: error: "), "{err}");
    assert!(err.contains("; help: "), "says what to do next: {err}");
    assert!(err.contains(needle), "{needle:?} in {err}");
    err
}

/// The administrator's decrypted key, as the aws CLI sees it.
fn admin_key_pem(w: &World, c: &str, name: &str) -> String {
    let out = w.aws_decrypt(
        c,
        &w.cluster_dir(c).join(format!("{name}-key.pem.encrypted")),
        &format!("{name}-key.pem"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(b64decode(&stdout(&out))).unwrap()
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

/// `openssl s_server` with the cluster's apiserver pair, demanding a client
/// certificate from the cluster CA.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s_server(w: &World, c: &str) -> Server {
    let d = w.cluster_dir(c);
    let api_key = w.tmp.path().join("apiserver-key.pem");
    let out = w.aws_decrypt(
        c,
        &d.join("apiserver-key.pem.encrypted"),
        "apiserver-key.pem",
    );
    std::fs::write(&api_key, b64decode(&stdout(&out))).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new("openssl")
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
    Server { child, port }
}

/// kubectl with the test's AWS environment, from outside the repository.
fn kubectl(w: &World, kubeconfig: &Path, server: &Server) -> Command {
    let mut c = Command::new("kubectl");
    w.env(&mut c);
    c.current_dir(&w.home)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--context",
            "prod",
            "--server",
            &format!("https://127.0.0.1:{}", server.port),
            "--tls-server-name",
            "kubernetes.example.com",
            "get",
            "--raw",
            "/",
        ]);
    c
}

fn install(w: &World, kubeconfig: &Path, extra: &[&str]) {
    let out = w
        .kaws()
        .args(["admin", "install", "prod", "alice", "--kubeconfig"])
        .arg(kubeconfig)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

fn view(kubeconfig: &Path) -> serde_json::Value {
    json(&run_ok(
        Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(kubeconfig),
    ))
}

/// What an strace log (`-y`, so each descriptor shows what it is) says
/// about writes: how many went to files, which of those carried key
/// material, and where the ExecCredential went.
struct Writes {
    file_writes: usize,
    key_writes: Vec<String>,
    credential_targets: Vec<String>,
}

fn scan_writes(trace: &str, key_body: &[&str]) -> Writes {
    // The base64 of "-----BEGIN PRIVATE KEY", as in a kubeconfig.
    let b64_marker = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS";
    let mut seen = Writes {
        file_writes: 0,
        key_writes: vec![],
        credential_targets: vec![],
    };
    for line in trace.lines() {
        let rest = line
            .split_once(' ')
            .map(|(_, r)| r.trim_start())
            .unwrap_or(line);
        let Some(args) = ["write(", "pwrite64(", "writev("]
            .iter()
            .find_map(|p| rest.strip_prefix(p))
        else {
            continue;
        };
        // The descriptor is followed by what it is: <path> for a file,
        // <pipe:[...]> or <socket:[...]> otherwise.
        let target = args
            .split_once('<')
            .and_then(|(_, t)| t.split_once('>'))
            .map(|(t, _)| t.to_string())
            .unwrap_or_default();
        if rest.contains("ExecCredential") {
            seen.credential_targets.push(target.clone());
        }
        if !target.starts_with('/') || target.starts_with("/dev/") {
            continue;
        }
        seen.file_writes += 1;
        if rest.contains("PRIVATE KEY")
            || rest.contains(b64_marker)
            || key_body.iter().any(|l| rest.contains(l))
        {
            seen.key_writes.push(target);
        }
    }
    seen
}

#[test]
fn kubectl_runs_the_plugin_for_a_real_mtls_handshake_and_no_key_reaches_a_file() {
    let _g = exclusive();
    let w = World::new();
    signed_admin(&w, "prod", "alice");
    let kc = w.tmp.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster:\n    server: https://other.example\nusers:\n- name: bob\n  user:\n    token: bobs-token\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: bob\n",
    )
    .unwrap();
    install(&w, &kc, &[]);
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(!text.contains("client-key-data"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let v = view(&kc);
    let alice = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice-prod")
        .unwrap()
        .clone();
    let exec = &alice["user"]["exec"];
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["interactiveMode"], "Never");
    let command = PathBuf::from(exec["command"].as_str().unwrap());
    assert!(command.is_absolute(), "{command:?}");
    assert_eq!(
        std::fs::canonicalize(&command).unwrap(),
        std::fs::canonicalize(assert_cmd::cargo::cargo_bin("kaws")).unwrap()
    );
    let args: Vec<&str> = exec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "admin",
            "credential",
            "prod",
            "alice",
            "--repository",
            w.repo.to_str().unwrap()
        ]
    );
    assert_eq!(v["current-context"], "other");

    // kubectl, followed by strace, runs kaws, which hands it the key for
    // a handshake s_server accepts.
    let server = s_server(&w, "prod");
    let log = w.tmp.path().join("strace.log");
    let traced = kubectl(&w, &kc, &server);
    let kubectl_args: Vec<_> = traced.get_args().map(|a| a.to_owned()).collect();
    let mut cmd = Command::new("strace");
    w.env(&mut cmd);
    cmd.current_dir(&w.home)
        .args([
            "-f",
            "-qq",
            "-y",
            "-s",
            "1000000",
            "-e",
            "trace=execve,write,pwrite64,writev",
            "-o",
        ])
        .arg(&log)
        .arg("kubectl")
        .args(&kubectl_args);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "kubectl: {}", stderr(&out));
    assert!(
        stdout(&out).contains("s_server") || stdout(&out).contains("Ciphers"),
        "{}",
        stdout(&out)
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(
        trace
            .lines()
            .any(|l| l.contains("execve(") && l.contains("kaws") && l.contains("\"credential\"")),
        "kubectl ran the plugin"
    );
    let key = admin_key_pem(&w, "prod", "alice");
    // The key's base64 lines, but for any that also occurs in the
    // certificate: PKCS#8 carries the public key too, and s_server's page
    // (which kubectl caches on disk) shows the certificate.
    let cert = std::fs::read_to_string(w.cluster_dir("prod").join("alice.pem")).unwrap();
    let cert_b64: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    let body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16 && !cert_b64.contains(l))
        .collect();
    assert!(!body.is_empty());
    let seen = scan_writes(&trace, &body);
    assert!(seen.key_writes.is_empty(), "{:#?}", seen.key_writes);
    assert_eq!(
        seen.credential_targets.len(),
        1,
        "one credential: {:?}",
        seen.credential_targets
    );
    assert!(
        !seen.credential_targets[0].starts_with('/'),
        "the credential went to a file: {:?}",
        seen.credential_targets
    );
    eprintln!(
        "strace: {} writes to files during the call, none with key material",
        seen.file_writes
    );

    // The same scan does see a key written to a file: install --embed.
    let log2 = w.tmp.path().join("strace-embed.log");
    let mut cmd = Command::new("strace");
    w.env(&mut cmd);
    cmd.current_dir(&w.repo)
        .args([
            "-f",
            "-qq",
            "-y",
            "-s",
            "1000000",
            "-e",
            "trace=write,pwrite64,writev",
            "-o",
        ])
        .arg(&log2)
        .arg(assert_cmd::cargo::cargo_bin("kaws"))
        .args([
            "admin",
            "install",
            "prod",
            "alice",
            "--embed",
            "--kubeconfig",
        ])
        .arg(w.tmp.path().join("kubeconfig-embedded"));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let control = scan_writes(&std::fs::read_to_string(&log2).unwrap(), &body);
    assert!(
        !control.key_writes.is_empty(),
        "the scan must catch an embedded key"
    );

    // When the plugin refuses, kubectl shows its one line.
    let cert = w.cluster_dir("prod").join("alice.pem");
    let aside = w.tmp.path().join("alice.pem");
    std::fs::rename(&cert, &aside).unwrap();
    let out = kubectl(&w, &kc, &server).output().unwrap();
    std::fs::rename(&aside, &cert).unwrap();
    assert!(!out.status.success());
    let line = stderr(&out)
        .lines()
        .find(|l| l.starts_with("kaws: error: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("kubectl did not show the plugin's line: {}", stderr(&out)));
    assert!(
        line.contains("not signed yet") && line.contains("help: "),
        "{line}"
    );

    // --embed switches to the self-contained entry, and back; every other
    // entry survives both switches.
    install(&w, &kc, &["--embed"]);
    let embedded = view(&kc);
    let user = embedded["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice-prod")
        .unwrap()["user"]
        .clone();
    assert!(user["client-key-data"].is_string() && user["exec"].is_null());
    let ok = kubectl(&w, &kc, &server).output().unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    install(&w, &kc, &[]);
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(!text.contains("client-key-data") && !text.contains("client-certificate-data"));
    let back = view(&kc);
    assert_eq!(back, v, "back to the same exec entry, nothing else changed");
    let users = back["users"].as_array().unwrap();
    assert!(users
        .iter()
        .any(|u| u["name"] == "bob" && u["user"]["token"] == "bobs-token"));
    assert_eq!(users.len(), 2);
    assert_eq!(back["clusters"].as_array().unwrap().len(), 2);
    assert_eq!(back["contexts"].as_array().unwrap().len(), 2);
    let ok = kubectl(&w, &kc, &server).output().unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn the_plugin_speaks_the_exec_credential_protocol_and_writes_nothing() {
    let w = World::new();
    signed_admin(&w, "prod", "alice");
    let d = w.cluster_dir("prod");
    let before = w.snapshot();
    let out = credential(&w, "prod", "alice", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(w.snapshot(), before, "the repository is untouched");
    let v = json(&stdout(&out));
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v["kind"], "ExecCredential");
    let status = &v["status"];
    assert_eq!(
        status["clientCertificateData"].as_str().unwrap(),
        std::fs::read_to_string(d.join("alice.pem")).unwrap()
    );
    // The key is the certificate's, by openssl.
    let key = status["clientKeyData"].as_str().unwrap();
    let from_key = openssl_stdin(&["pkey", "-pubout"], key.as_bytes());
    assert!(from_key.status.success(), "{}", stderr(&from_key));
    let from_cert = openssl_ok(&["x509", "-in", "alice.pem", "-noout", "-pubkey"], &d);
    assert_eq!(stdout(&from_key), from_cert);
    // The expiry is the certificate's notAfter.
    let end = openssl_ok(
        &[
            "x509",
            "-in",
            "alice.pem",
            "-noout",
            "-enddate",
            "-dateopt",
            "iso_8601",
        ],
        &d,
    );
    let end = end.trim().trim_start_matches("notAfter=").replace(' ', "T");
    assert_eq!(status["expirationTimestamp"], end.as_str());

    // KUBERNETES_EXEC_INFO: the version kubectl asks for is answered.
    let info = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
    let out = credential(&w, "prod", "alice", &[("KUBERNETES_EXEC_INFO", info)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json(&stdout(&out))["apiVersion"],
        "client.authentication.k8s.io/v1beta1"
    );
    let info = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1","spec":{}}"#;
    let out = credential(&w, "prod", "alice", &[("KUBERNETES_EXEC_INFO", info)]);
    refused(&out, 3, "v1alpha1");
    let out = credential(
        &w,
        "prod",
        "alice",
        &[("KUBERNETES_EXEC_INFO", "{not json")],
    );
    refused(&out, 3, "KUBERNETES_EXEC_INFO");
    assert_eq!(w.snapshot(), before);
}

#[test]
fn the_plugin_refuses_with_one_clear_line() {
    let w = World::new();
    let (_, akey) = signed_admin(&w, "prod", "alice");
    let d = w.cluster_dir("prod");

    refused(&credential(&w, "nope", "alice", &[]), 3, "no such cluster");
    refused(
        &credential(&w, "prod", "zed", &[]),
        3,
        "has no administrator zed",
    );
    let out = w
        .kaws_in(&w.home)
        .args(["admin", "credential", "prod", "alice"])
        .output()
        .unwrap();
    refused(&out, 3, "not inside a kaws repository");

    // Requested, not signed.
    let k2 = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &k2]),
    );
    refused(&credential(&w, "prod", "bob", &[]), 3, "not signed yet");

    // A certificate for another key: carol's first certificate, with the
    // key of her second `admin create`.
    let k3 = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "carol", "--kms-key", &k3]),
    );
    run_ok(w.kaws().args(["admin", "sign", "prod", "carol", "--yes"]));
    let old_cert = std::fs::read(d.join("carol.pem")).unwrap();
    for f in [
        "carol.pem",
        "carol.csr",
        "carol-key.pem.encrypted",
        "carol.kms.json",
    ] {
        std::fs::remove_file(d.join(f)).unwrap();
    }
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "carol", "--kms-key", &k3]),
    );
    std::fs::write(d.join("carol.pem"), &old_cert).unwrap();
    let err = refused(
        &credential(&w, "prod", "carol", &[]),
        3,
        "is not for the key",
    );
    assert!(err.contains("--renew"), "{err}");

    // An expired certificate, signed by the cluster CA with openssl.
    let ca_key = w.tmp.path().join("ca-key.pem");
    let out = w.aws_decrypt("prod", &d.join("ca-key.pem.encrypted"), "ca-key.pem");
    std::fs::write(&ca_key, b64decode(&stdout(&out))).unwrap();
    let ca_dir = w.tmp.path().join("openssl-ca");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("index.txt"), "").unwrap();
    std::fs::write(ca_dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        ca_dir.join("ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\norganizationName=optional\n[ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let expired = w.tmp.path().join("alice-expired.pem");
    openssl_ok(
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-batch",
            "-notext",
            "-extensions",
            "ext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-cert",
            d.join("ca.pem").to_str().unwrap(),
            "-keyfile",
            ca_key.to_str().unwrap(),
            "-in",
            d.join("alice.csr").to_str().unwrap(),
            "-out",
            expired.to_str().unwrap(),
        ],
        &ca_dir,
    );
    std::fs::remove_file(&ca_key).unwrap();
    let good = std::fs::read(d.join("alice.pem")).unwrap();
    std::fs::write(d.join("alice.pem"), std::fs::read(&expired).unwrap()).unwrap();
    let err = refused(
        &credential(&w, "prod", "alice", &[]),
        3,
        "the certificate expired on 2021-01-01T00:00:00Z",
    );
    assert!(err.contains("kaws admin sign prod alice --renew"), "{err}");
    std::fs::write(d.join("alice.pem"), good).unwrap();

    // KMS unreachable: within the SDK's bounded retries, naming the endpoint.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let t = Instant::now();
    let out = credential(&w, "prod", "alice", &[("AWS_ENDPOINT_URL", &dead)]);
    refused(&out, 5, &dead);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // A disabled key. moto decrypts under one anyway, so a proxy answers
    // Decrypt as real KMS does; the state comes from DescribeKey.
    let arn = key_arn(&w, &akey);
    w.aws_ok(&["kms", "disable-key", "--key-id", &akey]);
    let upstream = moto().url.trim_start_matches("http://").to_string();
    let p = proxy::start_refusing(
        &upstream,
        "Decrypt",
        "DisabledException",
        &format!("{arn} is disabled."),
    );
    let err = refused(
        &credential(&w, "prod", "alice", &[("AWS_ENDPOINT_URL", &p.url)]),
        5,
        &format!("key {arn} is disabled"),
    );
    assert!(err.contains("aws kms enable-key"), "{err}");

    // Pending deletion: the state and the date.
    w.aws_ok(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &akey,
        "--pending-window-in-days",
        "7",
    ]);
    let p = proxy::start_refusing(
        &upstream,
        "Decrypt",
        "KMSInvalidStateException",
        &format!("{arn} is pending deletion."),
    );
    let err = refused(
        &credential(&w, "prod", "alice", &[("AWS_ENDPOINT_URL", &p.url)]),
        5,
        "is pending deletion, to be deleted on 20",
    );
    assert!(err.contains("cancel-key-deletion"), "{err}");
}

#[test]
fn cluster_check_reports_kms_key_health_and_fails_on_the_cluster_key() {
    let w = World::new();
    let (ckey, _) = signed_admin(&w, "prod", "alice");
    let check = |extra: &[&str]| {
        w.kaws()
            .args(["cluster", "check", "prod"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&stdout(&out));
    let keys = v["kms_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0]["owner"], "cluster");
    assert_eq!(keys[0]["state"], "enabled");
    assert_eq!(keys[1]["owner"], "alice");
    assert_eq!(keys[1]["state"], "enabled");

    // Disabled: the table, the JSON and the exit status say so.
    w.aws_ok(&["kms", "disable-key", "--key-id", &ckey]);
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let table = stdout(&out);
    let row = table
        .lines()
        .find(|l| l.starts_with("cluster ") && l.contains("arn:aws:kms"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("disabled"), "{row}");
    assert!(table.contains("aws kms enable-key"), "{table}");
    let out = check(&["-o", "json"]);
    assert_eq!(out.status.code(), Some(6));
    let v = json(&stdout(&out));
    assert_eq!(v["kms_keys"][0]["state"], "disabled");
    assert_eq!(v["kms_keys"][0]["failed"], true);
    assert_eq!(v["kms_keys"][1]["failed"], false);

    // Every command that decrypts names the state when KMS refuses for it.
    let arn = key_arn(&w, &ckey);
    let upstream = moto().url.trim_start_matches("http://").to_string();
    let p = proxy::start_refusing(
        &upstream,
        "Decrypt",
        "DisabledException",
        &format!("{arn} is disabled."),
    );
    let before = w.snapshot();
    let out = w
        .kaws()
        .args(["cluster", "renew", "prod"])
        .env("AWS_ENDPOINT_URL", &p.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("key {arn} is disabled")),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());

    // Scheduled for deletion: the state and the date.
    w.aws_ok(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &ckey,
        "--pending-window-in-days",
        "7",
    ]);
    let date = w.aws_ok(&[
        "kms",
        "describe-key",
        "--key-id",
        &ckey,
        "--query",
        "KeyMetadata.DeletionDate",
        "--output",
        "text",
    ]);
    let secs = date.split('.').next().unwrap();
    let day = run_ok(Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d"]));
    let day = day.trim();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let table = stdout(&out);
    let row = table
        .lines()
        .find(|l| l.starts_with("cluster ") && l.contains("arn:aws:kms"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("pending-deletion") && row.contains(day),
        "{row} ({date})"
    );
    assert!(table.contains("cancel-key-deletion"), "{table}");
    let v = json(&stdout(&check(&["-o", "json"])));
    assert_eq!(v["kms_keys"][0]["state"], "pending-deletion");
    assert!(
        v["kms_keys"][0]["deletion_date"]
            .as_str()
            .unwrap()
            .starts_with(day),
        "{v}"
    );
    // Offline, KMS is not asked.
    let out = check(&["--offline", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&stdout(&out))["kms_keys"], serde_json::json!([]));

    // An administrator's key: a warning for them, not a failure; one made
    // before kaws recorded keys is reported as unknown.
    let w = World::new();
    let (_, akey) = signed_admin(&w, "prod", "alice");
    w.aws_ok(&["kms", "disable-key", "--key-id", &akey]);
    let k2 = w.kms_key();
    run_ok(
        w.kaws()
            .args(["admin", "create", "prod", "bob", "--kms-key", &k2]),
    );
    std::fs::remove_file(w.cluster_dir("prod").join("bob.kms.json")).unwrap();
    let out = w
        .kaws()
        .args(["cluster", "check", "prod", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&stdout(&out));
    let alice = &v["kms_keys"][1];
    assert_eq!(alice["owner"], "alice");
    assert_eq!(alice["state"], "disabled");
    assert_eq!(alice["failed"], false);
    assert!(alice["problem"]
        .as_str()
        .unwrap()
        .contains("alice cannot use the cluster"));
    let bob = &v["kms_keys"][2];
    assert_eq!(bob["owner"], "bob");
    assert_eq!(bob["state"], "unknown");
    assert!(
        bob["detail"].as_str().unwrap().contains("not recorded"),
        "{bob}"
    );
}
