//! `kaws init`: a new kaws repository.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::Staging;
use crate::layout::MARKER;
use crate::terraform;

pub struct RepoInit {
    pub path: PathBuf,
    pub terraform_source: Option<String>,
}

/// `kaws.json`: what kaws needs to know about the repository as a whole.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// The kaws version that created the repository (and its module).
    pub kaws_version: String,
    /// The module source each cluster's entry point uses.
    pub terraform_source: String,
}

impl RepoConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsutil::read_limited(
            path,
            64 * 1024,
            "a kaws repository file",
            "restore it from git (`git checkout -- kaws.json`)",
        )?;
        let cfg: RepoConfig = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!(
                "{}: not a valid kaws repository file: {e}",
                path.display()
            ))
            .with_hint("restore it from git (`git checkout -- kaws.json`)")
        })?;
        terraform::validate_source(&cfg.terraform_source).map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }
}

const GITIGNORE: &str = "\
# Terraform's per-cluster working files; never commit them. Do commit each
# cluster's .terraform.lock.hcl: it pins the providers every administrator runs.
.terraform/
*.tfstate.backup
# Saved plans (`kaws cluster plan prod -- -out=prod.plan`) hold the planned values.
*.plan
# kaws' own lock and the leftovers of an interrupted command.
clusters/.*.lock
.kaws-tmp-*
# Plaintext private keys never belong here; kaws never writes one.
*-key.pem
";

/// Whether the repository's `.gitignore` keeps Terraform's dependency lock
/// file out of git, as `kaws init` did before: the providers every
/// administrator runs should be pinned by a committed lock file, as
/// HashiCorp advises.
pub fn ignores_provider_lock(repo_root: &std::path::Path) -> bool {
    let path = repo_root.join(".gitignore");
    crate::fsutil::read_limited(&path, 1024 * 1024, "a .gitignore", "").is_ok_and(|b| {
        String::from_utf8_lossy(&b).lines().any(|l| {
            l.trim().trim_start_matches('/').trim_start_matches("**/") == ".terraform.lock.hcl"
        })
    })
}

/// The warning `cluster plan`, `apply` and `check` give a repository whose
/// `.gitignore` keeps the provider lock file out of git.
pub fn warn_if_provider_lock_ignored(repo_root: &std::path::Path) {
    if ignores_provider_lock(repo_root) {
        tracing::warn!(
            "{}: keeps .terraform.lock.hcl out of git, so administrators may run different provider builds; remove that line and commit each cluster's .terraform.lock.hcl (HashiCorp advises committing it)",
            repo_root.join(".gitignore").display()
        );
    }
}

pub fn init(opts: &RepoInit) -> Result<PathBuf> {
    let source = match &opts.terraform_source {
        Some(s) => {
            terraform::validate_source(s)?;
            s.clone()
        }
        None => terraform::DEFAULT_SOURCE.to_string(),
    };
    let target =
        std::path::absolute(&opts.path).map_err(|e| Error::io("resolve", &opts.path, e))?;
    if let Ok(mut entries) = std::fs::read_dir(&target) {
        if entries.next().is_some() {
            return Err(Error::conflict(format!(
                "{}: already exists and is not empty",
                target.display()
            ))
            .with_hint(
                "choose a new directory name; kaws init never writes into an existing one",
            ));
        }
    } else if target.exists() {
        return Err(Error::conflict(format!(
            "{}: exists and is not a directory",
            target.display()
        )));
    }
    if let Some(parent) = target.parent() {
        if !parent.is_dir() {
            return Err(
                Error::input(format!("{}: no such directory", parent.display()))
                    .with_hint("create the parent directory first"),
            );
        }
    }
    let cfg = RepoConfig {
        kaws_version: env!("CARGO_PKG_VERSION").to_string(),
        terraform_source: source,
    };
    let staging = Staging::new(&target)?;
    let mut json = serde_json::to_vec_pretty(&cfg)
        .map_err(|e| Error::input(format!("could not write kaws.json: {e}")))?;
    json.push(b'\n');
    staging.write(MARKER, &json)?;
    staging.write(".gitignore", GITIGNORE.as_bytes())?;
    let clusters = staging.path().join("clusters");
    std::fs::create_dir(&clusters).map_err(|e| Error::io("create", &clusters, e))?;
    staging.write("clusters/.gitkeep", b"")?;
    terraform::write_module(&staging)?;
    staging.commit()
}
