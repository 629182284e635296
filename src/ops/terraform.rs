//! `kaws cluster plan|apply|destroy|output|refresh`: the real `terraform`,
//! run in the cluster's directory with its settings and its own state.
//!
//! Terraform's output streams straight to the terminal; kaws does not
//! capture it. `terraform init` runs only when the entry point or the module
//! changed since the last successful init. Ctrl-C reaches Terraform (it is
//! in the same process group) and kaws waits for it to finish, so no state
//! lock or half-written state is left behind; kaws then exits with
//! Terraform's status.

use std::process::{Command, ExitStatus};

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{self, Mode};
use crate::kms::AwsOptions;
use crate::layout::{self, ClusterName, Repo};
use crate::ops::repo::RepoConfig;
use crate::settings::{ClusterSettings, Topology};
use crate::terraform::{self, Action};

pub struct ClusterTerraform {
    pub cluster: ClusterName,
    pub action: Action,
    /// Arguments after `--`, passed to Terraform unchanged.
    pub args: Vec<String>,
    /// `kaws cluster output --output json` asks Terraform for JSON.
    pub json: bool,
    /// Run even over a module that differs from the one kaws embeds.
    pub accept_changes: bool,
    pub aws: AwsOptions,
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1))
}

fn command(
    program: &std::path::Path,
    dir: &std::path::Path,
    settings: &ClusterSettings,
    aws: &AwsOptions,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    // The same credentials chain as kaws' own KMS calls: the profile and
    // AWS_ENDPOINT_URL pass through the environment.
    if let Some(p) = &aws.profile {
        cmd.env("AWS_PROFILE", p);
    }
    if std::env::var_os("AWS_REGION").is_none() {
        cmd.env("AWS_REGION", &settings.region);
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|e| !e.is_empty()) {
        // An S3-compatible endpoint (an emulator, a private endpoint)
        // serves buckets by path, not by host name.
        cmd.env("TF_VAR_s3_use_path_style", "true");
    }
    cmd
}

fn spawn_wait(mut cmd: Command, what: &str) -> Result<ExitStatus> {
    let mut child = cmd.spawn().map_err(|e| {
        Error::new(
            ErrorKind::External,
            format!("could not run terraform {what}: {e}"),
        )
        .with_hint("check that terraform is installed and executable (or set KAWS_TERRAFORM)")
    })?;
    // Waiting survives Ctrl-C: the binary registers a SIGINT handler, so
    // kaws keeps waiting while Terraform shuts down cleanly.
    child
        .wait()
        .map_err(|e| Error::new(ErrorKind::External, format!("lost terraform {what}: {e}")))
}

