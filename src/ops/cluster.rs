//! `kaws cluster init` and `kaws cluster reencrypt`.

use futures::future::try_join_all;

use crate::encryption;
use crate::error::{Error, Result};
use crate::fsutil::{self, Staging};
use crate::kms::{AwsOptions, EncryptionContext, Sealer};
use crate::layout::{self, ClusterName, Repo};
use crate::lock;
use crate::ops::repo::RepoConfig;
use crate::pki::{self, Ca, CertSpec, Material, PrivateKey, Subject};
use crate::secret::Secret;
use crate::settings::ClusterSettings;
use crate::terraform;

pub struct ClusterInit {
    /// The settings to record; `region` may be empty, in which case the AWS
    /// configuration's region (AWS_REGION, the profile) is used.
    pub settings: ClusterSettings,
    pub aws: AwsOptions,
}

#[derive(Debug)]
pub struct ClusterInitReport {
    pub path: std::path::PathBuf,
    pub files: Vec<String>,
    /// The module source written into main.tf.json (from kaws.json).
    pub module_source: String,
}

/// What one row made: the secret to seal, and the public file beside it
/// (a certificate, a public key, or nothing for the encryption
/// configuration).
struct Made {
    spec: &'static CertSpec,
    secret: Secret,
    public: Option<String>,
}

/// Generate every key of the table, in parallel: RSA generation dominates
/// the command's time and the keys are independent. None for a row that
/// is no key pair.
fn generate_keys(settings: &ClusterSettings) -> Result<Vec<Option<PrivateKey>>> {
    let alg = settings.key_algorithm;
    std::thread::scope(|s| {
        let handles: Vec<_> = pki::CLUSTER_CERTS
            .iter()
            .map(|spec| {
                let pair = spec.is_key_pair();
                s.spawn(move || pair.then(|| PrivateKey::generate(alg)).transpose())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::input("key generation failed")))
            })
            .collect()
    })
}

fn make_pki(settings: &ClusterSettings) -> Result<Vec<Made>> {
    let rsa = settings.key_algorithm.is_rsa();
    let keys = generate_keys(settings)?;
    let missing = || Error::input("key generation failed");
    // Every CA first (the table puts each before the rows it signs), then
    // each leaf signed by its own CA.
    let mut ca_pems = Vec::new();
    for (spec, key) in pki::CLUSTER_CERTS.iter().zip(&keys) {
        if spec.is_ca {
            let key = key.as_ref().ok_or_else(missing)?;
            let pem = pki::self_signed(spec, &Subject::for_cluster(spec, settings)?, key, rsa)?;
            ca_pems.push((spec, pem, key));
        }
    }
    let mut cas = Vec::new();
    for (spec, pem, key) in &ca_pems {
        cas.push(Ca::of(spec, pem, key)?);
    }
    let mut made = Vec::new();
    for (spec, key) in pki::CLUSTER_CERTS.iter().zip(&keys) {
        let (secret, public) = match (spec.material, key) {
            (Material::EncryptionConfig, _) => (encryption::new_config(), None),
            (_, None) => return Err(missing()),
            (_, Some(key)) if spec.is_ca => {
                let pem = ca_pems
                    .iter()
                    .find(|(s, _, _)| s.stem == spec.stem)
                    .map(|(_, p, _)| p.clone());
                (key.to_secret(), pem)
            }
            (Material::Certificate, Some(key)) => {
                let ca = cas
                    .iter()
                    .find(|c| c.row.stem == spec.issuer)
                    .ok_or_else(missing)?;
                let subject = Subject::for_cluster(spec, settings)?;
                let pem = ca.sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)?;
                (key.to_secret(), Some(pem))
            }
            (Material::KeyPair, Some(key)) => (key.to_secret(), Some(key.public_key_pem())),
        };
        made.push(Made {
            spec,
            secret,
            public,
        });
    }
    Ok(made)
}

