//! Properties of the parsers that read files a stranger could write: CSRs,
//! PEM, cluster settings, kubeconfigs; and of names and networks.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kaws::kubeconfig::{merged, Credentials, Entry, ExecPlugin};
use kaws::layout::ClusterName;
use kaws::settings::{Cidr, ClusterSettings};
use kaws::x509::{decode_pem, verify_csr};
use proptest::prelude::*;

fn csr_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    p.serialize_request(&key).unwrap().pem().unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    ::pem::parse(pem).unwrap().into_contents()
}

fn to_pem(tag: &str, der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new(tag, der.to_vec()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Whatever is given as an administrator or account, key-policy either
    /// refuses it with a hint or prints a policy that names exactly the
    /// principals given, each inside the JSON strings (no injection).
    #[test]
    fn key_policy_never_panics_and_names_only_what_was_given(
        arn in prop_oneof![
            "\\PC{0,80}",
            "arn:aws(-cn)?:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/\"*-]{0,40}",
        ],
        account in proptest::option::of("[0-9a-z]{0,14}"),
    ) {
        let cluster = ClusterName::parse("prod").unwrap();
        match kaws::policy::key_policy(&cluster, std::slice::from_ref(&arn), account.as_deref()) {
            Err(e) => prop_assert!(e.hint().is_some()),
            Ok(p) => {
                prop_assert!(!arn.contains('"') && !arn.contains('*') && !arn.ends_with('/'));
                prop_assert_eq!(&p["Statement"][1]["Principal"]["AWS"][0], &serde_json::json!(arn));
            }
        }
    }

    #[test]
    fn csr_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = verify_csr(&bytes, Path::new("x.csr"));
        let _ = verify_csr(to_pem("CERTIFICATE REQUEST", &bytes).as_bytes(), Path::new("x.csr"));
    }

    #[test]
    fn any_changed_byte_of_a_csr_is_refused_or_still_verifies(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let pem = csr_pem();
        let mut der = pem_der(&pem);
        let i = pos.index(der.len());
        der[i] ^= xor;
        // Either it is refused, or (a change in an ignored encoding detail)
        // what it says is still what was signed: CN alice with a 64-hex fingerprint.
        if let Ok(v) = verify_csr(to_pem("CERTIFICATE REQUEST", &der).as_bytes(), Path::new("x.csr")) {
            prop_assert_eq!(v.common_name, "alice");
            prop_assert_eq!(v.fingerprint.len(), 64);
        }
    }

    #[test]
    fn any_changed_signature_byte_is_refused(back in 1usize..=40, xor in 1u8..=255) {
        let mut der = pem_der(&csr_pem());
        let n = der.len();
        // The signature is the last element of the CSR: each of its last
        // 40 bytes is as likely to change.
        der[n - back] ^= xor;
        prop_assert!(verify_csr(to_pem("CERTIFICATE REQUEST", &der).as_bytes(), Path::new("x.csr")).is_err());
    }

    #[test]
    fn pem_roundtrips_and_never_panics(der in proptest::collection::vec(any::<u8>(), 0..512), junk in ".{0,200}") {
        let pem = to_pem("CERTIFICATE", &der);
        prop_assert_eq!(decode_pem(pem.as_bytes(), "CERTIFICATE", Path::new("c.pem")).unwrap(), der);
        prop_assert!(decode_pem(pem.as_bytes(), "PRIVATE KEY", Path::new("c.pem")).is_err());
        let _ = decode_pem(junk.as_bytes(), "CERTIFICATE", Path::new("c.pem"));
    }

    #[test]
    fn settings_reading_never_panics(text in ".{0,400}") {
        let _ = ClusterSettings::from_json(text.as_bytes(), Path::new("s.json"));
    }

    #[test]
    fn valid_settings_roundtrip(cluster in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", a in 0u8..=255, b in 0u8..=255, prefix in 16u8..=28) {
        let vpc = Cidr::parse("v", &format!("10.{a}.0.0/16")).unwrap();
        let svc_addr = u32::from(std::net::Ipv4Addr::new(172, 16, b, 0)) & (u32::MAX << (32 - prefix));
        let svc = format!("{}/{prefix}", std::net::Ipv4Addr::from(svc_addr));
        let json = serde_json::json!({
            "cluster": cluster, "domain": "example.com", "zone_id": "Z1", "region": "us-east-1",
            "kms_key_id": "alias/k", "ssh_key_name": "k", "vpc_cidr": vpc.to_string(), "service_cidr": svc,
        });
        let s = ClusterSettings::from_json(json.to_string().as_bytes(), Path::new("s.json")).unwrap();
        let again = ClusterSettings::from_json(&s.to_json(), Path::new("s.json")).unwrap();
        prop_assert_eq!(s, again);
    }

    #[test]
    fn names_match_the_documented_pattern(s in "\\PC{0,70}") {
        let re_ok = !s.is_empty() && s.len() <= 63
            && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !s.starts_with('-') && !s.ends_with('-');
        prop_assert_eq!(ClusterName::parse(&s).is_ok(), re_ok);
    }

    #[test]
    fn cidrs_parse_what_they_print(addr in any::<u32>(), prefix in 0u8..=32) {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let text = format!("{}/{prefix}", std::net::Ipv4Addr::from(addr & mask));
        let c = Cidr::parse("c", &text).unwrap();
        prop_assert_eq!(c.to_string(), text);
    }

    #[test]
    fn kubeconfig_merge_keeps_every_other_entry(names in proptest::collection::btree_set("[a-z]{1,8}", 0..6), token in "[A-Za-z0-9]{1,20}") {
        let mut yaml = String::from("apiVersion: v1\nkind: Config\ncurrent-context: keep\nclusters:\n");
        for n in &names { yaml.push_str(&format!("- name: {n}\n  cluster: {{server: 'https://{n}'}}\n")); }
        yaml.push_str("users:\n");
        for n in &names { yaml.push_str(&format!("- name: {n}\n  user: {{token: '{token}'}}\n")); }
        let e = Entry { cluster: "prod", server: "https://k", ca_pem: b"CA", user: "alice-prod", credentials: Credentials::Embedded { cert_pem: b"C", key_pem: b"K" } };
        let once = merged(Some(yaml.as_bytes()), &e, Path::new("k")).unwrap();
        let twice = merged(Some(once.as_bytes()), &e, Path::new("k")).unwrap();
        prop_assert_eq!(once.as_str(), twice.as_str(), "merging is idempotent");
        // Switching to the exec entry is as if the key had never been there.
        let plugin = ExecPlugin { command: "/bin/kaws".into(), args: vec!["admin".into()], env: vec![], install_hint: "h".into() };
        let x = Entry { cluster: "prod", server: "https://k", ca_pem: b"CA", user: "alice-prod", credentials: Credentials::Exec(&plugin) };
        let switched = merged(Some(once.as_bytes()), &x, Path::new("k")).unwrap();
        let direct = merged(Some(yaml.as_bytes()), &x, Path::new("k")).unwrap();
        prop_assert_eq!(switched.as_str(), direct.as_str(), "switching leaves nothing behind");
        prop_assert!(!switched.contains("client-key-data"));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&once).unwrap();
        prop_assert_eq!(&v["current-context"], "keep");
        for n in &names {
            let users = v["users"].as_sequence().unwrap();
            prop_assert!(users.iter().any(|u| u["name"] == n.as_str() && u["user"]["token"] == token.as_str()));
        }
    }

    #[test]
    fn kubeconfig_merge_never_panics(text in ".{0,300}") {
        let e = Entry { cluster: "prod", server: "https://k", ca_pem: b"CA", user: "a-prod", credentials: Credentials::Embedded { cert_pem: b"C", key_pem: b"K" } };
        let _ = merged(Some(text.as_bytes()), &e, Path::new("k"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// KUBERNETES_EXEC_INFO comes from whatever runs the plugin.
    #[test]
    fn exec_info_never_panics(text in ".{0,300}") {
        let _ = kaws::exec_credential::requested_version(Some(&text));
    }

    /// Whatever the key's text, the ExecCredential is one line of JSON that
    /// gives it back unchanged.
    #[test]
    fn exec_credential_is_json_for_any_key_text(key in "\\PC{0,200}", cert in "[ -~\n]{0,100}") {
        let secret = kaws::secret::Secret::new(key.clone().into_bytes());
        let t = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let out = kaws::exec_credential::response(kaws::exec_credential::ApiVersion::V1, &cert, &secret, t).unwrap();
        let v: serde_json::Value = serde_json::from_slice(out.expose()).unwrap();
        prop_assert_eq!(v["status"]["clientKeyData"].as_str().unwrap(), key.as_str());
        prop_assert_eq!(v["status"]["clientCertificateData"].as_str().unwrap(), cert.as_str());
        prop_assert_eq!(out.expose().iter().filter(|b| **b == b'\n').count(), 1);
    }

    /// `<admin>.kms.json` is a file anyone who can commit may write.
    #[test]
    fn key_record_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alice.kms.json");
        std::fs::write(&p, &bytes).unwrap();
        let _ = kaws::settings::AdminKeyRecord::load(&p);
    }
}