/// Check everything Terraform will read before it runs, since Terraform
/// runs configuration (providers, data sources) with the user's AWS
/// credentials even for `plan`: only the files kaws writes in the cluster
/// directory, a `main.tf.json` exactly as kaws writes it for these settings,
/// certificates that are one PEM block each and chain to the one CA, and
/// the module embedded in this kaws binary, unless `accept_changes`.
/// Returns the entry point's bytes and the module, for the init digest.
fn preflight(
    repo: &Repo,
    dir: &crate::layout::ClusterDir,
    settings: &ClusterSettings,
    accept_changes: bool,
) -> Result<(Vec<u8>, terraform::ModuleOnDisk)> {
    terraform::check_cluster_files(dir.path())?;
    terraform::check_untracked_working_data(repo.root(), dir.path())?;
    let cfg = RepoConfig::load(&repo.marker())?;
    let entry = dir.entry_point();
    let hint_restore = format!(
        "restore {} from git; `kaws cluster entry-point {}` prints it",
        layout::ENTRY_POINT_FILE,
        dir.name()
    );
    if !fsutil::present(&entry) {
        return Err(Error::input(format!(
            "{}: the cluster has no Terraform entry point",
            entry.display()
        ))
        .with_hint(hint_restore));
    }
    let main = fsutil::read_limited(&entry, 256 * 1024, "a Terraform entry point", &hint_restore)?;
    if main != terraform::entry_point(settings, &cfg.terraform_source).as_bytes() {
        return Err(Error::input(format!(
            "{}: is not the entry point kaws writes for {} and kaws.json",
            entry.display(),
            layout::SETTINGS_FILE
        ))
        .with_hint(format!(
            "nothing was run; kaws runs Terraform only over the {} it writes: restore it from git (`git checkout -- {}`) and find out who changed it",
            layout::ENTRY_POINT_FILE,
            entry.display()
        )));
    }
    check_pki_vars(dir)?;
    check_public_files(dir)?;
    let module = terraform::read_module(repo.root())?;
    let concerns = if cfg.terraform_source != terraform::DEFAULT_SOURCE {
        vec![format!(
            "the module source in kaws.json is \"{}\", not the module in this repository, so kaws cannot compare it with its own",
            crate::text::escape(&cfg.terraform_source)
        )]
    } else {
        terraform::module_differences(&module)
            .iter()
            .map(|d| crate::text::escape(d).into_owned())
            .collect()
    };
    if !concerns.is_empty() {
        if !accept_changes {
            return Err(Error::input(format!(
                "{}: differs from the module of kaws {}: {}",
                repo.root().join(terraform::MODULE_DIR).display(),
                env!("CARGO_PKG_VERSION"),
                concerns.join("; ")
            ))
            .with_hint("nothing was run; a module is code Terraform runs with your AWS credentials, even for plan: review the change (`git log -p -- terraform kaws.json`), then run again with --accept-changes"));
        }
        for c in &concerns {
            tracing::warn!(
                "running Terraform over a module kaws did not ship (--accept-changes): {c}"
            );
        }
    }
    Ok((main, module))
}

/// `pki.auto.tfvars.json` names the files the entry point reads and the
/// keys each role may decrypt: it must be exactly what this kaws derives
/// from its certificate table.
fn check_pki_vars(dir: &crate::layout::ClusterDir) -> Result<()> {
    let path = dir.pki_vars();
    let hint = "nothing was run; restore it from git (`git checkout -- <file>`) and find out who changed it; if an older kaws wrote it, remove it: the next command writes the one this kaws derives from its certificate table";
    let bytes = fsutil::read_limited(&path, 64 * 1024, "a Terraform variables file", hint)?;
    if bytes != terraform::pki_vars().as_bytes() {
        return Err(Error::input(format!(
            "{}: is not what kaws writes from its certificate table (which role reads and decrypts which file)",
            path.display()
        ))
        .with_hint(hint));
    }
    Ok(())
}

