//! Trustworthy under faults and bad input: cluster check, renewal, locking,
//! SIGKILL at random moments, KMS faults through a fault-injecting proxy,
//! and a catalogue of bad inputs across every command.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use common::*;
use proxy::Fault;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn moto_hostport() -> String {
    moto().url.trim_start_matches("http://").to_string()
}

#[test]
fn check_passes_on_a_fresh_cluster_and_catches_damage_and_exposure() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("chk", &key, &[]).status.success());
    let out = w.kaws().args(["cluster", "check", "chk"]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Every row of kaws' table is reported, and ok.
    for name in kaws::pki::CLUSTER_CERTS.iter().map(|c| c.stem) {
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.starts_with(name) && l.trim_end().ends_with("ok")),
            "{name}: {}",
            stdout(&out)
        );
    }
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &w.kaws()
            .args(["cluster", "check", "chk", "--offline", "-o", "json"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(json["offline"], true);
    assert!(json["findings"].as_array().unwrap().len() >= 6);

    // An administrator close to expiry is a warning, not a failure.
    let akey = w.kms_key();
    assert!(w
        .kaws()
        .args(["admin", "create", "chk", "soon", "--kms-key", &akey])
        .output()
        .unwrap()
        .status
        .success());
    assert!(w
        .kaws()
        .args(["admin", "sign", "chk", "soon", "--days", "10", "--yes"])
        .output()
        .unwrap()
        .status
        .success());
    let out = w
        .kaws()
        .args(["cluster", "check", "chk", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let soon = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "soon")
        .unwrap();
    assert_eq!(soon["state"], "warning");

    // A certificate from another CA in a cluster certificate's place.
    let d = w.cluster_dir("chk");
    let good = std::fs::read(d.join("kube-proxy.pem")).unwrap();
    openssl_ok(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            w.tmp.path().join("k").to_str().unwrap(),
            "-subj",
            "/CN=kube-chk-node",
            "-days",
            "30",
            "-out",
            d.join("kube-proxy.pem").to_str().unwrap(),
        ],
        &d,
    );
    let out = w
        .kaws()
        .args(["cluster", "check", "chk", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not signed by kube-chk-ca"),
        "{}",
        stdout(&out)
    );
    std::fs::write(d.join("kube-proxy.pem"), good).unwrap();

    // A swapped ciphertext: node's key in apiserver's place does not decrypt.
    let api = std::fs::read(d.join("apiserver-key.pem.encrypted")).unwrap();
    std::fs::copy(
        d.join("kube-proxy-key.pem.encrypted"),
        d.join("apiserver-key.pem.encrypted"),
    )
    .unwrap();
    let out = w.kaws().args(["cluster", "check", "chk"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stdout(&out).contains("does not decrypt"),
        "{}",
        stdout(&out)
    );
    std::fs::write(d.join("apiserver-key.pem.encrypted"), api).unwrap();

    // A plaintext key anywhere in the repository, PEM or DER.
    std::fs::write(
        w.repo.join("oops.txt"),
        b"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = w
        .kaws()
        .args(["cluster", "check", "chk", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stdout(&out).contains("oops.txt") && stdout(&out).contains("exposed"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(w.repo.join("oops.txt")).unwrap();
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-outform",
            "DER",
            "-out",
            "der.key",
        ],
        &d,
    );
    let out = w
        .kaws()
        .args(["cluster", "check", "chk", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(stdout(&out).contains("der.key"), "{}", stdout(&out));
    std::fs::remove_file(d.join("der.key")).unwrap();
    assert!(w
        .kaws()
        .args(["cluster", "check", "chk"])
        .output()
        .unwrap()
        .status
        .success());

    // Damaged settings do not stop the certificates' check: the names are
    // checked against the values as written, and the report says so.
    let settings_path = d.join("terraform.tfvars.json");
    let settings = std::fs::read_to_string(&settings_path).unwrap();
    std::fs::write(
        &settings_path,
        settings.replace("10.3.0.0/24", "10.3.0.7/24"),
    )
    .unwrap();
    let out = w
        .kaws()
        .args(["cluster", "check", "chk", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = |name: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {report}"))
            .clone()
    };
    let s = finding("terraform.tfvars.json");
    assert_eq!(s["state"], "invalid", "{s}");
    assert!(
        s["problems"].to_string().contains("service_cidr")
            && s["problems"]
                .to_string()
                .contains("checked against the values as written"),
        "{s}"
    );
    assert_eq!(
        report["offline"], true,
        "KMS is not asked with damaged settings"
    );
    // The apiserver's names come from service_cidr: not checked, and said.
    let api = finding("apiserver");
    assert!(
        api["problems"]
            .to_string()
            .contains("names were not checked"),
        "{api}"
    );
    // The others are checked as ever: a wrong etcd name would still show.
    assert_eq!(finding("etcd")["state"], "ok", "{report}");
    assert_eq!(finding("kube-proxy")["state"], "ok", "{report}");
    std::fs::write(&settings_path, &settings).unwrap();
}

/// `cluster check --warn-days N`: a certificate ending within N days
/// exits 8, which a scheduled job can alert on; without the flag a warning
/// still exits 0, and a failure still exits 6.
#[test]
fn check_warn_days_exits_8_when_a_certificate_ends_within_n_days() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("wd", &key, &[]).status.success());
    let akey = w.kms_key();
    for args in [
        &["admin", "create", "wd", "soon", "--kms-key", &akey][..],
        &["admin", "sign", "wd", "soon", "--days", "10", "--yes"],
    ] {
        let out = w.kaws().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let check = |extra: &[&str]| {
        let out = w
            .kaws()
            .args(["cluster", "check", "wd", "--offline", "-o", "json"])
            .args(extra)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
        let states: std::collections::BTreeMap<String, String> = json["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        (
                            f["name"].as_str().unwrap().to_string(),
                            f["state"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (out, states)
    };

    // As before: a warning is reported and exits 0.
    let (out, states) = check(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(states["soon"], "warning");
    // Ten days left: a warning within 30 days, exit 8 and a line on stderr.
    let (out, states) = check(&["--warn-days", "30"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(states["soon"], "warning");
    assert_eq!(states["apiserver"], "ok");
    let err = stderr(&out);
    assert!(
        err.contains("warning: cluster wd: 1 certificate(s) end within 30 days")
            && err.contains("kaws cluster renew wd"),
        "{err}"
    );
    // Not within 5 days: ok, exit 0.
    let (out, states) = check(&["--warn-days", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(states["soon"], "ok");
    // Every leaf ends within 400 days; the text report says so too.
    let (out, states) = check(&["--warn-days", "400"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(states["apiserver"], "warning");
    let out = w
        .kaws()
        .args(["cluster", "check", "wd", "--offline", "--warn-days", "400"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(stdout(&out).contains("renew it"), "{}", stdout(&out));
    // A negative N is a bad command line.
    let (out, _) = check(&["--warn-days", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A failure wins: 6, whatever N.
    let d = w.cluster_dir("wd");
    std::fs::write(d.join("kube-proxy.pem"), b"not a certificate").unwrap();
    let (out, _) = check(&["--warn-days", "400"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
}

#[test]
fn renew_reissues_certificates_keeping_or_replacing_keys() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("ren", &key, &[]).status.success());
    let d = w.cluster_dir("ren");
    let pubkey = |f: &str| openssl_ok(&["x509", "-in", f, "-noout", "-pubkey"], &d);
    let serial = |f: &str| openssl_ok(&["x509", "-in", f, "-noout", "-serial"], &d);
    let (k0, s0) = (pubkey("apiserver.pem"), serial("apiserver.pem"));
    let blob0 = std::fs::read(d.join("apiserver-key.pem.encrypted")).unwrap();
    let ca0 = std::fs::read(d.join("ca.pem")).unwrap();
    let out = w.kaws().args(["cluster", "renew", "ren"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pubkey("apiserver.pem"), k0, "the key is kept");
    assert_ne!(serial("apiserver.pem"), s0, "a new certificate");
    assert_eq!(
        std::fs::read(d.join("apiserver-key.pem.encrypted")).unwrap(),
        blob0
    );
    assert_eq!(
        std::fs::read(d.join("ca.pem")).unwrap(),
        ca0,
        "the CA is untouched"
    );
    openssl_ok(
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "apiserver.pem",
            "kube-proxy.pem",
        ],
        &d,
    );
    // etcd's certificates come from etcd's own CA, which renew keeps too.
    let etcd_ca0 = std::fs::read(d.join("etcd-ca.pem")).unwrap();
    openssl_ok(&["verify", "-CAfile", "etcd-ca.pem", "etcd.pem"], &d);
    let out = w
        .kaws()
        .args(["cluster", "renew", "ren", "--new-keys"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(pubkey("apiserver.pem"), k0, "a new key");
    assert_eq!(std::fs::read(d.join("etcd-ca.pem")).unwrap(), etcd_ca0);
    let out = w.kaws().args(["cluster", "check", "ren"]).output().unwrap();
    assert!(
        out.status.success(),
        "keys match their new certificates: {}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_dir(w.repo.join("clusters"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".kaws-tmp-"))
            .count(),
        0
    );
}

#[test]
fn a_second_writer_waits_then_names_the_lock_holder() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("lk", &key, &[]).status.success());
    let lock = w.repo.join("clusters/.lk.lock");
    // Another process holds the lock, as a running kaws would.
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.flock(f,fcntl.LOCK_EX)\nf.truncate(0); f.write('pid 4242 running `kaws cluster apply lk`'); f.flush()\nprint('locked',flush=True)\ntime.sleep(30)"])
        .arg(&lock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let before = w.snapshot();
    let start = Instant::now();
    let out = w
        .kaws()
        .args(["cluster", "reencrypt", "lk", "--new-key", &key])
        .output()
        .unwrap();
    let waited = start.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kaws cluster apply lk"),
        "{}",
        stderr(&out)
    );
    assert!(
        waited >= Duration::from_secs(4),
        "it waited a short while first"
    );
    assert_eq!(before, w.snapshot());
    // Once released, the same command goes through.
    assert!(w
        .kaws()
        .args(["cluster", "reencrypt", "lk", "--new-key", &key])
        .output()
        .unwrap()
        .status
        .success());
}

/// SIGKILL `kaws cluster init` at random moments: each cluster directory is
/// then absent or whole, and a rerun succeeds.
#[test]
fn sigkill_at_any_moment_leaves_nothing_half_made() {
    let w = World::new();
    let key = w.kms_key();
    // Calibrate: how long a whole run takes here.
    let t = Instant::now();
    assert!(w.cluster_init("calib", &key, &[]).status.success());
    let full = t.elapsed().as_micros() as u64;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
    let (mut absent, mut whole) = (0, 0);
    for i in 0..24 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // The first kill lands before kaws has written anything, so at
        // least one run is known to leave no cluster.
        let delay = if i == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(seed % (full + 1))
        };
        let name = format!("kill-{i}");
        let mut cmd = w.init_cmd(&name, &key);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let dir = w.cluster_dir(&name);
        if dir.exists() {
            whole += 1;
            let out = w.kaws().args(["cluster", "check", &name]).output().unwrap();
            assert!(
                out.status.success(),
                "after a kill at {delay:?}, {name} exists but is not whole: {}",
                stdout(&out)
            );
        } else {
            absent += 1;
            let out = w.cluster_init(&name, &key, &[]);
            assert!(
                out.status.success(),
                "rerun after a kill at {delay:?}: {}",
                stderr(&out)
            );
        }
    }
    eprintln!("24 kills: {absent} left no cluster, {whole} left a whole one");
    assert!(absent >= 1, "the kill before any write left no cluster");
    assert_eq!(absent + whole, 24);
    // Leftover staging directories are named by check, each as a leftover,
    // never mistaken for clusters.
    let out = w
        .kaws()
        .args(["cluster", "check", "calib", "--offline", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(w.repo.join("clusters"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kaws-tmp-"))
        .collect();
    for l in &leftovers {
        assert!(
            findings
                .iter()
                .any(|f| f["kind"] == "leftover" && f["name"] == format!("clusters/{l}").as_str()),
            "{l} not named as a leftover: {report}"
        );
    }
    // And nothing else is called one.
    for f in findings.iter().filter(|f| f["kind"] == "leftover") {
        let name = f["name"].as_str().unwrap();
        assert!(
            name.rsplit('/').next().unwrap().starts_with(".kaws-tmp-"),
            "{name}"
        );
    }
}

#[test]
fn kms_faults_are_retried_then_fail_clearly_and_write_nothing() {
    let w = World::new();
    let key = w.kms_key();
    let upstream = moto_hostport();
    // A few 5xx and throttles are retried with backoff, and succeed.
    for (fault, name) in [
        (Fault::ServerError, "five"),
        (Fault::Throttle, "thr"),
        (Fault::Drop, "drop"),
    ] {
        let p = proxy::start(&upstream, fault, 2);
        let out = w
            .init_cmd(name, &key)
            .env("AWS_ENDPOINT_URL", &p.url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{fault:?}: {}", stderr(&out));
        assert_eq!(p.faults_injected.load(Ordering::SeqCst), 2);
        let out = w.kaws().args(["cluster", "check", name]).output().unwrap();
        assert!(out.status.success());
    }
    // Slow answers are waited for.
    let p = proxy::start(&upstream, Fault::Slow(Duration::from_millis(800)), 3);
    let out = w
        .init_cmd("slow", &key)
        .env("AWS_ENDPOINT_URL", &p.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // Endless 5xx: a bounded number of retries, one clear sentence, nothing written.
    let before = w.snapshot();
    let p = proxy::start(&upstream, Fault::ServerError, usize::MAX);
    let t = Instant::now();
    let out = w
        .init_cmd("never", &key)
        .env("AWS_ENDPOINT_URL", &p.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("KMS"), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(30));
    let attempts = p.requests.load(Ordering::SeqCst);
    assert!((2..=10).contains(&attempts), "{attempts} attempts");
    assert_eq!(before, w.snapshot());

    // An unreachable endpoint fails within 30 s, naming KMS and the endpoint.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let t = Instant::now();
    let out = w
        .init_cmd("dead", &key)
        .env("AWS_ENDPOINT_URL", &dead)
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KMS") && stderr(&out).contains(&dead),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, w.snapshot());
    eprintln!("fault injection: 2 x 5xx, 2 x throttle, 2 x dropped, 3 x slow (0.8 s), {attempts} x endless 5xx, 1 unreachable endpoint");
}

/// A KMS outage is not a PKI problem: `cluster check` prints its report,
/// says the keys were not checked, and exits 5 (AWS), not 6 (invalid PKI).
/// A damaged ciphertext is still 6, and so is a real problem during an outage.
#[test]
fn check_reports_a_kms_outage_as_5_and_a_broken_pki_as_6() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("out", &key, &[]).status.success());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = w
        .kaws()
        .env("AWS_ENDPOINT_URL", &dead)
        .args(["cluster", "check", "out"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Keys were not checked"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("could not be checked") && stderr(&out).contains("--offline"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("renew"),
        "no false PKI alarm: {}",
        stderr(&out)
    );
    let report = w
        .kaws()
        .env("AWS_ENDPOINT_URL", &dead)
        .args(["cluster", "check", "out", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(5));
    let v = json(&stdout(&report));
    assert!(
        v["kms_error"]["message"].as_str().unwrap().contains(&dead),
        "{v}"
    );
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["state"] == "ok"));

    // No credentials at all: said so, not blamed on the network; still 5.
    let out = w
        .kaws()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["cluster", "check", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no AWS credentials") && stderr(&out).contains("aws configure"),
        "{}",
        stderr(&out)
    );

    // A real problem during the outage still gives 6.
    let d = w.cluster_dir("out");
    std::fs::write(
        w.repo.join("leak.pem"),
        b"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = w
        .kaws()
        .env("AWS_ENDPOINT_URL", &dead)
        .args(["cluster", "check", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    std::fs::remove_file(w.repo.join("leak.pem")).unwrap();

    // A ciphertext KMS refuses as misplaced is the file's fault: 6.
    std::fs::copy(
        d.join("kube-proxy-key.pem.encrypted"),
        d.join("etcd-key.pem.encrypted"),
    )
    .unwrap();
    let out = w.kaws().args(["cluster", "check", "out"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("does not decrypt"),
        "{}",
        stdout(&out)
    );
}
