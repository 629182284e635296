//! In-process cost of the PKI work kaws does, without KMS or the file system
//! (except where a benchmark says so).
//!
//! Run briefly on a small machine:
//!   cargo bench --bench pki -- --warm-up-time 1 --measurement-time 3 --sample-size 10
//!
//! Groups:
//! - keygen/*: PrivateKey::generate per algorithm.
//! - ca/*: a self-signed CA certificate from an existing key.
//! - leaf/*: Ca::sign of the apiserver row (most SANs) from an existing key.
//! - cluster_pki/*: the six keys and five certificates of `cluster init`,
//!   keys generated on one thread per key as ops::cluster does.
//! - admin/*: what `admin sign` does between reading the CSR and writing the
//!   certificate: verify_csr, PrivateKey::from_secret (the decrypted CA key),
//!   Ca::new, Ca::sign_admin.
//! - check_offline/*: parse_cert over 10,000 distinct administrator
//!   certificates, in memory and read from 10,000 files, the proxy for
//!   `cluster check --offline`.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kaws::pki::{self, Ca, PrivateKey, Subject, CLUSTER_CERTS};
use kaws::settings::{ClusterSettings, KeyAlgorithm};
use kaws::signer::CaSigner;
use kaws::x509;

const ADMINS: usize = 10_000;

fn settings(alg: KeyAlgorithm) -> ClusterSettings {
    let mut s: ClusterSettings = serde_json::from_str(
        r#"{"cluster":"bench","domain":"example.com","zone_id":"Z1","region":"us-east-1",
            "kms_key_id":"alias/bench","ssh_key_name":"k"}"#,
    )
    .expect("settings");
    s.key_algorithm = alg;
    s
}

fn ca_for(alg: KeyAlgorithm) -> (CaSigner, String) {
    let s = settings(alg);
    let key = CaSigner::local(PrivateKey::generate(alg).unwrap(), "ca-key.pem.encrypted").unwrap();
    let subject = Subject::for_cluster(&pki::CA, &s).unwrap();
    let pem = now(pki::self_signed(&pki::CA, &subject, &key, alg.is_rsa())).unwrap();
    (key, pem)
}

/// An administrator's CSR as PEM. kaws's own CSR builder (`der::csr`) is
/// crate-private, so rcgen's (same key types, one O) stands in for it.
fn admin_csr(key: &PrivateKey, name: &str) -> String {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.serialize_request(key.key_pair()).unwrap().pem().unwrap()
}

fn label(alg: KeyAlgorithm) -> &'static str {
    alg.as_str()
}

fn keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("keygen");
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
    ] {
        g.bench_function(label(alg), |b| {
            b.iter(|| black_box(PrivateKey::generate(alg).unwrap()))
        });
    }
    // RSA-4096 generation takes ~0.1-1 s and varies a lot: the minimum sample.
    g.sample_size(10);
    g.bench_function(label(KeyAlgorithm::Rsa4096), |b| {
        b.iter(|| black_box(PrivateKey::generate(KeyAlgorithm::Rsa4096).unwrap()))
    });
    g.finish();
}

fn issuance(c: &mut Criterion) {
    let apiserver = pki::spec("apiserver").unwrap();
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let s = settings(alg);
        let (ca_key, ca_pem) = ca_for(alg);
        let ca_subject = Subject::for_cluster(&pki::CA, &s).unwrap();
        c.bench_function(&format!("ca/{}", label(alg)), |b| {
            b.iter(|| {
                black_box(
                    now(pki::self_signed(
                        &pki::CA,
                        &ca_subject,
                        &ca_key,
                        alg.is_rsa(),
                    ))
                    .unwrap(),
                )
            })
        });

        let leaf_key = PrivateKey::generate(alg).unwrap();
        let leaf_subject = Subject::for_cluster(apiserver, &s).unwrap();
        let ca = Ca::new(&ca_pem, &ca_key).unwrap();
        c.bench_function(&format!("leaf/{}", label(alg)), |b| {
            b.iter(|| {
                black_box(
                    now(ca.sign(
                        apiserver,
                        &leaf_subject,
                        leaf_key.key_pair(),
                        365,
                        alg.is_rsa(),
                    ))
                    .unwrap(),
                )
            })
        });
    }
}

