//! `kaws admin create|sign|install|list`: administrators' client
//! certificates, through the repository.
//!
//! The new administrator makes a key (sealed under their own KMS key) and a
//! CSR; a primary administrator verifies the CSR (signature, key strength,
//! name, and the fingerprint the administrator passed them out of band) and
//! signs it with the cluster CA, whose key is decrypted in memory only; the
//! administrator then installs the credentials into their kubeconfig.

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};
use crate::kms::{AwsOptions, EncryptionContext, Sealer};
use crate::kubeconfig;
use crate::layout::{self, AdminName, ClusterDir, ClusterName, Repo};
use crate::lock;
use crate::pki::{self, Ca, PrivateKey, Subject};
use crate::settings::{AdminKeyRecord, ClusterSettings, KeyAlgorithm};
use crate::x509;

pub(super) fn aws_for(settings: &ClusterSettings, aws: &AwsOptions) -> AwsOptions {
    let mut aws = aws.clone();
    if aws.region.is_none() {
        aws.region = Some(settings.region.clone());
    }
    aws
}

pub(super) fn open_cluster(
    repo: &Repo,
    cluster: &ClusterName,
) -> Result<(ClusterDir, ClusterSettings)> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    let settings = ClusterSettings::load(&dir.settings())?;
    if settings.cluster != cluster.as_str() {
        return Err(Error::input(format!(
            "{}: says it belongs to cluster {:?}",
            dir.settings().display(),
            settings.cluster
        ))
        .with_hint("restore the file from git; a cluster's settings must name the cluster"));
    }
    Ok((dir, settings))
}

/// Group names become O attributes; keep them printable and sane: no
/// control, bidi, invisible or separator character can hide in a prompt.
fn validate_group(g: &str) -> Result<()> {
    if g.is_empty() || g.len() > 64 || g.chars().any(crate::text::is_unsafe) {
        return Err(Error::input(format!("invalid group \"{}\"", crate::text::escape(&g.chars().take(80).collect::<String>())))
            .with_hint("give a Kubernetes group name such as system:masters or developers (1 to 64 printable characters)"));
    }
    Ok(())
}

/// An administrator has a few groups; a certificate with dozens is a
/// prompt nobody reads to the end.
pub const MAX_GROUPS: usize = 16;

fn validate_groups(groups: &[String]) -> Result<()> {
    if groups.len() > MAX_GROUPS {
        return Err(Error::input(format!(
            "{} groups asked for; an administrator may have at most {MAX_GROUPS}",
            groups.len()
        ))
        .with_hint(
            "give the administrator a few groups, and bind roles to those groups in the cluster",
        ));
    }
    for g in groups {
        validate_group(g)?;
    }
    Ok(())
}

/// Groups that carry the cluster's own powers: `system:masters` bypasses
/// all authorization, and every other `system:` group belongs to a
/// component (`system:nodes`, ...). The prompt shows them on their own line.
pub fn is_privileged_group(g: &str) -> bool {
    g.starts_with("system:")
}

pub struct AdminCreate {
    pub cluster: ClusterName,
    pub name: AdminName,
    pub kms_key: String,
    pub groups: Vec<String>,
    pub key_algorithm: Option<KeyAlgorithm>,
    pub aws: AwsOptions,
}

#[derive(Debug)]
pub struct AdminCreated {
    pub csr: PathBuf,
    pub key: PathBuf,
    pub record: PathBuf,
    pub fingerprint: String,
}

