//! What the servers boot with: `kaws cluster apply` against moto, then the
//! user data of every server and launch template is read back through the
//! EC2 API, decoded and parsed as Ignition, and checked for what a working,
//! secure cluster needs. The decrypt step itself runs locally against the S3
//! objects and KMS ciphertext the apply created, judged by openssl.
//!
//! Its own cluster, domain, zone and key pair, so it can share a moto server
//! with tests/terraform.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::Value;

const CLUSTER: &str = "boot";
const DOMAIN: &str = "kaws-boot.example.com";

/// RFC 3986 percent-decoding, for `data:,` URLs.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// One server's Ignition config, with file contents decoded.
struct Ignition {
    raw: String,
    files: BTreeMap<String, String>,
    units: BTreeMap<String, String>,
}

impl Ignition {
    fn parse(text: &str) -> Self {
        let v = json(text);
        assert_eq!(v["ignition"]["version"], "3.3.0");
        let mut files = BTreeMap::new();
        for f in v["storage"]["files"].as_array().into_iter().flatten() {
            let src = f["contents"]["source"].as_str().unwrap();
            let body = if let Some(b64) = src.strip_prefix("data:;base64,") {
                String::from_utf8(b64decode(b64)).unwrap()
            } else {
                let text = src
                    .strip_prefix("data:,")
                    .unwrap_or_else(|| panic!("{}: not a data URL", f["path"]));
                percent_decode(text)
            };
            files.insert(f["path"].as_str().unwrap().to_string(), body);
        }
        let mut units = BTreeMap::new();
        for u in v["systemd"]["units"].as_array().into_iter().flatten() {
            units.insert(
                u["name"].as_str().unwrap().to_string(),
                u["contents"].as_str().unwrap_or("").to_string(),
            );
        }
        Ignition {
            raw: text.to_string(),
            files,
            units,
        }
    }

    fn unit(&self, name: &str) -> &str {
        self.units
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.units.keys()))
    }

    fn file(&self, path: &str) -> &str {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", self.files.keys()))
    }

    /// A space-separated list from /etc/kaws/kaws.env.
    fn env_list(&self, var: &str) -> BTreeSet<String> {
        let env = self.file("/etc/kaws/kaws.env");
        let line = env
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} in {env}"));
        line.trim_matches('"')
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// Every /etc/kaws/… and /run/kaws/… path named by a unit or a config
    /// file the components read.
    fn named_paths(&self) -> BTreeSet<String> {
        let mut texts: Vec<&str> = self.units.values().map(String::as_str).collect();
        for (path, body) in &self.files {
            if path.ends_with(".kubeconfig") || path.ends_with(".yaml") {
                texts.push(body);
            }
        }
        let mut out = BTreeSet::new();
        for t in texts {
            for prefix in ["/etc/kaws/", "/run/kaws/"] {
                for (i, _) in t.match_indices(prefix) {
                    let rest = &t[i..];
                    let end = rest
                        .find(|c: char| c.is_whitespace() || ":'\",=\\".contains(c))
                        .unwrap_or(rest.len());
                    out.insert(rest[..end].to_string());
                }
            }
        }
        out
    }
}

/// `--flag=value` of a unit's command line (continuation lines joined).
fn flag<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("--{name}=");
    unit.split_whitespace()
        .find_map(|t| t.strip_prefix(key.as_str()))
}

fn assert_flag(unit_name: &str, unit: &str, name: &str, value: &str) {
    assert_eq!(
        flag(unit, name),
        Some(value),
        "{unit_name}: --{name} in\n{unit}"
    );
}

/// The unit's value of a [Unit] directive, split into names.
fn directive(unit: &str, key: &str) -> BTreeSet<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(String::from))
        .collect()
}

