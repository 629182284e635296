//! Opening and writing a cluster's seal (see [`crate::seal`]).
//!
//! Every privileged command opens the seal first ([`seal_check`]): its
//! authenticator must decrypt, under the seal's own encryption context, to
//! the digest of what `seal.json` says, and KMS must report the cluster's
//! key as the one that encrypted it (the key the settings name, or the one
//! this machine last saw the cluster sealed under). What differs from the
//! sealed files is then shown, and the command runs only over approved
//! changes. After it succeeds, [`seal_write`] seals the new state.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{self, Mode};
use crate::kms::{AwsOptions, EncryptionContext};
use crate::layout::{self, ClusterName, Repo};
use crate::seal::{self, Body, Comparison, SealFile, Seen, Walk};
use crate::settings::ClusterSettings;

/// Whether the seal could be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum SealState {
    /// Its authenticator opened under the cluster's key and matches.
    Valid,
    /// No `seal.json`: a cluster made before kaws sealed, or one whose seal
    /// was removed.
    Missing,
    /// Edited, damaged, or encrypted under a key that is not the cluster's.
    Invalid(String),
    /// Not checked: `--offline`, or KMS could not be asked.
    Unverified(String),
}

/// The seal's own record, as `cluster check -o json` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SealedBy {
    pub generation: u64,
    pub sealed_at: String,
    pub sealed_by: String,
    pub command: String,
    pub kms_key: String,
}

/// What a privileged command (or `cluster check`) learnt from the seal.
#[derive(Clone, Debug, Serialize)]
pub struct SealReport {
    pub cluster: String,
    #[serde(flatten)]
    pub state: SealState,
    /// What `seal.json` says (authentic only when the state is valid).
    pub sealed: Option<SealedBy>,
    /// Files the seal covers now.
    pub files: usize,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// What needs approval besides file changes: a rollback, another KMS key.
    pub concerns: Vec<String>,
}

/// A report, and what it was made from, for [`seal_write`].
pub struct SealCheck {
    pub report: SealReport,
    walk: Walk,
    body: Option<Body>,
    /// Why KMS could not be asked, with its hint: a command stops with it.
    aws_error: Option<(String, Option<String>)>,
}

impl SealCheck {
    /// Whether anything must be approved before a privileged command runs.
    pub fn needs_approval(&self) -> bool {
        self.report.state != SealState::Valid
            || !self.report.comparison.differences.is_empty()
            || !self.report.concerns.is_empty()
    }

    /// Entries that can never be approved (links, FIFOs, devices).
    pub fn unsealable(&self) -> usize {
        self.report
            .comparison
            .differences
            .iter()
            .filter(|d| d.change == seal::Change::NotAFile)
            .count()
    }