/// Bring a cluster made by an older kaws up to date with what this kaws
/// derives from its settings and table, before anything else is checked:
/// write a missing `pki.auto.tfvars.json`, and replace an HCL `main.tf` with
/// `main.tf.json` (written first, atomically; `main.tf` is removed only once
/// it is there, so an interrupted run is finished by the next). Never
/// replaces a file kaws would compare: a changed one is refused by
/// `preflight`. Takes the cluster's lock for the writes unless the caller
/// holds it, and says what it wrote.
fn write_derived_files(
    repo: &Repo,
    dir: &layout::ClusterDir,
    locked: bool,
) -> Result<Vec<std::path::PathBuf>> {
    let old_entry = dir.file(layout::OLD_ENTRY_POINT_FILE);
    if !derived_files_pending(dir) {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    // A command that cannot run Terraform writes nothing.
    terraform::program()?;
    let _lock = if locked {
        None
    } else {
        Some(crate::lock::acquire(
            &repo.lock_file(dir.name()),
            &format!(
                "cluster plan {} (bringing its files up to date)",
                dir.name()
            ),
        )?)
    };
    let path = dir.pki_vars();
    if !fsutil::present(&path) {
        fsutil::write_new(&path, terraform::pki_vars().as_bytes(), Mode::Public)?;
        written.push(path.clone());
        tracing::warn!(
            "wrote {}: what the module needs from kaws' certificate table; commit it",
            path.display()
        );
    }
    if std::fs::symlink_metadata(&old_entry).is_ok() {
        let settings = ClusterSettings::load(&dir.settings())?;
        let cfg = RepoConfig::load(&repo.marker())?;
        let entry = dir.entry_point();
        let want = terraform::entry_point(&settings, &cfg.terraform_source);
        if !fsutil::present(&entry) {
            fsutil::write_new(&entry, want.as_bytes(), Mode::Public)?;
            written.push(entry.clone());
        }
        // Only over the entry point this kaws writes: otherwise preflight
        // refuses both, and nothing is lost.
        if fsutil::read_limited(&entry, 256 * 1024, "a Terraform entry point", "")
            .is_ok_and(|b| b == want.as_bytes())
        {
            std::fs::remove_file(&old_entry).map_err(|e| Error::io("remove", &old_entry, e))?;
            fsutil::sync_dir(dir.path())?;
            written.push(old_entry.clone());
            tracing::warn!(
                "replaced {} with {}, the entry point this kaws writes (JSON, so no setting can break its syntax); commit both changes (`git add -A {}`)",
                old_entry.display(),
                entry.display(),
                dir.path().display()
            );
        }
    }
    Ok(written)
}

/// Whether a cluster made by an older kaws lacks what this kaws derives:
/// `pki.auto.tfvars.json`, or `main.tf.json` in place of an HCL `main.tf`.
fn derived_files_pending(dir: &layout::ClusterDir) -> bool {
    !fsutil::present(&dir.pki_vars())
        || std::fs::symlink_metadata(dir.file(layout::OLD_ENTRY_POINT_FILE)).is_ok()
}

/// Whether `plan`, `apply` and the others would first bring the cluster's
/// derived files up to date (see [`cluster_write_derived_files`]).
pub fn cluster_derived_files_pending(repo: &Repo, cluster: &ClusterName) -> bool {
    let dir = repo.cluster(cluster);
    dir.path().is_dir() && derived_files_pending(&dir)
}

/// Bring a cluster made by an older kaws up to date with what this kaws
/// derives (`pki.auto.tfvars.json`; `main.tf.json` in place of an HCL
/// `main.tf`), as every Terraform command does first, and return the files
/// written or removed: kaws' own migration, which the seal counts as
/// written by the command that made it, never as a change to approve.
/// An older cluster that lacks rows of the table is told to run
/// `kaws cluster renew` instead, and nothing is written.
pub fn cluster_write_derived_files(
    repo: &Repo,
    cluster: &ClusterName,
) -> Result<Vec<std::path::PathBuf>> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    super::cluster::require_every_row(&dir)?;
    write_derived_files(repo, &dir, false)
}

/// The certificates the entry point hands to the servers: each exactly one PEM
/// block, and every leaf signed by the one CA of its own issuer row
/// (`ca.pem`, `etcd-ca.pem` or `front-proxy-ca.pem`). Terraform sends a
/// whole file, so a second CA appended to a CA file would be trusted by
/// every server that trusts that CA.
fn check_public_files(dir: &crate::layout::ClusterDir) -> Result<()> {
    use crate::{layout, pki, x509};
    let mut cas: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for spec in pki::cas() {
        let p = dir.file(&layout::cert_name(spec.stem));
        cas.push((
            spec.stem,
            x509::decode_pem(&x509::read_pem_file(&p)?, "CERTIFICATE", &p)?,
        ));
    }
    for spec in pki::CLUSTER_CERTS.iter().filter(|s| !s.is_ca) {
        match spec.material {
            pki::Material::Certificate => {
                let issuer = pki::issuer_of(spec);
                let Some(ca_der) = cas
                    .iter()
                    .find(|(s, _)| *s == issuer.stem)
                    .map(|(_, d)| d.as_slice())
                else {
                    // The table test holds every issuer to a CA row.
                    return Err(Error::input(format!(
                        "{}: no CA of kaws' table signs it",
                        spec.stem
                    )));
                };
                let p = dir.file(&layout::cert_name(spec.stem));
                let der = x509::decode_pem(&x509::read_pem_file(&p)?, "CERTIFICATE", &p)?;
                if !x509::issued_by(&der, ca_der) {
                    return Err(Error::input(format!(
                        "{}: not signed by the {} in {}",
                        p.display(),
                        issuer.purpose,
                        layout::cert_name(issuer.stem)
                    ))
                    .with_hint("nothing was run; restore it from git, or run `kaws cluster check` to see what is wrong"));
                }
            }
            pki::Material::KeyPair => {
                let p = dir.file(&format!("{}.pub", spec.stem));
                x509::decode_pem(&x509::read_pem_file(&p)?, "PUBLIC KEY", &p)?;
            }
            // Only its ciphertext: Terraform hands it to the masters as is.
            pki::Material::EncryptionConfig | pki::Material::BootstrapToken => {}
        }
    }
    Ok(())
}

