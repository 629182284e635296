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
    /// [`Self::explain`], then, when KMS refused because of the key's state
    /// (disabled, pending deletion, ...), one DescribeKey to name that state
    /// and its date: "disabled or pending deletion" does not tell a user
    /// which of the two commands brings the key back, nor how long they have.
    /// `key` is the key the caller knows of, if any; otherwise the key ARN
    /// KMS names in its message is used.
    async fn explain_async<E, R>(
        &self,
        action: &str,
        key: Option<&str>,
        ctx: &EncryptionContext,
        err: SdkError<E, R>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let refused_for_state = matches!(
            err.code(),
            Some("DisabledException" | "KMSInvalidStateException")
        );
        let in_message = err.message().and_then(key_arn_in);
        let named = key.map(str::to_string).or_else(|| in_message.clone());
        let shown = named.as_deref().unwrap_or("(named by the ciphertext)");
        let plain = self.explain(action, shown, ctx, err);
        // The key to describe is the one KMS says it refused, when it says:
        // a ciphertext names its own key, which may not be the one the
        // caller expects (a committer's, or settings she edited).
        let Some(key) = in_message.or(named).filter(|_| refused_for_state) else {
            return plain;
        };
        let health = self.key_health(&key).await;
        if health.state.refuses() {
            health.refusal(action, ctx.file())
        } else {
            plain
        }
    }

    /// The state of a key, from one DescribeKey. Never fails: what could
    /// not be learnt is reported as [`KeyState::Unknown`] with the reason.
    pub async fn key_health(&self, key_id: &str) -> KeyHealth {
        let mut health = KeyHealth {
            key: key_id.to_string(),
            arn: None,
            state: KeyState::Unknown,
            aws_state: None,
            deletion_date: None,
            detail: None,
        };
        match self.client.describe_key().key_id(key_id).send().await {
            Ok(out) => match out.key_metadata {
                Some(meta) => {
                    health.arn = meta.arn.clone();
                    health.deletion_date = meta.deletion_date.and_then(|d| rfc3339(&d));
                    let raw = meta.key_state.as_ref().map(|s| s.as_str().to_string());
                    health.state = KeyState::from_aws(raw.as_deref(), meta.enabled);
                    health.aws_state = raw;
                }
                None => health.detail = Some("KMS described no key".into()),
            },
            Err(e) => {
                if e.code() == Some("NotFoundException") {
                    health.state = KeyState::NotFound;
                }
                health.detail = Some(match e.code() {
                    Some(code) => format!("{code}: {}", e.message().unwrap_or("")),
                    None => DisplayErrorContext(&e).to_string(),
                });
            }
        }
        health
    }

    /// Check, before any work, that `key_id` exists, is enabled and can
    /// encrypt: one request that turns a late, vague failure into an early,
    /// precise one. Returns the key's ARN, which names it for good (an
    /// alias may later point elsewhere).
    #[expect(clippy::expect_used, reason = "\"check\" is a valid cluster name")]
    pub async fn check_key(&self, key_id: &str, purpose: &str) -> Result<String> {
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
        use aws_sdk_kms::types::KeyUsageType;
        let raw = meta.key_state.as_ref().map(|s| s.as_str().to_string());
        let state = KeyState::from_aws(raw.as_deref(), meta.enabled);
        if state != KeyState::Enabled {
            let health = KeyHealth {
                key: key_id.to_string(),
                arn: meta.arn.clone(),
                state,
                aws_state: raw,
                deletion_date: meta.deletion_date.and_then(|d| rfc3339(&d)),
                detail: None,
            };
            return Err(health.refusal("use", purpose));
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
        Ok(meta.arn.unwrap_or_else(|| key_id.to_string()))
    }

    /// [`Sealer::open_keyed`], naming `key` (the key the caller expects the
    /// ciphertext to be under) if KMS refuses because of the key's state.
    ///
    /// `key` only names the key in an error: it does not check that the
    /// ciphertext was sealed under it. Callers that must (C2) compare the
    /// returned [`Opened::key_id`], which is the key KMS says it used.
    pub async fn open_expecting(
        &self,
        ctx: &EncryptionContext,
        ciphertext: &[u8],
        key: Option<&str>,
    ) -> Result<Opened> {
        tracing::debug!(file = ctx.file(), context = %ctx.cli_form(), "KMS Decrypt");
        let result = self
            .client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => return Err(self.explain_async("decrypt", key, ctx, e).await),
        };
        let key_id = out.key_id.unwrap_or_default();
        out.plaintext
            .map(|b| Opened {
                secret: Secret::new(b.into_inner()),
                key_id,
            })
            .ok_or_else(|| Error::aws(format!("KMS returned no plaintext for {}", ctx.file())))
    }
}