    /// The report, as lines for a terminal (every name escaped).
    pub fn lines(&self) -> Vec<String> {
        let r = &self.report;
        let c = &r.cluster;
        let mut out = Vec::new();
        match (&r.state, &r.sealed) {
            (SealState::Valid, Some(s)) => out.push(format!(
                "Seal of cluster {c}: generation {}, sealed {} by {} (kaws {}).",
                s.generation,
                s.sealed_at,
                crate::text::escape(&s.sealed_by),
                crate::text::escape(&s.command)
            )),
            (SealState::Missing, _) => out.push(format!(
                "Cluster {c} has no seal ({}): nothing in it has been approved yet, so every file below is listed.",
                seal::SEAL_FILE
            )),
            (SealState::Invalid(why), _) => out.push(format!(
                "The seal of cluster {c} is NOT valid: {}. Nothing in it counts as approved, so every file below is listed.",
                crate::text::escape(why)
            )),
            (SealState::Unverified(why), _) => out.push(format!(
                "The seal of cluster {c} could not be verified: {}.",
                crate::text::escape(why)
            )),
            (SealState::Valid, None) => {}
        }
        for concern in &r.concerns {
            out.push(format!("  ! {}", crate::text::escape(concern)));
        }
        for (kind, header) in [
            (
                "new-request",
                "New administrator requests (expected: `kaws admin sign` shows each one before signing):",
            ),
            (
                "own-key",
                "Administrators' own keys, moved by their owners to another KMS key (expected: only they decrypt them, and kaws checks each against its certificate):",
            ),
        ] {
            let of_kind: Vec<&seal::Request> = r
                .comparison
                .requests
                .iter()
                .filter(|q| q.kind == kind)
                .collect();
            if of_kind.is_empty() {
                continue;
            }
            out.push(header.into());
            for q in of_kind {
                let files: Vec<String> = q
                    .files
                    .iter()
                    .map(|f| crate::text::escape(f.rsplit('/').next().unwrap_or(f)).into_owned())
                    .collect();
                out.push(format!("  {}: {}", q.admin, files.join(", ")));
            }
        }
        if !r.comparison.differences.is_empty() {
            let what = match r.state {
                SealState::Valid => "Changes since the seal, not approved:",
                _ => "Not approved:",
            };
            out.push(what.into());
            for d in &r.comparison.differences {
                out.push(format!("  {}", d.line()));
                if d.change == seal::Change::NotAFile {
                    continue;
                }
                for detail in &d.details {
                    out.push(format!("      {}", crate::text::escape(detail)));
                }
            }
        }
        out
    }

    /// The error of a command that would run over unapproved changes.
    pub fn refusal(&self, command: &str) -> Error {
        let c = &self.report.cluster;
        if let Some((message, hint)) = &self.aws_error {
            // KMS is out of reach or refuses the key: the command would fail
            // on it too; say so as every AWS failure is said (exit 5).
            return Error::aws(message.clone()).with_hint(format!(
                "{}; the seal of cluster {c} could not be verified, so `kaws {command}` did not run (to run it without, review the repository and pass --accept-changes)",
                hint.as_deref().unwrap_or("check your credentials, the region and the network")
            ));
        }
        let n = self.report.comparison.differences.len() - self.unsealable();
        let what = match &self.report.state {
            SealState::Valid if self.report.concerns.is_empty() => {
                format!("{n} change(s) since the seal of cluster {c} were not approved")
            }
            SealState::Valid => format!(
                "the seal of cluster {c} needs your approval ({} change(s))",
                n
            ),
            SealState::Missing => format!("cluster {c} has no seal yet"),
            SealState::Invalid(_) => format!("the seal of cluster {c} is not valid"),
            SealState::Unverified(_) => format!("the seal of cluster {c} could not be verified"),
        };
        if self.unsealable() > 0 {
            return Error::input(format!(
                "{what}, and {} entr(ies) are not regular files, which nobody can approve; `kaws {command}` did not run",
                self.unsealable()
            ))
            .with_hint("nothing was run; remove the links, FIFOs or devices listed above (kaws never seals or reads through them), then run the command again");
        }
        Error::input(format!("{what}; `kaws {command}` did not run"))
            .with_hint(format!(
                "nothing was run; review what is listed above (`git log -p -- clusters/{c} terraform kaws.json`), then run again with --accept-changes (or answer y on a terminal), or restore it from git and find out who changed it"
            ))
    }
}

fn ctx(cluster: &ClusterName) -> EncryptionContext {
    EncryptionContext::new(cluster, seal::CONTEXT_FILE)
}

fn aws_for(settings: &ClusterSettings, aws: &AwsOptions) -> AwsOptions {
    let mut aws = aws.clone();
    if aws.region.is_none() {
        aws.region = Some(settings.region.clone());
    }
    aws
}

fn sealed_by(body: &Body) -> SealedBy {
    SealedBy {
        generation: body.generation,
        sealed_at: body.sealed_at.clone(),
        sealed_by: body.sealed_by.clone(),
        command: body.command.clone(),
        kms_key: body.kms_key.clone(),
    }
}

