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
use crate::settings::{ClusterSettings, Topology};
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
    check_entry_point(repo, &entry, &settings)?;
    let program = terraform::program()?;
    let digest = terraform::init_digest(dir.path(), repo.root())?;
    let stamp = terraform::init_stamp(dir.path());
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == digest) {
        tracing::info!("terraform init not needed: entry point and module unchanged");
        return Ok(false);
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

/// An entry point written before topologies passes none to the module.
/// With the module kaws ships now, Terraform would stop on the missing
/// argument; with an older module, a `private` in the settings would be
/// silently ignored. Either way, say what to add.
fn check_entry_point(
    repo: &Repo,
    entry: &std::path::Path,
    settings: &ClusterSettings,
) -> Result<()> {
    let text = std::fs::read_to_string(entry).map_err(|e| Error::io("read", entry, e))?;
    if text.contains("var.topology") {
        return Ok(());
    }
    let module_has_topology =
        std::fs::read_to_string(repo.root().join(terraform::MODULE_DIR).join("variables.tf"))
            .is_ok_and(|m| m.contains("variable \"topology\""));
    if settings.topology == Topology::Public && !module_has_topology {
        // An older repository, module and cluster, all public: as before.
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: this entry point was written before kaws had topologies, and does not pass the cluster's topology ({}) to the module",
        entry.display(),
        settings.topology
    ))
    .with_hint("add `variable \"topology\" { type = string }` and `variable \"nat\" { default = \"per-zone\" }` to it, and `topology = var.topology` and `nat = var.nat` inside `module \"kaws\"` (see docs/guides/change-topology.md)"))
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
) -> Result<Option<TopologyChange>> {
    ensure_init(repo, cluster, aws)?;
    let dir = repo.cluster(cluster);
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
