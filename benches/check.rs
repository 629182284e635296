//! `kaws cluster check --offline` over a cluster with 10,000 administrator
//! certificates: the whole process, as a user runs it (target: under 1 s).
//!
//!   cargo bench --bench check -- --warm-up-time 1 --measurement-time 10 --sample-size 10
//!
//! The fixture (a repository, a cluster PKI, 10,000 signed administrators)
//! is made in-process with kaws' own library, without KMS: an offline check
//! never decrypts.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kaws::pki::{self, Ca, PrivateKey, Subject};
use kaws::settings::ClusterSettings;
use kaws::signer::CaSigner;

const ADMINS: usize = 10_000;

fn fixture(root: &Path) {
    std::fs::write(
        root.join("kaws.json"),
        r#"{"kaws_version":"bench","terraform_source":"../../terraform/modules/kaws"}"#,
    )
    .unwrap();
    let dir = root.join("clusters/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let settings: ClusterSettings = serde_json::from_str(
        r#"{"cluster":"bench","domain":"example.com","zone_id":"Z1","region":"us-east-1","kms_key_id":"alias/bench","ssh_key_name":"k"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("terraform.tfvars.json"), settings.to_json()).unwrap();
    let ca_key = CaSigner::local(
        PrivateKey::generate(settings.key_algorithm).unwrap(),
        "ca-key.pem.encrypted",
    )
    .unwrap();
    let ca_pem = now(pki::self_signed(
        &pki::CA,
        &Subject::for_cluster(&pki::CA, &settings).unwrap(),
        &ca_key,
        false,
    ))
    .unwrap();
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    let ca = Ca::new(&ca_pem, &ca_key).unwrap();
    for spec in &pki::CLUSTER_CERTS[1..] {
        let key = PrivateKey::generate(settings.key_algorithm).unwrap();
        if spec.has_certificate() {
            let pem = now(ca.sign(
                spec,
                &Subject::for_cluster(spec, &settings).unwrap(),
                key.key_pair(),
                365,
                false,
            ))
            .unwrap();
            std::fs::write(dir.join(format!("{}.pem", spec.stem)), pem).unwrap();
        } else {
            std::fs::write(dir.join(format!("{}.pub", spec.stem)), key.public_key_pem()).unwrap();
        }
        std::fs::write(
            dir.join(format!("{}-key.pem.encrypted", spec.stem)),
            b"\x01\x02ciphertext",
        )
        .unwrap();
    }
    // One key for every administrator keeps the fixture quick to make; the
    // check parses and verifies each certificate all the same.
    let admin_key = PrivateKey::generate(settings.key_algorithm).unwrap();
    let spki = admin_key.public_key_der();
    for i in 0..ADMINS {
        let name = format!("admin-{i:05}");
        let pem = now(ca.sign_admin(
            &Subject::for_admin(&name, &["ops".to_string()]),
            &spki,
            365,
            false,
        ))
        .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), pem).unwrap();
        std::fs::write(
            dir.join(format!("{name}-key.pem.encrypted")),
            b"\x01\x02ciphertext",
        )
        .unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let kaws = env!("CARGO_BIN_EXE_kaws");
    let run = || {
        let out = Command::new(kaws)
            .args(["cluster", "check", "bench", "--offline", "-o", "json"])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let findings = String::from_utf8(run().stdout)
        .unwrap()
        .matches("\"kind\": \"admin\"")
        .count();
    assert_eq!(findings, ADMINS);
    let mut g = c.benchmark_group("check_offline");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("10000_admins_whole_process", |b| b.iter(run));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// Run a signing future to its end: a local key signs without waiting.
fn now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("a local key signs without waiting"),
    }
}