/// Open the cluster's seal and compare the repository with it. With
/// `offline`, the authenticator is not checked (the state is then
/// "unverified"). AWS failures make the seal unverified, never valid.
pub fn seal_check(
    repo: &Repo,
    cluster: &ClusterName,
    offline: bool,
    aws: &AwsOptions,
) -> Result<SealCheck> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let walk = seal::walk(repo.root(), cluster)?;
    let docs = seal::documents(repo.root(), cluster, &walk);
    let record_path = repo.seal_record(cluster);
    let seen = record_path.as_deref().and_then(Seen::load);
    let mut concerns = Vec::new();
    let mut aws_error = None;
    let (state, body) = match SealFile::load(&dir.file(seal::SEAL_FILE)) {
        Ok(None) => {
            if let Some(s) = &seen {
                concerns.push(format!(
                    "this machine has seen cluster {cluster} sealed (generation {}, {} by {}): the seal was removed",
                    s.generation, s.sealed_at, s.sealed_by
                ));
            }
            (SealState::Missing, None)
        }
        Err(e) => (SealState::Invalid(e.message().to_string()), None),
        Ok(Some(file)) if offline => (
            SealState::Unverified("--offline: its KMS authenticator was not checked".into()),
            Some(file.seal),
        ),
        Ok(Some(file)) => {
            let state = open(
                &dir,
                &settings,
                &file,
                seen.as_ref(),
                aws,
                &mut concerns,
                &mut aws_error,
            );
            (state, Some(file.seal))
        }
    };
    if let (SealState::Valid, Some(b)) = (&state, &body) {
        match &seen {
            Some(s) if s.generation > b.generation => concerns.push(format!(
                "rollback: this seal is generation {} ({} by {}), but this machine has seen generation {} ({} by {}): the repository was set back to an older approved state",
                b.generation, b.sealed_at, b.sealed_by, s.generation, s.sealed_at, s.sealed_by
            )),
            _ => {}
        }
        // Remember the newest seal seen, unless something about it needs
        // approval first.
        let newer = seen.as_ref().is_none_or(|s| {
            s.generation < b.generation || (s.generation == b.generation && s.digest != b.digest())
        });
        if concerns.is_empty() && newer {
            if let Some(p) = &record_path {
                if let Err(e) = Seen::of(b).save(p) {
                    tracing::warn!("could not record the seal this machine has seen: {e}");
                }
            }
        }
    }
    let empty = Default::default();
    let (sealed_files, sealed_docs) = match (&state, &body) {
        (SealState::Valid | SealState::Unverified(_), Some(b)) => (&b.files, &b.documents),
        _ => (&empty, &Default::default()),
    };
    let comparison = seal::compare(cluster, sealed_files, sealed_docs, &walk, &docs);
    let report = SealReport {
        cluster: cluster.to_string(),
        sealed: body.as_ref().map(sealed_by),
        files: walk.files().len(),
        state,
        comparison,
        concerns,
    };
    Ok(SealCheck {
        report,
        walk,
        body,
        aws_error,
    })
}

