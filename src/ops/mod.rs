//! Operations, one per command: the CLI parses arguments and calls one of
//! these. Tests call them directly too.

mod admin;
mod check;
mod cluster;
mod repo;
mod terraform;

pub use admin::{
    admin_create, admin_install, admin_list, admin_sign, normalize_fingerprint, AdminCreate,
    AdminCreated, AdminInstall, AdminSign, AdminState, AdminStatus, SignPrompt,
};
pub use check::{
    cluster_check, looks_like_private_key, CheckReport, Finding, KmsError, State, WARN_DAYS,
};
pub use cluster::{
    cluster_init, cluster_reencrypt, cluster_renew, ClusterInit, ClusterInitReport, ClusterRenew,
};
pub use repo::{init, RepoInit};
pub use terraform::{cluster_terraform, ensure_init, ClusterTerraform};

use std::future::Future;

use crate::error::{Error, Result};
use crate::kms::{load_config, AwsKms, AwsOptions};

/// Run async AWS work on a small single-threaded runtime: KMS calls are
/// I/O-bound and issued concurrently, so one thread is enough.
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                crate::error::ErrorKind::Io,
                format!("could not start the async runtime: {e}"),
            )
        })?;
    Ok(rt.block_on(f))
}

/// The KMS client for this process.
pub(crate) async fn kms(opts: &AwsOptions) -> AwsKms {
    AwsKms::new(&load_config(opts).await)
}