/// What ops::cluster::make_pki does (it is private): generate the table's
/// keys, one thread per key, then the CA and the leaf certificates.
fn make_pki(s: &ClusterSettings) -> Vec<(PrivateKey, Option<String>)> {
    let alg = s.key_algorithm;
    let rsa = alg.is_rsa();
    let keys: Vec<PrivateKey> = std::thread::scope(|sc| {
        let hs: Vec<_> = CLUSTER_CERTS
            .iter()
            .map(|_| sc.spawn(move || PrivateKey::generate(alg).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut keys = keys.into_iter();
    let ca_key = CaSigner::local(keys.next().unwrap(), "ca-key.pem.encrypted").unwrap();
    let ca_pem = now(pki::self_signed(
        &pki::CA,
        &Subject::for_cluster(&pki::CA, s).unwrap(),
        &ca_key,
        rsa,
    ))
    .unwrap();
    let mut out = Vec::new();
    {
        let ca = Ca::new(&ca_pem, &ca_key).unwrap();
        for (spec, key) in CLUSTER_CERTS[1..].iter().zip(keys) {
            let cert = spec.has_certificate().then(|| {
                now(ca.sign(
                    spec,
                    &Subject::for_cluster(spec, s).unwrap(),
                    key.key_pair(),
                    spec.lifetime_days,
                    rsa,
                ))
                .unwrap()
            });
            out.push((key, cert));
        }
    }
    let ca_secret = ca_key.local_key().unwrap().to_secret();
    black_box(ca_secret);
    drop(ca_key);
    let _ = ca_pem;
    // Every key is serialized to PKCS#8 PEM before it is sealed.
    for (k, _) in &out {
        black_box(k.to_secret());
    }
    out
}

fn cluster_pki(c: &mut Criterion) {
    let mut g = c.benchmark_group("cluster_pki");
    g.sample_size(10);
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let s = settings(alg);
        g.bench_function(label(alg), |b| b.iter(|| black_box(make_pki(&s))));
    }
    g.finish();
}

fn admin(c: &mut Criterion) {
    let path = Path::new("alice.csr");
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let (ca_key, ca_pem) = ca_for(alg);
        let admin_key = PrivateKey::generate(alg).unwrap();
        let csr_pem = admin_csr(&admin_key, "alice");
        let csr = x509::verify_csr(csr_pem.as_bytes(), path).unwrap();
        let ca_secret = ca_key.local_key().unwrap().to_secret();

        c.bench_function(&format!("admin/verify_csr/{}", label(alg)), |b| {
            b.iter(|| black_box(x509::verify_csr(black_box(csr_pem.as_bytes()), path).unwrap()))
        });
        c.bench_function(&format!("admin/ca_key_from_secret/{}", label(alg)), |b| {
            b.iter(|| black_box(PrivateKey::from_secret(&ca_secret, "ca-key.pem").unwrap()))
        });
        c.bench_function(&format!("admin/ca_new/{}", label(alg)), |b| {
            b.iter(|| black_box(Ca::new(&ca_pem, &ca_key).unwrap()))
        });
        let ca = Ca::new(&ca_pem, &ca_key).unwrap();
        let subject = Subject::for_admin(&csr.common_name, &csr.organizations);
        c.bench_function(&format!("admin/sign_admin/{}", label(alg)), |b| {
            b.iter(|| {
                black_box(now(ca.sign_admin(&subject, &csr.spki_der, 365, csr.is_rsa)).unwrap())
            })
        });
        // Everything `admin sign` computes once KMS has returned the CA key.
        c.bench_function(&format!("admin/sign_end_to_end/{}", label(alg)), |b| {
            b.iter(|| {
                let v = x509::verify_csr(csr_pem.as_bytes(), path).unwrap();
                let k = PrivateKey::from_secret(&ca_secret, "ca-key.pem").unwrap();
                let k = CaSigner::local(k, "ca-key.pem.encrypted").unwrap();
                let ca = Ca::new(&ca_pem, &k).unwrap();
                let subj = Subject::for_admin(&v.common_name, &v.organizations);
                black_box(now(ca.sign_admin(&subj, &v.spki_der, 365, v.is_rsa)).unwrap())
            })
        });
    }
}

/// 10,000 distinct administrator certificates (one key, distinct names),
/// signed by an ECDSA CA as `admin sign` would.
fn admin_certs() -> Vec<String> {
    let (ca_key, ca_pem) = ca_for(KeyAlgorithm::EcdsaP256);
    let ca = Ca::new(&ca_pem, &ca_key).unwrap();
    let admin_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let spki = admin_key.public_key_der();
    let groups = vec!["system:masters".to_string(), "developers".to_string()];
    (0..ADMINS)
        .map(|i| {
            let subject = Subject::for_admin(&format!("admin-{i:05}"), &groups);
            now(ca.sign_admin(&subject, &spki, 365, false)).unwrap()
        })
        .collect()
}

fn check_offline(c: &mut Criterion) {
    let certs = admin_certs();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = certs
        .iter()
        .enumerate()
        .map(|(i, pem)| {
            let p = dir.path().join(format!("admin-{i:05}.pem"));
            std::fs::write(&p, pem).unwrap();
            p
        })
        .collect();
    let mut g = c.benchmark_group("check_offline");
    g.sample_size(10);
    g.bench_function("parse_cert_x10000_in_memory", |b| {
        b.iter(|| {
            for (pem, p) in certs.iter().zip(&paths) {
                black_box(x509::parse_cert(pem.as_bytes(), p).unwrap());
            }
        })
    });
    g.bench_function("read_and_parse_cert_x10000_files", |b| {
        b.iter(|| {
            for p in &paths {
                let bytes = x509::read_pem_file(p).unwrap();
                black_box(x509::parse_cert(&bytes, p).unwrap());
            }
        })
    });
    // One parse on its own, for the per-certificate figure.
    g.sample_size(20);
    g.bench_function("parse_cert_x1", |b| {
        b.iter_batched(
            || certs[0].as_bytes(),
            |pem| black_box(x509::parse_cert(pem, &paths[0]).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = keygen, issuance, cluster_pki, admin, check_offline
}
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
