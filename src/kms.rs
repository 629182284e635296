//! The one seam for keys: seal, open and re-seal a secret under a KMS key,
//! always with an encryption context.
//!
//! [`Sealer`] is the small interface the rest of kaws uses; [`AwsKms`] is
//! its implementation over the AWS SDK. The encryption context is a typed
//! value built here and nowhere else, so every ciphertext is bound to its
//! cluster and to its file name, and a file moved to another cluster or role
//! does not decrypt.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;

use crate::error::{Error, Result};
use crate::layout::ClusterName;
use crate::secret::Secret;

/// `{"kaws:cluster": <cluster>, "kaws:file": <plaintext file name>}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionContext {
    cluster: ClusterName,
    file: String,
}

impl EncryptionContext {
    pub const CLUSTER_KEY: &'static str = "kaws:cluster";
    pub const FILE_KEY: &'static str = "kaws:file";

    /// `file` is the plaintext file name, such as `ca-key.pem`.
    pub fn new(cluster: &ClusterName, file: impl Into<String>) -> Self {
        EncryptionContext {
            cluster: cluster.clone(),
            file: file.into(),
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (Self::CLUSTER_KEY.to_string(), self.cluster.to_string()),
            (Self::FILE_KEY.to_string(), self.file.clone()),
        ])
    }

    /// The form `aws kms decrypt --encryption-context` takes.
    pub fn cli_form(&self) -> String {
        format!(
            "{}={},{}={}",
            Self::CLUSTER_KEY,
            self.cluster,
            Self::FILE_KEY,
            self.file
        )
    }
}

/// Seal, open and re-seal secrets. Implemented by [`AwsKms`].
#[allow(async_fn_in_trait)]
pub trait Sealer {
    /// Encrypt `plaintext` under `key_id`; returns the raw ciphertext blob.
    async fn seal(
        &self,
        key_id: &str,
        ctx: &EncryptionContext,
        plaintext: &Secret,
    ) -> Result<Vec<u8>>;
    /// Decrypt a blob made by `seal` with the same context.
    async fn open(&self, ctx: &EncryptionContext, ciphertext: &[u8]) -> Result<Secret> {
        Ok(self.open_keyed(ctx, ciphertext).await?.secret)
    }
    /// Decrypt, and say which KMS key (its ARN, as KMS reports it) sealed
    /// the blob: a ciphertext names its own key, and a committer may have
    /// sealed a file under a key of her own.
    async fn open_keyed(&self, ctx: &EncryptionContext, ciphertext: &[u8]) -> Result<Opened>;
    /// Move a blob to `new_key_id` without the plaintext leaving KMS.
    async fn reseal(
        &self,
        new_key_id: &str,
        ctx: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self.reseal_keyed(new_key_id, ctx, ciphertext).await?.0)
    }
    /// [`Sealer::reseal`], also returning the ARN of the key that had
    /// sealed the blob.
    async fn reseal_keyed(
        &self,
        new_key_id: &str,
        ctx: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<(Vec<u8>, String)>;
}

/// A decrypted secret and the ARN of the KMS key that had sealed it.
#[derive(Debug)]
pub struct Opened {
    pub secret: Secret,
    pub key_id: String,
}

/// Where and as whom to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// Load the AWS configuration once per process: the standard credential
/// chain, the profile, the region, and `AWS_ENDPOINT_URL`. Retries with
/// exponential backoff and jitter (the SDK's standard mode), bounded by an
/// operation timeout so that an unreachable endpoint fails in seconds.
pub async fn load_config(opts: &AwsOptions) -> SdkConfig {
    tracing::info!(profile = ?opts.profile, region = ?opts.region, "loading the AWS configuration");
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(4)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .read_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        );
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    loader.load().await
}

/// KMS over the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    endpoint: String,
}