/// Check the authenticator with KMS.
fn open(
    dir: &crate::layout::ClusterDir,
    settings: &ClusterSettings,
    file: &SealFile,
    seen: Option<&Seen>,
    aws: &AwsOptions,
    concerns: &mut Vec<String>,
    aws_error: &mut Option<(String, Option<String>)>,
) -> SealState {
    let mut unverified = |e: &Error, why: String| {
        *aws_error = Some((e.message().to_string(), e.hint().map(str::to_string)));
        SealState::Unverified(why)
    };
    let cluster = dir.name();
    let body = &file.seal;
    if body.cluster != cluster.as_str() {
        return SealState::Invalid(format!("it is the seal of cluster {:?}", body.cluster));
    }
    let Some(blob) = file.authenticator() else {
        return SealState::Invalid("its authenticator is not hex".into());
    };
    let aws = aws_for(settings, aws);
    let result = super::block_on(async {
        let kms = super::kms(&aws).await;
        let ctx = ctx(cluster);
        futures::join!(
            kms.open_expecting(&ctx, &blob, Some(&settings.kms_key_id)),
            kms.key_arn(&settings.kms_key_id, cluster)
        )
    });
    let (opened, named) = match result {
        Ok(r) => r,
        Err(e) => return unverified(&e, e.message().to_string()),
    };
    let opened = match opened {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::Ciphertext => {
            return SealState::Invalid(format!(
                "KMS does not open its authenticator under the seal's encryption context ({})",
                e.message()
            ))
        }
        Err(e) => return unverified(&e, e.message().to_string()),
    };
    if opened.secret.expose() != body.authenticated_text().as_slice() {
        return SealState::Invalid(format!(
            "{} was changed after it was sealed: its content does not match its authenticator",
            seal::SEAL_FILE
        ));
    }
    let key = opened.key_id;
    if key != body.kms_key {
        return SealState::Invalid(format!(
            "its authenticator is encrypted under KMS key {key}, not the {} it names",
            body.kms_key
        ));
    }
    let known = seen.map(|s| s.kms_key.as_str());
    match named {
        Ok(n) if n == key => {
            // A machine that never saw this cluster sealed (a fresh clone)
            // has no key to compare with: ask KMS which key seals the
            // cluster's anchor key, so a committer who replaced both the
            // settings' key and the seal with her own is caught.
            if known.is_none() {
                let stem = anchor_stem(settings);
                match anchor_source(dir, stem, &key, &aws) {
                    Some(source) if source != key => {
                        return SealState::Invalid(format!(
                            "it and the settings name KMS key {key}, but {} is sealed under {source}: someone replaced the cluster's KMS key and its seal",
                            layout::encrypted_key_name(stem)
                        ))
                    }
                    Some(_) => {}
                    None => concerns.push(format!(
                        "this machine has not seen cluster {cluster} sealed before, and KMS could not say which key seals {}",
                        layout::encrypted_key_name(stem)
                    )),
                }
            }
            if let Some(k) = known.filter(|k| *k != key) {
                concerns.push(format!(
                    "the seal is encrypted under KMS key {key}, which the settings name, but this machine last saw cluster {cluster} sealed under {k}: if nobody ran `kaws cluster reencrypt {cluster}`, someone replaced the cluster's key and seal"
                ));
            }
            SealState::Valid
        }
        // The settings name another key, but the seal is under the one this
        // machine knows: the seal stands, the settings change is listed.
        _ if known == Some(key.as_str()) => {
            concerns.push(format!(
                "the settings name KMS key {}, but the cluster is sealed under {key}",
                settings.kms_key_id
            ));
            SealState::Valid
        }
        // Neither: the seal stands only if its key is the one that seals
        // the cluster CA's key (the settings were changed, not the seal).
        Ok(n) => {
            if ca_sealed_under(dir, settings, &key, &aws) {
                concerns.push(format!(
                    "the settings name KMS key {} ({n}), but the cluster's keys and its seal are under {key}",
                    settings.kms_key_id
                ));
                return SealState::Valid;
            }
            SealState::Invalid(format!(
                "its authenticator is encrypted under KMS key {key}, but the settings name {n}: a key that is not the cluster's"
            ))
        }
        Err(e) => {
            let why = format!(
                "the settings' KMS key {} could not be used: {}",
                settings.kms_key_id,
                e.message()
            );
            unverified(&e, why)
        }
    }
}

/// The sealed key whose KMS key is the cluster's: the cluster CA's key, or,
/// when the CA keys live in KMS (no file to read), the service-account key,
/// which every cluster has sealed under the cluster's KMS key.
fn anchor_stem(settings: &ClusterSettings) -> &'static str {
    if settings.ca_key.is_sealed() {
        crate::pki::CA.stem
    } else {
        "service-account"
    }
}

/// Whether KMS says the anchor key ([`anchor_stem`]) is sealed under `key`:
/// asked with a ReEncrypt to that same key, so the key never leaves KMS.
fn ca_sealed_under(
    dir: &crate::layout::ClusterDir,
    settings: &ClusterSettings,
    key: &str,
    aws: &AwsOptions,
) -> bool {
    let stem = anchor_stem(settings);
    anchor_source(dir, stem, key, aws).is_some_and(|source| source == key)
}