pub fn admin_create(repo: &Repo, opts: AdminCreate) -> Result<AdminCreated> {
    // The repository's .gitignore drops `*-key.pem` (a plaintext key must
    // never be committed), which would hide `<name>.pem` of such an admin.
    if opts.name.as_str().ends_with("-key") {
        return Err(Error::input(format!(
            "the administrator name {:?} ends in -key: its certificate, {}.pem, would match the repository's *-key.pem ignore rule and never be committed",
            opts.name.as_str(),
            opts.name
        ))
        .with_hint("choose a name that does not end in -key"));
    }
    crate::settings::validate_kms_key(&opts.kms_key)?;
    validate_groups(&opts.groups)?;
    let (dir, settings) = open_cluster(repo, &opts.cluster)?;
    let csr_path = dir.admin_csr(&opts.name);
    let key_path = dir.admin_key(&opts.name);
    let cert_path = dir.admin_cert(&opts.name);
    let record_path = dir.admin_key_record(&opts.name);
    for p in [&csr_path, &key_path, &cert_path, &record_path] {
        if fsutil::present(p) {
            return Err(Error::conflict(format!(
                "{}: administrator {} already exists in cluster {}",
                p.display(),
                opts.name,
                opts.cluster
            ))
            .with_hint("choose another name; to renew a certificate use `kaws admin sign --renew`; a leftover key without a CSR comes from an interrupted run and may be removed"));
        }
    }
    let _lock = lock::acquire(
        &repo.lock_file(&opts.cluster),
        &format!("admin create {} {}", opts.cluster, opts.name),
    )?;
    let alg = opts.key_algorithm.unwrap_or(settings.key_algorithm);
    let aws = aws_for(&settings, &opts.aws);
    super::block_on(async {
        let kms = super::kms(&aws).await;
        let (checked, key) = futures::join!(
            kms.check_key(&opts.kms_key, "the administrator's key"),
            async { PrivateKey::generate(alg) }
        );
        let arn = checked?;
        let key = key?;
        let csr = crate::der::csr(&key, &Subject::for_admin(opts.name.as_str(), &opts.groups))?;
        let ctx = EncryptionContext::new(&opts.cluster, layout::key_name(opts.name.as_str()));
        let blob = kms.seal(&opts.kms_key, &ctx, &key.to_secret()).await?;
        let fingerprint = pki::fingerprint(&key.public_key_der());
        drop(key);
        let record = AdminKeyRecord {
            kms_key: opts.kms_key.clone(),
            kms_key_arn: arn,
        };
        // The key first, the CSR last: a CSR is only ever there with its key.
        fsutil::write_new(&key_path, &blob, Mode::Public)?;
        let rest =
            fsutil::write_new(&record_path, &record.to_json(), Mode::Public).and_then(|_| {
                fsutil::write_new(&csr_path, csr.as_bytes(), Mode::Public).inspect_err(|_| {
                    let _ = std::fs::remove_file(&record_path);
                })
            });
        if let Err(e) = rest {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        Ok(AdminCreated {
            csr: csr_path,
            key: key_path,
            record: record_path,
            fingerprint,
        })
    })?
}

/// What the signer is shown before deciding.
#[derive(Debug, Clone)]
pub struct SignPrompt {
    pub cluster: String,
    pub name: String,
    /// Groups without special powers.
    pub groups: Vec<String>,
    /// `system:` groups, shown apart (see [`is_privileged_group`]).
    pub privileged: Vec<String>,
    /// On `--renew`, the groups of the current certificate (when the
    /// cluster CA signed it), to show what changes.
    pub previous_groups: Option<Vec<String>>,
    pub fingerprint: String,
    pub key: String,
    pub days: u32,
    pub renew: bool,
}

pub struct AdminSign<'a> {
    pub cluster: ClusterName,
    pub name: AdminName,
    pub days: u32,
    pub fingerprint: Option<String>,
    pub renew: bool,
    pub aws: AwsOptions,
    /// Asked once everything is verified; `false` stops with nothing written.
    pub confirm: &'a mut dyn FnMut(&SignPrompt) -> bool,
}

pub fn normalize_fingerprint(s: &str) -> Result<String> {
    let f: String = s
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if f.len() != 64 || !f.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::input(format!(
            "invalid fingerprint {:?}",
            s.chars().take(100).collect::<String>()
        ))
        .with_hint("give the 64 hex digits `kaws admin create` printed"));
    }
    Ok(f)
}