/// Run `terraform init` if the cluster's entry point or module changed
/// since the last successful init. Returns whether it ran. Everything
/// Terraform will read is checked first (see `preflight`).
pub fn ensure_init(
    repo: &Repo,
    cluster: &ClusterName,
    aws: &AwsOptions,
    accept_changes: bool,
) -> Result<bool> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let (main, module) = preflight(repo, &dir, &settings, accept_changes)?;
    let program = terraform::program()?;
    let provider_lock = || {
        fsutil::read_limited(
            &dir.file(".terraform.lock.hcl"),
            1024 * 1024,
            "a provider lock file",
            "",
        )
        .unwrap_or_default()
    };
    let digest = terraform::init_digest(&main, &provider_lock(), &module);
    let stamp = terraform::init_stamp(dir.path());
    if fsutil::read_limited(&stamp, 1024, "a stamp", "")
        .is_ok_and(|s| String::from_utf8_lossy(&s).trim() == digest)
    {
        tracing::info!("terraform init not needed: entry point and module unchanged");
        return Ok(false);
    }
    if !settings.state_bucket.is_empty() {
        require_s3_lockfile_support(&program)?;
    }
    tracing::info!("running terraform init: first use, or the entry point or module changed");
    let mut cmd = command(&program, dir.path(), &settings, aws);
    cmd.args(["init", "-input=false"]);
    if std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|e| !e.is_empty())
        && !settings.state_bucket.is_empty()
    {
        cmd.arg("-backend-config=use_path_style=true");
    }
    let status = spawn_wait(cmd, "init")?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::External,
            format!(
                "terraform init failed in {} (exit status {})",
                dir.path().display(),
                exit_code(status)
            ),
        )
        .with_hint("read Terraform's message above; after fixing it, run the command again"));
    }
    // Init writes the lock file the first time: the stamp records it.
    let digest = terraform::init_digest(&main, &provider_lock(), &module);
    fsutil::replace(&stamp, format!("{digest}\n").as_bytes(), Mode::Public)?;
    Ok(true)
}

/// The S3 backend kaws writes locks with `use_lockfile`, which Terraform
/// accepts from 1.10 on. Older versions fail in `terraform init` with a
/// message about an unsupported argument; say what is wrong instead. When
/// the version cannot be read, Terraform itself is left to judge.
fn require_s3_lockfile_support(program: &std::path::Path) -> Result<()> {
    let Ok(out) = Command::new(program).args(["version", "-json"]).output() else {
        return Ok(());
    };
    let Some(version) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["terraform_version"].as_str().map(str::to_string))
    else {
        return Ok(());
    };
    match terraform::parse_version(&version) {
        Some(v) if v < terraform::S3_LOCKFILE_VERSION => Err(Error::new(
            ErrorKind::External,
            format!(
                "Terraform {version} ({}) cannot use this cluster's S3 state backend: its use_lockfile setting needs Terraform {}.{} or later",
                program.display(),
                terraform::S3_LOCKFILE_VERSION.0,
                terraform::S3_LOCKFILE_VERSION.1,
            ),
        )
        .with_hint("install Terraform 1.10 or later (1.11 or later recommended), or point KAWS_TERRAFORM at one")),
        _ => Ok(()),
    }
}

