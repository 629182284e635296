//! Renewal reaching running servers (issue 16). kaws-refresh-keys, exactly
//! as Ignition wrote it, runs on the files the decrypt step left, against
//! moto through counting proxies, with a stand-in `systemctl` on PATH that
//! records its calls; the etcd gate asks the real etcd members of
//! `judge_etcd` for their health. Between two refreshes, `kaws cluster renew
//! --new-keys` and `kaws cluster apply` change the objects in S3, and
//! nothing else. A refresh whose KMS request fails replaces nothing.

use super::*;
use std::time::Instant;

/// `/etc/kaws/…` and `/run/kaws/…` paths a text names.
fn paths_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["/etc/kaws/", "/run/kaws/"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| c.is_whitespace() || ":'\",=\\".contains(c))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
        }
    }
    out
}

/// KAWS_RESTART of /etc/kaws/refresh.env: unit -> the files it reads.
pub fn restart_map(s: &Server) -> BTreeMap<String, BTreeSet<String>> {
    let env = s.file("/etc/kaws/refresh.env");
    let line = env
        .lines()
        .find_map(|l| l.strip_prefix("KAWS_RESTART="))
        .unwrap_or_else(|| panic!("{}: no KAWS_RESTART in {env}", s.name));
    line.trim_matches('"')
        .split_whitespace()
        .map(|e| {
            let (unit, files) = e.split_once(':').unwrap();
            (
                unit.to_string(),
                files.split(',').map(String::from).collect(),
            )
        })
        .collect()
}