pub fn admin_sign(repo: &Repo, opts: AdminSign<'_>) -> Result<PathBuf> {
    if opts.days == 0 || opts.days > 3650 {
        return Err(
            Error::input(format!("invalid --days {}", opts.days)).with_hint("give 1 to 3650 days")
        );
    }
    let expected = opts
        .fingerprint
        .as_deref()
        .map(normalize_fingerprint)
        .transpose()?;
    let (dir, settings) = open_cluster(repo, &opts.cluster)?;
    let csr_path = dir.admin_csr(&opts.name);
    let cert_path = dir.admin_cert(&opts.name);
    if !fsutil::present(&csr_path) {
        return Err(Error::input(format!("{}: no such CSR", csr_path.display())).with_hint(format!(
            "the administrator runs `kaws admin create {} {} --kms-key ...` and commits the result first",
            opts.cluster, opts.name
        )));
    }
    if fsutil::present(&cert_path) && !opts.renew {
        return Err(Error::conflict(format!(
            "{}: administrator {} already has a certificate",
            cert_path.display(),
            opts.name
        ))
        .with_hint("pass --renew to issue a new certificate for the same key"));
    }
    // The CA first: a renewal trusts the current certificate only if the
    // CA signed it, and ca.pem must hold exactly the one CA.
    let ca_pem_path = dir.file(&layout::cert_name(pki::CA.stem));
    let ca_pem_bytes = x509::read_pem_file(&ca_pem_path)?;
    let ca_der = x509::decode_pem(&ca_pem_bytes, "CERTIFICATE", &ca_pem_path)?;
    let ca_pem = String::from_utf8(ca_pem_bytes)
        .map_err(|_| Error::input(format!("{}: not a PEM file", ca_pem_path.display())))?;
    let csr = x509::verify_csr(&x509::read_csr_file(&csr_path)?, &csr_path)?;
    if csr.common_name != opts.name.as_str() {
        return Err(Error::input(format!(
            "{}: the CSR is for \"{}\", not for {}",
            csr_path.display(),
            crate::text::escape(&csr.common_name),
            opts.name
        ))
        .with_hint(format!(
            "ask {} to run `kaws admin create` again",
            opts.name
        )));
    }
    if let Some(expected) = &expected {
        if *expected != csr.fingerprint {
            return Err(Error::input(format!(
                "{}: the key's fingerprint is {}, not the {expected} you were given",
                csr_path.display(),
                csr.fingerprint
            ))
            .with_hint("do not sign: the CSR is not the one the administrator made; ask them, through another channel, what happened"));
        }
    }
    validate_groups(&csr.organizations).map_err(|e| e.in_file(&csr_path))?;
    if opts.renew && fsutil::present(&cert_path) && expected.is_none() {
        // A renewal keeps the key. A CSR with another key is a new request
        // in an existing name: only the fingerprint from its owner vouches for it.
        // The current certificate is a committed file too: its key counts
        // only if the cluster CA signed it.
        let current = x509::parse_cert(&x509::read_pem_file(&cert_path)?, &cert_path)?;
        if !x509::issued_by(&current.der, &ca_der) {
            return Err(Error::input(format!(
                "{}: the current certificate is not signed by the cluster CA, so it cannot vouch for the CSR's key",
                cert_path.display()
            ))
            .with_hint(format!("do not sign: restore {} from git and find out who changed it; a renewal with a new key needs --fingerprint, checked with the administrator through another channel", cert_path.display())));
        }
        if current.fingerprint != csr.fingerprint {
            return Err(Error::input(format!(
                "{}: the CSR's key ({}) is not the key of the current certificate ({})",
                csr_path.display(),
                csr.fingerprint,
                current.fingerprint
            ))
            .with_hint("a renewal with a new key needs --fingerprint, checked with the administrator through another channel"));
        }
    }
    // On a renewal, the groups of the current certificate, if the CA signed
    // it, so the prompt can show what the new one adds or drops.
    let previous_groups = if opts.renew && fsutil::present(&cert_path) {
        x509::read_pem_file(&cert_path)
            .and_then(|b| x509::parse_cert(&b, &cert_path))
            .ok()
            .filter(|c| x509::issued_by(&c.der, &ca_der))
            .map(|c| c.organizations)
    } else {
        None
    };
    let prompt = SignPrompt {
        previous_groups,
        cluster: opts.cluster.to_string(),
        name: opts.name.to_string(),
        groups: csr
            .organizations
            .iter()
            .filter(|g| !is_privileged_group(g))
            .cloned()
            .collect(),
        privileged: csr
            .organizations
            .iter()
            .filter(|g| is_privileged_group(g))
            .cloned()
            .collect(),
        fingerprint: csr.fingerprint.clone(),
        key: csr.key_description.clone(),
        days: opts.days,
        renew: opts.renew,
    };
    if !(opts.confirm)(&prompt) {
        return Err(Error::input("signing cancelled; nothing was written"));
    }
    let _lock = lock::acquire(
        &repo.lock_file(&opts.cluster),
        &format!("admin sign {} {}", opts.cluster, opts.name),
    )?;
    let aws = aws_for(&settings, &opts.aws);
    let cert_pem = super::block_on(async {
        let kms = super::kms(&aws).await;
        // The CA's key: in KMS (kms:Sign, no decryption) or decrypted.
        let signer = super::cluster_ca_signer(&kms, &dir, &settings).await?;
        let ca = Ca::new(&ca_pem, &signer)?;
        let subject = Subject::for_admin(&csr.common_name, &csr.organizations);
        ca.sign_admin(&subject, &csr.spki_der, opts.days, csr.is_rsa)
            .await
    })??;
    if opts.renew {
        fsutil::replace(&cert_path, cert_pem.as_bytes(), Mode::Public)?;
    } else {
        fsutil::write_new(&cert_path, cert_pem.as_bytes(), Mode::Public)?;
    }
    Ok(cert_path)
}

