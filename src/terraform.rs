//! The Terraform side of kaws: the module it ships, each cluster's entry
//! point, and running the `terraform` binary.

use crate::error::{Error, Result};
use crate::fsutil::Staging;
use crate::settings::ClusterSettings;

macro_rules! module_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/terraform/modules/kaws/",
                $name
            )),
        )
    };
}

/// The module kaws writes into every new repository, embedded in the
/// binary so the module always matches the binary's version. A unit test
/// checks that this list is exactly the files of terraform/modules/kaws.
pub const MODULE_FILES: &[(&str, &str)] = &[
    module_file!("ami.tf"),
    module_file!("bastion.tf"),
    module_file!("controllers.tf"),
    module_file!("dns.tf"),
    module_file!("endpoints.tf"),
    module_file!("etcd.tf"),
    module_file!("iam.tf"),
    module_file!("images.tf"),
    module_file!("keys.tf"),
    module_file!("network.tf"),
    module_file!("nlb.tf"),
    module_file!("outputs.tf"),
    module_file!("security.tf"),
    module_file!("templates/audit-policy.yaml"),
    module_file!("templates/bastion.ign.tftpl"),
    module_file!("templates/controller.ign.tftpl"),
    module_file!("templates/coredns.yaml.tftpl"),
    module_file!("templates/etcd.ign.tftpl"),
    module_file!("templates/kaws-addons.sh"),
    module_file!("templates/kaws-decrypt-keys.sh"),
    module_file!("templates/kaws-etcd-turn.sh"),
    module_file!("templates/kaws-keys.service.tftpl"),
    module_file!("templates/kaws-refresh-keys.sh"),
    module_file!("templates/kaws-refresh.service"),
    module_file!("templates/kaws-refresh.timer"),
    module_file!("templates/kube-scheduler.yaml"),
    module_file!("templates/kubeconfig.yaml.tftpl"),
    module_file!("templates/kubelet-bootstrap.kubeconfig.tftpl"),
    module_file!("templates/rbac.yaml.tftpl"),
    module_file!("templates/worker.ign.tftpl"),
    module_file!("userdata.tf"),
    module_file!("variables.tf"),
    module_file!("versions.tf"),
    module_file!("workers.tf"),
];

/// Where the module lives inside a kaws repository.
pub const MODULE_DIR: &str = "terraform/modules/kaws";

/// The module source of a cluster's entry point, relative to `clusters/<c>/`.
pub const DEFAULT_SOURCE: &str = "../../terraform/modules/kaws";

/// A module source goes into an HCL string: refuse anything that could
/// break out of it.
pub fn validate_source(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 1024
        && !s.chars().any(|c| c.is_control() || c == '"' || c == '\\')
        && !s.contains("${")
        && !s.contains("%{");
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!("invalid Terraform module source {:?}", s.chars().take(100).collect::<String>()))
            .with_hint("give a module source Terraform accepts, such as git::https://example.com/kaws.git//terraform/modules/kaws?ref=v1, without quotes or backslashes"))
    }
}

const TERRAFORM_README: &str = "\
# Terraform

`modules/kaws/` is the Terraform module that describes a kaws cluster on AWS.
It was written by `kaws init` and matches the version of kaws recorded in
`../kaws.json`.

Each cluster's entry point is `clusters/<cluster>/main.tf.json`, written by
`kaws cluster init`: it instantiates this module with the variables of
`clusters/<cluster>/terraform.tfvars.json` and `pki.auto.tfvars.json`. Run it with
`kaws cluster plan|apply|destroy|output|refresh <cluster>`.
";

/// Write the module into a repository being created.
pub fn write_module(staging: &Staging) -> Result<()> {
    for dir in ["terraform", "terraform/modules", MODULE_DIR] {
        let p = staging.path().join(dir);
        std::fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
    }
    staging.write("terraform/README.md", TERRAFORM_README.as_bytes())?;
    for (name, content) in MODULE_FILES {
        let rel = format!("{MODULE_DIR}/{name}");
        if let Some(parent) = std::path::Path::new(&rel).parent() {
            let p = staging.path().join(parent);
            std::fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
        }
        staging.write(&rel, content.as_bytes())?;
    }
    Ok(())
}

