//! Operations, one per command: the CLI parses arguments and calls one of
//! these. Tests call them directly too.

mod admin;
mod check;
mod cluster;
mod credential;
mod repo;
mod seal;
mod terraform;

pub use admin::{
    admin_create, admin_install, admin_list, admin_sign, exec_plugin, normalize_fingerprint,
    AdminCreate, AdminCreated, AdminInstall, AdminInstalled, AdminSign, AdminState, AdminStatus,
    InstallMode, SignPrompt,
};
pub use check::{
    cluster_check, looks_like_private_key, CheckReport, Finding, KmsError, KmsKeyFinding, State,
    WARN_DAYS,
};
pub use cluster::{
    cluster_init, cluster_reencrypt, cluster_renew, ClusterInit, ClusterInitReport, ClusterRenew,
};
pub use credential::{admin_credential, AdminCredential};
pub use repo::{init, RepoInit};
pub use seal::{
    seal_check, seal_write, SealCheck, SealReport, SealState, SealWrite, SealWritten, SealedBy,
};
pub use terraform::{
    cluster_derived_files_pending, cluster_entry_point, cluster_terraform, cluster_topology_change,
    cluster_write_derived_files, ensure_init, ClusterTerraform, TopologyChange,
};

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

/// The cluster CA's key, decrypted, and the ARN of the KMS key that seals
/// the cluster's keys, as KMS reports it for `ca-key.pem.encrypted`.
///
/// The settings' `kms_key_id` must name that same key: a committer who
/// edits it cannot make kaws seal new keys under a key of hers, and a
/// change of key is only ever made by `kaws cluster reencrypt`, which
/// moves every ciphertext and the setting together.
pub(crate) async fn open_ca(
    kms: &AwsKms,
    dir: &crate::layout::ClusterDir,
    settings: &crate::settings::ClusterSettings,
) -> Result<(crate::pki::PrivateKey, String)> {
    use crate::kms::EncryptionContext;
    use crate::layout;
    let path = dir.file(&layout::encrypted_key_name(crate::pki::CA.stem));
    let blob = crate::fsutil::read_ciphertext(&path)?;
    let ctx = EncryptionContext::new(dir.name(), layout::key_name(crate::pki::CA.stem));
    let (opened, named) = futures::join!(
        kms.open_expecting(&ctx, &blob, Some(&settings.kms_key_id)),
        kms.key_arn(&settings.kms_key_id, dir.name())
    );
    let opened = opened?;
    let key = crate::pki::PrivateKey::from_secret(&opened.secret, &path.display().to_string())?;
    drop(opened.secret);
    let named = named?;
    if named != opened.key_id {
        return Err(kms_key_changed(dir, settings, &named, &opened.key_id));
    }
    Ok((key, opened.key_id))
}

/// The signer of a CA row whose key lives in KMS (`ca_key` `kms`): its
/// state, usage and spec checked and its public key read; `None` for a
/// `sealed` cluster, whose CA keys are decrypted from the repository.
pub(crate) async fn kms_ca_signer(
    kms: &AwsKms,
    dir: &crate::layout::ClusterDir,
    settings: &crate::settings::ClusterSettings,
    row: &'static crate::pki::CertSpec,
) -> Result<Option<crate::signer::CaSigner>> {
    let Some(key) = settings.ca_kms_key(row.stem) else {
        return Ok(None);
    };
    let what = cluster::ca_what(row, dir.name());
    let signer = kms.ca_signer(key, settings.key_algorithm, &what).await?;
    Ok(Some(crate::signer::CaSigner::Kms(signer)))
}

/// The cluster CA's signer, whichever design the cluster uses.
pub(crate) async fn cluster_ca_signer(
    kms: &AwsKms,
    dir: &crate::layout::ClusterDir,
    settings: &crate::settings::ClusterSettings,
) -> Result<crate::signer::CaSigner> {
    if let Some(signer) = kms_ca_signer(kms, dir, settings, &crate::pki::CA).await? {
        return Ok(signer);
    }
    let (key, _) = open_ca(kms, dir, settings).await?;
    crate::signer::CaSigner::local(key, crate::layout::encrypted_key_name(crate::pki::CA.stem))
}

fn kms_key_changed(
    dir: &crate::layout::ClusterDir,
    settings: &crate::settings::ClusterSettings,
    named: &str,
    sealing: &str,
) -> Error {
    Error::input(format!(
        "{}: kms_key_id is {} ({named}), but the cluster's keys are sealed under {sealing}; only `kaws cluster reencrypt` changes a cluster's KMS key",
        dir.settings().display(),
        settings.kms_key_id,
    ))
    .with_hint(format!(
        "if nobody meant to move the keys, restore the file from git (`git checkout -- {}`) and find out who changed it; to move them, restore it and run `kaws cluster reencrypt {} --new-key {}`",
        dir.settings().display(),
        dir.name(),
        settings.kms_key_id
    ))
}