/// A KMS time as `2026-12-06T21:47:14Z` (whole seconds, UTC).
fn rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    let whole = aws_smithy_types::DateTime::from_secs(t.secs());
    whole
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .ok()
}

/// The first KMS key ARN in `text` (real KMS names the key in the message
/// of DisabledException and KMSInvalidStateException).
fn key_arn_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '(' | ')' | ','))
        .map(|w| w.trim_end_matches('.'))
        .find(|w| w.starts_with("arn:aws") && w.contains(":key/"))
        .map(str::to_string)
}

/// What state a KMS key is in, as kaws reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    /// A key with imported material that is missing or expired.
    PendingImport,
    /// Its custom key store is disconnected, or another state in which
    /// KMS will not use it.
    Unavailable,
    /// Deleted, or a wrong id.
    NotFound,
    /// DescribeKey was refused or KMS could not be reached.
    Unknown,
}

impl KeyState {
    fn from_aws(state: Option<&str>, enabled: bool) -> Self {
        match state {
            Some("Enabled") if enabled => KeyState::Enabled,
            Some("Enabled") | Some("Disabled") => KeyState::Disabled,
            Some("PendingDeletion") | Some("PendingReplicaDeletion") => KeyState::PendingDeletion,
            Some("PendingImport") => KeyState::PendingImport,
            None if enabled => KeyState::Enabled,
            None => KeyState::Disabled,
            Some(_) => KeyState::Unavailable,
        }
    }

    /// KMS will not decrypt with a key in this state.
    pub fn refuses(self) -> bool {
        !matches!(self, KeyState::Enabled | KeyState::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::PendingDeletion => "pending-deletion",
            KeyState::PendingImport => "pending-import",
            KeyState::Unavailable => "unavailable",
            KeyState::NotFound => "not-found",
            KeyState::Unknown => "unknown",
        }
    }
}

/// One key's health, as `cluster check` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyHealth {
    /// The key as configured (id, alias or ARN).
    pub key: String,
    pub arn: Option<String>,
    pub state: KeyState,
    /// KMS' own name of the state (`PendingDeletion`, ...).
    pub aws_state: Option<String>,
    /// When a key pending deletion will be deleted (RFC 3339, UTC).
    pub deletion_date: Option<String>,
    /// Why the state is unknown or the key not found.
    pub detail: Option<String>,
}

impl KeyHealth {
    /// The state in words: "pending deletion, to be deleted on ...".
    pub fn describe(&self) -> String {
        match self.state {
            KeyState::PendingDeletion => match &self.deletion_date {
                Some(d) => format!("pending deletion, to be deleted on {d}"),
                None => "pending deletion".into(),
            },
            KeyState::Unavailable => format!(
                "unavailable (state {})",
                self.aws_state.as_deref().unwrap_or("?")
            ),
            KeyState::Unknown => format!(
                "of unknown state ({})",
                self.detail.as_deref().unwrap_or("not described")
            ),
            s => s.as_str().replace('-', " "),
        }
    }

    fn shown(&self) -> &str {
        self.arn.as_deref().unwrap_or(&self.key)
    }