pub fn cluster_init(repo: &Repo, opts: ClusterInit) -> Result<ClusterInitReport> {
    let mut settings = opts.settings;
    let cluster = ClusterName::parse(&settings.cluster)?;
    let repo_cfg = RepoConfig::load(&repo.marker())?;
    let dir = repo.cluster(&cluster);
    if fsutil::present(dir.path()) {
        return Err(Error::conflict(format!("{}: the cluster already exists", dir.path().display()))
            .with_hint("kaws never overwrites a cluster; choose another name, or remove the directory if it is a leftover"));
    }
    let lock = lock::acquire(
        &repo.lock_file(&cluster),
        &format!("cluster init {cluster}"),
    )?;

    let made = block_on_cluster_init(
        repo,
        &mut settings,
        &opts.aws,
        &repo_cfg.terraform_source,
        dir,
    );
    // A refused init leaves nothing behind, not even the lock of a
    // cluster that does not exist.
    if made.is_err() {
        lock.release_refused();
    }
    made
}

fn block_on_cluster_init(
    _repo: &Repo,
    settings: &mut ClusterSettings,
    aws: &AwsOptions,
    source: &str,
    dir: layout::ClusterDir,
) -> Result<ClusterInitReport> {
    super::block_on(async {
        let mut aws = aws.clone();
        if !settings.region.is_empty() {
            aws.region = Some(settings.region.clone());
        }
        let config = crate::kms::load_config(&aws).await;
        if settings.region.is_empty() {
            settings.region = config.region().map(|r| r.to_string()).ok_or_else(|| {
                Error::input("no AWS region given")
                    .with_hint("pass --region, or set AWS_REGION or a region in your AWS profile")
            })?;
        }
        settings.validate()?;
        let kms = crate::kms::AwsKms::new(&config);
        // Generate keys while KMS answers whether the key is usable.
        let (checked, made) = futures::join!(
            kms.check_key(&settings.kms_key_id, "the cluster keys"),
            async { make_pki(settings) }
        );
        checked?;
        let made = made?;
        tracing::info!(keys = made.len(), algorithm = %settings.key_algorithm, "generated the cluster's keys and certificates");
        let cluster = ClusterName::parse(&settings.cluster)?;

        // Every key is sealed before anything is written, concurrently.
        let sealed = try_join_all(made.iter().map(|m| {
            let ctx = EncryptionContext::new(&cluster, layout::key_name(m.spec.stem));
            let kms = &kms;
            let key_id = settings.kms_key_id.clone();
            async move { kms.seal(&key_id, &ctx, &m.secret).await }
        }))
        .await?;

        let clusters = dir.path().parent().unwrap_or(dir.path());
        std::fs::create_dir_all(clusters).map_err(|e| Error::io("create", clusters, e))?;
        let staging = Staging::new(dir.path())?;
        let mut files = Vec::new();
        let mut put = |name: String, bytes: &[u8]| -> Result<()> {
            staging.write(&name, bytes)?;
            files.push(name);
            Ok(())
        };
        put(layout::SETTINGS_FILE.to_string(), &settings.to_json())?;
        put(
            layout::ENTRY_POINT_FILE.to_string(),
            terraform::entry_point(settings, source).as_bytes(),
        )?;
        put(
            layout::PKI_VARS_FILE.to_string(),
            terraform::pki_vars().as_bytes(),
        )?;
        for (m, blob) in made.iter().zip(&sealed) {
            if let (Some(name), Some(public)) = (public_file_name(m.spec), &m.public) {
                put(name, public.as_bytes())?;
            }
            put(layout::encrypted_key_name(m.spec.stem), blob)?;
        }
        drop(made);
        let path = staging.commit()?;
        Ok(ClusterInitReport {
            path,
            files,
            module_source: source.to_string(),
        })
    })?
}

