//! `kaws admin credential`: the kubectl exec credential plugin.
//!
//! kubectl runs it on each call that needs the administrator's credential.
//! It reads the certificate and the sealed key from the repository, checks
//! what it can before asking KMS (the certificate parses, is for this
//! administrator and has not expired), decrypts the key in memory, checks
//! that it is the certificate's key, and returns the `ExecCredential` for
//! stdout. It writes nothing and takes no lock: it only reads.
//!
//! [`AdminMaterial`] is the same reading and checking for `admin install`,
//! so that an entry install writes is one the plugin will honour.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::exec_credential::{self, ApiVersion};
use crate::fsutil;
use crate::kms::{AwsKms, AwsOptions, EncryptionContext};
use crate::layout::{self, AdminName, ClusterName, Repo};
use crate::pki::PrivateKey;
use crate::secret::Secret;
use crate::settings::{AdminKeyRecord, ClusterSettings};
use crate::x509::{self, CertInfo};

/// An administrator's certificate and sealed key, read and checked.
pub(crate) struct AdminMaterial {
    pub cluster: ClusterName,
    pub name: AdminName,
    pub settings: ClusterSettings,
    pub cert_path: PathBuf,
    pub cert_pem: Vec<u8>,
    pub cert: CertInfo,
    pub key_path: PathBuf,
    pub blob: Vec<u8>,
    /// The KMS key that sealed it, if recorded.
    pub record: Option<AdminKeyRecord>,
}

impl AdminMaterial {
    /// Read and check everything that needs no KMS.
    pub fn load(repo: &Repo, cluster: &ClusterName, name: &AdminName) -> Result<Self> {
        let (dir, settings) = super::admin::open_cluster(repo, cluster)?;
        let cert_path = dir.admin_cert(name);
        let key_path = dir.admin_key(name);
        if !fsutil::present(&cert_path) {
            let (what, hint) = if fsutil::present(&dir.admin_csr(name))
                || fsutil::present(&key_path)
            {
                (
                    format!("administrator {name} is not signed yet"),
                    format!("a primary administrator runs `kaws admin sign {cluster} {name}` and commits the certificate; then pull and run this again"),
                )
            } else {
                (
                    format!("cluster {cluster} has no administrator {name}"),
                    format!("check the name with `kaws admin list {cluster}`; a new administrator runs `kaws admin create {cluster} {name} --kms-key ...` first"),
                )
            };
            return Err(Error::input(format!("{}: {what}", cert_path.display())).with_hint(hint));
        }
        let cert_pem = x509::read_pem_file(&cert_path)?;
        let cert = x509::parse_cert(&cert_pem, &cert_path)?;
        let renew = format!(
            "ask a primary administrator to run `kaws admin sign {cluster} {name} --renew`, then pull"
        );
        if cert.common_name.as_deref() != Some(name.as_str()) {
            return Err(Error::input(format!(
                "{}: the certificate is for \"{}\", not for {name}",
                cert_path.display(),
                crate::text::escape(cert.common_name.as_deref().unwrap_or(""))
            ))
            .with_hint(format!("restore the file from git, or {renew}")));
        }
        let now = OffsetDateTime::now_utc();
        if cert.not_after < now {
            return Err(Error::input(format!(
                "{}: the certificate expired on {}",
                cert_path.display(),
                exec_credential::rfc3339(cert.not_after)
            ))
            .with_hint(renew));
        }
        if cert.not_before > now + time::Duration::minutes(10) {
            return Err(Error::input(format!(
                "{}: the certificate is not valid before {}",
                cert_path.display(),
                exec_credential::rfc3339(cert.not_before)
            ))
            .with_hint("check this machine's clock"));
        }
        if !fsutil::present(&key_path) {
            return Err(Error::input(format!(
                "{}: administrator {name}'s sealed key is missing",
                key_path.display()
            ))
            .with_hint("restore it from git (`git checkout -- <file>`); without it the certificate cannot be used"));
        }
        let blob = fsutil::read_ciphertext(&key_path)?;
        // The record only names the key in messages: a damaged one must
        // not lock the administrator out, nor add a line to every kubectl
        // call (`cluster check` reports it).
        let record = match AdminKeyRecord::load(&dir.admin_key_record(name)) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!("{} (ignored)", e.message());
                None
            }
        };
        Ok(AdminMaterial {
            cluster: cluster.clone(),
            name: name.clone(),
            settings,
            cert_path,
            cert_pem,
            cert,
            key_path,
            blob,
            record,
        })
    }

    /// Decrypt the key in memory and check that it is the certificate's.
    pub async fn open_key(&self, kms: &AwsKms) -> Result<Secret> {
        let ctx = EncryptionContext::new(&self.cluster, layout::key_name(self.name.as_str()));
        let expected = self.record.as_ref().map(|r| r.kms_key_arn.as_str());
        let secret = kms.open_expecting(&ctx, &self.blob, expected).await?.secret;
        let key = PrivateKey::from_secret(&secret, &self.key_path.display().to_string())?;
        if key.public_key_der() != self.cert.spki_der {
            return Err(Error::input(format!(
                "{}: the certificate is not for the key in {}",
                self.cert_path.display(),
                self.key_path.display()
            ))
            .with_hint(format!(
                "the certificate may belong to an older key: ask a primary administrator to run `kaws admin sign {} {} --renew` with your current CSR, then pull",
                self.cluster, self.name
            )));
        }
        Ok(secret)
    }

    pub fn aws(&self, aws: &AwsOptions) -> AwsOptions {
        super::admin::aws_for(&self.settings, aws)
    }
}

pub struct AdminCredential {
    pub cluster: ClusterName,
    pub name: AdminName,
    pub aws: AwsOptions,
    /// The value of `KUBERNETES_EXEC_INFO`, if kubectl set it.
    pub exec_info: Option<String>,
}

/// The `ExecCredential` for kubectl, with the decrypted key: print it to
/// stdout and nowhere else.
pub fn admin_credential(repo: &Repo, opts: AdminCredential) -> Result<Secret> {
    let version: ApiVersion = exec_credential::requested_version(opts.exec_info.as_deref())?;
    let material = AdminMaterial::load(repo, &opts.cluster, &opts.name)?;
    let cert_pem = std::str::from_utf8(&material.cert_pem).map_err(|_| {
        Error::input(format!(
            "{}: not a PEM text file",
            material.cert_path.display()
        ))
    })?;
    let aws = material.aws(&opts.aws);
    super::block_on(async {
        let kms = super::kms(&aws).await;
        let key = material.open_key(&kms).await?;
        exec_credential::response(version, cert_pem, &key, material.cert.not_after)
    })?
}