pub struct AdminInstall {
    pub cluster: ClusterName,
    pub name: AdminName,
    pub kubeconfig: Option<PathBuf>,
    pub server: Option<String>,
    pub aws: AwsOptions,
    /// How kubectl gets the credential.
    pub mode: InstallMode,
}

/// What `admin install` writes into the kubeconfig.
#[derive(Debug, Clone)]
pub enum InstallMode {
    /// An exec entry: kubectl runs `<kaws> admin credential ...` on each call.
    Exec {
        /// The kaws binary kubectl will run (an absolute path).
        kaws: PathBuf,
    },
    /// The decrypted key itself, in the file (`--embed`).
    Embed,
}

/// The exec entry for `name` of `cluster`: the repository and the binary
/// by absolute path (kubectl runs it from whatever directory it is in), the
/// profile and region the install was given, so kubectl reaches KMS as the
/// install did.
pub fn exec_plugin(
    kaws: &std::path::Path,
    repo: &Repo,
    cluster: &ClusterName,
    name: &AdminName,
    aws: &AwsOptions,
) -> Result<kubeconfig::ExecPlugin> {
    let text = |p: &std::path::Path, what: &str| {
        p.to_str().map(str::to_string).ok_or_else(|| {
            Error::input(format!(
                "{}: the path of {what} is not UTF-8, so a kubeconfig cannot name it",
                p.display()
            ))
            .with_hint("move it to a path of UTF-8 characters, or pass --embed")
        })
    };
    let command = text(kaws, "the kaws binary")?;
    let root =
        std::path::absolute(repo.root()).map_err(|e| Error::io("resolve", repo.root(), e))?;
    let mut args = vec![
        "admin".to_string(),
        "credential".into(),
        cluster.to_string(),
        name.to_string(),
        "--repository".into(),
        text(&root, "the repository")?,
    ];
    if let Some(r) = &aws.region {
        args.extend(["--region".to_string(), r.clone()]);
    }
    let env = aws
        .profile
        .iter()
        .map(|p| ("AWS_PROFILE".to_string(), p.clone()))
        .collect();
    Ok(kubeconfig::ExecPlugin {
        command,
        args,
        env,
        install_hint: format!(
            "kubectl runs {} to get {name}'s credential for cluster {cluster}; if it moved, run `kaws admin install {cluster} {name}` again (in {})",
            kaws.display(),
            root.display()
        ),
    })
}

/// Where the credentials went, and what existing entries of that
/// kubeconfig changed (shown to the user, never silently).
#[derive(Debug)]
pub struct AdminInstalled {
    pub path: PathBuf,
    pub notes: Vec<String>,
}

pub fn admin_install(repo: &Repo, opts: AdminInstall) -> Result<AdminInstalled> {
    let material = super::credential::AdminMaterial::load(repo, &opts.cluster, &opts.name)?;
    let dir = repo.cluster(&opts.cluster);
    let ca_path = dir.file(&layout::cert_name(pki::CA.stem));
    let ca_pem = x509::read_pem_file(&ca_path)?;
    x509::parse_cert(&ca_pem, &ca_path)?;
    let server = match &opts.server {
        Some(s) => {
            if !(s.starts_with("https://") || s.starts_with("http://"))
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::input(format!("invalid --server {s:?}"))
                    .with_hint("give a URL such as https://kubernetes.example.com"));
            }
            s.clone()
        }
        None => format!(
            "https://kubernetes.{}",
            material.settings.domain.trim_end_matches('.')
        ),
    };
    let plugin = match &opts.mode {
        InstallMode::Exec { kaws } => Some(exec_plugin(
            kaws,
            repo,
            &opts.cluster,
            &opts.name,
            &opts.aws,
        )?),
        InstallMode::Embed => None,
    };
    let path = kubeconfig::default_path(opts.kubeconfig.as_deref())?;
    let aws = material.aws(&opts.aws);
    let notes = super::block_on(async {
        let kms = super::kms(&aws).await;
        // Decrypted even for an exec entry: an entry the plugin would
        // refuse is not written.
        let secret = material.open_key(&kms).await?;
        let user = format!("{}-{}", opts.name, opts.cluster);
        let credentials = match &plugin {
            Some(p) => {
                drop(secret);
                kubeconfig::Credentials::Exec(p)
            }
            None => kubeconfig::Credentials::Embedded {
                cert_pem: &material.cert_pem,
                key_pem: secret.expose(),
            },
        };
        let notes = kubeconfig::merge(
            &path,
            &kubeconfig::Entry {
                cluster: opts.cluster.as_str(),
                server: &server,
                ca_pem: &ca_pem,
                user: &user,
                credentials,
            },
        )?;
        Ok::<_, Error>(notes)
    })??;
    Ok(AdminInstalled { path, notes })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// A CSR waits for a primary administrator.
    Requested,
    Signed,
    Expired,
    /// A key without a CSR: an interrupted `admin create`.
    Incomplete,
    /// A file that does not parse or verify.
    Invalid,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminStatus {
    pub name: String,
    pub groups: Vec<String>,
    pub state: AdminState,
    pub expires: Option<String>,
    pub fingerprint: Option<String>,
    pub problem: Option<String>,
}