/// A JSON value of the entry point. Objects are `BTreeMap`s, so the bytes
/// kaws writes (and compares before every Terraform command) never depend
/// on a serializer's feature such as key order.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum J {
    S(String),
    B(bool),
    O(std::collections::BTreeMap<&'static str, J>),
}

fn s(v: impl Into<String>) -> J {
    J::S(v.into())
}

fn o<const N: usize>(entries: [(&'static str, J); N]) -> J {
    J::O(entries.into_iter().collect())
}

/// A variable the entry point declares: (name, type, description, default).
type Var = (&'static str, &'static str, Option<&'static str>, Option<J>);

/// The cluster's Terraform entry point, `clusters/<c>/main.tf.json`: the
/// backend and provider, the variables of `terraform.tfvars.json` and
/// `pki.auto.tfvars.json`, and the module call. JSON written with serde, so
/// no value of the settings can break its syntax; every value is validated
/// besides.
pub fn entry_point(settings: &ClusterSettings, source: &str) -> String {
    let backend = if settings.state_bucket.is_empty() {
        o([("local", o([("path", s("terraform.tfstate"))]))])
    } else {
        o([(
            "s3",
            o([
                ("bucket", s(&settings.state_bucket)),
                (
                    "key",
                    s(format!("kaws/{}/terraform.tfstate", settings.cluster)),
                ),
                ("region", s(&settings.region)),
                ("encrypt", J::B(true)),
                ("use_lockfile", J::B(true)),
            ]),
        )])
    };
    // The S3 backend's use_lockfile needs Terraform 1.10; say so where
    // Terraform checks it.
    let required = if settings.state_bucket.is_empty() {
        ">= 1.5"
    } else {
        ">= 1.10"
    };
    const FROM_TABLE: &str = "Written by kaws from its certificate table (pki.auto.tfvars.json).";
    let vars: Vec<Var> = vec![
        ("s3_use_path_style", "bool", Some("Set by kaws (TF_VAR_s3_use_path_style) when AWS_ENDPOINT_URL points at an S3-compatible endpoint that serves buckets by path."), Some(J::B(false))),
        ("cluster", "string", None, None),
        ("domain", "string", None, None),
        ("zone_id", "string", None, None),
        ("region", "string", None, None),
        ("kms_key_id", "string", None, None),
        ("ssh_key_name", "string", None, None),
        ("ssh_cidr", "string", None, None),
        ("ami", "string", None, None),
        ("instance_type", "string", None, None),
        ("kubernetes_version", "string", None, None),
        ("vpc_cidr", "string", None, None),
        ("service_cidr", "string", None, None),
        ("pod_cidr", "string", None, None),
        ("key_algorithm", "string", Some("Used by kaws only, when it generates keys."), None),
        // Settings written before topologies have none: those clusters are public.
        ("topology", "string", Some("private or public; see docs/concepts/topologies.md before changing it."), Some(s("public"))),
        ("nat", "string", None, Some(s("per-zone"))),
        ("ca_key", "string", Some("Used by kaws only: sealed (CA keys sealed in this directory) or kms (asymmetric KMS keys)."), Some(s("sealed"))),
        ("ca_kms_keys", "map(string)", Some("Used by kaws only: the KMS key of each CA when ca_key is kms."), Some(J::O(std::collections::BTreeMap::new()))),
        ("state_bucket", "string", Some("Used by kaws only: the backend is written from it."), None),
        ("etcd_count", "number", Some(FROM_TABLE), None),
        ("role_certs", "map(list(string))", Some(FROM_TABLE), None),
        ("role_keys", "map(list(string))", Some(FROM_TABLE), None),
    ];
    let variable = J::O(
        vars.into_iter()
            .map(|(name, ty, description, default)| {
                let mut v = std::collections::BTreeMap::new();
                v.insert("type", s(ty));
                if let Some(d) = description {
                    v.insert("description", s(d));
                }
                if let Some(d) = default {
                    v.insert("default", d);
                }
                (name, J::O(v))
            })
            .collect(),
    );
    let mut module: std::collections::BTreeMap<&'static str, J> = [
        "cluster",
        "domain",
        "zone_id",
        "kms_key_id",
        "ssh_key_name",
        "ssh_cidr",
        "topology",
        "nat",
        "ami",
        "kubernetes_version",
        "vpc_cidr",
        "service_cidr",
        "pod_cidr",
        "etcd_count",
        "role_certs",
        "role_keys",
    ]
    .into_iter()
    .map(|v| (v, s(format!("${{var.{v}}}"))))
    .collect();
    module.insert("source", s(source));
    module.insert("controller_type", s("${var.instance_type}"));
    module.insert("worker_type", s("${var.instance_type}"));
    // Every file the table's maps name is read here, and nothing else.
    module.insert(
        "certs",
        s(r#"${{ for f in distinct(flatten(values(var.role_certs))) : f => file("${path.root}/${f}") }}"#),
    );
    module.insert(
        "encrypted_keys",
        s(r#"${{ for f in distinct(flatten(values(var.role_keys))) : f => filebase64("${path.root}/${f}.encrypted") }}"#),
    );
    let outputs: [(&'static str, Option<&'static str>); 8] = [
        ("api_endpoint", Some("The Kubernetes API endpoint.")),
        (
            "bastion_address",
            Some("Public address of the bastion, the only server that accepts SSH."),
        ),
        ("bastion_fqdn", Some("DNS name of the bastion.")),
        (
            "topology",
            Some("Where the servers live: private or public."),
        ),
        (
            "ingress_dns_name",
            Some("The ingress load balancer (80 and 443 to the nodes), private topology only."),
        ),
        ("vpc_id", None),
        ("subnet_ids", None),
        ("security_group_ids", None),
    ];
    let output = J::O(
        outputs
            .into_iter()
            .map(|(name, description)| {
                let mut v = std::collections::BTreeMap::new();
                v.insert("value", s(format!("${{module.kaws.{name}}}")));
                if let Some(d) = description {
                    v.insert("description", s(d));
                }
                (name, J::O(v))
            })
            .collect(),
    );
    let root = o([
        (
            "//",
            s(format!(
                "The Terraform entry point of cluster {}, written by kaws (`kaws cluster entry-point {}` prints it). Run it with `kaws cluster plan|apply|destroy|output|refresh {}`. Its variables come from terraform.tfvars.json (the settings) and pki.auto.tfvars.json (kaws' certificate table) beside it. Only public certificates and KMS ciphertext are read from this directory: no plaintext private key ever enters Terraform's variables or state.",
                settings.cluster, settings.cluster, settings.cluster
            )),
        ),
        (
            "terraform",
            o([
                ("required_version", s(required)),
                (
                    "required_providers",
                    o([(
                        "aws",
                        o([
                            ("source", s("hashicorp/aws")),
                            ("version", s(">= 5.0, < 7.0")),
                        ]),
                    )]),
                ),
                ("backend", backend),
            ]),
        ),
        (
            "provider",
            o([(
                "aws",
                o([
                    ("region", s("${var.region}")),
                    ("s3_use_path_style", s("${var.s3_use_path_style}")),
                ]),
            )]),
        ),
        ("variable", variable),
        ("module", o([("kaws", J::O(module))])),
        ("output", output),
    ]);
    let mut out = serde_json::to_string_pretty(&root).unwrap_or_default();
    out.push('\n');
    out
}

/// What the module needs from the certificate table, as the cluster's
/// `pki.auto.tfvars.json`: which public files each server role fetches
/// (`role_certs`), which keys it may fetch and decrypt (`role_keys`, the
/// IAM policies' `kaws:file` values), and how many etcd servers there are
/// (whose names the etcd certificate holds). The entry point reads each
/// file these maps name, so adding a row to the table is all it takes.
pub fn pki_vars() -> String {
    use crate::policy::{cert_files, key_files, SERVER_ROLES};
    use std::collections::BTreeMap;
    #[derive(serde::Serialize)]
    struct PkiVars {
        etcd_count: usize,
        role_certs: BTreeMap<&'static str, Vec<String>>,
        role_keys: BTreeMap<&'static str, Vec<String>>,
    }
    let vars = PkiVars {
        etcd_count: crate::pki::ETCD_SERVERS,
        role_certs: SERVER_ROLES
            .iter()
            .map(|(role, holder)| (*role, cert_files(*holder)))
            .collect(),
        role_keys: SERVER_ROLES
            .iter()
            .map(|(role, holder)| (*role, key_files(*holder)))
            .collect(),
    };
    let mut out = serde_json::to_string_pretty(&vars).unwrap_or_default();
    out.push('\n');
    out
}

/// The first Terraform that accepts the S3 backend's `use_lockfile`
/// (generally available from 1.11).
pub const S3_LOCKFILE_VERSION: (u32, u32, u32) = (1, 10, 0);

/// `1.9.8`, `1.11.0-beta1`, `v1.5.7` as (major, minor, patch).
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim().trim_start_matches('v');
    let core = s.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
    let v = (it.next()??, it.next()??, it.next().unwrap_or(Some(0))?);
    Some(v)
}

/// The Terraform commands kaws runs for a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Plan,
    Apply,
    Destroy,
    Output,
    Refresh,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Plan => "plan",
            Action::Apply => "apply",
            Action::Destroy => "destroy",
            Action::Output => "output",
            Action::Refresh => "refresh",
        }
    }
}