impl AwsKms {
    pub fn new(config: &SdkConfig) -> Self {
        let endpoint = match config.endpoint_url() {
            Some(u) => u.to_string(),
            None => format!(
                "the KMS endpoint of {}",
                config
                    .region()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "the default region".into())
            ),
        };
        AwsKms {
            client: aws_sdk_kms::Client::new(config),
            endpoint,
        }
    }

    /// Turn an SDK error into one sentence naming the key and the next step.
    fn explain<E, R>(
        &self,
        action: &str,
        key: &str,
        ctx: &EncryptionContext,
        err: SdkError<E, R>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let file = ctx.file();
        match &err {
            // Missing or unusable credentials surface as a dispatch failure
            // too; say so, rather than blame the network.
            SdkError::DispatchFailure(_)
                if DisplayErrorContext(&err)
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("credential") =>
            {
                return Error::aws(format!(
                    "KMS: no AWS credentials found to {action} {file} (the environment, profiles, SSO, web identity and instance metadata were tried)"
                ))
                .with_hint("set up credentials (`aws configure`, `aws sso login`, AWS_PROFILE or --profile), check them with `aws sts get-caller-identity`, then run the command again");
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                return Error::aws(format!(
                    "KMS: could not reach {} to {action} {file}: {}",
                    self.endpoint,
                    DisplayErrorContext(&err)
                ))
                .with_hint("check the network, AWS_ENDPOINT_URL and the region, then run the command again");
            }
            SdkError::ConstructionFailure(_) => {
                return Error::aws(format!(
                    "KMS: could not {action} {file}: {}",
                    DisplayErrorContext(&err)
                ))
                .with_hint("check your AWS credentials and region (`aws sts get-caller-identity`, --profile, --region)");
            }
            _ => {}
        }
        let code = err.code().unwrap_or("Unknown").to_string();
        let detail = err.message().unwrap_or("").to_string();
        let (what, hint) = match code.as_str() {
            "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" => (
                format!("access to KMS key {key} was denied"),
                "only primary administrators may use this key: check your credentials (`aws sts get-caller-identity`) and the key policy (`kaws cluster key-policy` prints the one kaws expects)".to_string(),
            ),
            "NotFoundException" => (
                format!("KMS key {key} was not found"),
                "check the key id or alias and the region (`aws kms describe-key --key-id ...`)".to_string(),
            ),
            "DisabledException" | "KMSInvalidStateException" => (
                format!("KMS key {key} is disabled or pending deletion"),
                "enable it (`aws kms enable-key`, or `aws kms cancel-key-deletion`) or use another key".to_string(),
            ),
            "InvalidCiphertextException" => (
                format!("{file} does not decrypt: the ciphertext is damaged or belongs to another cluster or file"),
                "restore the file from git; a file copied from another cluster or renamed cannot be used".to_string(),
            ),
            "IncorrectKeyException" | "InvalidKeyUsageException" => (
                format!("KMS key {key} cannot be used to {action} {file}"),
                "use a symmetric KMS key with key usage ENCRYPT_DECRYPT".to_string(),
            ),
            "ThrottlingException" | "LimitExceededException" | "KMSInternalException" | "DependencyTimeoutException" => (
                format!("KMS kept failing ({code}) while trying to {action} {file}, after retries"),
                "wait a moment and run the command again".to_string(),
            ),
            _ => (
                format!("KMS refused to {action} {file} with key {key}: {code}"),
                "see the detail above; check the key, your credentials and the region".to_string(),
            ),
        };
        let message = if detail.is_empty() {
            format!("KMS: {what}")
        } else {
            format!("KMS: {what} ({detail})")
        };
        let kind = if code == "InvalidCiphertextException" {
            crate::error::ErrorKind::Ciphertext
        } else {
            crate::error::ErrorKind::Aws
        };
        Error::new(kind, message).with_hint(hint)
    }
}