pub fn admin_list(repo: &Repo, cluster: &ClusterName) -> Result<Vec<AdminStatus>> {
    let (dir, _) = open_cluster(repo, cluster)?;
    let now = OffsetDateTime::now_utc();
    // A certificate counts as signed only if the cluster CA signed it: a
    // committer can put any self-signed certificate under any name.
    let ca_path = dir.file(&layout::cert_name(pki::CA.stem));
    let ca_der =
        x509::read_pem_file(&ca_path).and_then(|b| x509::decode_pem(&b, "CERTIFICATE", &ca_path));
    let mut out = Vec::new();
    for name in dir.admins()? {
        let csr_path = dir.admin_csr(&name);
        let cert_path = dir.admin_cert(&name);
        let mut st = AdminStatus {
            name: name.to_string(),
            groups: vec![],
            state: AdminState::Incomplete,
            expires: None,
            fingerprint: None,
            problem: None,
        };
        if fsutil::present(&cert_path) {
            match x509::read_pem_file(&cert_path).and_then(|b| x509::parse_cert(&b, &cert_path)) {
                Ok(c) if !ca_der.as_ref().is_ok_and(|ca| x509::issued_by(&c.der, ca)) => {
                    st.groups = c.organizations;
                    st.fingerprint = Some(c.fingerprint);
                    st.state = AdminState::Invalid;
                    st.problem = Some(match &ca_der {
                        Ok(_) => format!(
                            "{}: not signed by the cluster CA; do not trust it, restore it from git",
                            cert_path.display()
                        ),
                        Err(e) => format!("cannot be checked: {}", e.message()),
                    });
                }
                Ok(c) => {
                    st.groups = c.organizations;
                    st.expires = Some(c.not_after.date().to_string());
                    st.fingerprint = Some(c.fingerprint);
                    st.state = if c.not_after < now {
                        AdminState::Expired
                    } else {
                        AdminState::Signed
                    };
                }
                Err(e) => {
                    st.state = AdminState::Invalid;
                    st.problem = Some(e.message().to_string());
                }
            }
        } else if fsutil::present(&csr_path) {
            match x509::read_csr_file(&csr_path).and_then(|b| x509::verify_csr(&b, &csr_path)) {
                Ok(c) => {
                    st.groups = c.organizations;
                    st.fingerprint = Some(c.fingerprint);
                    st.state = AdminState::Requested;
                }
                Err(e) => {
                    st.state = AdminState::Invalid;
                    st.problem = Some(e.message().to_string());
                }
            }
        } else {
            st.problem = Some(format!(
                "{} has no CSR: left by an interrupted `kaws admin create`",
                dir.admin_key(&name).display()
            ));
        }
        out.push(st);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_entry_names_binary_repository_profile_and_region() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(layout::MARKER), "{}").unwrap();
        let repo = Repo::at(dir.path()).unwrap();
        let c = ClusterName::parse("prod").unwrap();
        let n = AdminName::parse("alice").unwrap();
        let kaws = std::path::Path::new("/usr/local/bin/kaws");
        let plain = exec_plugin(kaws, &repo, &c, &n, &AwsOptions::default()).unwrap();
        assert_eq!(plain.command, "/usr/local/bin/kaws");
        let root = dir.path().to_str().unwrap();
        assert_eq!(
            plain.args,
            ["admin", "credential", "prod", "alice", "--repository", root]
        );
        assert!(plain.env.is_empty());
        let aws = AwsOptions {
            profile: Some("ops".into()),
            region: Some("eu-west-1".into()),
        };
        let with = exec_plugin(kaws, &repo, &c, &n, &aws).unwrap();
        assert_eq!(with.args[6..], ["--region", "eu-west-1"]);
        assert_eq!(with.env, [("AWS_PROFILE".to_string(), "ops".to_string())]);
    }
}