/// The entry point (`main.tf.json`) kaws writes for the cluster's settings
/// and the repository's module source: what `kaws cluster init` wrote, and
/// what every Terraform command requires, byte for byte.
pub fn cluster_entry_point(repo: &Repo, cluster: &ClusterName) -> Result<String> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let cfg = RepoConfig::load(&repo.marker())?;
    Ok(terraform::entry_point(&settings, &cfg.terraform_source))
}

/// The topology the cluster's state was built with, when the settings now
/// ask for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopologyChange {
    pub from: Topology,
    pub to: Topology,
}

/// Compare the settings' topology with the one recorded in the cluster's
/// Terraform state (its `topology` output; a state with outputs but none
/// of that name was built before topologies, so public). `None` when they
/// agree, when nothing is built yet, or when the state cannot be read
/// (Terraform itself will then say why).
pub fn cluster_topology_change(
    repo: &Repo,
    cluster: &ClusterName,
    aws: &AwsOptions,
    accept_changes: bool,
) -> Result<Option<TopologyChange>> {
    let dir = repo.cluster(cluster);
    // As in cluster_terraform: an older cluster hears "run renew" first.
    dir.require()?;
    super::cluster::require_every_row(&dir)?;
    write_derived_files(repo, &dir, false)?;
    ensure_init(repo, cluster, aws, accept_changes)?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let program = terraform::program()?;
    let mut cmd = command(&program, dir.path(), &settings, aws);
    cmd.args(["output", "-json"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o.stdout,
        _ => return Ok(None),
    };
    let Ok(outputs) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&out)
    else {
        return Ok(None);
    };
    if outputs.is_empty() {
        return Ok(None);
    }
    let from = match outputs.get("topology").and_then(|o| o["value"].as_str()) {
        Some(t) => match t.parse::<Topology>() {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
        None => Topology::before_topologies(),
    };
    Ok((from != settings.topology).then_some(TopologyChange {
        from,
        to: settings.topology,
    }))
}

/// Run one Terraform command for the cluster; returns Terraform's exit code.
pub fn cluster_terraform(repo: &Repo, opts: &ClusterTerraform) -> Result<i32> {
    // Commands that write state hold the cluster's lock, so `cluster renew`
    // or `reencrypt` never swap the directory under a running apply.
    let _lock = match opts.action {
        Action::Apply | Action::Destroy | Action::Refresh => Some(crate::lock::acquire(
            &repo.lock_file(&opts.cluster),
            &format!("cluster {} {}", opts.action.as_str(), opts.cluster),
        )?),
        Action::Plan | Action::Output => None,
    };
    let dir = repo.cluster(&opts.cluster);
    // main.tf.json must be the entry point this kaws writes (see
    // `preflight`), and pki.auto.tfvars.json names every row's files: a cluster made by an older kaws is
    // told to run `kaws cluster renew` first, whatever the command.
    dir.require()?;
    super::cluster::require_every_row(&dir)?;
    write_derived_files(repo, &dir, _lock.is_some())?;
    ensure_init(repo, &opts.cluster, &opts.aws, opts.accept_changes)?;
    if matches!(opts.action, Action::Plan | Action::Apply) {
        crate::ops::repo::warn_if_provider_lock_ignored(repo.root());
    }
    let settings = ClusterSettings::load(&dir.settings())?;
    let program = terraform::program()?;
    let mut cmd = command(&program, dir.path(), &settings, &opts.aws);
    cmd.arg(opts.action.as_str());
    if opts.action == Action::Output && opts.json {
        cmd.arg("-json");
    }
    cmd.args(&opts.args);
    let status = spawn_wait(cmd, opts.action.as_str())?;
    Ok(exit_code(status))
}