/// The KMS key that seals the anchor key `stem`, as KMS reports it when
/// asked to re-encrypt the anchor under `key`; `None` when the file cannot
/// be read or KMS does not answer.
fn anchor_source(
    dir: &crate::layout::ClusterDir,
    stem: &str,
    key: &str,
    aws: &AwsOptions,
) -> Option<String> {
    use crate::kms::Sealer;
    let path = dir.file(&layout::encrypted_key_name(stem));
    let blob = fsutil::read_ciphertext(&path).ok()?;
    let ctx = EncryptionContext::new(dir.name(), layout::key_name(stem));
    super::block_on(async {
        let kms = super::kms(aws).await;
        kms.reseal_keyed(key, &ctx, &blob).await
    })
    .ok()
    .and_then(|r| r.ok())
    .map(|(_, source)| source)
}

/// How to write a seal.
pub struct SealWrite<'a> {
    /// The command that seals (`cluster renew`), recorded in the seal.
    pub command: &'a str,
    /// The check made before the command ran: what was approved. Files
    /// that changed since, and are not in `written`, are refused (something
    /// else changed them meanwhile). `None` for a new cluster.
    pub checked: Option<&'a SealCheck>,
    /// Files the command wrote: absolute, or relative to the cluster directory.
    pub written: Vec<PathBuf>,
    /// The command itself opened the cluster CA's key under the settings'
    /// KMS key (or made it); otherwise KMS is asked which key seals it.
    pub ca_checked: bool,
    pub aws: AwsOptions,
}

/// A seal written.
#[derive(Debug, Clone, Serialize)]
pub struct SealWritten {
    pub path: PathBuf,
    pub generation: u64,
    pub files: usize,
    pub bytes: usize,
    pub kms_key: String,
}