/// `kaws cluster reencrypt`: move every cluster key to another KMS key.
pub fn cluster_reencrypt(
    repo: &Repo,
    cluster: &ClusterName,
    new_key: &str,
    aws: &AwsOptions,
) -> Result<Vec<String>> {
    crate::settings::validate_kms_key(new_key)?;
    let dir = repo.cluster(cluster);
    dir.require()?;
    let _lock = lock::acquire(
        &repo.lock_file(cluster),
        &format!("cluster reencrypt {cluster}"),
    )?;
    let mut settings = ClusterSettings::load(&dir.settings())?;
    let mut files = Vec::new();
    for spec in pki::CLUSTER_CERTS {
        let path = dir.file(&layout::encrypted_key_name(spec.stem));
        let blob = fsutil::read_ciphertext(&path)?;
        files.push((spec, path, blob));
    }
    let mut aws = aws.clone();
    if aws.region.is_none() {
        aws.region = Some(settings.region.clone());
    }
    super::block_on(async {
        let kms = super::kms(&aws).await;
        kms.check_key(new_key, "the cluster keys").await?;
        // All ciphertexts are re-sealed before any file is replaced.
        let resealed = try_join_all(files.iter().map(|(spec, _, blob)| {
            let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
            let kms = &kms;
            async move { kms.reseal_keyed(new_key, &ctx, blob).await }
        }))
        .await?;
        // Every key must come from the key that seals the CA's: a key a
        // committer sealed under a key of hers would otherwise be laundered
        // under the cluster's new key (her key policy may allow ReEncrypt).
        let ca_source = resealed.first().map(|(_, s)| s.clone()).unwrap_or_default();
        for ((_, path, _), (_, source)) in files.iter().zip(&resealed) {
            if *source != ca_source {
                return Err(Error::input(format!(
                    "{}: sealed under KMS key {source}, not under {ca_source}, which seals ca-key.pem.encrypted: kaws did not seal this key",
                    path.display()
                ))
                .with_hint(format!(
                    "nothing was written; restore it from git and find out who changed it, or replace the key with `kaws cluster renew {cluster} --new-keys`"
                )));
            }
        }
        let resealed: Vec<Vec<u8>> = resealed.into_iter().map(|(b, _)| b).collect();
        let mut written = Vec::new();
        let rewrite = fsutil::Rewrite::new(dir.path())?;
        for ((spec, path, _), blob) in files.iter().zip(&resealed) {
            rewrite.write(&layout::encrypted_key_name(spec.stem), blob)?;
            written.push(path.display().to_string());
        }
        settings.kms_key_id = new_key.to_string();
        rewrite.write(layout::SETTINGS_FILE, &settings.to_json())?;
        // Every ciphertext and the settings change in one atomic swap.
        rewrite.commit()?;
        Ok(written)
    })?
}

pub struct ClusterRenew {
    pub cluster: ClusterName,
    /// Generate new key pairs instead of keeping the current ones.
    pub new_keys: bool,
    pub aws: AwsOptions,
}