impl AwsKms {
    /// Check, before any work, that `key_id` exists, is enabled and can
    /// encrypt: one request that turns a late, vague failure into an early,
    /// precise one.
    pub async fn check_key(&self, key_id: &str, purpose: &str) -> Result<()> {
        let ctx = EncryptionContext {
            cluster: ClusterName::parse("check").expect("valid"),
            file: purpose.to_string(),
        };
        let out = self
            .client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| self.explain("use", key_id, &ctx, e))?;
        let Some(meta) = out.key_metadata else {
            return Err(Error::aws(format!(
                "KMS: no description returned for key {key_id}"
            )));
        };
        use aws_sdk_kms::types::{KeyState, KeyUsageType};
        if meta
            .key_state
            .as_ref()
            .is_some_and(|s| *s != KeyState::Enabled)
            || !meta.enabled
        {
            let state = meta
                .key_state
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            return Err(Error::aws(format!(
                "KMS: key {key_id} is disabled or pending deletion (state {state})"
            ))
            .with_hint("enable it (`aws kms enable-key --key-id ...`, or `aws kms cancel-key-deletion`) or use another key"));
        }
        if meta
            .key_usage
            .is_some_and(|u| u != KeyUsageType::EncryptDecrypt)
        {
            return Err(Error::aws(format!(
                "KMS: key {key_id} cannot encrypt (its usage is not ENCRYPT_DECRYPT)"
            ))
            .with_hint("use a symmetric KMS key made for encryption"));
        }
        Ok(())
    }
}

impl AwsKms {
    /// The ARN of the key `key_id` (an id, an alias or an ARN) names, to
    /// compare a key given in settings with the key KMS says sealed a file.
    ///
    /// Asked with an Encrypt of a fixed, non-secret probe under the
    /// cluster's encryption context, not with DescribeKey: a key policy that
    /// allows a primary administrator only requests carrying the cluster's
    /// context (docs/concepts/security.md) allows this one too.
    pub async fn key_arn(&self, key_id: &str, cluster: &ClusterName) -> Result<String> {
        let ctx = EncryptionContext::new(cluster, "kaws-key-check");
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(b"kaws key check".to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await
            .map_err(|e| self.explain("use", key_id, &ctx, e))?;
        out.key_id
            .ok_or_else(|| Error::aws(format!("KMS: no key ARN returned for key {key_id}")))
    }
}

impl Sealer for AwsKms {
    async fn seal(
        &self,
        key_id: &str,
        ctx: &EncryptionContext,
        plaintext: &Secret,
    ) -> Result<Vec<u8>> {
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext.expose().to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await
            .map_err(|e| self.explain("encrypt", key_id, ctx, e))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::aws(format!("KMS returned no ciphertext for {}", ctx.file())))
    }

    async fn open_keyed(&self, ctx: &EncryptionContext, ciphertext: &[u8]) -> Result<Opened> {
        tracing::debug!(file = ctx.file(), context = %ctx.cli_form(), "KMS Decrypt");
        let out = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await
            .map_err(|e| self.explain("decrypt", "(named by the ciphertext)", ctx, e))?;
        let key_id = out.key_id.unwrap_or_default();
        out.plaintext
            .map(|b| Opened {
                secret: Secret::new(b.into_inner()),
                key_id,
            })
            .ok_or_else(|| Error::aws(format!("KMS returned no plaintext for {}", ctx.file())))
    }

    async fn reseal_keyed(
        &self,
        new_key_id: &str,
        ctx: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<(Vec<u8>, String)> {
        let map = ctx.to_map();
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_source_encryption_context(Some(map.clone()))
            .destination_key_id(new_key_id)
            .set_destination_encryption_context(Some(map))
            .send()
            .await
            .map_err(|e| self.explain("re-encrypt", new_key_id, ctx, e))?;
        let source = out.source_key_id.unwrap_or_default();
        out.ciphertext_blob
            .map(|b| (b.into_inner(), source))
            .ok_or_else(|| Error::aws(format!("KMS returned no ciphertext for {}", ctx.file())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_cli_form() {
        let c = ClusterName::parse("prod").unwrap();
        let ctx = EncryptionContext::new(&c, "ca-key.pem");
        assert_eq!(ctx.cli_form(), "kaws:cluster=prod,kaws:file=ca-key.pem");
        assert_eq!(ctx.to_map().len(), 2);
    }
}
