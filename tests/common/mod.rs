//! Shared fixtures of the integration tests: a real moto server on a free
//! loopback port, a kaws repository in a temporary directory, and the
//! external judges (openssl, the aws CLI).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use assert_cmd::cargo::CommandCargoExt;

pub struct Moto {
    pub url: String,
    _child: Child,
    _stdin: ChildStdin,
}

/// One moto server per test process; it exits when the process does.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/moto_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] is needed: pip install 'moto[server]'");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("moto printed its port");
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
            _stdin: stdin,
        }
    })
}

/// A test world: a temporary directory with a kaws repository in it, and
/// an AWS environment that points at moto only.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub home: PathBuf,
}

pub const REGION: &str = "us-east-1";

impl World {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let w = World {
            repo: tmp.path().join("repo"),
            home,
            tmp,
        };
        let out = w
            .kaws_in(w.tmp.path())
            .args(["init", "repo"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        w
    }

    /// The environment every external command of the test gets.
    pub fn env(&self, cmd: &mut Command) {
        let m = moto();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AWS_ENDPOINT_URL", &m.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", self.home.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.join("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1");
        for var in ["PYENV_ROOT", "PYENV_VERSION", "LANG", "TF_CLI_CONFIG_FILE"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
    }

    pub fn kaws_in(&self, dir: &Path) -> Command {
        let mut c = Command::cargo_bin("kaws").unwrap();
        self.env(&mut c);
        c.current_dir(dir);
        c
    }

    /// `kaws` run inside the repository.
    pub fn kaws(&self) -> Command {
        self.kaws_in(&self.repo)
    }

    pub fn cluster_dir(&self, c: &str) -> PathBuf {
        self.repo.join("clusters").join(c)
    }

    /// The aws CLI, against moto.
    pub fn aws(&self, args: &[&str]) -> Output {
        let mut c = Command::new("aws");
        self.env(&mut c);
        c.args(args).output().expect("the aws CLI is installed")
    }

    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A new symmetric KMS key in moto.
    pub fn kms_key(&self) -> String {
        self.aws_ok(&[
            "kms",
            "create-key",
            "--query",
            "KeyMetadata.KeyId",
            "--output",
            "text",
        ])
    }

    /// Decrypt a kaws ciphertext with the aws CLI alone, as the docs say.
    pub fn aws_decrypt(&self, cluster: &str, file: &Path, ctx_file: &str) -> Output {
        let blob = format!("fileb://{}", file.display());
        let ctx = format!("kaws:cluster={cluster},kaws:file={ctx_file}");
        self.aws(&[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &blob,
            "--encryption-context",
            &ctx,
            "--query",
            "Plaintext",
            "--output",
            "text",
        ])
    }

    /// `kaws cluster init` with sensible defaults; a flag in `extra`
    /// replaces the default of the same name.
    ///
    /// The CA keys are `--ca-key sealed` unless `extra` says otherwise: the
    /// tests that use this helper are about the sealed design (CA keys
    /// sealed in the repository); tests/kms_ca.rs is about the default,
    /// CA keys held by KMS.
    pub fn cluster_init(&self, cluster: &str, key: &str, extra: &[&str]) -> Output {
        let defaults = [
            ("--domain", "example.com"),
            ("--zone-id", "Z0123456789"),
            ("--kms-key", key),
            ("--ssh-key", "kaws-test"),
            ("--ca-key", "sealed"),
        ];
        let mut args = vec!["cluster", "init", cluster];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(extra);
        self.kaws().args(args).output().unwrap()
    }

    /// `kaws cluster init CLUSTER` with the usual test settings, for tests
    /// that change its environment or how it runs.
    pub fn init_cmd(&self, cluster: &str, key: &str) -> Command {
        let mut c = self.kaws();
        c.args([
            "cluster",
            "init",
            cluster,
            "--domain",
            "example.com",
            "--zone-id",
            "Z1",
            "--kms-key",
            key,
            "--ssh-key",
            "k",
            "--ca-key",
            "sealed",
        ]);
        c
    }

    /// Every file under the repository with its content, to compare before and after.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                let p = e.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".lock") || n == ".terraform")
                {
                    continue;
                }
                if p.is_dir() {
                    out.push((p.clone(), vec![]));
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        walk(&self.repo, &mut out);
        out
    }
}

/// Run a program, assert success, return stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

pub fn openssl_ok(args: &[&str], dir: &Path) -> String {
    let out = openssl(args, dir);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pipe `input` through openssl.
pub fn openssl_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Serialise tests that need the whole machine's attention (strace).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn b64decode(s: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// The filesystem mirror holding the hashicorp/aws provider on this machine.
pub fn tf_mirror() -> PathBuf {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR
        .get_or_init(|| {
            if let Ok(p) = std::env::var("KAWS_TEST_TF_MIRROR") {
                return PathBuf::from(p);
            }
            if Path::new("/opt/tf-plugins/registry.terraform.io").is_dir() {
                return PathBuf::from("/opt/tf-plugins");
            }
            let out = Command::new("sh")
                .args(["-c", "find / -xdev -type d -name registry.terraform.io -not -path '*/.terraform/*' 2>/dev/null | head -n 1"])
                .output()
                .unwrap();
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(!found.is_empty(), "no Terraform provider mirror found on this machine");
            Path::new(&found).parent().unwrap().to_path_buf()
        })
        .clone()
}

impl World {
    /// A Terraform CLI configuration that installs providers from the
    /// machine's filesystem mirror only.
    pub fn tf_config(&self) -> PathBuf {
        let p = self.tmp.path().join("terraform.rc");
        if !p.exists() {
            std::fs::write(
                &p,
                format!(
                    "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"registry.terraform.io/*/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/*/*\"]\n  }}\n}}\n",
                    tf_mirror().display().to_string()
                ),
            )
            .unwrap();
        }
        p
    }

    /// `kaws` with Terraform's environment set up for the tests.
    pub fn kaws_tf(&self) -> Command {
        let mut c = self.kaws();
        c.env("TF_CLI_CONFIG_FILE", self.tf_config())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1");
        c
    }

    /// A cluster ready for `kaws cluster apply`: its own hosted zone
    /// (`kaws-<cluster>.example.com`), key pair (`kaws-<cluster>`), KMS key
    /// and an AMI moto knows, so that Terraform tests can share one moto.
    /// Returns the hosted zone id.
    pub fn applyable_cluster(&self, cluster: &str, extra: &[&str]) -> String {
        let domain = format!("kaws-{cluster}.example.com");
        let key_pair = format!("kaws-{cluster}");
        let (zone, ami) = self.aws_fixtures(&domain, &key_pair);
        let key = self.kms_key();
        let mut args = vec![
            "--domain",
            &domain,
            "--zone-id",
            &zone,
            "--ssh-key",
            &key_pair,
            "--ami",
            &ami,
        ];
        args.extend(extra);
        let out = self.cluster_init(cluster, &key, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        zone
    }

    /// A hosted zone, an EC2 key pair and an AMI that moto knows.
    pub fn aws_fixtures(&self, domain: &str, key_name: &str) -> (String, String) {
        let zone = self.aws_ok(&[
            "route53",
            "create-hosted-zone",
            "--name",
            domain,
            "--caller-reference",
            &format!("kaws-{domain}"),
            "--query",
            "HostedZone.Id",
            "--output",
            "text",
        ]);
        let zone = zone.trim_start_matches("/hostedzone/").to_string();
        self.aws_ok(&[
            "ec2",
            "create-key-pair",
            "--key-name",
            key_name,
            "--query",
            "KeyName",
            "--output",
            "text",
        ]);
        let ami = self.aws_ok(&[
            "ec2",
            "describe-images",
            "--owners",
            "amazon",
            "--query",
            "Images[0].ImageId",
            "--output",
            "text",
        ]);
        (zone, ami)
    }
}

/// Parse JSON a command printed, showing it when it does not parse.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Run a kaws Terraform command; print its output when it fails.
pub fn tf(w: &World, args: &[&str]) -> std::process::Output {
    let out = w.kaws_tf().args(args).output().unwrap();
    if !out.status.success() {
        eprintln!("kaws {args:?} failed:\n{}\n{}", stdout(&out), stderr(&out));
    }
    out
}

/// Lint policy documents with parliament (tests/common/parliament_judge.py):
/// `(name, document)` in, `name -> [(issue, detail)]` out.
pub fn parliament(
    policies: &[(String, serde_json::Value)],
) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/parliament_judge.py");
    let input: serde_json::Map<String, serde_json::Value> = policies.iter().cloned().collect();
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run parliament, the IAM policy linter");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::Value::Object(input).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parliament could not judge the policies: {}\n(install it with `bash scripts/setup-tools.sh`)",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&String::from_utf8_lossy(&out.stdout));
    v.as_object()
        .unwrap()
        .iter()
        .map(|(name, findings)| {
            let f = findings
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["issue"].as_str().unwrap().to_string(),
                        f["detail"].to_string(),
                    )
                })
                .collect();
            (name.clone(), f)
        })
        .collect()
}

/// The docs' "who may decrypt which file" table (docs/concepts/cluster.md):
/// role (`controller`, `worker`, `etcd`, or `primary-administrators`) to
/// the `kaws:file` names it may decrypt.
pub fn docs_decrypt_table() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>>
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/concepts/cluster.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("| IAM role | may decrypt | may download |")
        .expect("the decrypt table in docs/concepts/cluster.md");
    let mut table = std::collections::BTreeMap::new();
    for line in text[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string())
                .collect()
        };
        let role = ticked(cells[1])
            .into_iter()
            .next()
            .unwrap_or_else(|| "primary-administrators".to_string());
        let files = ticked(cells[2])
            .into_iter()
            .filter(|f| f.ends_with("-key.pem"))
            .collect();
        table.insert(role, files);
    }
    table
}