    /// What brings the key back, for a hint.
    pub fn remedy(&self) -> String {
        let k = self.shown();
        match self.state {
            KeyState::Disabled => format!("a key administrator enables it: `aws kms enable-key --key-id {k}`"),
            KeyState::PendingDeletion => format!(
                "a key administrator cancels the deletion{} and enables the key: `aws kms cancel-key-deletion --key-id {k}` then `aws kms enable-key --key-id {k}`; once it is deleted, what it sealed is lost",
                self.deletion_date.as_deref().map(|d| format!(" before {d}")).unwrap_or_default()
            ),
            KeyState::PendingImport => format!("import the key material again (`aws kms import-key-material --key-id {k} ...`)"),
            KeyState::Unavailable => "reconnect the key's custom key store, or wait for KMS to finish with the key".into(),
            KeyState::NotFound => "check the key id and the region; a deleted key cannot be brought back, and what it sealed is lost".into(),
            KeyState::Enabled | KeyState::Unknown => "check your credentials, the key policy and the region".into(),
        }
    }

    /// The error of a command that needed this key.
    pub fn refusal(&self, action: &str, what: &str) -> Error {
        Error::aws(format!(
            "KMS: could not {action} {what}: key {} is {}",
            self.shown(),
            self.describe()
        ))
        .with_hint(self.remedy())
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
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err(self.explain_async("use", Some(key_id), &ctx, e).await),
        };
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
        let out = match self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext.expose().to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return Err(self.explain_async("encrypt", Some(key_id), ctx, e).await),
        };
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Error::aws(format!("KMS returned no ciphertext for {}", ctx.file())))
    }

    async fn open_keyed(&self, ctx: &EncryptionContext, ciphertext: &[u8]) -> Result<Opened> {
        self.open_expecting(ctx, ciphertext, None).await
    }

    async fn reseal_keyed(
        &self,
        new_key_id: &str,
        ctx: &EncryptionContext,
        ciphertext: &[u8],
    ) -> Result<(Vec<u8>, String)> {
        let map = ctx.to_map();
        let out = match self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext.to_vec()))
            .set_source_encryption_context(Some(map.clone()))
            .destination_key_id(new_key_id)
            .set_destination_encryption_context(Some(map))
            .send()
            .await
        {
            Ok(out) => out,
            // The source key or the new one: KMS names the one it refused.
            Err(e) => return Err(self.explain_async("re-encrypt", None, ctx, e).await),
        };
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
    fn key_arn_is_found_in_kms_messages() {
        let arn = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            key_arn_in(&format!("{arn} is disabled.")).as_deref(),
            Some(arn)
        );
        assert_eq!(
            key_arn_in(&format!("{arn} is pending deletion.")).as_deref(),
            Some(arn)
        );
        assert_eq!(key_arn_in("Key is disabled"), None);
        assert_eq!(key_arn_in(""), None);
    }

    #[test]
    fn key_states() {
        assert_eq!(KeyState::from_aws(Some("Enabled"), true), KeyState::Enabled);
        assert_eq!(
            KeyState::from_aws(Some("Disabled"), false),
            KeyState::Disabled
        );
        assert_eq!(
            KeyState::from_aws(Some("PendingDeletion"), false),
            KeyState::PendingDeletion
        );
        assert_eq!(
            KeyState::from_aws(Some("Creating"), false),
            KeyState::Unavailable
        );
        assert!(KeyState::Disabled.refuses() && !KeyState::Unknown.refuses());
        let h = KeyHealth {
            key: "alias/k".into(),
            arn: Some("arn:aws:kms:us-east-1:1:key/k".into()),
            state: KeyState::PendingDeletion,
            aws_state: Some("PendingDeletion".into()),
            deletion_date: Some("2026-12-06T10:00:00Z".into()),
            detail: None,
        };
        let e = h.refusal("decrypt", "alice-key.pem");
        assert!(
            e.message()
                .contains("pending deletion, to be deleted on 2026-12-06T10:00:00Z"),
            "{}",
            e.message()
        );
        assert!(e.hint().unwrap().contains("cancel-key-deletion"));
    }

    #[test]
    fn context_cli_form() {
        let c = ClusterName::parse("prod").unwrap();
        let ctx = EncryptionContext::new(&c, "ca-key.pem");
        assert_eq!(ctx.cli_form(), "kaws:cluster=prod,kaws:file=ca-key.pem");
        assert_eq!(ctx.to_map().len(), 2);
    }
}