/// The `terraform` program: `KAWS_TERRAFORM`, else `terraform` on PATH.
pub fn program() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KAWS_TERRAFORM").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("terraform");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::new(
        crate::error::ErrorKind::External,
        "terraform is not installed, or not on PATH",
    )
    .with_hint("install Terraform 1.5 or later, 1.10 or later for --state-bucket (HashiCorp's releases or your system's packages), or set KAWS_TERRAFORM to its path"))
}

/// The module files of a repository, read without following any link.
pub struct ModuleOnDisk {
    /// Regular files, by path relative to the module directory.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
    /// Entries kaws did not read: links, devices, FIFOs, deep directories.
    pub odd: Vec<String>,
}

/// No module file is anywhere near this size.
const MAX_MODULE_FILE_BYTES: u64 = 1024 * 1024;

/// Read `terraform/modules/kaws`. Symbolic links are never followed (two
/// links to `.` would otherwise make 2^40 paths), and only regular files
/// within a size limit are read.
pub fn read_module(repo_root: &std::path::Path) -> Result<ModuleOnDisk> {
    let root = repo_root.join(MODULE_DIR);
    let mut out = ModuleOnDisk {
        files: Default::default(),
        odd: vec![],
    };
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == root => {
                return Ok(out);
            }
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("inspect", &path, e))?;
            if ft.is_symlink() {
                out.odd.push(format!("{rel}: a symbolic link"));
            } else if ft.is_dir() {
                if depth >= 4 {
                    out.odd.push(format!("{rel}: a directory nested too deep"));
                } else {
                    stack.push((path, depth + 1));
                }
            } else if ft.is_file() {
                let bytes = crate::fsutil::read_limited(
                    &path,
                    MAX_MODULE_FILE_BYTES,
                    "a module file",
                    "restore the module from git",
                )?;
                out.files.insert(rel, bytes);
            } else {
                out.odd.push(format!("{rel}: not a regular file"));
            }
        }
    }
    Ok(out)
}