/// `kaws cluster renew`: re-issue every certificate of the cluster but the
/// CAs' from their CAs, keeping the keys unless `new_keys`. Rows of the
/// table the cluster does not have yet (a cluster made by an older kaws,
/// before the etcd CA) are created: a CA with a new key, a leaf with a new
/// key signed by its CA; main.tf.json is then written again so Terraform passes
/// the new files on. All the new files appear in one atomic swap of the
/// cluster directory.
///
/// The certificates being renewed are committed files anyone may replace,
/// so a kept key's public key comes from the sealed private key, never
/// from the old certificate; an old certificate for another key is
/// refused. Every CA key is opened as `open_ca` opens the cluster CA's:
/// sealed under the KMS key that seals `ca-key.pem.encrypted`, which the
/// settings must name. Every key, kept or new, is sealed under that key.
#[expect(
    clippy::expect_used,
    reason = "the table test holds every issuer to a CA row, the cluster CA first"
)]
pub fn cluster_renew(repo: &Repo, opts: ClusterRenew) -> Result<Vec<String>> {
    let dir = repo.cluster(&opts.cluster);
    dir.require()?;
    let _lock = lock::acquire(
        &repo.lock_file(&opts.cluster),
        &format!("cluster renew {}", opts.cluster),
    )?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let rsa = settings.key_algorithm.is_rsa();
    let cluster = &opts.cluster;

    // What the cluster has of each row, (public file, encrypted key):
    // None when the row is new to it.
    type Pair = (Vec<u8>, Vec<u8>);
    let mut present: Vec<(&'static CertSpec, Option<Pair>)> = Vec::new();
    for spec in pki::CLUSTER_CERTS {
        let key = dir.file(&layout::encrypted_key_name(spec.stem));
        // A row with nothing public pairs its key with itself.
        let public = public_file_name(spec).map_or_else(|| key.clone(), |n| dir.file(&n));
        let has_public = public_file_name(spec).is_some();
        // Present means anything there, a link too: read without following
        // (M1), a link is refused rather than taken for a missing file.
        let have = match (fsutil::present(&public), fsutil::present(&key)) {
            (true, true) => {
                let p = if has_public {
                    crate::x509::read_pem_file(&public)?
                } else {
                    Vec::new()
                };
                let k = fsutil::read_ciphertext(&key)?;
                Some((p, k))
            }
            (false, false) if spec.stem != pki::CA.stem => None,
            (p, _) => {
                let (there, gone) = if p { (&public, &key) } else { (&key, &public) };
                return Err(Error::input(format!(
                    "{}: missing, but {} is there",
                    gone.display(),
                    there.display()
                ))
                .with_hint(
                    "restore the missing file from git; kaws never replaces half of a pair",
                ));
            }
        };
        present.push((spec, have));
    }
    let created: Vec<&'static str> = present
        .iter()
        .filter(|(_, h)| h.is_none())
        .map(|(s, _)| s.stem)
        .collect();

    let mut aws = opts.aws.clone();
    if aws.region.is_none() {
        aws.region = Some(settings.region.clone());
    }
    let (certs, sealed) = super::block_on(async {
        let kms = super::kms(&aws).await;
        // The cluster CA's key, opened as every command opens it: the KMS
        // key that sealed it is the cluster's (the settings must name it),
        // and every other key must be sealed under it too (C2).
        let (ca_key, sealing_key) = super::open_ca(&kms, &dir, &settings).await?;
        let sealed_by_cluster_key = |path: &std::path::Path, key_id: &str| -> Result<()> {
            if key_id == sealing_key {
                return Ok(());
            }
            Err(Error::input(format!(
                "{}: sealed under KMS key {key_id}, not under {sealing_key}, which seals ca-key.pem.encrypted: kaws did not seal this key",
                path.display()
            ))
            .with_hint(format!(
                "restore it from git and find out who changed it, or run `kaws cluster renew {cluster} --new-keys`"
            )))
        };
        // The CAs: decrypted when the cluster has them, made when it does not.
        let mut ca_key = Some(ca_key);
        let mut ca_keys: Vec<(&'static CertSpec, PrivateKey, String, bool)> = Vec::new();
        for (spec, have) in present.iter().filter(|(s, _)| s.is_ca) {
            let path = dir.file(&layout::encrypted_key_name(spec.stem));
            match have {
                Some((pem, _)) if spec.stem == pki::CA.stem => {
                    let key = ca_key.take().expect("the cluster CA is the first CA row");
                    let pem = String::from_utf8(pem.clone())
                        .map_err(|_| Error::input(format!("{}: not a PEM file", path.display())))?;
                    ca_keys.push((spec, key, pem, false));
                }
                Some((pem, blob)) => {
                    let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
                    let opened = kms.open_expecting(&ctx, blob, Some(&sealing_key)).await?;
                    sealed_by_cluster_key(&path, &opened.key_id)?;
                    let key = PrivateKey::from_secret(&opened.secret, &path.display().to_string())?;
                    drop(opened.secret);
                    let pem = String::from_utf8(pem.clone())
                        .map_err(|_| Error::input(format!("{}: not a PEM file", path.display())))?;
                    ca_keys.push((spec, key, pem, false));
                }
                None => {
                    let key = PrivateKey::generate(settings.key_algorithm)?;
                    let pem =
                        pki::self_signed(spec, &Subject::for_cluster(spec, &settings)?, &key, rsa)?;
                    ca_keys.push((spec, key, pem, true));
                }
            }
        }
        let mut cas = Vec::new();
        for (spec, key, pem, _) in &ca_keys {
            cas.push(Ca::of(spec, pem, key)?);
        }
        let mut certs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut fresh: Vec<(&'static CertSpec, PrivateKey)> = Vec::new();
        // New secrets that are no key pair: the encryption configuration.
        let mut fresh_secrets: Vec<(&'static CertSpec, Secret)> = Vec::new();
        // Leaves whose key is kept: (row, current certificate, ciphertext, CA).
        let mut kept: Vec<(&'static CertSpec, &Vec<u8>, &Vec<u8>, &Ca)> = Vec::new();
        for (spec, _, pem, new) in &ca_keys {
            if *new {
                certs.push((layout::cert_name(spec.stem), pem.clone().into_bytes()));
            }
        }
        for (spec, have) in present.iter().filter(|(s, _)| !s.is_ca) {
            if spec.material == Material::EncryptionConfig {
                // Re-keying keeps the old keys after the new one, so
                // Secrets written before stay readable.
                match (have, opts.new_keys) {
                    (None, _) => fresh_secrets.push((spec, encryption::new_config())),
                    (Some((_, blob)), true) => {
                        let path = dir.file(&layout::encrypted_key_name(spec.stem));
                        let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
                        let opened = kms.open_expecting(&ctx, blob, Some(&sealing_key)).await?;
                        sealed_by_cluster_key(&path, &opened.key_id)?;
                        let next = encryption::rotate(&opened.secret, &path.display().to_string())?;
                        fresh_secrets.push((spec, next));
                    }
                    (Some(_), false) => {}
                }
                continue;
            }
            let ca = cas
                .iter()
                .find(|c| c.row.stem == spec.issuer)
                .expect("the table test holds every issuer to a CA row");
            let keep = if opts.new_keys { None } else { have.as_ref() };
            match keep {
                None => {
                    let key = PrivateKey::generate(settings.key_algorithm)?;
                    if spec.has_certificate() {
                        let subject = Subject::for_cluster(spec, &settings)?;
                        let pem =
                            ca.sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)?;
                        certs.push((layout::cert_name(spec.stem), pem.into_bytes()));
                    } else if let Some(name) = public_file_name(spec) {
                        certs.push((name, key.public_key_pem().into_bytes()));
                    }
                    fresh.push((spec, key));
                }
                // A bare key pair has nothing to re-issue.
                Some(_) if !spec.has_certificate() => {}
                Some((pem, blob)) => kept.push((*spec, pem, blob, ca)),
            }
        }
        // Kept keys: each public key comes from the sealed private key, never
        // from the committed certificate (C1), and each key must be sealed
        // under the key that seals the CA's (C2).
        let opened = try_join_all(kept.iter().map(|(spec, _, blob, _)| {
            let kms = &kms;
            let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
            let sealing_key = &sealing_key;
            async move { kms.open_expecting(&ctx, blob, Some(sealing_key)).await }
        }))
        .await?;
        for ((spec, current, _, ca), opened) in kept.iter().zip(opened) {
            let key_path = dir.file(&layout::encrypted_key_name(spec.stem));
            sealed_by_cluster_key(&key_path, &opened.key_id)?;
            let key = PrivateKey::from_secret(&opened.secret, &key_path.display().to_string())?;
            drop(opened.secret);
            let cert_path = dir.file(&layout::cert_name(spec.stem));
            if let Ok(current) = crate::x509::parse_cert(current, &cert_path) {
                if current.spki_der != key.public_key_der() {
                    return Err(Error::input(format!(
                        "{}: its public key is not the one sealed in {}",
                        cert_path.display(),
                        layout::encrypted_key_name(spec.stem)
                    ))
                    .with_hint(format!(
                        "restore it from git (and find out who changed it) or run `kaws cluster renew {cluster} --new-keys`"
                    )));
                }
            }
            let subject = Subject::for_cluster(spec, &settings)?;
            let pem = ca.sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)?;
            certs.push((layout::cert_name(spec.stem), pem.into_bytes()));
        }
        // New CA keys and new leaf keys, sealed together.
        let new_cas = ca_keys
            .iter()
            .filter(|(_, _, _, new)| *new)
            .map(|(spec, key, _, _)| (*spec, key.to_secret()));
        let to_seal: Vec<(&'static CertSpec, Secret)> = new_cas
            .chain(fresh.iter().map(|(s, k)| (*s, k.to_secret())))
            .chain(fresh_secrets)
            .collect();
        let sealed = try_join_all(to_seal.iter().map(|(spec, secret)| {
            let kms = &kms;
            let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
            let key_id = sealing_key.clone();
            async move {
                let blob = kms.seal(&key_id, &ctx, secret).await?;
                Ok::<_, Error>((layout::encrypted_key_name(spec.stem), blob))
            }
        }))
        .await?;
        Ok::<_, Error>((certs, sealed))
    })??;
    let rewrite = fsutil::Rewrite::new(dir.path())?;
    let mut written = Vec::new();
    for (name, bytes) in certs.iter().chain(sealed.iter()) {
        rewrite.write(name, bytes)?;
        written.push(name.clone());
    }
    // The entry point and the table's maps of an older cluster do not pass
    // the new files on, and an older kaws wrote the entry point as HCL
    // main.tf: renew writes what this kaws writes.
    let old_entry = dir.file(layout::OLD_ENTRY_POINT_FILE);
    if !created.is_empty()
        || std::fs::symlink_metadata(&old_entry).is_ok()
        || !fsutil::present(&dir.pki_vars())
    {
        let source = RepoConfig::load(&repo.marker())?.terraform_source;
        rewrite.write(
            layout::ENTRY_POINT_FILE,
            terraform::entry_point(&settings, &source).as_bytes(),
        )?;
        written.push(layout::ENTRY_POINT_FILE.to_string());
        if rewrite.remove(layout::OLD_ENTRY_POINT_FILE)? {
            tracing::warn!(
                "replaced {} with {}, the entry point this kaws writes",
                old_entry.display(),
                dir.entry_point().display()
            );
        }
        rewrite.write(layout::PKI_VARS_FILE, terraform::pki_vars().as_bytes())?;
        written.push(layout::PKI_VARS_FILE.to_string());
    }
    if !created.is_empty() {
        tracing::info!(rows = ?created, "created what the cluster did not have yet");
    }
    rewrite.commit()?;
    Ok(written)
}

/// The public half of a row (see [`layout::public_file_name`]).
pub(crate) fn public_file_name(spec: &CertSpec) -> Option<String> {
    layout::public_file_name(spec)
}

/// Rows of the table a cluster lacks (it was made by an older kaws), as an
/// error that says what to run. `plan` and `apply` use it, so Terraform
/// never fails on a file the entry point names but the cluster does not have.
pub fn require_every_row(dir: &layout::ClusterDir) -> Result<()> {
    let missing: Vec<&'static CertSpec> = pki::CLUSTER_CERTS
        .iter()
        .filter(|s| {
            public_file_name(s).is_some_and(|n| !dir.file(&n).exists())
                || !dir.file(&layout::encrypted_key_name(s.stem)).exists()
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let c = dir.name();
    let names: Vec<String> = missing
        .iter()
        .map(|s| {
            let file = public_file_name(s).unwrap_or_else(|| layout::encrypted_key_name(s.stem));
            format!("{file} ({})", s.purpose)
        })
        .collect();
    Err(Error::input(format!(
        "{}: the cluster has no {}: it was made by an older kaws, or a file was removed",
        dir.path().display(),
        names.join(", "),
    ))
    .with_hint(format!(
        "run `kaws cluster renew {c}` to create what is missing (it rewrites main.tf.json too; it refuses if only half of a pair is missing: restore that from git), commit, then `kaws cluster apply {c}`"
    )))
}
