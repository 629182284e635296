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
        // A CA's own KMS key (`--ca-key kms`): who may sign is in its policy.
        let signing = action == "sign with" || action == "read the public key of";
        let (what, hint) = match code.as_str() {
            "AccessDeniedException" if signing => (
                format!("access to KMS key {key} was denied"),
                "only primary administrators may sign with a CA key: check your credentials (`aws sts get-caller-identity`) and the CA key's policy (`kaws cluster key-policy <cluster> --administrator ARN --ca <ca>` prints the one kaws expects)".to_string(),
            ),
            "IncorrectKeyException" | "InvalidKeyUsageException" if signing => (
                format!("KMS key {key} cannot be used to {action} {file}"),
                "a CA key must be an asymmetric key with key usage SIGN_VERIFY; restore terraform.tfvars.json from git if ca_kms_keys was changed".to_string(),
            ),
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

/// The signing half of the seam (issue 17): a CA's asymmetric KMS key.
/// [`crate::signer::CaSigner::Kms`] calls these; nothing else does.
impl AwsKms {
    /// A label for errors about something that is not a sealed file: the
    /// encryption context carries the words KMS errors name.
    #[expect(clippy::expect_used, reason = "\"kaws\" is a valid cluster name")]
    fn label(what: &str) -> EncryptionContext {
        EncryptionContext {
            cluster: ClusterName::parse("kaws").expect("valid"),
            file: what.to_string(),
        }
    }

    /// `kms:Sign` of `message` (the DER TBSCertificate) with SHA-256.
    ///
    /// MessageType RAW: KMS hashes the message itself, so CloudTrail and a
    /// key policy's `kms:MessageType` condition see a whole certificate
    /// being signed, never a bare digest someone else computed; RAW takes
    /// up to 4096 bytes, far more than any certificate kaws makes.
    pub async fn sign(
        &self,
        key_id: &str,
        alg: crate::signer::SigAlg,
        what: &str,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
        let ctx = Self::label(what);
        if message.len() > 4096 {
            return Err(Error::input(format!(
                "{what}: the certificate to sign is {} bytes, more than the 4096 kms:Sign accepts",
                message.len()
            ))
            .with_hint("this certificate has too many names; report it as a bug of kaws"));
        }
        tracing::debug!(key = key_id, what, "KMS Sign");
        let out = match self
            .client
            .sign()
            .key_id(key_id)
            .message(Blob::new(message.to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::from(alg.kms_name()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return Err(self.explain_async("sign with", Some(key_id), &ctx, e).await),
        };
        out.signature
            .map(Blob::into_inner)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::aws(format!(
                    "KMS returned no signature from key {key_id} for {what}"
                ))
            })
    }

    /// The signer of a CA held by KMS: one DescribeKey (its state, usage
    /// and spec) and one GetPublicKey, concurrently. A key that is not
    /// enabled, not a signing key, or not of `alg`'s spec is refused with
    /// one line naming it.
    pub async fn ca_signer(
        &self,
        key_id: &str,
        alg: crate::settings::KeyAlgorithm,
        what: &str,
    ) -> Result<crate::signer::KmsSigner> {
        use aws_sdk_kms::types::KeyUsageType;
        let ctx = Self::label(what);
        let (described, public) = futures::join!(
            self.client.describe_key().key_id(key_id).send(),
            self.client.get_public_key().key_id(key_id).send()
        );
        let described = match described {
            Ok(d) => d,
            Err(e) => return Err(self.explain_async("use", Some(key_id), &ctx, e).await),
        };
        let meta = described
            .key_metadata
            .ok_or_else(|| Error::aws(format!("KMS: no description returned for key {key_id}")))?;
        let raw = meta.key_state.as_ref().map(|s| s.as_str().to_string());
        let state = KeyState::from_aws(raw.as_deref(), meta.enabled);
        let arn = meta.arn.clone().unwrap_or_else(|| key_id.to_string());
        if state != KeyState::Enabled {
            let health = KeyHealth {
                key: key_id.to_string(),
                arn: Some(arn),
                state,
                aws_state: raw,
                deletion_date: meta.deletion_date.and_then(|d| rfc3339(&d)),
                detail: None,
            };
            return Err(health.refusal("sign with", what));
        }
        if meta.key_usage != Some(KeyUsageType::SignVerify) {
            return Err(Error::input(format!(
                "KMS key {arn} cannot be {what}: its key usage is {}, not SIGN_VERIFY",
                meta.key_usage
                    .as_ref()
                    .map(|u| u.as_str())
                    .unwrap_or("not given by KMS (a symmetric key?)")
            ))
            .with_hint(format!(
                "give an asymmetric KMS key made for signing (`aws kms create-key --key-usage SIGN_VERIFY --key-spec {}`), or leave out --ca-kms-key and kaws creates one",
                kms_key_spec(alg)
            )));
        }
        let spec = meta
            .key_spec
            .as_ref()
            .map(|s| s.as_str())
            .unwrap_or("unknown");
        if spec != kms_key_spec(alg) {
            return Err(Error::input(format!(
                "KMS key {arn} cannot be {what}: its key spec is {spec}, but the cluster's key algorithm {alg} needs {}",
                kms_key_spec(alg)
            ))
            .with_hint(format!(
                "give a key of spec {} or choose --key-algorithm to match the key",
                kms_key_spec(alg)
            )));
        }
        let sig = crate::signer::SigAlg::of(alg);
        let algorithms = meta.signing_algorithms.as_deref().unwrap_or_default();
        if !algorithms.is_empty() && !algorithms.iter().any(|a| a.as_str() == sig.kms_name()) {
            return Err(Error::input(format!(
                "KMS key {arn} cannot be {what}: it does not sign with {}",
                sig.kms_name()
            ))
            .with_hint(
                "give a key that signs with it, or leave out --ca-kms-key and kaws creates one",
            ));
        }
        let public = match public {
            Ok(p) => p,
            Err(e) => {
                return Err(self
                    .explain_async("read the public key of", Some(key_id), &ctx, e)
                    .await)
            }
        };
        let spki = public
            .public_key
            .map(Blob::into_inner)
            .ok_or_else(|| Error::aws(format!("KMS returned no public key for key {arn}")))?;
        Ok(crate::signer::KmsSigner {
            kms: self.clone(),
            key_id: arn,
            spki,
            alg: sig,
            what: what.to_string(),
        })
    }

    /// The public key (DER SubjectPublicKeyInfo) of an asymmetric key, from
    /// GetPublicKey: what `cluster check` compares a CA certificate with.
    pub async fn public_key(&self, key_id: &str, what: &str) -> Result<Vec<u8>> {
        let ctx = Self::label(what);
        let out = match self.client.get_public_key().key_id(key_id).send().await {
            Ok(out) => out,
            Err(e) => {
                return Err(self
                    .explain_async("read the public key of", Some(key_id), &ctx, e)
                    .await)
            }
        };
        out.public_key
            .map(Blob::into_inner)
            .ok_or_else(|| Error::aws(format!("KMS returned no public key for key {key_id}")))
    }

    /// Create the asymmetric signing key of one CA, tagged with the cluster
    /// and the CA, and alias it `alias/kaws-<cluster>-<stem>`. Returns its
    /// ARN.
    pub async fn create_ca_key(
        &self,
        cluster: &ClusterName,
        stem: &str,
        purpose: &str,
        alg: crate::settings::KeyAlgorithm,
    ) -> Result<String> {
        use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
        let what = format!("the {purpose} of cluster {cluster}");
        let ctx = Self::label(&what);
        let tag = |k: &str, v: &str| Tag::builder().tag_key(k).tag_value(v).build();
        let tags = [tag("kaws:cluster", cluster.as_str()), tag("kaws:ca", stem)];
        let mut req = self
            .client
            .create_key()
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(KeySpec::from(kms_key_spec(alg)))
            .description(format!("kaws: {what}; signs its certificates (kms:Sign)"));
        for t in tags {
            req = req.tags(t.map_err(|e| Error::aws(format!("KMS: a bad tag: {e}")))?);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => return Err(self.explain("create a key for", "(new)", &ctx, e)),
        };
        let arn = out
            .key_metadata
            .and_then(|m| m.arn)
            .ok_or_else(|| Error::aws(format!("KMS returned no key ARN for {what}")))?;
        let alias = ca_key_alias(cluster, stem);
        if let Err(e) = self
            .client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(&arn)
            .send()
            .await
        {
            let exists = e.code() == Some("AlreadyExistsException");
            self.discard_key(&arn, None).await;
            if exists {
                return Err(Error::conflict(format!(
                    "KMS: the alias {alias} already exists: another cluster of this name has CA keys in this account and region"
                ))
                .with_hint(format!(
                    "nothing was written; choose another cluster name, or delete the alias if it is a leftover (`aws kms delete-alias --alias-name {alias}`)"
                )));
            }
            return Err(self.explain("alias", &arn, &ctx, e));
        }
        Ok(arn)
    }

    /// Undo a key kaws just created for a command that then failed: its
    /// deletion is scheduled (7 days, the shortest KMS allows). Best effort:
    /// a failure is logged, never hides the command's own error.
    pub async fn discard_key(&self, arn: &str, alias: Option<&str>) {
        // The alias first, so that `cluster init` may be run again with the
        // same name.
        if let Some(alias) = alias {
            if let Err(e) = self.client.delete_alias().alias_name(alias).send().await {
                tracing::warn!(alias, error = %DisplayErrorContext(&e), "could not delete the alias of a CA key kaws had just created; delete it by hand");
            }
        }
        // By key id: the key was just created in this account and region
        // (and moto refuses an ARN here).
        let id = arn.rsplit('/').next().unwrap_or(arn);
        let alias = self
            .client
            .schedule_key_deletion()
            .key_id(id)
            .pending_window_in_days(7)
            .send()
            .await;
        match alias {
            Ok(_) => tracing::warn!(
                key = arn,
                "scheduled the deletion of a CA key kaws had just created"
            ),
            Err(e) => {
                tracing::warn!(key = arn, error = %DisplayErrorContext(&e), "could not schedule the deletion of a CA key kaws had just created; delete it by hand")
            }
        }
    }
}

/// The alias of a CA's KMS key.
pub fn ca_key_alias(cluster: &ClusterName, stem: &str) -> String {
    format!("alias/kaws-{cluster}-{stem}")
}

/// The KMS key spec of a key algorithm.
pub fn kms_key_spec(alg: crate::settings::KeyAlgorithm) -> &'static str {
    use crate::settings::KeyAlgorithm;
    match alg {
        KeyAlgorithm::EcdsaP256 => "ECC_NIST_P256",
        KeyAlgorithm::Rsa2048 => "RSA_2048",
        KeyAlgorithm::Rsa3072 => "RSA_3072",
        KeyAlgorithm::Rsa4096 => "RSA_4096",
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

impl AwsKms {
    /// Encrypt bytes that are no secret (the seal's digest) and say which
    /// key KMS used, as its ARN.
    pub async fn encrypt_keyed(
        &self,
        key_id: &str,
        ctx: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, String)> {
        let out = match self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(plaintext.to_vec()))
            .set_encryption_context(Some(ctx.to_map()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return Err(self.explain_async("encrypt", Some(key_id), ctx, e).await),
        };
        let arn = out.key_id.unwrap_or_else(|| key_id.to_string());
        out.ciphertext_blob
            .map(|b| (b.into_inner(), arn))
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