/// How the repository's module differs from the one embedded in this
/// kaws binary: one line per file.
pub fn module_differences(module: &ModuleOnDisk) -> Vec<String> {
    let mut out = module.odd.clone();
    for (name, content) in MODULE_FILES {
        match module.files.get(*name) {
            None => out.push(format!("{name}: missing")),
            Some(b) if b.as_slice() != content.as_bytes() => {
                out.push(format!("{name}: changed"));
            }
            Some(_) => {}
        }
    }
    for name in module.files.keys() {
        if !MODULE_FILES.iter().any(|(n, _)| n == name) {
            out.push(format!("{name}: not part of kaws' module"));
        }
    }
    out.sort();
    out
}

/// What `terraform init` depends on: the entry point, the provider lock
/// file and the module's `.tf` files (module calls and provider requirements live there). When
/// this digest is unchanged since the last successful init, init is skipped.
pub fn init_digest(main_tf: &[u8], provider_lock: &[u8], module: &ModuleOnDisk) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(main_tf);
    // A pulled `.terraform.lock.hcl` pins other provider builds: init again.
    h.update(Sha256::digest(provider_lock));
    for (name, bytes) in &module.files {
        if name.ends_with(".tf") {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(bytes);
        }
    }
    hex::encode(h.finalize())
}

