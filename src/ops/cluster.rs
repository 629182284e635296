//! `kaws cluster init` and `kaws cluster reencrypt`.

use futures::future::try_join_all;

use crate::error::{Error, Result};
use crate::fsutil::{self, Mode, Staging};
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
    if dir.path().exists() {
        return Err(Error::conflict(format!("{}: the cluster already exists", dir.path().display()))
            .with_hint("kaws never overwrites a cluster; choose another name, or remove the directory if it is a leftover"));
    }
    let _lock = lock::acquire(&repo.lock_file(), &format!("cluster init {cluster}"))?;

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
        Ok(ClusterInitReport { path, files })
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
    let _lock = lock::acquire(&repo.lock_file(), &format!("cluster reencrypt {cluster}"))?;
    let mut settings = ClusterSettings::load(&dir.settings())?;
    let mut files = Vec::new();
    for spec in pki::CLUSTER_CERTS {
        let path = dir.file(&layout::encrypted_key_name(spec.stem));
        let blob = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
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
            async move { kms.reseal(new_key, &ctx, blob).await }
        }))
        .await?;
        let mut written = Vec::new();
        for ((_, path, _), blob) in files.iter().zip(&resealed) {
            fsutil::replace(path, blob, Mode::Public)?;
            written.push(path.display().to_string());
        }
        settings.kms_key_id = new_key.to_string();
        fsutil::replace(&dir.settings(), &settings.to_json(), Mode::Public)?;
        Ok(written)
    })?
}