fn tag_name(i: &Value) -> String {
    i["Tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["Key"] == "Name"))
        .map(|t| t["Value"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What each role's kaws-keys.service must precede, and the keys it decrypts.
fn components(role: &str) -> &'static [&'static str] {
    match role {
        "etcd" => &["etcd-member.service"],
        "controller" => &[
            "kube-apiserver.service",
            "kube-controller-manager.service",
            "kube-scheduler.service",
            "kaws-rbac.service",
        ],
        "worker" => &["kubelet.service", "kube-proxy.service", "flanneld.service"],
        _ => unreachable!(),
    }
}

const CONTROLLER_KEYS: &[&str] = &[
    "apiserver-key.pem",
    "service-account-key.pem",
    "etcd-client-key.pem",
    "controller-manager-key.pem",
    "scheduler-key.pem",
    "bootstrap-key.pem",
];

fn role_keys(role: &str) -> BTreeSet<String> {
    match role {
        "etcd" => set(&["etcd-key.pem"]),
        "controller" => set(CONTROLLER_KEYS),
        "worker" => set(&["node-key.pem"]),
        _ => unreachable!(),
    }
}

/// Checks every role shares: the key unit, its ordering, tmpfs, and that
/// each path a component names is produced at boot.
fn check_common(role: &str, ign: &Ignition) {
    assert!(
        !ign.raw.contains("PRIVATE KEY"),
        "{role}: private key in user data"
    );
    for (path, body) in &ign.files {
        assert!(
            !body.contains("PRIVATE KEY"),
            "{role}: private key in {path}"
        );
    }

    let keys = ign.unit("kaws-keys.service");
    let before = directive(keys, "Before");
    for c in components(role) {
        assert!(before.contains(*c), "{role}: kaws-keys Before= lacks {c}");
        let unit = ign.unit(c);
        assert!(
            directive(unit, "Requires").contains("kaws-keys.service")
                && directive(unit, "After").contains("kaws-keys.service"),
            "{role}: {c} must Require and come After kaws-keys.service:\n{unit}"
        );
    }
    assert!(
        keys.contains("mount -t tmpfs -o mode=0700") && keys.contains(" /run/kaws"),
        "{role}: /run/kaws is a 0700 tmpfs:\n{keys}"
    );
    assert!(keys.contains("ExecStart=/opt/kaws/bin/kaws-decrypt-keys"));
    assert!(keys.contains("EnvironmentFile=/etc/kaws/kaws.env"));
    assert!(ign.files.contains_key("/opt/kaws/bin/kaws-decrypt-keys"));

    let certs = ign.env_list("KAWS_CERTS");
    let key_list = ign.env_list("KAWS_KEYS");
    assert_eq!(key_list, role_keys(role), "{role}: KAWS_KEYS");
    assert!(!key_list.contains("ca-key.pem") && !certs.contains("ca-key.pem"));

    for path in ign.named_paths() {
        if let Some(name) = path.strip_prefix("/run/kaws/") {
            assert!(
                key_list.contains(name),
                "{role}: {path} is named but kaws-decrypt-keys does not produce it ({key_list:?})"
            );
        } else {
            let name = path.strip_prefix("/etc/kaws/").unwrap();
            let produced = certs.contains(name)
                || ign.files.contains_key(&path)
                // kaws-install-node writes the node's name at boot.
                || (role == "worker" && name == "node.env");
            assert!(
                produced,
                "{role}: {path} is named but neither copied from S3 ({certs:?}) nor written by Ignition"
            );
        }
    }
}

fn check_controller(ign: &Ignition) {
    let api = ign.unit("kube-apiserver.service");
    let u = "kube-apiserver";
    for (f, v) in [
        ("authorization-mode", "Node,RBAC"),
        ("anonymous-auth", "false"),
        ("client-ca-file", "/etc/kaws/ca.pem"),
        ("tls-cert-file", "/etc/kaws/apiserver.pem"),
        ("tls-private-key-file", "/run/kaws/apiserver-key.pem"),
        ("kubelet-certificate-authority", "/etc/kaws/ca.pem"),
        ("kubelet-client-certificate", "/etc/kaws/apiserver.pem"),
        ("kubelet-client-key", "/run/kaws/apiserver-key.pem"),
        ("etcd-cafile", "/etc/kaws/ca.pem"),
        ("etcd-certfile", "/etc/kaws/etcd-client.pem"),
        ("etcd-keyfile", "/run/kaws/etcd-client-key.pem"),
        ("service-account-key-file", "/etc/kaws/service-account.pub"),
        (
            "service-account-signing-key-file",
            "/run/kaws/service-account-key.pem",
        ),
        ("secure-port", "443"),
    ] {
        assert_flag(u, api, f, v);
    }
    let etcd: Vec<&str> = flag(api, "etcd-servers").unwrap().split(',').collect();
    assert_eq!(
        etcd,
        (0..3)
            .map(|i| format!("https://etcd-{i}.{DOMAIN}:2379"))
            .collect::<Vec<_>>()
    );
    for insecure in [
        "--insecure-port",
        "--insecure-bind-address",
        "--token-auth-file",
    ] {
        assert!(!api.contains(insecure), "{u}: {insecure}");
    }

    for (unit, id) in [
        ("kube-controller-manager.service", "controller-manager"),
        ("kube-scheduler.service", "scheduler"),
    ] {
        let text = ign.unit(unit);
        let kc = format!("/etc/kaws/{id}.kubeconfig");
        for f in [
            "kubeconfig",
            "authentication-kubeconfig",
            "authorization-kubeconfig",
        ] {
            assert_flag(unit, text, f, &kc);
        }
        assert_flag(unit, text, "leader-elect", "true");
        assert!(!text.contains("apiserver.pem") && !text.contains("apiserver-key.pem"));
    }
    let cm = ign.unit("kube-controller-manager.service");
    assert_flag(
        "kube-controller-manager",
        cm,
        "service-account-private-key-file",
        "/run/kaws/service-account-key.pem",
    );
    assert_flag(
        "kube-controller-manager",
        cm,
        "root-ca-file",
        "/etc/kaws/ca.pem",
    );
    assert!(
        !cm.contains("--cluster-signing"),
        "no CA key on servers, so no signing: {cm}"
    );

    // Each identity's kubeconfig: the local apiserver, its own pair.
    for id in ["controller-manager", "scheduler", "bootstrap"] {
        let kc: Value =
            serde_yaml_ng::from_str(ign.file(&format!("/etc/kaws/{id}.kubeconfig"))).unwrap();
        assert_eq!(
            kc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:443"
        );
        assert_eq!(
            kc["clusters"][0]["cluster"]["certificate-authority"],
            "/etc/kaws/ca.pem"
        );
        let user = &kc["users"][0]["user"];
        assert_eq!(user["client-certificate"], format!("/etc/kaws/{id}.pem"));
        assert_eq!(user["client-key"], format!("/run/kaws/{id}-key.pem"));
    }

    // RBAC bootstrap: a bounded oneshot after the apiserver, with the
    // bootstrap identity, applying exactly the objects of rbac.yaml.tftpl.
    let rbac = ign.unit("kaws-rbac.service");
    assert!(rbac.contains("Type=oneshot"), "{rbac}");
    assert!(directive(rbac, "After").contains("kube-apiserver.service"));
    let script = ign.file("/opt/kaws/bin/kaws-rbac");
    assert!(script.contains("bootstrap.pem") && script.contains("bootstrap-key.pem"));
    assert!(script.contains("/readyz") && script.contains("deadline"));
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("terraform/modules/kaws/templates/rbac.yaml.tftpl"),
    )
    .unwrap()
    .replace("${cluster}", CLUSTER);
    let want: Vec<Value> = template
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let got: Vec<Value> = ign
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/kaws/rbac/"))
        .map(|(_, b)| json(b))
        .collect();
    assert_eq!(
        got, want,
        "Ignition carries rbac.yaml.tftpl's objects, in order"
    );
    let bound = |role: &str| {
        got.iter().any(|o| {
            o["kind"] == "ClusterRoleBinding"
                && o["roleRef"]["name"] == role
                && o["subjects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["kind"] == "Group" && s["name"] == "system:nodes")
        })
    };
    for role in ["system:node", "system:node-proxier", "kaws:flannel"] {
        assert!(bound(role), "system:nodes bound to {role}");
    }
    let flannel = got
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "kaws:flannel")
        .unwrap();
    let rules = flannel["rules"].to_string();
    assert!(rules.contains("nodes/status") && rules.contains("patch") && rules.contains("watch"));
    assert!(got
        .iter()
        .any(|o| o["roleRef"]["name"] == "system:kubelet-api-admin"
            && o["subjects"][0]["name"] == format!("kube-{CLUSTER}-apiserver")));
}

fn check_worker(ign: &Ignition) {
    let kubelet = ign.unit("kubelet.service");
    assert_flag(
        "kubelet",
        kubelet,
        "kubeconfig",
        "/etc/kaws/node.kubeconfig",
    );
    assert_flag("kubelet", kubelet, "config", "/etc/kaws/kubelet.yaml");
    let conf: Value = serde_yaml_ng::from_str(ign.file("/etc/kaws/kubelet.yaml")).unwrap();
    assert_eq!(
        conf["authentication"]["x509"]["clientCAFile"],
        "/etc/kaws/ca.pem"
    );
    assert_eq!(conf["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(conf["authorization"]["mode"], "Webhook");
    // The tenth address of the default service CIDR 10.3.0.0/24.
    assert_eq!(conf["clusterDNS"], serde_json::json!(["10.3.0.10"]));
    assert_eq!(conf["tlsCertFile"], "/etc/kaws/node.pem");
    assert_eq!(conf["tlsPrivateKeyFile"], "/run/kaws/node-key.pem");
    assert_eq!(conf["readOnlyPort"], 0);

    let kc: Value = serde_yaml_ng::from_str(ign.file("/etc/kaws/node.kubeconfig")).unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        format!("https://kubernetes.{DOMAIN}")
    );
    assert_eq!(
        kc["users"][0]["user"]["client-certificate"],
        "/etc/kaws/node.pem"
    );
    assert_eq!(
        kc["users"][0]["user"]["client-key"],
        "/run/kaws/node-key.pem"
    );

    let proxy = ign.unit("kube-proxy.service");
    assert_flag(
        "kube-proxy",
        proxy,
        "kubeconfig",
        "/etc/kaws/node.kubeconfig",
    );
    assert_flag("kube-proxy", proxy, "cluster-cidr", "10.2.0.0/16");
    // kubelet, kube-proxy and flannel agree on the node's name.
    assert_flag("kubelet", kubelet, "hostname-override", "${NODE_NAME}");
    assert_flag("kube-proxy", proxy, "hostname-override", "${NODE_NAME}");

    let flannel = ign.unit("flanneld.service");
    assert!(flannel.contains("--kube-subnet-mgr"));
    assert_flag(
        "flanneld",
        flannel,
        "kubeconfig-file",
        "/etc/kaws/node.kubeconfig",
    );
    assert!(flannel.contains("NODE_NAME=${NODE_NAME}"));
    let cni = json(ign.file("/etc/cni/net.d/10-flannel.conflist"));
    assert_eq!(cni["plugins"][0]["type"], "flannel");
    let net = json(ign.file("/etc/kube-flannel/net-conf.json"));
    assert_eq!(net["Network"], "10.2.0.0/16");
    assert_eq!(net["Backend"]["Type"], "vxlan");
}

fn check_etcd(n: usize, ign: &Ignition) {
    let u = ign.unit("etcd-member.service");
    let fqdn = format!("etcd-{n}.{DOMAIN}");
    for (f, v) in [
        ("name", format!("etcd-{n}")),
        ("client-cert-auth", "true".into()),
        ("peer-client-cert-auth", "true".into()),
        ("trusted-ca-file", "/etc/kaws/ca.pem".into()),
        ("peer-trusted-ca-file", "/etc/kaws/ca.pem".into()),
        ("cert-file", "/etc/kaws/etcd.pem".into()),
        ("key-file", "/run/kaws/etcd-key.pem".into()),
        ("peer-cert-file", "/etc/kaws/etcd.pem".into()),
        ("peer-key-file", "/run/kaws/etcd-key.pem".into()),
        ("peer-cert-allowed-cn", format!("kube-{CLUSTER}-etcd")),
        ("listen-client-urls", "https://0.0.0.0:2379".into()),
        ("listen-peer-urls", "https://0.0.0.0:2380".into()),
        ("advertise-client-urls", format!("https://{fqdn}:2379")),
        (
            "initial-advertise-peer-urls",
            format!("https://{fqdn}:2380"),
        ),
        ("initial-cluster-state", "new".into()),
        (
            "initial-cluster",
            (0..3)
                .map(|i| format!("etcd-{i}=https://etcd-{i}.{DOMAIN}:2380"))
                .collect::<Vec<_>>()
                .join(","),
        ),
    ] {
        assert_flag("etcd", u, f, &v);
    }
    assert!(!u.contains("http://"), "etcd speaks TLS only: {u}");
    assert!(!u.contains("auto-tls"), "{u}");
}

/// Run kaws-decrypt-keys from a server's Ignition, locally, with the aws CLI
/// against moto; then check every key against its certificate with openssl.
fn run_decrypt_step(w: &World, role: &str, ign: &Ignition) {
    let dir = w.tmp.path().join(format!("boot-{role}"));
    let (etc, run) = (dir.join("etc"), dir.join("run"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("kaws-decrypt-keys");
    let env = dir.join("kaws.env");
    std::fs::write(&script, ign.file("/opt/kaws/bin/kaws-decrypt-keys")).unwrap();
    std::fs::write(&env, ign.file("/etc/kaws/kaws.env")).unwrap();
    let mut cmd = std::process::Command::new("bash");
    w.env(&mut cmd);
    cmd.args([
        "-c",
        r#"set -a; . "$1"; set +a; exec bash "$2""#,
        "kaws",
        env.to_str().unwrap(),
        script.to_str().unwrap(),
    ])
    .env("KAWS_AWS", "aws")
    .env("KAWS_CERT_DIR", &etc)
    .env("KAWS_KEY_DIR", &run);
    run_ok(&mut cmd);

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run), 0o700, "{role}: key directory");
    let mut found: BTreeSet<String> = BTreeSet::new();
    for e in std::fs::read_dir(&run).unwrap() {
        found.insert(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    assert_eq!(
        found,
        role_keys(role),
        "{role}: only the role's keys, no ciphertext left"
    );
    for key in &found {
        let key_path = run.join(key);
        assert_eq!(mode(&key_path), 0o600, "{role}: {key}");
        let cert = key.replace("-key.pem", ".pem");
        let from_key = openssl_ok(
            &["pkey", "-in", key_path.to_str().unwrap(), "-pubout"],
            &dir,
        );
        let from_cert = if cert == "service-account.pem" {
            std::fs::read_to_string(etc.join("service-account.pub")).unwrap()
        } else {
            openssl_ok(
                &[
                    "x509",
                    "-in",
                    etc.join(&cert).to_str().unwrap(),
                    "-pubkey",
                    "-noout",
                ],
                &dir,
            )
        };
        assert_eq!(
            from_key.trim(),
            from_cert.trim(),
            "{role}: {key} does not match {cert}"
        );
    }
    assert!(!etc.join("ca-key.pem").exists());
}

/// kms:Decrypt's kaws:file values and the S3 objects of one role's policy.
fn role_policy(w: &World, role: &str) -> (BTreeSet<String>, String) {
    let name = format!("{CLUSTER}-{role}");
    let pols = json(&w.aws_ok(&[
        "iam",
        "list-role-policies",
        "--role-name",
        &name,
        "--output",
        "json",
    ]));
    let mut files = BTreeSet::new();
    let mut all = String::new();
    for p in pols["PolicyNames"].as_array().unwrap() {
        let doc = json(&w.aws_ok(&[
            "iam",
            "get-role-policy",
            "--role-name",
            &name,
            "--policy-name",
            p.as_str().unwrap(),
            "--output",
            "json",
        ]));
        let mut doc = doc["PolicyDocument"].clone();
        if let Some(s) = doc.as_str() {
            doc = json(s);
        }
        all.push_str(&doc.to_string());
        for st in doc["Statement"].as_array().unwrap() {
            let actions = st["Action"].to_string();
            if !actions.contains("kms:Decrypt") {
                continue;
            }
            assert_eq!(st["Effect"], "Allow");
            let cond = &st["Condition"]["StringEquals"];
            assert_eq!(
                cond["kms:EncryptionContext:kaws:cluster"]
                    .to_string()
                    .trim_matches(|c| c == '[' || c == ']'),
                format!("\"{CLUSTER}\""),
                "{name}: {doc}"
            );
            match &cond["kms:EncryptionContext:kaws:file"] {
                Value::String(s) => {
                    files.insert(s.clone());
                }
                Value::Array(a) => files.extend(a.iter().map(|v| v.as_str().unwrap().to_string())),
                other => panic!("{name}: kaws:file condition {other}"),
            }
        }
    }
    (files, all)
}

#[test]
fn servers_boot_with_their_own_identities_and_keys_only_in_tmpfs() {
    let w = World::new();
    w.applyable_cluster(CLUSTER, &[]);
    let out = tf(
        &w,
        &[
            "cluster",
            "apply",
            CLUSTER,
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success(), "apply failed");

    // aws_instance servers: etcd ×3 and the bastion.
    let inst = json(&w.aws_ok(&[
        "ec2",
        "describe-instances",
        "--filters",
        &format!("Name=tag:Name,Values={CLUSTER}-etcd-*,{CLUSTER}-bastion"),
        "Name=instance-state-name,Values=running",
        "--output",
        "json",
    ]));
    let mut etcd_seen = 0;
    let mut bastion_seen = 0;
    for i in inst["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
    {
        let name = tag_name(i);
        assert_eq!(
            i["MetadataOptions"]["HttpTokens"], "required",
            "IMDSv2 on {name}"
        );
        assert_eq!(i["MetadataOptions"]["HttpPutResponseHopLimit"], 1, "{name}");
        let id = i["InstanceId"].as_str().unwrap();
        let attr = json(&w.aws_ok(&[
            "ec2",
            "describe-instance-attribute",
            "--instance-id",
            id,
            "--attribute",
            "userData",
            "--output",
            "json",
        ]));
        let text = decode_user_data(attr["UserData"]["Value"].as_str().unwrap());
        assert!(!text.contains("PRIVATE KEY"), "{name}");
        let ign = Ignition::parse(&text);
        if name.ends_with("-bastion") {
            bastion_seen += 1;
            assert!(
                !ign.units.contains_key("kaws-keys.service"),
                "the bastion holds no keys"
            );
            assert!(!text.contains("/run/kaws"));
            continue;
        }
        let n: usize = name.rsplit('-').next().unwrap().parse().unwrap();
        check_common("etcd", &ign);
        check_etcd(n, &ign);
        assert_eq!(ign.env_list("KAWS_CERTS"), set(&["ca.pem", "etcd.pem"]));
        etcd_seen += 1;
    }
    assert_eq!((etcd_seen, bastion_seen), (3, 1));

    // Launch templates: masters and nodes.
    let lts = json(&w.aws_ok(&["ec2", "describe-launch-templates", "--output", "json"]));
    let mut by_role: BTreeMap<String, Ignition> = BTreeMap::new();
    for lt in lts["LaunchTemplates"].as_array().unwrap() {
        let lt_name = lt["LaunchTemplateName"].as_str().unwrap();
        let role = match ["controller", "worker"]
            .into_iter()
            .find(|r| lt_name.starts_with(&format!("{CLUSTER}-{r}-")))
        {
            Some(r) => r,
            None => continue,
        };
        let v = json(&w.aws_ok(&[
            "ec2",
            "describe-launch-template-versions",
            "--launch-template-id",
            lt["LaunchTemplateId"].as_str().unwrap(),
            "--versions",
            "$Latest",
            "--output",
            "json",
        ]));
        let data = &v["LaunchTemplateVersions"][0]["LaunchTemplateData"];
        assert_eq!(
            data["MetadataOptions"]["HttpTokens"], "required",
            "{lt_name}"
        );
        assert_eq!(
            data["MetadataOptions"]["HttpPutResponseHopLimit"], 1,
            "{lt_name}"
        );
        let text = decode_user_data(data["UserData"].as_str().unwrap());
        let ign = Ignition::parse(&text);
        check_common(role, &ign);
        by_role.insert(role.to_string(), ign);
    }
    let controller = by_role
        .get("controller")
        .expect("controller launch template");
    let worker = by_role.get("worker").expect("worker launch template");
    check_controller(controller);
    check_worker(worker);
    assert_eq!(worker.env_list("KAWS_CERTS"), set(&["ca.pem", "node.pem"]));
    assert_eq!(
        controller.env_list("KAWS_CERTS"),
        set(&[
            "ca.pem",
            "apiserver.pem",
            "etcd-client.pem",
            "service-account.pub",
            "controller-manager.pem",
            "scheduler.pem",
            "bootstrap.pem",
        ])
    );

    // The decrypt step, with the objects and ciphertext the apply stored.
    run_decrypt_step(&w, "worker", worker);
    run_decrypt_step(&w, "controller", controller);

    // IAM: each role decrypts exactly its own keys, nobody the CA key.
    for role in ["controller", "worker", "etcd"] {
        let (files, doc) = role_policy(&w, role);
        assert_eq!(
            files,
            role_keys(role),
            "{role}: kms:Decrypt kaws:file values"
        );
        assert!(!doc.contains("ca-key.pem"), "{role}: {doc}");
    }

    let out = tf(
        &w,
        &[
            "cluster",
            "destroy",
            CLUSTER,
            "--",
            "-auto-approve",
            "-no-color",
        ],
    );
    assert!(out.status.success(), "destroy failed");
    let state =
        json(&std::fs::read_to_string(w.cluster_dir(CLUSTER).join("terraform.tfstate")).unwrap());
    assert_eq!(
        state["resources"].as_array().map(|r| r.len()).unwrap_or(0),
        0
    );
}
