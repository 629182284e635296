//! `kaws cluster init` and `kaws cluster reencrypt`.

use std::collections::BTreeMap;

use futures::future::try_join_all;

use crate::bootstrap_token;
use crate::encryption;
use crate::error::{Error, Result};
use crate::fsutil::{self, Staging};
use crate::kms::{AwsOptions, EncryptionContext, Sealer};
use crate::layout::{self, ClusterName, Repo};
use crate::lock;
use crate::ops::repo::RepoConfig;
use crate::pki::{self, Ca, CertSpec, Material, PrivateKey, Subject};
use crate::secret::Secret;
use crate::settings::{CaKey, ClusterSettings};
use crate::signer::{CaSigner, KmsSigner};
use crate::terraform;

pub struct ClusterInit {
    /// The settings to record; `region` may be empty, in which case the AWS
    /// configuration's region (AWS_REGION, the profile) is used.
    pub settings: ClusterSettings,
    pub aws: AwsOptions,
    /// Where the CA keys live; `kms` for a new cluster.
    pub ca_key: CaKey,
    /// With `kms`: existing KMS keys to use, by CA stem (the others are
    /// created).
    pub ca_kms_keys: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct ClusterInitReport {
    pub path: std::path::PathBuf,
    pub files: Vec<String>,
    /// The module source written into main.tf.json (from kaws.json).
    pub module_source: String,
}

/// What one row made: the secret to seal (none for a CA whose key lives
/// in KMS), and the public file beside it (a certificate, a public key,
/// or nothing for the encryption configuration).
struct Made {
    spec: &'static CertSpec,
    secret: Option<Secret>,
    public: Option<String>,
}

/// Generate every key of the table kaws holds, in parallel: RSA generation
/// dominates the command's time and the keys are independent. None for a
/// row that is no key pair, and for a CA whose key lives in KMS.
fn generate_keys(settings: &ClusterSettings, cas_in_kms: bool) -> Result<Vec<Option<PrivateKey>>> {
    let alg = settings.key_algorithm;
    std::thread::scope(|s| {
        let handles: Vec<_> = pki::CLUSTER_CERTS
            .iter()
            .map(|spec| {
                let pair = spec.is_key_pair() && !(spec.is_ca && cas_in_kms);
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

/// Every certificate of the table. Each CA signs through its signer: its
/// generated key (`sealed`) or its KMS key (`kms`, one of `kms_signers`
/// per CA row, in table order); the signatures are asked concurrently.
async fn make_pki(
    settings: &ClusterSettings,
    mut keys: Vec<Option<PrivateKey>>,
    kms_signers: Vec<KmsSigner>,
) -> Result<Vec<Made>> {
    let rsa = settings.key_algorithm.is_rsa();
    let missing = || Error::input("key generation failed");
    let mut kms_signers = kms_signers.into_iter();
    let mut signers: Vec<(&'static CertSpec, CaSigner)> = Vec::new();
    for (spec, key) in pki::CLUSTER_CERTS.iter().zip(keys.iter_mut()) {
        if spec.is_ca {
            let signer = match key.take() {
                Some(k) => CaSigner::local(k, layout::encrypted_key_name(spec.stem))?,
                None => CaSigner::Kms(kms_signers.next().ok_or_else(missing)?),
            };
            signers.push((spec, signer));
        }
    }
    // Every CA first (the table puts each before the rows it signs), then
    // each leaf signed by its own CA.
    let ca_pems = try_join_all(signers.iter().map(|(spec, signer)| async move {
        let subject = Subject::for_cluster(spec, settings)?;
        pki::self_signed(spec, &subject, signer, rsa).await
    }))
    .await?;
    let mut cas = Vec::new();
    for ((spec, signer), pem) in signers.iter().zip(&ca_pems) {
        cas.push(Ca::of(spec, pem, signer)?);
    }
    let cas = &cas;
    let leaves = try_join_all(
        pki::CLUSTER_CERTS
            .iter()
            .zip(&keys)
            .filter(|(s, _)| !s.is_ca)
            .map(|(spec, key)| async move {
                let (secret, public) = match (spec.material, key) {
                    (Material::EncryptionConfig, _) => (encryption::new_config(), None),
                    (Material::BootstrapToken, _) => (bootstrap_token::new_token(), None),
                    (_, None) => return Err(missing()),
                    (Material::Certificate, Some(key)) => {
                        let ca = cas
                            .iter()
                            .find(|c| c.row.stem == spec.issuer)
                            .ok_or_else(missing)?;
                        let subject = Subject::for_cluster(spec, settings)?;
                        let pem = ca
                            .sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)
                            .await?;
                        (key.to_secret(), Some(pem))
                    }
                    (Material::KeyPair, Some(key)) => (key.to_secret(), Some(key.public_key_pem())),
                };
                Ok(Made {
                    spec,
                    secret: Some(secret),
                    public,
                })
            }),
    )
    .await?;
    let mut made: Vec<Made> = signers
        .iter()
        .zip(ca_pems)
        .map(|((spec, signer), pem)| Made {
            spec,
            secret: signer.local_key().map(PrivateKey::to_secret),
            public: Some(pem),
        })
        .collect();
    made.extend(leaves);
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
        &mut settings,
        &opts.aws,
        &repo_cfg.terraform_source,
        dir,
        opts.ca_key,
        &opts.ca_kms_keys,
    );
    // A refused init leaves nothing behind, not even the lock of a
    // cluster that does not exist.
    if made.is_err() {
        lock.release_refused();
    }
    made
}

fn block_on_cluster_init(
    settings: &mut ClusterSettings,
    aws: &AwsOptions,
    source: &str,
    dir: layout::ClusterDir,
    ca_key: CaKey,
    given: &BTreeMap<String, String>,
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
        let cluster = ClusterName::parse(&settings.cluster)?;
        let cas_in_kms = ca_key == CaKey::Kms;
        let alg = settings.key_algorithm;
        // Generate keys while KMS answers whether the cluster's key and
        // every CA key given with --ca-kms-key are usable: a wrong key is
        // refused before any key is created or anything written.
        let (checked, given_signers, keys) = futures::join!(
            kms.check_key(&settings.kms_key_id, "the cluster keys"),
            try_join_all(pki::cas().filter_map(|spec| {
                let key = given.get(spec.stem)?;
                let kms = &kms;
                let cluster = &cluster;
                Some(async move {
                    let what = ca_what(spec, cluster);
                    let signer = kms.ca_signer(key, alg, &what).await?;
                    Ok::<_, Error>((spec.stem, signer))
                })
            })),
            async { generate_keys(settings, cas_in_kms) }
        );
        checked?;
        let mut given_signers = given_signers?;
        let keys = keys?;

        // The CA keys kaws creates (kms, not given); any failure from here
        // on schedules their deletion, as nothing is written.
        let mut created: Vec<(&'static str, String)> = Vec::new();
        let result = async {
            if cas_in_kms {
                let missing: Vec<&'static CertSpec> =
                    pki::cas().filter(|s| !given.contains_key(s.stem)).collect();
                // Concurrently; every key that was made is recorded before
                // the first failure is returned, so that it is let go.
                let made = futures::future::join_all(missing.iter().map(|spec| {
                    let kms = &kms;
                    let cluster = &cluster;
                    async move {
                        kms.create_ca_key(cluster, spec.stem, spec.purpose, alg)
                            .await
                            .map(|arn| (spec.stem, arn))
                    }
                }))
                .await;
                let mut failed = None;
                for m in made {
                    match m {
                        Ok(c) => created.push(c),
                        Err(e) => failed = failed.or(Some(e)),
                    }
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                let more = try_join_all(created.iter().map(|(stem, arn)| {
                    let kms = &kms;
                    let cluster = &cluster;
                    async move {
                        let spec = pki::spec(stem).ok_or_else(|| Error::input("no such CA"))?;
                        let signer = kms.ca_signer(arn, alg, &ca_what(spec, cluster)).await?;
                        Ok::<_, Error>((*stem, signer))
                    }
                }))
                .await?;
                given_signers.extend(more);
            }
            // In table order.
            let mut signers = Vec::new();
            for spec in pki::cas() {
                if let Some(at) = given_signers.iter().position(|(s, _)| *s == spec.stem) {
                    signers.push(given_signers.swap_remove(at));
                }
            }
            let mut recorded = settings.clone();
            if cas_in_kms {
                recorded.ca_key = CaKey::Kms;
                recorded.ca_kms_keys = signers
                    .iter()
                    .map(|(stem, s)| (stem.to_string(), s.key_id.clone()))
                    .collect();
                recorded.validate()?;
            }
            let made = make_pki(settings, keys, signers.into_iter().map(|(_, s)| s).collect()).await?;
            tracing::info!(keys = made.len(), algorithm = %settings.key_algorithm, ca_key = ca_key.as_str(), "generated the cluster's keys and certificates");

            // Every key is sealed before anything is written, concurrently.
            let sealed = try_join_all(made.iter().map(|m| {
                let ctx = EncryptionContext::new(&cluster, layout::key_name(m.spec.stem));
                let kms = &kms;
                let key_id = settings.kms_key_id.clone();
                async move {
                    match &m.secret {
                        Some(secret) => kms.seal(&key_id, &ctx, secret).await.map(Some),
                        None => Ok(None),
                    }
                }
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
            put(layout::SETTINGS_FILE.to_string(), &recorded.to_json())?;
            put(
                layout::ENTRY_POINT_FILE.to_string(),
                terraform::entry_point(&recorded, source).as_bytes(),
            )?;
            put(
                layout::PKI_VARS_FILE.to_string(),
                terraform::pki_vars().as_bytes(),
            )?;
            for (m, blob) in made.iter().zip(&sealed) {
                if let (Some(name), Some(public)) = (public_file_name(m.spec), &m.public) {
                    put(name, public.as_bytes())?;
                }
                if let Some(blob) = blob {
                    put(layout::encrypted_key_name(m.spec.stem), blob)?;
                }
            }
            drop(made);
            let path = staging.commit()?;
            *settings = recorded;
            Ok(ClusterInitReport {
                path,
                files,
                module_source: source.to_string(),
            })
        }
        .await;
        if result.is_err() {
            for (stem, arn) in &created {
                let alias = crate::kms::ca_key_alias(&cluster, stem);
                kms.discard_key(arn, Some(&alias)).await;
            }
        }
        result
    })?
}

/// A CA's KMS key in words, for errors: "the cluster certificate
/// authority of cluster prod".
pub(crate) fn ca_what(spec: &CertSpec, cluster: &ClusterName) -> String {
    let purpose = spec.purpose.split(" (").next().unwrap_or(spec.purpose);
    format!("the {purpose} of cluster {cluster}")
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
    // A CA key that lives in KMS has no ciphertext to move: it is its own
    // KMS key, and stays where it is.
    for spec in pki::CLUSTER_CERTS
        .iter()
        .filter(|s| settings.ca_kms_key(s.stem).is_none())
    {
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
        // With the CA keys in KMS, the settings' key is that anchor.
        let (ca_source, anchor) = match settings.ca_key {
            crate::settings::CaKey::Sealed => (
                resealed.first().map(|(_, s)| s.clone()).unwrap_or_default(),
                "ca-key.pem.encrypted".to_string(),
            ),
            crate::settings::CaKey::Kms => (
                kms.key_arn(&settings.kms_key_id, cluster).await?,
                format!("the key {} names", layout::SETTINGS_FILE),
            ),
        };
        for ((_, path, _), (_, source)) in files.iter().zip(&resealed) {
            if *source != ca_source {
                return Err(Error::input(format!(
                    "{}: sealed under KMS key {source}, not under {ca_source}, which seals {anchor}: kaws did not seal this key",
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
        // A CA whose key lives in KMS has only its certificate.
        if spec.is_ca && settings.ca_kms_key(spec.stem).is_some() {
            if !fsutil::present(&public) {
                return Err(Error::input(format!(
                    "{}: missing: the {} is the certificate of a KMS key",
                    public.display(),
                    spec.purpose
                ))
                .with_hint("restore it from git"));
            }
            present.push((
                spec,
                Some((crate::x509::read_pem_file(&public)?, Vec::new())),
            ));
            continue;
        }
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
        // With `sealed` CA keys the anchor is the KMS key that sealed
        // ca-key.pem.encrypted (the settings must name it); with CA keys in
        // KMS there is no such file, and the settings' key is the anchor.
        let (mut ca_key, sealing_key) = match settings.ca_key {
            crate::settings::CaKey::Sealed => {
                let (k, s) = super::open_ca(&kms, &dir, &settings).await?;
                (Some(k), s)
            }
            crate::settings::CaKey::Kms => {
                (None, kms.key_arn(&settings.kms_key_id, cluster).await?)
            }
        };
        let anchor_file = if ca_key.is_some() {
            "ca-key.pem.encrypted".to_string()
        } else {
            format!("{} (the settings' kms_key_id)", layout::SETTINGS_FILE)
        };
        let sealed_by_cluster_key = |path: &std::path::Path, key_id: &str| -> Result<()> {
            if key_id == sealing_key {
                return Ok(());
            }
            Err(Error::input(format!(
                "{}: sealed under KMS key {key_id}, not under {sealing_key}, named by {anchor_file}: kaws did not seal this key",
                path.display()
            ))
            .with_hint(format!(
                "restore it from git and find out who changed it, or run `kaws cluster renew {cluster} --new-keys`"
            )))
        };
        // The CAs: in KMS, decrypted when the cluster has them, made when
        // it does not. Whichever, each signs through its signer.
        let mut ca_keys: Vec<(&'static CertSpec, CaSigner, String, bool)> = Vec::new();
        for (spec, have) in present.iter().filter(|(s, _)| s.is_ca) {
            let path = dir.file(&layout::encrypted_key_name(spec.stem));
            let pem_of = |pem: &Vec<u8>| {
                String::from_utf8(pem.clone()).map_err(|_| {
                    Error::input(format!(
                        "{}: not a PEM file",
                        dir.file(&layout::cert_name(spec.stem)).display()
                    ))
                })
            };
            if let Some(signer) = super::kms_ca_signer(&kms, &dir, &settings, spec).await? {
                let pem = have.as_ref().map(|(p, _)| p).ok_or_else(|| {
                    Error::input(format!("{}: missing", layout::cert_name(spec.stem)))
                })?;
                ca_keys.push((spec, signer, pem_of(pem)?, false));
                continue;
            }
            match have {
                Some((pem, _)) if spec.stem == pki::CA.stem => {
                    let key = ca_key
                        .take()
                        .ok_or_else(|| Error::input("the cluster CA's key was not opened"))?;
                    let signer = CaSigner::local(key, layout::encrypted_key_name(spec.stem))?;
                    ca_keys.push((spec, signer, pem_of(pem)?, false));
                }
                Some((pem, blob)) => {
                    let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
                    let opened = kms.open_expecting(&ctx, blob, Some(&sealing_key)).await?;
                    sealed_by_cluster_key(&path, &opened.key_id)?;
                    let key = PrivateKey::from_secret(&opened.secret, &path.display().to_string())?;
                    drop(opened.secret);
                    let signer = CaSigner::local(key, layout::encrypted_key_name(spec.stem))?;
                    ca_keys.push((spec, signer, pem_of(pem)?, false));
                }
                None => {
                    let key = PrivateKey::generate(settings.key_algorithm)?;
                    let signer = CaSigner::local(key, layout::encrypted_key_name(spec.stem))?;
                    let pem = pki::self_signed(
                        spec,
                        &Subject::for_cluster(spec, &settings)?,
                        &signer,
                        rsa,
                    )
                    .await?;
                    ca_keys.push((spec, signer, pem, true));
                }
            }
        }
        let mut cas = Vec::new();
        for (spec, signer, pem, _) in &ca_keys {
            cas.push(Ca::of(spec, pem, signer)?);
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
            if spec.material == Material::BootstrapToken {
                // A new token with --new-keys; the old one's Secret stays in
                // kube-system until an administrator deletes it
                // (docs/concepts/security.md).
                if have.is_none() || opts.new_keys {
                    fresh_secrets.push((spec, bootstrap_token::new_token()));
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
                        let pem = ca
                            .sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)
                            .await?;
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
            let pem = ca
                .sign(spec, &subject, key.key_pair(), spec.lifetime_days, rsa)
                .await?;
            certs.push((layout::cert_name(spec.stem), pem.into_bytes()));
        }
        // New CA keys and new leaf keys, sealed together.
        let new_cas = ca_keys
            .iter()
            .filter(|(_, _, _, new)| *new)
            .filter_map(|(spec, signer, _, _)| signer.local_key().map(|k| (*spec, k.to_secret())));
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
    // A CA whose key lives in KMS has no key file. Settings that do not
    // load are reported by whatever reads them next.
    let settings = ClusterSettings::load(&dir.settings()).ok();
    let in_kms = |stem: &str| {
        settings
            .as_ref()
            .is_some_and(|s| s.ca_kms_key(stem).is_some())
    };
    let missing: Vec<&'static CertSpec> = pki::CLUSTER_CERTS
        .iter()
        .filter(|s| {
            public_file_name(s).is_some_and(|n| !dir.file(&n).exists())
                || (!in_kms(s.stem) && !dir.file(&layout::encrypted_key_name(s.stem)).exists())
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
