//! `kaws cluster init` and `kaws cluster reencrypt`.

use futures::future::try_join_all;

use crate::error::{Error, Result};
use crate::fsutil::{self, Staging};
use crate::kms::{AwsOptions, EncryptionContext, Sealer};
use crate::layout::{self, ClusterName, Repo};
use crate::lock;
use crate::ops::repo::RepoConfig;
use crate::pki::{self, Ca, CertSpec, PrivateKey, Subject};
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
    /// The module source written into main.tf (from kaws.json).
    pub module_source: String,
}

/// A generated key with its certificate (if its row has one).
struct Made {
    spec: &'static CertSpec,
    key: PrivateKey,
    cert_pem: Option<String>,
}

/// Generate every key of the table, in parallel: RSA generation dominates
/// the command's time and the keys are independent.
fn generate_keys(settings: &ClusterSettings) -> Result<Vec<PrivateKey>> {
    let alg = settings.key_algorithm;
    std::thread::scope(|s| {
        let handles: Vec<_> = pki::CLUSTER_CERTS
            .iter()
            .map(|_| s.spawn(move || PrivateKey::generate(alg)))
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
    let mut keys = generate_keys(settings)?.into_iter();
    let ca_key = keys.next().expect("the table starts with the CA");
    let ca_pem = pki::self_signed(
        &pki::CA,
        &Subject::for_cluster(&pki::CA, settings)?,
        &ca_key,
        rsa,
    )?;
    let mut made = Vec::new();
    {
        let ca = Ca::new(&ca_pem, &ca_key)?;
        for (spec, key) in pki::CLUSTER_CERTS[1..].iter().zip(keys) {
            let cert_pem = if spec.has_certificate {
                let subject = Subject::for_cluster(spec, settings)?;
                Some(ca.sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)?)
            } else {
                None
            };
            made.push(Made {
                spec,
                key,
                cert_pem,
            });
        }
    }
    made.insert(
        0,
        Made {
            spec: &pki::CA,
            key: ca_key,
            cert_pem: Some(ca_pem),
        },
    );
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
    let _lock = lock::acquire(
        &repo.lock_file(&cluster),
        &format!("cluster init {cluster}"),
    )?;

    block_on_cluster_init(
        repo,
        &mut settings,
        &opts.aws,
        &repo_cfg.terraform_source,
        dir,
    )
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
            async move {
                let plaintext = m.key.to_secret();
                kms.seal(&key_id, &ctx, &plaintext).await
            }
        }))
        .await?;

        std::fs::create_dir_all(dir.path().parent().expect("clusters dir"))
            .map_err(|e| Error::io("create", dir.path(), e))?;
        let staging = Staging::new(dir.path())?;
        let mut files = Vec::new();
        let mut put = |name: String, bytes: &[u8]| -> Result<()> {
            staging.write(&name, bytes)?;
            files.push(name);
            Ok(())
        };
        put(layout::SETTINGS_FILE.to_string(), &settings.to_json())?;
        put(
            "main.tf".to_string(),
            terraform::entry_point(settings, source).as_bytes(),
        )?;
        for (m, blob) in made.iter().zip(&sealed) {
            match &m.cert_pem {
                Some(pem) => put(layout::cert_name(m.spec.stem), pem.as_bytes())?,
                None => put(
                    format!("{}.pub", m.spec.stem),
                    m.key.public_key_pem().as_bytes(),
                )?,
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
/// CA's from the existing CA, keeping the keys unless `new_keys`. All the
/// new files appear in one atomic swap of the cluster directory.
///
/// The certificates being renewed are committed files anyone may replace,
/// so a kept key's public key comes from the sealed private key, never
/// from the old certificate; an old certificate for another key is
/// refused. Every key, kept or new, is sealed under the KMS key that seals
/// the CA's, which the settings must name (see `open_ca`).
pub fn cluster_renew(repo: &Repo, opts: ClusterRenew) -> Result<Vec<String>> {
    let dir = repo.cluster(&opts.cluster);
    dir.require()?;
    let _lock = lock::acquire(
        &repo.lock_file(&opts.cluster),
        &format!("cluster renew {}", opts.cluster),
    )?;
    let settings = ClusterSettings::load(&dir.settings())?;
    let rsa = settings.key_algorithm.is_rsa();
    let ca_cert_path = dir.file(&layout::cert_name(pki::CA.stem));
    let ca_pem = String::from_utf8(crate::x509::read_pem_file(&ca_cert_path)?)
        .map_err(|_| Error::input(format!("{}: not a PEM file", ca_cert_path.display())))?;
    let leaves: Vec<&'static CertSpec> = pki::CLUSTER_CERTS.iter().filter(|s| !s.is_ca).collect();
    // The kept keys' ciphertexts, read before any KMS call.
    let mut kept = Vec::new();
    if !opts.new_keys {
        for spec in leaves.iter().filter(|s| s.has_certificate) {
            let path = dir.file(&layout::encrypted_key_name(spec.stem));
            kept.push((*spec, fsutil::read_ciphertext(&path)?));
        }
    }
    let mut aws = opts.aws.clone();
    if aws.region.is_none() {
        aws.region = Some(settings.region.clone());
    }
    let cluster = &opts.cluster;
    let (certs, sealed) = super::block_on(async {
        let kms = super::kms(&aws).await;
        let (ca_key, sealing_key) = super::open_ca(&kms, &dir, &settings).await?;
        let ca = Ca::new(&ca_pem, &ca_key)?;
        let mut certs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut fresh: Vec<(&'static CertSpec, PrivateKey)> = Vec::new();
        if opts.new_keys {
            for spec in &leaves {
                let key = PrivateKey::generate(settings.key_algorithm)?;
                if spec.has_certificate {
                    let subject = Subject::for_cluster(spec, &settings)?;
                    let pem = ca.sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)?;
                    certs.push((layout::cert_name(spec.stem), pem.into_bytes()));
                } else {
                    certs.push((
                        format!("{}.pub", spec.stem),
                        key.public_key_pem().into_bytes(),
                    ));
                }
                fresh.push((spec, key));
            }
        } else {
            let opened = try_join_all(kept.iter().map(|(spec, blob)| {
                let kms = &kms;
                let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
                let sealing_key = &sealing_key;
                async move { kms.open_expecting(&ctx, blob, Some(sealing_key)).await }
            }))
            .await?;
            for ((spec, _), opened) in kept.iter().zip(opened) {
                let key_path = dir.file(&layout::encrypted_key_name(spec.stem));
                if opened.key_id != sealing_key {
                    return Err(Error::input(format!(
                        "{}: sealed under KMS key {}, not under {sealing_key}, which seals ca-key.pem.encrypted: kaws did not seal this key",
                        key_path.display(),
                        opened.key_id
                    ))
                    .with_hint(format!(
                        "restore it from git and find out who changed it, or run `kaws cluster renew {cluster} --new-keys`"
                    )));
                }
                let key = PrivateKey::from_secret(&opened.secret, &key_path.display().to_string())?;
                drop(opened.secret);
                let cert_path = dir.file(&layout::cert_name(spec.stem));
                let current = crate::x509::read_pem_file(&cert_path)
                    .and_then(|b| crate::x509::parse_cert(&b, &cert_path));
                if let Ok(current) = current {
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
        }
        let sealed = try_join_all(fresh.iter().map(|(spec, key)| {
            let kms = &kms;
            let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
            let key_id = sealing_key.clone();
            async move {
                let blob = kms.seal(&key_id, &ctx, &key.to_secret()).await?;
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
    rewrite.commit()?;
    Ok(written)
}
