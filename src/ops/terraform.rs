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
use crate::layout::{ClusterName, Repo};
use crate::settings::ClusterSettings;
use crate::terraform::{self, Action};

pub struct ClusterTerraform {
    pub cluster: ClusterName,
    pub action: Action,
    /// Arguments after `--`, passed to Terraform unchanged.
    pub args: Vec<String>,
    /// `kaws cluster output --output json` asks Terraform for JSON.
    pub json: bool,
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

/// Run `terraform init` if the cluster's entry point or module changed
/// since the last successful init. Returns whether it ran.
pub fn ensure_init(repo: &Repo, cluster: &ClusterName, aws: &AwsOptions) -> Result<bool> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let entry = dir.entry_point();
    if !entry.is_file() {
        return Err(Error::input(format!(
            "{}: the cluster has no Terraform entry point",
            entry.display()
        ))
        .with_hint("restore main.tf from git; `kaws cluster init` writes it"));
    }
    let program = terraform::program()?;
    let digest = terraform::init_digest(dir.path(), repo.root())?;
    let stamp = terraform::init_stamp(dir.path());
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == digest) {
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
    ensure_init(repo, &opts.cluster, &opts.aws)?;
    let dir = repo.cluster(&opts.cluster);
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