/// Seal the cluster as it is now. `Ok(None)` when the seal already covers
/// exactly this state and needed no approval.
pub fn seal_write(
    repo: &Repo,
    cluster: &ClusterName,
    w: SealWrite<'_>,
) -> Result<Option<SealWritten>> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let _lock = crate::lock::acquire(&repo.lock_file(cluster), &format!("cluster seal {cluster}"))?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let walk = seal::walk(repo.root(), cluster)?;
    let odd = walk.odd();
    if !odd.is_empty() {
        let shown: Vec<String> = odd
            .iter()
            .take(10)
            .map(|(p, k)| format!("{} ({k})", crate::text::escape(p)))
            .collect();
        return Err(Error::input(format!(
            "cluster {cluster}: not sealed: {} are not regular files",
            shown.join(", ")
        ))
        .with_hint("remove them (kaws never seals or reads through a link, FIFO or device), then run `kaws cluster seal`"));
    }
    let prefix = seal::cluster_prefix(cluster);
    let written: BTreeSet<String> = w
        .written
        .iter()
        .map(|p| match p.strip_prefix(repo.root()) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) if p.is_absolute() => p.to_string_lossy().into_owned(),
            Err(_) => format!("{prefix}{}", p.to_string_lossy()),
        })
        .collect();
    let seen_path = repo.seal_record(cluster);
    let seen = seen_path.as_deref().and_then(Seen::load);
    let mut generation = seen.as_ref().map_or(0, |s| s.generation);
    if let Some(check) = w.checked {
        let mut paths: Vec<&String> = check
            .walk
            .entries
            .keys()
            .chain(walk.entries.keys())
            .collect();
        paths.sort();
        paths.dedup();
        let moved: Vec<String> = paths
            .into_iter()
            .filter(|p| check.walk.entries.get(*p) != walk.entries.get(*p) && !written.contains(*p))
            .map(|p| crate::text::escape(p).into_owned())
            .collect();
        if !moved.is_empty() {
            return Err(Error::input(format!(
                "cluster {cluster}: not sealed: {} changed while `kaws {}` ran, and it did not write them",
                moved.join(", "),
                w.command
            ))
            .with_hint(format!(
                "review them, then run `kaws cluster seal {cluster}`"
            )));
        }
        if let (SealState::Valid, Some(b)) = (&check.report.state, &check.body) {
            generation = generation.max(b.generation);
            let docs = seal::documents(repo.root(), cluster, &walk);
            if !check.needs_approval() && b.files == walk.files() && b.documents == docs {
                return Ok(None);
            }
        }
    }
    let generation = generation.saturating_add(1);
    let aws = aws_for(&settings, &w.aws);
    let ca_path = dir.file(&layout::encrypted_key_name(anchor_stem(&settings)));
    let ca_blob = if w.ca_checked {
        None
    } else {
        Some(fsutil::read_ciphertext(&ca_path)?)
    };
    let documents = seal::documents(repo.root(), cluster, &walk);
    let files = walk.files();
    let (blob, body) = super::block_on(async {
        let config = crate::kms::load_config(&aws).await;
        let kms = crate::kms::AwsKms::new(&config);
        let sts = aws_sdk_sts::Client::new(&config);
        let ca_ctx = EncryptionContext::new(cluster, layout::key_name(anchor_stem(&settings)));
        let (named, who, ca) = futures::join!(
            kms.key_arn(&settings.kms_key_id, cluster),
            sts.get_caller_identity().send(),
            async {
                match &ca_blob {
                    Some(b) => {
                        use crate::kms::Sealer;
                        kms.reseal_keyed(&settings.kms_key_id, &ca_ctx, b)
                            .await
                            .map(|(_, source)| Some(source))
                    }
                    None => Ok(None),
                }
            }
        );
        let named = named?;
        if let Some(source) = ca? {
            if source != named {
                return Err(Error::input(format!(
                    "cluster {cluster}: not sealed: the settings name KMS key {} ({named}), but the cluster's keys are sealed under {source}; only `kaws cluster reencrypt` changes a cluster's KMS key",
                    settings.kms_key_id
                ))
                .with_hint(format!(
                    "restore {} from git (`git checkout -- {}`) and find out who changed it",
                    dir.settings().display(),
                    dir.settings().display()
                )));
            }
        }
        let sealed_by = match who {
            Ok(id) => id.arn.unwrap_or_else(|| "unknown".into()),
            Err(e) => {
                tracing::warn!("sts:GetCallerIdentity failed: {e}");
                "unknown (sts:GetCallerIdentity failed)".into()
            }
        };
        let body = Body {
            format: seal::FORMAT,
            cluster: cluster.to_string(),
            generation,
            sealed_at: seal::now_rfc3339(),
            sealed_by,
            command: w.command.to_string(),
            kms_key: named.clone(),
            documents,
            files,
        };
        let seal_ctx = ctx(cluster);
        let (blob, used) = kms
            .encrypt_keyed(&settings.kms_key_id, &seal_ctx, &body.authenticated_text())
            .await?;
        if used != named {
            return Err(Error::aws(format!(
                "KMS encrypted the seal under {used}, not under {named}, which the settings name; not sealed"
            ))
            .with_hint("an alias changed while kaws ran: run the command again"));
        }
        Ok::<_, Error>((blob, body))
    })??;
    let file = SealFile {
        authenticator: hex::encode(&blob),
        seal: body,
    };
    let bytes = file.to_json();
    let path = dir.file(seal::SEAL_FILE);
    fsutil::replace(&path, &bytes, Mode::Public)?;
    if let Some(p) = &seen_path {
        if let Err(e) = Seen::of(&file.seal).save(p) {
            tracing::warn!("could not record the seal this machine has made: {e}");
        }
    }
    Ok(Some(SealWritten {
        path,
        generation,
        files: file.seal.files.len(),
        bytes: bytes.len(),
        kms_key: file.seal.kms_key,
    }))
}
