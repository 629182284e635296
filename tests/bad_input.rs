//! A catalogue of bad inputs across every command. Each must get a non-zero
//! exit, one clear message that names the file or value and says what to do,
//! no panic, and a repository byte-identical to before.

// Tests and benches may unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// A file the case writes before running (relative to the repository).
type Setup = Option<(&'static str, Vec<u8>)>;

struct Case {
    what: &'static str,
    setup: Setup,
    args: Vec<String>,
    expect: &'static str,
}

fn case(what: &'static str, args: &[&str], expect: &'static str) -> Case {
    Case {
        what,
        setup: None,
        args: args.iter().map(|s| s.to_string()).collect(),
        expect,
    }
}

fn with_file(
    what: &'static str,
    path: &'static str,
    content: Vec<u8>,
    args: &[&str],
    expect: &'static str,
) -> Case {
    Case {
        what,
        setup: Some((path, content)),
        args: args.iter().map(|s| s.to_string()).collect(),
        expect,
    }
}

fn init_args<'a>(name: &'a str, key: &'a str, flag: &'a str, value: &'a str) -> Vec<&'a str> {
    let mut v = vec!["cluster", "init", name];
    for (f, d) in [
        ("--domain", "example.com"),
        ("--zone-id", "Z1"),
        ("--kms-key", key),
        ("--ssh-key", "k"),
    ] {
        if f != flag {
            v.extend([f, d]);
        }
    }
    if !flag.is_empty() {
        v.extend([flag, value]);
    }
    v
}

#[test]
fn forty_bad_inputs_are_refused_cleanly() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("good", &key, &[]).status.success());
    let akey = w.kms_key();
    assert!(w
        .kaws()
        .args(["admin", "create", "good", "alice", "--kms-key", &akey])
        .output()
        .unwrap()
        .status
        .success());
    assert!(w
        .kaws()
        .args(["admin", "sign", "good", "alice", "--yes"])
        .output()
        .unwrap()
        .status
        .success());
    assert!(w
        .kaws()
        .args(["admin", "create", "good", "bob", "--kms-key", &akey])
        .output()
        .unwrap()
        .status
        .success());

    let bob_csr = std::fs::read(w.cluster_dir("good").join("bob.csr")).unwrap();
    let settings = std::fs::read(w.cluster_dir("good").join("terraform.tfvars.json")).unwrap();
    let mut random = vec![0u8; 4096];
    let mut x: u32 = 2463534242;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let dsa_dir = w.tmp.path();
    openssl_ok(
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            "dsa.params",
        ],
        dsa_dir,
    );
    openssl_ok(
        &["genpkey", "-paramfile", "dsa.params", "-out", "dsa.key"],
        dsa_dir,
    );
    openssl_ok(
        &[
            "req", "-new", "-key", "dsa.key", "-subj", "/CN=bob", "-out", "dsa.csr",
        ],
        dsa_dir,
    );
    let dsa_csr = std::fs::read(dsa_dir.join("dsa.csr")).unwrap();
    openssl_ok(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-nodes",
            "-keyout",
            "k1.key",
            "-subj",
            "/CN=bob",
            "-out",
            "k1.csr",
        ],
        dsa_dir,
    );
    let k1_csr = std::fs::read(dsa_dir.join("k1.csr")).unwrap();
    let sixty_four = "a".repeat(64);
    let bob = "clusters/good/bob.csr";
    let tfvars = "clusters/good/terraform.tfvars.json";

    let mut cases = vec![
        // Names.
        case("cluster name with ..", &init_args("../evil", &key, "", ""), "invalid cluster name"),
        case("cluster name with /", &init_args("a/b", &key, "", ""), "invalid cluster name"),
        case("cluster name upper case", &init_args("Prod", &key, "", ""), "invalid cluster name"),
        case("cluster name underscore", &init_args("a_b", &key, "", ""), "invalid cluster name"),
        case("cluster name leading hyphen", &init_args("-a", &key, "", ""), "unexpected argument '-a'"),
        case("cluster name trailing hyphen", &init_args("a-", &key, "", ""), "invalid cluster name"),
        case("cluster name 64 chars", &init_args(&sixty_four, &key, "", ""), "invalid cluster name"),
        case("cluster name empty", &init_args("", &key, "", ""), "invalid cluster name"),
        case("cluster name unicode", &init_args("prød", &key, "", ""), "invalid cluster name"),
        case("admin name reserved", &["admin", "create", "good", "ca", "--kms-key", &akey], "reserved"),
        case("admin name with dot", &["admin", "create", "good", "a.b", "--kms-key", &akey], "invalid administrator name"),
        case("unknown cluster", &["admin", "list", "nope"], "no such cluster"),
        // Domains.
        case("domain with space", &init_args("x", &key, "--domain", "not a domain"), "invalid domain"),
        case("domain one label", &init_args("x", &key, "--domain", "com"), "invalid domain"),
        case("domain empty label", &init_args("x", &key, "--domain", "a..com"), "invalid domain"),
        case("domain numeric tld", &init_args("x", &key, "--domain", "10.0.0.1"), "invalid domain"),
        // CIDRs.
        case("vpc cidr host bits", &init_args("x", &key, "--cidr", "10.0.0.1/16"), "host bits"),
        case("vpc cidr prefix 33", &init_args("x", &key, "--cidr", "10.0.0.0/33"), "invalid vpc_cidr"),
        case("vpc cidr no prefix", &init_args("x", &key, "--cidr", "10.0.0.0"), "missing /PREFIX"),
        case("vpc cidr octet 300", &init_args("x", &key, "--cidr", "300.0.0.0/8"), "not an IPv4 address"),
        case("service cidr /31", &init_args("x", &key, "--service-cidr", "10.3.0.0/31"), "no room"),
        case("ssh cidr ipv6", &init_args("x", &key, "--ssh-cidr", "::/0"), "invalid ssh_cidr"),
        // Topologies.
        case("topology unknown", &init_args("x", &key, "--topology", "hybrid"), "invalid topology \"hybrid\""),
        case("topology upper case", &init_args("x", &key, "--topology", "Private"), "invalid topology"),
        case("nat unknown", &init_args("x", &key, "--nat", "none"), "invalid nat \"none\""),
        case("nat with public", &["cluster", "init", "x", "--domain", "example.com", "--zone-id", "Z1", "--kms-key", &key, "--ssh-key", "k", "--topology", "public", "--nat", "single"], "--nat applies only to the private topology"),
        // KMS keys.
        case("kms key plain word", &init_args("x", &key, "--kms-key", "not-a-key"), "invalid KMS key"),
        case("kms key empty alias", &init_args("x", &key, "--kms-key", "alias/"), "invalid KMS key"),
        case("kms key aws alias", &init_args("x", &key, "--kms-key", "alias/aws/ebs"), "invalid KMS key"),
        case("kms key bad arn", &init_args("x", &key, "--kms-key", "arn:aws:kms:us-east-1:1:key/x"), "invalid KMS key"),
        case("reencrypt bad key", &["cluster", "reencrypt", "good", "--new-key", "nope"], "invalid KMS key"),
        // Other settings.
        case("kubernetes version", &init_args("x", &key, "--kubernetes-version", "1.32"), "invalid kubernetes version"),
        case("ami", &init_args("x", &key, "--ami", "ami-zz"), "invalid ami"),
        case("instance type", &init_args("x", &key, "--instance-type", "big"), "invalid instance type"),
        case("zone id", &init_args("x", &key, "--zone-id", "Z/../1"), "invalid zone id"),
        case("state bucket", &init_args("x", &key, "--state-bucket", "Bad_Bucket"), "invalid state bucket"),
        // Signing options.
        case("fingerprint not hex", &["admin", "sign", "good", "bob", "--fingerprint", "xyz"], "invalid fingerprint"),
        case("days zero", &["admin", "sign", "good", "bob", "--days", "0"], "invalid --days"),
        case("days too many", &["admin", "sign", "good", "bob", "--days", "99999"], "invalid --days"),
        case("group empty", &["admin", "create", "good", "carol", "--kms-key", &akey, "--group", ""], "invalid group"),
        case("server not a url", &["admin", "install", "good", "alice", "--server", "kubernetes", "--kubeconfig", "/tmp/kaws-never-written"], "invalid --server"),
        // Files a stranger could write: CSRs.
        with_file("truncated CSR", bob, bob_csr[..bob_csr.len() / 2].to_vec(), &["admin", "sign", "good", "bob"], "bob.csr"),
        with_file("garbage CSR", bob, b"hello, I am a CSR".to_vec(), &["admin", "sign", "good", "bob"], "bob.csr"),
        with_file("random-byte CSR", bob, random.clone(), &["admin", "sign", "good", "bob"], "bob.csr"),
        with_file("oversized CSR", bob, vec![b'A'; 70 * 1024], &["admin", "sign", "good", "bob"], "too large"),
        with_file("certificate instead of CSR", bob, std::fs::read(w.cluster_dir("good").join("ca.pem")).unwrap(), &["admin", "sign", "good", "bob"], "expected \"CERTIFICATE REQUEST\""),
        with_file("DSA CSR", bob, dsa_csr, &["admin", "sign", "good", "bob"], "not supported"),
        with_file("secp256k1 CSR", bob, k1_csr, &["admin", "sign", "good", "bob"], "unsupported curve"),
        // Settings files.
        with_file("truncated settings", tfvars, settings[..settings.len() / 2].to_vec(), &["admin", "list", "good"], "terraform.tfvars.json"),
        with_file("settings not JSON", tfvars, b"cluster = \"good\"".to_vec(), &["cluster", "check", "good", "--offline"], "not valid cluster settings"),
        with_file("settings unknown field", tfvars, br#"{"cluster":"good","domain":"example.com","zone_id":"Z1","region":"us-east-1","kms_key_id":"alias/k","ssh_key_name":"k","evil":1}"#.to_vec(), &["admin", "list", "good"], "unknown field"),
        with_file("settings missing field", tfvars, br#"{"cluster":"good"}"#.to_vec(), &["admin", "list", "good"], "missing field"),
        with_file("settings bad topology", tfvars, String::from_utf8_lossy(&settings).replace("\"topology\": \"private\"", "\"topology\": \"hybrid\"").into_bytes(), &["admin", "list", "good"], "unknown variant `hybrid`"),
        with_file("settings bad cidr", tfvars, String::from_utf8_lossy(&settings).replace("10.3.0.0/24", "10.3.0.7/24").into_bytes(), &["admin", "sign", "good", "bob"], "host bits"),
        with_file("settings oversized", tfvars, vec![b' '; 100 * 1024], &["admin", "list", "good"], "too large"),
        with_file("repository file broken", "kaws.json", b"{".to_vec(), &init_args("fresh", &key, "", ""), "kaws.json"),
        // What the credential plugin reads: a stranger may have committed it.
        case("plugin repository missing", &["admin", "credential", "good", "alice", "--repository", "/nonexistent"], "not inside a kaws repository"),
        with_file("plugin garbage certificate", "clusters/good/alice.pem", random.clone(), &["admin", "credential", "good", "alice"], "alice.pem"),
        with_file("plugin CSR as certificate", "clusters/good/alice.pem", bob_csr.clone(), &["admin", "credential", "good", "alice"], "expected \"CERTIFICATE\""),
        with_file("plugin garbage ciphertext", "clusters/good/alice-key.pem.encrypted", b"not a ciphertext".to_vec(), &["admin", "credential", "good", "alice"], "does not decrypt"),
        with_file("plugin oversized ciphertext", "clusters/good/alice-key.pem.encrypted", vec![0; 70 * 1024], &["admin", "credential", "good", "alice"], "too large"),
        // A broken kubeconfig is refused, never clobbered.
        with_file("broken kubeconfig", "kubeconfig-broken", b"users: [ {".to_vec(), &["admin", "install", "good", "alice", "--kubeconfig", "kubeconfig-broken"], "left untouched"),
        with_file("kubeconfig not a mapping", "kubeconfig-list", b"- a\n- b\n".to_vec(), &["admin", "install", "good", "alice", "--kubeconfig", "kubeconfig-list"], "not a mapping"),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let n = cases.len();
    let mut failures = Vec::new();
    for c in cases.drain(..) {
        let original = c
            .setup
            .as_ref()
            .map(|(p, _)| std::fs::read(w.repo.join(p)).ok());
        if let Some((p, content)) = &c.setup {
            std::fs::write(w.repo.join(p), content).unwrap();
        }
        let before = w.snapshot();
        let out = w
            .kaws()
            .args(&c.args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = stderr(&out);
        let checks = [
            (!out.status.success(), "accepted"),
            (
                out.status.code() != Some(101) && !err.contains("panicked"),
                "panicked",
            ),
            (err.contains(c.expect), "expected text missing"),
            (
                err.contains("help:") || err.contains("Usage:") || err.contains("tip:"),
                "no next step",
            ),
            (err.matches("error:").count() == 1, "not one message"),
            (before == w.snapshot(), "the repository changed"),
        ];
        for (ok, why) in checks {
            if !ok {
                failures.push(format!(
                    "{}: {why} (expected {:?}): {err}",
                    c.what, c.expect
                ));
            }
        }
        if let Some((p, _)) = &c.setup {
            match original.flatten() {
                Some(bytes) => std::fs::write(w.repo.join(p), bytes).unwrap(),
                None => std::fs::remove_file(w.repo.join(p)).unwrap(),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{n} bad inputs refused cleanly");
}

/// A name kaws would accept but git would hide: an administrator whose
/// certificate the `*-key.pem` ignore rule would match.
#[test]
fn admin_names_git_would_hide_are_refused_up_front() {
    let w = World::new();
    let key = w.kms_key();
    assert!(w.cluster_init("names", &key, &[]).status.success());
    let out = w
        .kaws()
        .args(["admin", "create", "names", "ops-key", "--kms-key", &key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("ends in -key"), "{}", stderr(&out));
}