/// Whether Terraform would read `name`, in a root module directory, as
/// configuration or variables.
fn terraform_reads(name: &str) -> bool {
    [".tf", ".tf.json", ".tfvars", ".tfvars.json", ".tftest.hcl"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Whether `name` is a file kaws writes (or Terraform keeps) in a cluster
/// directory.
fn expected_in_cluster(name: &str) -> bool {
    use crate::layout;
    if [
        layout::SETTINGS_FILE,
        layout::ENTRY_POINT_FILE,
        layout::PKI_VARS_FILE,
        crate::seal::SEAL_FILE,
        "terraform.tfstate",
        "terraform.tfstate.backup",
        ".terraform.lock.hcl",
        ".terraform.tfstate.lock.info",
    ]
    .contains(&name)
    {
        return true;
    }
    if name.starts_with(crate::fsutil::TEMP_PREFIX) {
        return !terraform_reads(name);
    }
    for spec in crate::pki::CLUSTER_CERTS {
        // The encryption configuration has no public file: only its
        // ciphertext.
        if layout::public_file_name(spec).is_some_and(|p| name == p)
            || name == layout::encrypted_key_name(spec.stem)
        {
            return true;
        }
    }
    // `<admin>.kms.json` is not a name Terraform reads (`*.tf.json` and
    // `*.tfvars.json` are; an administrator's name holds no dot).
    let stem = name
        .strip_suffix(".csr")
        .or_else(|| name.strip_suffix("-key.pem.encrypted"))
        .or_else(|| name.strip_suffix(".pem"))
        .or_else(|| name.strip_suffix(".kms.json"));
    stem.is_some_and(|s| layout::AdminName::parse(s).is_ok()) && !terraform_reads(name)
}

/// Refuse a cluster directory holding anything kaws did not put there.
/// Terraform reads every `*.tf`, `*_override.tf` and `*.auto.tfvars*` of
/// the directory and plugins from `terraform.d/`, and `plan` alone runs
/// provider configuration and data sources with the user's AWS
/// credentials: one extra committed file is code run on the next plan.
/// A `.terraform` that is a link would send Terraform's data elsewhere.
pub fn check_cluster_files(dir: &std::path::Path) -> Result<()> {
    let mut unexpected = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("inspect", &entry.path(), e))?;
        let ok = if ft.is_symlink() {
            false
        } else if name == ".terraform" {
            ft.is_dir()
        } else {
            ft.is_file() && expected_in_cluster(&name)
        };
        if !ok {
            let what = if ft.is_symlink() {
                " (a symbolic link)"
            } else if ft.is_dir() {
                " (a directory)"
            } else if !ft.is_file() {
                " (not a regular file)"
            } else {
                ""
            };
            unexpected.push(format!("{}{what}", crate::text::escape(&name)));
        }
    }
    if unexpected.is_empty() {
        return Ok(());
    }
    unexpected.sort();
    Err(Error::input(format!(
        "{}: holds files kaws does not write, which Terraform could read as configuration: {}",
        dir.display(),
        unexpected.join(", ")
    ))
    .with_hint("nothing was run; remove them (`git rm`) and find out who committed them: Terraform runs a directory's configuration with your AWS credentials, even for plan"))
}