/// The certificates and keys each long-running unit reads: named on its
/// command line or in a file it names (a kubeconfig, a component config),
/// followed to the end.
fn files_read(s: &Server) -> BTreeMap<String, BTreeSet<String>> {
    let material: BTreeSet<String> = s
        .env_list("KAWS_CERTS")
        .union(&s.env_list("KAWS_KEYS"))
        .cloned()
        .collect();
    let mut out = BTreeMap::new();
    for (unit, text) in &s.units {
        if !unit.ends_with(".service") || text.contains("Type=oneshot") {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo = vec![text.as_str()];
        while let Some(t) = todo.pop() {
            for p in paths_in(t) {
                if let Some(body) = s.files.get(&p) {
                    if !seen.contains(&p) {
                        todo.push(body);
                    }
                }
                seen.insert(p);
            }
        }
        let names: BTreeSet<String> = seen
            .iter()
            .filter_map(|p| p.rsplit('/').next())
            .filter(|n| material.contains(*n))
            .map(String::from)
            .collect();
        if !names.is_empty() {
            out.insert(unit.clone(), names);
        }
    }
    out
}

/// The refresh's units and files are there, the timer enabled, and the
/// restart map names exactly the files each long-running unit reads.
pub fn check_refresh_units(role: &str, s: &Server) {
    let service = s.unit("kaws-refresh.service");
    assert!(service.contains("ExecStart=/opt/kaws/bin/kaws-refresh-keys"));
    assert!(service.contains("Requisite=kaws-keys.service"), "{service}");
    assert!(service.contains("EnvironmentFile=/etc/kaws/refresh.env"));
    assert!(s.enabled.contains("kaws-refresh.timer"), "{role}");
    let timer = s.unit("kaws-refresh.timer");
    assert!(timer.contains("RandomizedDelaySec="), "{timer}");
    assert_eq!(s.modes["/opt/kaws/bin/kaws-refresh-keys"], 0o755);
    assert_eq!(
        restart_map(s),
        files_read(s),
        "{role}: KAWS_RESTART (refresh_restart in userdata.tf) against what the units read"
    );
    let gated = s
        .file("/etc/kaws/refresh.env")
        .contains("KAWS_RESTART_GATE=/opt/kaws/bin/kaws-etcd-turn");
    assert_eq!(
        gated,
        role == "etcd",
        "{role}: only etcd waits for its turn"
    );
    if gated {
        assert_eq!(s.modes["/opt/kaws/bin/kaws-etcd-turn"], 0o755);
    }
}

/// Run kaws-refresh-keys as the server has it on `dir` (a decrypt step's
/// directory), the etcd members' names turned into loopback addresses.
fn run_refresh(w: &World, s: &Server, dir: &Path, s3: &str, kms: &str, etcd: &[u16]) -> Output {
    let bin = dir.join("opt");
    let path = dir.join("path");
    for d in [&bin, &path] {
        std::fs::create_dir_all(d).unwrap();
    }
    for f in ["kaws-decrypt-keys", "kaws-refresh-keys", "kaws-etcd-turn"] {
        if let Some(body) = s.files.get(&format!("/opt/kaws/bin/{f}")) {
            std::fs::write(bin.join(f), body).unwrap();
            std::fs::set_permissions(bin.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut env = s
        .file("/etc/kaws/refresh.env")
        .replace("/opt/kaws/bin/", &format!("{}/", bin.display()));
    for (j, port) in etcd.iter().enumerate() {
        env = env.replace(
            &format!("https://etcd-{j}.{DOMAIN}:2379"),
            &format!("https://127.0.0.1:{port}"),
        );
    }
    assert!(!env.contains(DOMAIN), "{env}");
    std::fs::write(dir.join("refresh.env"), env).unwrap();
    std::fs::write(dir.join("kaws.env"), s.file("/etc/kaws/kaws.env")).unwrap();
    // The stand-in records what would be restarted.
    std::fs::write(
        path.join("systemctl"),
        "#!/bin/sh\necho \"$*\" >>\"$KAWS_TEST_SYSTEMCTL_LOG\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        path.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let bucket = s
        .file("/etc/kaws/kaws.env")
        .lines()
        .find_map(|l| l.strip_prefix("KAWS_BUCKET="))
        .unwrap()
        .to_string();
    let mut cmd = Command::new("bash");
    w.env(&mut cmd);
    cmd.args([
        "-c",
        r#"set -a; . "$1"; . "$2"; set +a; exec bash "$3""#,
        "kaws",
        dir.join("kaws.env").to_str().unwrap(),
        dir.join("refresh.env").to_str().unwrap(),
        bin.join("kaws-refresh-keys").to_str().unwrap(),
    ])
    .env(
        "PATH",
        format!("{}:{}", path.display(), std::env::var("PATH").unwrap()),
    )
    .env("KAWS_TEST_SYSTEMCTL_LOG", dir.join("systemctl.log"))
    .env("KAWS_DECRYPT", bin.join("kaws-decrypt-keys"))
    .env("KAWS_STATE_DIR", dir.join("state"))
    // One-second slots instead of minutes: the wait is at most two seconds.
    .env("KAWS_ETCD_SLOT", "1")
    .env("KAWS_CERT_DIR", dir.join("etc"))
    .env("KAWS_KEY_DIR", dir.join("run"))
    .env("KAWS_S3_ENDPOINT", format!("{s3}/{bucket}"))
    .env("KAWS_KMS_ENDPOINT", kms)
    // Never the link-local metadata address from a test: a closed loopback port.
    .env("KAWS_IMDS", "http://127.0.0.1:9")
    .env("KAWS_RETRY_MAX", "1")
    .stdin(Stdio::null());
    cmd.output().unwrap()
}

/// The stand-in systemctl's calls since the last look.
fn take_calls(dir: &Path) -> Vec<String> {
    let log = dir.join("systemctl.log");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    calls.lines().map(String::from).collect()
}

/// Every file the refresh may replace, by name.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["etc", "run"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(e.file_type().unwrap().is_file(), "{sub}/{name} left behind");
            out.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    out
}

fn differ(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "a file came or went"
    );
    a.keys().filter(|k| a[*k] != b[*k]).cloned().collect()
}

/// certs/<name> and keys/<name>.encrypted in the bucket, with their ETags.
fn objects(w: &World, s: &Server) -> BTreeMap<String, String> {
    let bucket = s
        .file("/etc/kaws/kaws.env")
        .lines()
        .find_map(|l| l.strip_prefix("KAWS_BUCKET="))
        .unwrap()
        .to_string();
    let list = json(&w.aws_ok(&["s3api", "list-objects-v2", "--bucket", &bucket]));
    list["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let key = o["Key"].as_str().unwrap();
            let name = key
                .strip_prefix("certs/")
                .or_else(|| {
                    key.strip_prefix("keys/")
                        .and_then(|k| k.strip_suffix(".encrypted"))
                })
                .unwrap_or(key);
            (name.to_string(), o["ETag"].as_str().unwrap().to_string())
        })
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let out = Command::new("kill")
        .args([sig, &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill {sig} {pid}: {}", stderr(&out));
}

/// One server of each role (for etcd, member 0) with its decrypt directory.
pub struct Role<'a> {
    pub name: &'static str,
    pub server: &'a Server,
    pub dir: PathBuf,
}

pub fn judge_refresh(w: &World, roles: &[Role<'_>], members: &EtcdMembers) {
    let upstream = moto().url.trim_start_matches("http://");
    let s3 = proxy::start(upstream, proxy::Fault::ServerError, 0);
    let kms = proxy::start(upstream, proxy::Fault::ServerError, 0);
    let count = |p: &proxy::Proxy| p.requests.load(Ordering::SeqCst);
    let run = |r: &Role<'_>| {
        let (s0, k0, t) = (count(&s3), count(&kms), Instant::now());
        let out = run_refresh(w, r.server, &r.dir, &s3.url, &kms.url, &members.client);
        (out, count(&s3) - s0, count(&kms) - k0, t.elapsed())
    };

    // Nothing renewed: the first refresh after boot decrypts each key once
    // (it has no digest yet), a quiet one asks KMS nothing; neither
    // replaces a file or restarts a unit.
    for r in roles {
        let (certs, keys) = (
            r.server.env_list("KAWS_CERTS").len(),
            r.server.env_list("KAWS_KEYS").len(),
        );
        let before = tree(&r.dir);
        for (pass, want_s3, want_kms) in [
            ("first", certs + 2 * keys, keys),
            ("quiet", certs + keys, 0),
        ] {
            let (out, n_s3, n_kms, took) = run(r);
            assert!(
                out.status.success(),
                "{}: {pass} refresh: {}",
                r.name,
                stderr(&out)
            );
            eprintln!(
                "{}: {pass} refresh: {n_s3} S3 and {n_kms} KMS requests, {took:?}",
                r.name
            );
            assert_eq!(
                (n_s3, n_kms),
                (want_s3, want_kms),
                "{}: {pass} refresh requests",
                r.name
            );
            assert!(
                differ(&before, &tree(&r.dir)).is_empty(),
                "{}: {pass}",
                r.name
            );
            assert_eq!(
                take_calls(&r.dir),
                Vec::<String>::new(),
                "{}: {pass}",
                r.name
            );
        }
    }

    // Renew every leaf and its key, then apply: only S3 objects change.
    let objects_before = objects(w, roles[0].server);
    let user_data_before = user_data(w);
    let out = w
        .kaws()
        .args(["cluster", "renew", CLUSTER, "--new-keys"])
        .output()
        .unwrap();
    assert!(out.status.success(), "renew: {}", stderr(&out));
    let out = tf(
        w,
        &[
            "cluster",
            "apply",
            CLUSTER,
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success(), "apply after renew failed");
    let text = stdout(&out);
    assert!(
        text.contains("Resources: 0 added,") && text.contains(", 0 destroyed."),
        "the apply after renew only updates objects:\n{text}"
    );
    assert_eq!(user_data(w), user_data_before, "renew changed user data");
    let objects_after = objects(w, roles[0].server);
    let renewed: BTreeSet<String> = objects_after
        .iter()
        .filter(|(k, v)| objects_before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    eprintln!("objects renewed: {renewed:?}");

    for r in roles {
        let mine: BTreeSet<String> = r
            .server
            .env_list("KAWS_CERTS")
            .union(&r.server.env_list("KAWS_KEYS"))
            .filter(|n| renewed.contains(*n))
            .cloned()
            .collect();
        assert!(
            !mine.is_empty(),
            "{}: renew changed none of its files",
            r.name
        );
        let map = restart_map(r.server);
        let units: BTreeSet<String> = map
            .iter()
            .filter(|(_, files)| !files.is_disjoint(&mine))
            .map(|(u, _)| u.clone())
            .collect();
        let before = tree(&r.dir);
        // KMS fails after every certificate was staged: nothing is
        // replaced, nothing restarted, and the next tick starts over.
        let faulty = proxy::start(upstream, proxy::Fault::Drop, 1);
        let out = run_refresh(w, r.server, &r.dir, &s3.url, &faulty.url, &members.client);
        let log = stderr(&out);
        assert!(!out.status.success(), "{}: {log}", r.name);
        assert_eq!(faulty.faults_injected.load(Ordering::SeqCst), 1);
        assert!(log.contains("nothing replaced"), "{}: {log}", r.name);
        assert!(
            differ(&before, &tree(&r.dir)).is_empty(),
            "{}: {log}",
            r.name
        );
        assert_eq!(take_calls(&r.dir), Vec::<String>::new(), "{}", r.name);
        if r.name == "etcd" {
            // Another member is down: the files are taken, the restart waits.
            signal(members.pids[1], "-STOP");
            let (out, ..) = run(r);
            signal(members.pids[1], "-CONT");
            let log = stderr(&out);
            assert!(
                !out.status.success(),
                "etcd restarted beside a stopped member: {log}"
            );
            assert!(log.contains("is not healthy"), "{log}");
            assert_eq!(take_calls(&r.dir), Vec::<String>::new(), "{log}");
            assert_eq!(differ(&before, &tree(&r.dir)), mine, "etcd: {log}");
            check_decrypted(r.name, &r.dir);
            members.wait_healthy(&r.dir);
        }
        let (out, n_s3, n_kms, took) = run(r);
        let log = stderr(&out);
        assert!(
            out.status.success(),
            "{}: refresh after renew: {log}",
            r.name
        );
        eprintln!(
            "{}: refresh after renew: {n_s3} S3 and {n_kms} KMS requests, {took:?}\n{log}",
            r.name
        );
        // Exactly the renewed files, each key matching its certificate.
        assert_eq!(differ(&before, &tree(&r.dir)), mine, "{}: {log}", r.name);
        check_decrypted(r.name, &r.dir);
        let calls = take_calls(&r.dir);
        assert_eq!(calls.len(), 1, "{}: {calls:?}", r.name);
        let restarted: BTreeSet<String> = calls[0]
            .strip_prefix("try-restart ")
            .unwrap_or_else(|| panic!("{}: {}", r.name, calls[0]))
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(restarted, units, "{}: restarted units", r.name);
        // Done: the next tick is quiet again.
        let after = tree(&r.dir);
        let (out, _, n_kms, _) = run(r);
        assert!(out.status.success(), "{}: {}", r.name, stderr(&out));
        assert_eq!(n_kms, 0, "{}", r.name);
        assert!(differ(&after, &tree(&r.dir)).is_empty(), "{}", r.name);
        assert_eq!(take_calls(&r.dir), Vec::<String>::new(), "{}", r.name);
    }
}