/// Refuse Terraform working data that comes from a commit: a committed
/// `.terraform/` (a provider binary) is run by `terraform init` and `plan`
/// as "previously installed", and git
/// overwrites the local, ignored copies with it on checkout. Asks git which
/// of these paths it tracks; outside a git working tree, or without git,
/// there is nothing to ask.
pub fn check_untracked_working_data(
    repo_root: &std::path::Path,
    cluster_dir: &std::path::Path,
) -> Result<()> {
    let rel = cluster_dir.strip_prefix(repo_root).unwrap_or(cluster_dir);
    // Not `.terraform.lock.hcl`: it only pins which provider builds the
    // registry serves may run, and is meant to be committed.
    let paths = [rel.join(".terraform")];
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo_root)
        .args(["ls-files", "-z", "--"])
        .args(&paths)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return Ok(()) };
    if !out.status.success() || out.stdout.is_empty() {
        return Ok(());
    }
    let tracked: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .take(5)
        .map(|p| crate::text::escape(&String::from_utf8_lossy(p)).into_owned())
        .collect();
    Err(Error::input(format!(
        "{}: Terraform's working data is committed to git ({}); Terraform would run the providers it holds",
        cluster_dir.display(),
        tracked.join(", ")
    ))
    .with_hint("nothing was run; remove them from git (`git rm -r --cached`), delete the local copies, and find out who committed them"))
}

/// The stamp recording the digest of the last successful init.
pub fn init_stamp(cluster_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir(cluster_dir).join("kaws-init.sha256")
}

/// Terraform's working data for a cluster (TF_DATA_DIR or `.terraform`).
pub fn data_dir(cluster_dir: &std::path::Path) -> std::path::PathBuf {
    match std::env::var_os("TF_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(d) => cluster_dir.join(d),
        None => cluster_dir.join(".terraform"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform/modules/kaws");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).unwrap().to_string_lossy().to_string());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = MODULE_FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update MODULE_FILES in src/terraform.rs");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.9.8"), Some((1, 9, 8)));
        assert_eq!(parse_version("v1.11.0-beta1"), Some((1, 11, 0)));
        assert_eq!(parse_version("1.10"), Some((1, 10, 0)));
        assert!(parse_version("1.9.8") < Some(S3_LOCKFILE_VERSION));
        assert!(parse_version("1.11.4") >= Some(S3_LOCKFILE_VERSION));
        for bad in ["", "x", "1", "1.x.3", "-1.2.3"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_administrators_files_are_expected_and_not_read_by_terraform() {
        for name in [
            "alice.csr",
            "alice.pem",
            "alice-key.pem.encrypted",
            "alice.kms.json",
        ] {
            assert!(expected_in_cluster(name), "{name}");
            assert!(!terraform_reads(name), "{name}");
        }
        for name in [
            "alice.tf.json",
            "secrets-encryption.pem",
            "secrets-encryption.pub",
            "etcd-ca.kms.json",
            "front-proxy-ca.csr",
            "alice.kms.tf.json",
            "alice.auto.tfvars.json",
            "ca.kms.json",
            "x.y.kms.json",
        ] {
            assert!(!expected_in_cluster(name), "{name}");
        }
    }

    #[test]
    fn every_file_kaws_writes_for_the_pki_is_expected() {
        for name in [
            "ca.pem",
            "ca-key.pem.encrypted",
            "etcd-ca.pem",
            "etcd-ca-key.pem.encrypted",
            "front-proxy-ca.pem",
            "front-proxy-ca-key.pem.encrypted",
            "front-proxy-client.pem",
            "front-proxy-client-key.pem.encrypted",
            "etcd.pem",
            "etcd-client.pem",
            "service-account.pub",
            "service-account-key.pem.encrypted",
            "secrets-encryption-key.pem.encrypted",
        ] {
            assert!(expected_in_cluster(name), "{name}");
            assert!(!terraform_reads(name), "{name}");
        }
    }

    #[test]
    fn sources_that_could_break_hcl_are_refused() {
        assert!(validate_source("../../terraform/modules/kaws").is_ok());
        assert!(validate_source("git::https://example.com/x.git//m?ref=v1").is_ok());
        for bad in ["", "a\"b", "a\\b", "${file(\"/etc/passwd\")}", "x\ny"] {
            assert!(validate_source(bad).is_err(), "{bad:?}");
        }
    }
}
