//! `kaws cluster check`: verify a cluster's PKI the way kubeadm's
//! `certs check-expiration` reports it, and more.
//!
//! Every certificate of the table must parse, chain to the cluster CA and
//! carry the usages and names its row asks for; every encrypted key must
//! decrypt under its context (unless offline) and match its certificate;
//! no plaintext private key may sit anywhere in the repository; every
//! administrator is reported with its state. The table drives all of it.
//!
//! Online, the health of every KMS key involved is reported too: the
//! cluster's key and each administrator's (from `<admin>.kms.json`), with
//! DescribeKey. A cluster key that is disabled, pending deletion or gone
//! fails the check: the cluster's keys cannot be used, and once the key is
//! deleted they are lost. An administrator's key in that state is a warning
//! for that administrator.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::bootstrap_token;
use crate::encryption;
use crate::error::{Error, ErrorKind, Result};
use crate::fsutil::{self, TEMP_PREFIX};
use crate::kms::{AwsKms, AwsOptions, EncryptionContext, KeyHealth};
use crate::layout::{self, AdminName, ClusterName, Repo};
use crate::pki::{self, CertSpec, ExtUsage, KeyUsage, Material, PrivateKey, Sans};
use crate::settings::{AdminKeyRecord, ClusterSettings};
use crate::x509;

/// Certificates closer than this to their end are reported as warnings.
pub const WARN_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    /// Valid, but close to its end, or a note that needs attention.
    Warning,
    /// A certificate request not signed yet.
    Requested,
    Expired,
    Invalid,
    /// A plaintext private key in the repository.
    Exposed,
}

impl State {
    pub fn is_failure(self) -> bool {
        matches!(self, State::Expired | State::Invalid | State::Exposed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The certificate (or file) this is about.
    pub name: String,
    pub kind: &'static str,
    pub expires: Option<String>,
    /// Whole days left (negative once expired).
    pub residual_days: Option<i64>,
    pub ca: Option<String>,
    pub state: State,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub cluster: String,
    pub offline: bool,
    /// Set when KMS could not be asked (unreachable, credentials, access
    /// denied, throttled): the keys were not checked, which says nothing
    /// about the PKI. The command then exits 5, not 6, unless the PKI has
    /// a problem of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_error: Option<KmsError>,
    /// The seal's state and what differs from it (also a finding).
    pub seal: Option<super::seal::SealReport>,
    pub findings: Vec<Finding>,
    /// The health of the cluster's KMS key and of each administrator's
    /// (empty with --offline).
    pub kms_keys: Vec<KmsKeyFinding>,
    /// With --offline, what could not be checked beyond the sealed keys
    /// (which "offline" says): each CA key held by KMS.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
}

/// Why the keys could not be checked, and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct KmsError {
    pub message: String,
    pub hint: Option<String>,
}

impl CheckReport {
    pub fn failed(&self) -> bool {
        self.failures() > 0
    }

    /// How many findings and keys fail the check.
    pub fn failures(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.state.is_failure())
            .count()
            + self.kms_keys.iter().filter(|k| k.failed).count()
    }
}

/// One KMS key's health, and whose key it is.
#[derive(Debug, Clone, Serialize)]
pub struct KmsKeyFinding {
    /// `cluster`, or the administrator's name.
    pub owner: String,
    /// `cluster` or `admin`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub health: KeyHealth,
    /// Whether this fails the check (only the cluster's key can).
    pub failed: bool,
    pub problem: Option<String>,
}

impl KmsKeyFinding {
    fn new(owner: &str, kind: &'static str, health: KeyHealth) -> Self {
        let refuses = health.state.refuses();
        let problem = match (refuses, kind) {
            (true, "cluster") => Some(format!(
                "the cluster's keys cannot be decrypted while the key is {}: {}",
                health.describe(),
                health.remedy()
            )),
            (true, "ca") => Some(format!(
                "the CA of {owner}.pem cannot sign any certificate while its key is {}: {}",
                health.describe(),
                health.remedy()
            )),
            (true, _) => Some(format!(
                "{owner} cannot use the cluster while the key is {}: {}",
                health.describe(),
                health.remedy()
            )),
            (false, _) => health.detail.clone(),
        };
        KmsKeyFinding {
            owner: owner.to_string(),
            kind,
            failed: refuses && (kind == "cluster" || kind == "ca"),
            health,
            problem,
        }
    }
}

/// The account of a KMS key ARN (`arn:<partition>:kms:<region>:<account>:key/...`).
fn arn_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && parts[2] == "kms").then(|| parts[4])
}

/// Why `ca_key` is not in the account of `cluster_key` (both ARNs), if so.
/// A key named by id or alias has no account to compare.
fn foreign_account(ca_key: &str, cluster_key: &str) -> Option<String> {
    let (a, b) = (arn_account(ca_key)?, arn_account(cluster_key)?);
    (a != b).then(|| {
        format!(
            "{ca_key} is a key of account {a}, but the cluster key {cluster_key} is in account {b}"
        )
    })
}

/// The cluster's key and every administrator's key, described concurrently
/// (at most 16 requests in flight).
async fn key_health(
    kms: &AwsKms,
    dir: &layout::ClusterDir,
    settings: &ClusterSettings,
) -> Result<Vec<KmsKeyFinding>> {
    use futures::stream::{self, StreamExt};
    // Each owner's key id, or why it is not known.
    type Wanted = (String, &'static str, std::result::Result<String, String>);
    let mut wanted: Vec<Wanted> =
        vec![("cluster".into(), "cluster", Ok(settings.kms_key_id.clone()))];
    // Each CA's own key, when the CA keys live in KMS.
    for ca in pki::cas() {
        if let Some(key) = settings.ca_kms_key(ca.stem) {
            wanted.push((ca.stem.to_string(), "ca", Ok(key.to_string())));
        }
    }
    for name in dir.admins()? {
        if !fsutil::present(&dir.admin_key(&name)) {
            continue;
        }
        let record = dir.admin_key_record(&name);
        let key = match AdminKeyRecord::load(&record) {
            Ok(Some(r)) => Ok(r.kms_key_arn),
            Ok(None) => Err(format!(
                "not recorded: {name} was created before kaws recorded the key in {}",
                record.file_name().unwrap_or_default().to_string_lossy()
            )),
            Err(e) => Err(e.message().to_string()),
        };
        wanted.push((name.to_string(), "admin", key));
    }
    let found = stream::iter(wanted.into_iter().map(|(owner, kind, key)| async move {
        let health = match key {
            Ok(k) => kms.key_health(&k).await,
            Err(why) => KeyHealth {
                key: "-".into(),
                arn: None,
                state: crate::kms::KeyState::Unknown,
                aws_state: None,
                deletion_date: None,
                detail: Some(why),
            },
        };
        KmsKeyFinding::new(&owner, kind, health)
    }))
    .buffered(16)
    .collect::<Vec<_>>()
    .await;
    Ok(found)
}

/// The cluster CA, parsed once and shared by every check.
struct CaInfo<'a> {
    cert: X509Certificate<'a>,
    name: String,
}

fn finding(name: impl Into<String>, kind: &'static str) -> Finding {
    Finding {
        name: name.into(),
        kind,
        expires: None,
        residual_days: None,
        ca: None,
        state: State::Ok,
        problems: vec![],
    }
}

impl Finding {
    fn fail(&mut self, state: State, problem: impl Into<String>) {
        self.state = self.state.max(state);
        self.problems.push(problem.into());
    }
}

/// What the table says a certificate must contain, compared with what it
/// does contain.
fn check_cert(
    f: &mut Finding,
    cert: &X509Certificate<'_>,
    spec: &CertSpec,
    expected_cn: Option<&str>,
    sans: &(Vec<String>, Vec<IpAddr>),
    ca: &CaInfo<'_>,
    now: OffsetDateTime,
) {
    let not_after = cert.validity().not_after.to_datetime();
    f.expires = Some(not_after.date().to_string());
    let residual = (not_after - now).whole_days();
    f.residual_days = Some(residual);
    f.ca = Some(ca.name.clone());
    if not_after < now {
        f.fail(State::Expired, format!("expired on {}", not_after.date()));
    } else if cert.validity().not_before.to_datetime() > now + time::Duration::minutes(10) {
        f.fail(State::Invalid, "not valid yet: check the clock");
    } else if residual < WARN_DAYS {
        f.fail(State::Warning, expiry_warning(residual));
    }
    // The chain: the CA's key must have signed it.
    if cert.verify_signature(Some(ca.cert.public_key())).is_err() {
        f.fail(State::Invalid, format!("not signed by {}", ca.name));
    }
    if cert.issuer().as_raw() != ca.cert.subject().as_raw() {
        f.fail(
            State::Invalid,
            format!("its issuer is not the subject of {}", ca.name),
        );
    }
    if let Some(cn) = expected_cn {
        let got = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok());
        if got != Some(cn) {
            f.fail(
                State::Invalid,
                format!("CN is {:?}, expected {cn:?}", got.unwrap_or("")),
            );
        }
    }
    let is_ca = cert.basic_constraints().ok().flatten().map(|b| b.value.ca);
    match (spec.signs(), is_ca) {
        (true, Some(true)) | (false, Some(false)) => {}
        (true, _) => f.fail(State::Invalid, "basicConstraints must say CA:TRUE"),
        (false, _) => f.fail(
            State::Invalid,
            "basicConstraints must be present and say CA:FALSE",
        ),
    }
    let ku = cert.key_usage().ok().flatten().map(|k| *k.value);
    for u in spec.key_usages {
        let has = ku.is_some_and(|k| match u {
            KeyUsage::DigitalSignature => k.digital_signature(),
            KeyUsage::KeyEncipherment => k.key_encipherment(),
            KeyUsage::KeyCertSign => k.key_cert_sign(),
            KeyUsage::CrlSign => k.crl_sign(),
        });
        if !has {
            f.fail(State::Invalid, format!("key usage {u:?} missing"));
        }
    }
    if !spec.signs() && ku.is_some_and(|k| k.key_cert_sign()) {
        f.fail(
            State::Invalid,
            "a leaf certificate may not sign certificates",
        );
    }
    match cert.extended_key_usage().ok().flatten().map(|e| e.value) {
        Some(eku) => {
            let want_server = spec.ext_usages.contains(&ExtUsage::ServerAuth);
            let want_client = spec.ext_usages.contains(&ExtUsage::ClientAuth);
            if eku.server_auth != want_server
                || eku.client_auth != want_client
                || eku.any
                || !eku.other.is_empty()
                || eku.code_signing
            {
                f.fail(
                    State::Invalid,
                    format!("extended key usages differ from {:?}", spec.ext_usages),
                );
            }
        }
        None if !spec.ext_usages.is_empty() => f.fail(State::Invalid, "extended key usage missing"),
        None => {}
    }
    if spec.sans != Sans::None {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(b) if b.len() == 4 => {
                        ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()))
                    }
                    GeneralName::IPAddress(b) if b.len() == 16 => {
                        ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()))
                    }
                    _ => {}
                }
            }
        }
        for d in &sans.0 {
            if !dns.contains(d) {
                f.fail(State::Invalid, format!("SAN DNS:{d} missing"));
            }
        }
        for ip in &sans.1 {
            if !ips.contains(ip) {
                f.fail(State::Invalid, format!("SAN IP:{ip} missing"));
            }
        }
    }
}

/// Parse a certificate file and run [`check_cert`]; returns its public key.
fn check_cert_file(
    f: &mut Finding,
    path: &Path,
    spec: &CertSpec,
    expected_cn: Option<&str>,
    sans: &(Vec<String>, Vec<IpAddr>),
    ca: &CaInfo<'_>,
    now: OffsetDateTime,
) -> Option<Vec<u8>> {
    let der =
        match x509::read_pem_file(path).and_then(|b| x509::decode_pem(&b, "CERTIFICATE", path)) {
            Ok(d) => d,
            Err(e) => {
                f.fail(State::Invalid, e.message().to_string());
                return None;
            }
        };
    match X509Certificate::from_der(&der) {
        Ok((_, cert)) => {
            check_cert(f, &cert, spec, expected_cn, sans, ca, now);
            Some(cert.public_key().raw.to_vec())
        }
        Err(e) => {
            f.fail(State::Invalid, format!("not a valid certificate ({e})"));
            None
        }
    }
}

/// Does this file hold a plaintext private key, as PEM or as DER?
pub fn looks_like_private_key(bytes: &[u8]) -> bool {
    let pem_markers: [&[u8]; 2] = [b"PRIVATE KEY-----", b"PRIVATE KEY BLOCK-----"];
    if pem_markers
        .iter()
        .any(|m| bytes.windows(m.len()).any(|w| w == *m))
    {
        return true;
    }
    // A DER SEQUENCE that parses as a key: PKCS#8, SEC1 or PKCS#1.
    if bytes.len() < 16 * 1024 && bytes.first() == Some(&0x30) {
        return rcgen::KeyPair::try_from(bytes).is_ok();
    }
    false
}

/// What [`scan_repository`] found.
#[derive(Default)]
struct Scan {
    /// Files holding a plaintext key.
    exposed: Vec<PathBuf>,
    /// kaws' leftovers.
    leftovers: Vec<PathBuf>,
    /// Directories and files it could not read, and why: a check whose
    /// purpose is "no plaintext key anywhere" says what it did not see.
    unreadable: Vec<(PathBuf, String)>,
}

/// Every file of the repository holding a plaintext key, kaws' leftovers,
/// and what could not be read.
fn scan_repository(root: &Path) -> Scan {
    let mut scan = Scan::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                scan.unreadable.push((dir, e.to_string()));
                continue;
            }
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(err) => {
                    scan.unreadable.push((dir.clone(), err.to_string()));
                    continue;
                }
            };
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) {
                scan.leftovers.push(p.clone());
            }
            let ft = match e.file_type() {
                Ok(ft) => ft,
                Err(err) => {
                    scan.unreadable.push((p, err.to_string()));
                    continue;
                }
            };
            if ft.is_dir() {
                if name != ".git" && name != ".terraform" {
                    stack.push(p);
                }
            } else if ft.is_file() && !name.ends_with(".encrypted") {
                let small = e
                    .metadata()
                    .map(|m| m.len() <= 8 * 1024 * 1024)
                    .unwrap_or(false);
                if !small {
                    continue;
                }
                match std::fs::read(&p) {
                    Ok(b) if looks_like_private_key(&b) => scan.exposed.push(p),
                    Ok(_) => {}
                    Err(err) => scan.unreadable.push((p, err.to_string())),
                }
            }
        }
    }
    scan.exposed.sort();
    scan.leftovers.sort();
    scan.unreadable.sort();
    scan
}

/// The settings, validated; or, when they do not validate, as written
/// (with what is wrong), so the certificates can still be checked. Settings
/// that are not even JSON of the right shape are an error, as everywhere.
fn load_settings_for_check(dir: &layout::ClusterDir) -> Result<(ClusterSettings, Option<String>)> {
    let path = dir.settings();
    match ClusterSettings::load(&path) {
        Ok(s) => Ok((s, None)),
        Err(e) => {
            let raw = fsutil::read_limited(&path, 64 * 1024, "a settings file", "")
                .ok()
                .and_then(|b| serde_json::from_slice::<ClusterSettings>(&b).ok());
            match raw {
                Some(s) => Ok((s, Some(e.message().to_string()))),
                None => Err(e),
            }
        }
    }
}

pub fn cluster_check(
    repo: &Repo,
    cluster: &ClusterName,
    offline: bool,
    aws: &AwsOptions,
) -> Result<CheckReport> {
    let dir = repo.cluster(cluster);
    dir.require()?;
    super::repo::warn_if_provider_lock_ignored(repo.root());
    let mut findings = Vec::new();
    // Damaged settings do not stop the certificates' check: their SANs are
    // checked against the values as written, and the report says so. KMS
    // is not asked with values that did not validate.
    let (settings, damaged) = load_settings_for_check(&dir)?;
    let offline = offline || damaged.is_some();
    if let Some(why) = damaged {
        let mut f = finding(layout::SETTINGS_FILE, "settings");
        f.fail(
            State::Invalid,
            format!("{why}; the certificates' names were checked against the values as written, and KMS was not asked: fix the file or restore it from git, then check again"),
        );
        findings.push(f);
    }
    let now = OffsetDateTime::now_utc();

    // Every CA of the table. Without the cluster CA nothing can be checked;
    // a cluster made before another CA existed gets a finding that says
    // what to run.
    let mut ca_ders: Vec<(&'static CertSpec, std::result::Result<Vec<u8>, Error>)> = Vec::new();
    for spec in pki::cas() {
        let path = dir.file(&layout::cert_name(spec.stem));
        let der =
            x509::read_pem_file(&path).and_then(|b| x509::decode_pem(&b, "CERTIFICATE", &path));
        ca_ders.push((spec, der));
    }
    let mut cas: Vec<(&'static CertSpec, Option<CaInfo<'_>>, Option<String>)> = Vec::new();
    for (spec, der) in &ca_ders {
        let path = dir.file(&layout::cert_name(spec.stem));
        let parsed = match der {
            Ok(d) => X509Certificate::from_der(d)
                .map(|(_, c)| c)
                .map_err(|e| format!("{}: not a valid certificate ({e})", path.display())),
            Err(e) => Err(e.message().to_string()),
        };
        match parsed {
            Ok(cert) => cas.push((
                spec,
                Some(CaInfo {
                    cert,
                    name: spec.common_name.replace("{cluster}", cluster.as_str()),
                }),
                None,
            )),
            Err(msg) if spec.stem == pki::CA.stem => {
                return Err(Error::new(ErrorKind::CheckFailed, msg).with_hint(
                    "without its CA nothing in the cluster can be checked; restore ca.pem from git",
                ))
            }
            Err(msg) => cas.push((spec, None, Some(msg))),
        }
    }
    let ca_of = |spec: &CertSpec| cas.iter().find(|(s, _, _)| s.stem == spec.issuer);
    let renew_hint = format!(
        "a cluster made before kaws had the {{}} lacks it: run `kaws cluster renew {cluster}`, commit, then `kaws cluster apply {cluster}`; otherwise restore it from git"
    );

    // The cluster's own certificates, then their keys.
    let mut public_keys: Vec<(&'static CertSpec, Option<Vec<u8>>)> = Vec::new();
    for spec in pki::CLUSTER_CERTS {
        let mut f = finding(spec.stem, "cluster");
        let issuer = ca_of(spec);
        let public = match issuer {
            Some((_, None, msg)) => {
                let ca = pki::issuer_of(spec);
                f.fail(
                    State::Invalid,
                    format!(
                        "{}: {}",
                        msg.as_deref().unwrap_or("missing"),
                        renew_hint.replace("{}", ca.purpose)
                    ),
                );
                None
            }
            Some((_, Some(ca), _)) if spec.has_certificate() => {
                let path = dir.file(&layout::cert_name(spec.stem));
                if !fsutil::present(&path) {
                    f.fail(
                        State::Invalid,
                        format!(
                            "{}: missing: {}",
                            path.display(),
                            renew_hint.replace("{}", spec.purpose)
                        ),
                    );
                    None
                } else {
                    let cn = spec.common_name.replace("{cluster}", cluster.as_str());
                    match pki::sans_for(spec.sans, &settings) {
                        Ok(sans) => check_cert_file(&mut f, &path, spec, Some(&cn), &sans, ca, now),
                        Err(e) => {
                            f.fail(
                                State::Invalid,
                                format!(
                                    "its names were not checked: the settings give none ({})",
                                    e.message()
                                ),
                            );
                            check_cert_file(
                                &mut f,
                                &path,
                                spec,
                                Some(&cn),
                                &(vec![], vec![]),
                                ca,
                                now,
                            )
                        }
                    }
                }
            }
            // Nothing public: the key check below opens and validates it.
            _ if !spec.is_key_pair() => {
                let path = dir.file(&layout::encrypted_key_name(spec.stem));
                if !fsutil::present(&path) {
                    f.fail(
                        State::Invalid,
                        format!(
                            "{}: missing: {}",
                            path.display(),
                            renew_hint.replace("{}", spec.purpose)
                        ),
                    );
                }
                None
            }
            _ => {
                let p = dir.file(&format!("{}.pub", spec.stem));
                match x509::read_pem_file(&p).and_then(|b| x509::decode_pem(&b, "PUBLIC KEY", &p)) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        f.fail(State::Invalid, e.message().to_string());
                        None
                    }
                }
            }
        };
        public_keys.push((spec, public));
        findings.push(f);
    }

    let mut kms_error = None;
    let mut kms_keys = Vec::new();
    if !offline {
        let mut aws = aws.clone();
        if aws.region.is_none() {
            aws.region = Some(settings.region.clone());
        }
        let (results, named, health) = super::block_on(async {
            let kms = super::kms(&aws).await;
            let keys = join_all(pki::CLUSTER_CERTS.iter().map(|spec| {
                let kms = &kms;
                let path = dir.file(&layout::encrypted_key_name(spec.stem));
                let key_id = settings.kms_key_id.as_str();
                let ca_kms_key = settings.ca_kms_key(spec.stem);
                async move {
                    // A CA key in KMS: its public key, from KMS itself, is
                    // what the certificate must carry. No sealing key.
                    if let Some(ca_key) = ca_kms_key {
                        let what = super::cluster::ca_what(spec, cluster);
                        let public = kms.public_key(ca_key, &what).await?;
                        return Ok::<_, Error>((Ok(public), String::new()));
                    }
                    let blob = fsutil::read_ciphertext(&path)?;
                    let ctx = EncryptionContext::new(cluster, layout::key_name(spec.stem));
                    let opened = kms.open_expecting(&ctx, &blob, Some(key_id)).await?;
                    let what = path.display().to_string();
                    // What the plaintext holds is judged after the key that
                    // sealed it (below): a key kaws did not seal is named as
                    // such, whatever it holds.
                    let public = match spec.material {
                        Material::EncryptionConfig => {
                            encryption::validate(&opened.secret, &what).map(|_| Vec::new())
                        }
                        Material::BootstrapToken => {
                            bootstrap_token::validate(&opened.secret, &what).map(|_| Vec::new())
                        }
                        Material::Certificate | Material::KeyPair => {
                            PrivateKey::from_secret(&opened.secret, &what)
                                .map(|k| k.public_key_der())
                        }
                    };
                    Ok::<_, Error>((public, opened.key_id))
                }
            }));
            let (results, named, mut health) = futures::join!(
                keys,
                kms.key_arn(&settings.kms_key_id, cluster),
                key_health(&kms, &dir, &settings)
            );
            // The cluster's key is the one KMS says sealed ca-key.pem.encrypted:
            // if the settings name another (refused below), describe that one.
            let sealing = results
                .first()
                .and_then(|r| r.as_ref().ok())
                .map(|(_, id)| id.clone())
                .filter(|id| !id.is_empty());
            if let (Ok(n), Some(s), Ok(found)) = (&named, &sealing, &mut health) {
                if n != s {
                    if let Some(cluster_key) = found.first_mut().filter(|k| k.kind == "cluster") {
                        *cluster_key =
                            KmsKeyFinding::new("cluster", "cluster", kms.key_health(s).await);
                    }
                }
            }
            (results, named, health)
        })?;
        kms_keys = health?;
        // Every key must be sealed under the key that seals the CA's, and
        // the settings must name that key. With the CA keys in KMS there is
        // no CA ciphertext: the settings' key is the anchor.
        let sealing = match settings.ca_key {
            crate::settings::CaKey::Sealed => results
                .first()
                .and_then(|r| r.as_ref().ok())
                .map(|(_, id)| id.clone()),
            crate::settings::CaKey::Kms => named.as_ref().ok().cloned(),
        };
        let anchor = match settings.ca_key {
            crate::settings::CaKey::Sealed => "ca-key.pem.encrypted",
            crate::settings::CaKey::Kms => "the settings' kms_key_id",
        };
        let mut settings_finding = finding(layout::SETTINGS_FILE, "settings");
        // A CA key of another account than the cluster key's is no key
        // kaws made for this cluster (it creates them beside the cluster
        // key): most likely a committer's own key.
        if let Ok(n) = &named {
            for ca in pki::cas() {
                if let Some(problem) = settings
                    .ca_kms_key(ca.stem)
                    .and_then(|k| foreign_account(k, n))
                {
                    settings_finding.fail(
                        State::Invalid,
                        format!("ca_kms_keys.{}: {problem}; restore the file from git and find out who changed it", ca.stem),
                    );
                }
            }
        }
        match (&named, &sealing) {
            (Ok(n), Some(s)) if n != s => settings_finding.fail(
                State::Invalid,
                format!(
                    "kms_key_id is {} ({n}), but the cluster's keys are sealed under {s}; only `kaws cluster reencrypt` changes it: restore the file from git",
                    settings.kms_key_id
                ),
            ),
            // KMS could not be asked: an outage, not a wrong setting.
            (Err(e), _) if e.kind() == ErrorKind::Aws => {
                kms_error = Some(KmsError {
                    message: e.message().to_string(),
                    hint: e.hint().map(str::to_string),
                });
            }
            (Err(e), _) => settings_finding.fail(State::Invalid, e.message().to_string()),
            _ => {}
        }
        let results: Vec<Result<Vec<u8>>> = results
            .into_iter()
            .map(|r| {
                r.and_then(|(k, id)| match &sealing {
                    Some(s) if *s != id && !id.is_empty() => Err(Error::input(format!(
                        "sealed under KMS key {id}, not under {s}, which seals {anchor}: a key kaws did not seal; restore it from git"
                    ))),
                    _ => k,
                })
            })
            .collect();
        for ((f, (spec, public)), result) in findings.iter_mut().zip(&public_keys).zip(results) {
            match (result, public) {
                (Ok(k), Some(p)) if k == *p => {}
                (Ok(_), Some(_)) => f.fail(
                    State::Invalid,
                    match settings.ca_kms_key(spec.stem) {
                        Some(key) => format!(
                            "its public key is not the public key of KMS key {key} (GetPublicKey), which the settings record for it: restore {} and the settings from git",
                            layout::cert_name(spec.stem)
                        ),
                        None => format!(
                            "{} does not match its certificate",
                            layout::encrypted_key_name(spec.stem)
                        ),
                    },
                ),
                (Ok(_), None) => {}
                // KMS itself failed: nothing is known about this key.
                (Err(e), _) if e.kind() == ErrorKind::Aws => {
                    if kms_error.is_none() {
                        kms_error = Some(KmsError {
                            message: e.message().to_string(),
                            hint: e.hint().map(str::to_string),
                        });
                    }
                }
                // Already reported: the certificate is missing too.
                (Err(_), None) if f.state == State::Invalid => {}
                (Err(e), _) => f.fail(State::Invalid, e.message().to_string()),
            }
        }
        findings.push(settings_finding);
    }

    let Some(ca) = cas
        .iter()
        .find_map(|(s, c, _)| c.as_ref().filter(|_| s.stem == pki::CA.stem))
    else {
        return Err(Error::new(
            ErrorKind::CheckFailed,
            format!(
                "{}: the cluster CA could not be read",
                dir.file(&layout::cert_name(pki::CA.stem)).display()
            ),
        )
        .with_hint("restore ca.pem from git"));
    };
    findings.extend(check_admins(&dir, cluster, ca, now)?);

    let Scan {
        exposed,
        leftovers,
        unreadable,
    } = scan_repository(repo.root());
    for (p, why) in unreadable {
        let rel = p
            .strip_prefix(repo.root())
            .unwrap_or(&p)
            .display()
            .to_string();
        let mut f = finding(rel, "file");
        f.fail(
            State::Invalid,
            format!("could not be read ({why}), so it was not searched for plaintext keys: make it readable and check again"),
        );
        findings.push(f);
    }
    for p in exposed {
        let rel = p
            .strip_prefix(repo.root())
            .unwrap_or(&p)
            .display()
            .to_string();
        let mut f = finding(rel, "file");
        f.fail(State::Exposed, "a plaintext private key: remove it, purge it from git history, and treat the key as compromised");
        findings.push(f);
    }
    for p in leftovers {
        let rel = p
            .strip_prefix(repo.root())
            .unwrap_or(&p)
            .display()
            .to_string();
        let mut f = finding(rel, "leftover");
        f.fail(
            State::Warning,
            "left by an interrupted kaws command; it holds no plaintext key and may be removed",
        );
        findings.push(f);
    }
    let mut not_checked = Vec::new();
    if offline {
        for ca in pki::cas() {
            if let Some(key) = settings.ca_kms_key(ca.stem) {
                not_checked.push(format!(
                    "{}: its public key was not compared with KMS key {key} (GetPublicKey), nor the key's state read",
                    layout::cert_name(ca.stem)
                ));
            }
        }
    }
    let seal = seal_finding(repo, cluster, offline, aws, &mut findings);
    Ok(CheckReport {
        cluster: cluster.to_string(),
        offline,
        kms_error,
        seal,
        findings,
        kms_keys,
        not_checked,
    })
}

/// The seal, as a finding: a seal that is not valid (edited, under another
/// KMS key) fails the check; no seal, changes nobody approved yet, or a
/// seal that could not be verified are warnings.
fn seal_finding(
    repo: &Repo,
    cluster: &ClusterName,
    offline: bool,
    aws: &AwsOptions,
    findings: &mut Vec<Finding>,
) -> Option<super::seal::SealReport> {
    use super::seal::SealState;
    let mut f = finding(crate::seal::SEAL_FILE, "seal");
    let check = match super::seal::seal_check(repo, cluster, offline, aws) {
        Ok(c) => c,
        Err(e) => {
            f.fail(State::Invalid, e.message().to_string());
            findings.push(f);
            return None;
        }
    };
    let r = &check.report;
    match &r.state {
        SealState::Valid => {}
        SealState::Missing => f.fail(
            State::Warning,
            format!("no seal: the next privileged command lists every file and asks you to approve them, or run `kaws cluster seal {cluster}`"),
        ),
        SealState::Invalid(why) => f.fail(State::Invalid, format!("not valid: {why}")),
        SealState::Unverified(why) => f.problems.push(format!("not verified: {why}")),
    }
    for c in &r.concerns {
        f.fail(State::Invalid, c.clone());
    }
    if !matches!(r.state, SealState::Missing | SealState::Invalid(_)) {
        let n = r.comparison.differences.len();
        if n > 0 {
            f.fail(
                State::Warning,
                format!("{n} change(s) since the seal, not approved yet: the next privileged command shows them and asks"),
            );
            for d in &r.comparison.differences {
                f.problems.push(d.line());
            }
        }
        for q in &r.comparison.requests {
            f.problems
                .push(format!("{}: {} (expected)", q.admin, q.kind));
        }
    }
    findings.push(f);
    Some(check.report)
}

/// Administrators, checked in parallel: a cluster may have thousands.
fn check_admins(
    dir: &layout::ClusterDir,
    _cluster: &ClusterName,
    ca: &CaInfo<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Finding>> {
    let admins = dir.admins()?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let chunk = admins.len().div_ceil(threads).max(1);
    let no_sans = (vec![], vec![]);
    let results: Vec<Finding> = std::thread::scope(|s| {
        let handles: Vec<_> = admins
            .chunks(chunk)
            .map(|names| {
                let no_sans = &no_sans;
                s.spawn(move || {
                    names
                        .iter()
                        .map(|n| check_admin(dir, n, ca, no_sans, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(admins.chunks(chunk))
            .flat_map(|(h, names)| {
                // A checker that failed drops nobody: each of its
                // administrators is reported as not checked.
                h.join().unwrap_or_else(|_| {
                    names
                        .iter()
                        .map(|n| {
                            let mut f = finding(n.as_str(), "admin");
                            f.fail(
                                State::Invalid,
                                "could not be checked (the checker failed); run `kaws cluster check` again, and report it if it fails again",
                            );
                            f
                        })
                        .collect()
                })
            })
            .collect()
    });
    Ok(results)
}

fn check_admin(
    dir: &layout::ClusterDir,
    name: &AdminName,
    ca: &CaInfo<'_>,
    no_sans: &(Vec<String>, Vec<IpAddr>),
    now: OffsetDateTime,
) -> Finding {
    let mut f = finding(name.as_str(), "admin");
    let cert = dir.admin_cert(name);
    let csr = dir.admin_csr(name);
    let key = dir.admin_key(name);
    if fsutil::present(&cert) {
        check_cert_file(
            &mut f,
            &cert,
            &pki::ADMIN_CERT,
            Some(name.as_str()),
            no_sans,
            ca,
            now,
        );
    } else if fsutil::present(&csr) {
        match x509::read_csr_file(&csr).and_then(|b| x509::verify_csr(&b, &csr)) {
            Ok(_) => f.state = State::Requested,
            Err(e) => f.fail(State::Invalid, e.message().to_string()),
        }
    }
    if !fsutil::present(&key) {
        f.fail(
            State::Warning,
            format!(
                "{} is missing: the administrator cannot install",
                key.display()
            ),
        );
    } else if !fsutil::present(&csr) && !fsutil::present(&cert) {
        f.fail(State::Warning, "a key without a CSR, left by an interrupted `kaws admin create`; remove it or run admin create again after removing it");
    }
    f
}

/// The warning of a certificate that ends within the threshold.
fn expiry_warning(residual_days: i64) -> String {
    format!("expires in {residual_days} days: renew it")
}

impl CheckReport {
    /// Judge expiry against `days` instead of [`WARN_DAYS`]
    /// (`kaws cluster check --warn-days`); returns how many certificates are
    /// valid but end within `days`.
    pub fn warn_within(&mut self, days: i64) -> usize {
        let mut expiring = 0;
        for f in &mut self.findings {
            let residual = match f.residual_days {
                Some(d) if d >= 0 && f.state != State::Expired => d,
                _ => continue,
            };
            let warning = expiry_warning(residual);
            let had = f.problems.iter().position(|p| *p == warning);
            if residual < days {
                expiring += 1;
                if had.is_none() {
                    f.state = f.state.max(State::Warning);
                    f.problems.insert(0, warning);
                }
            } else if let Some(i) = had {
                f.problems.remove(i);
                if f.problems.is_empty() && f.state == State::Warning {
                    f.state = State::Ok;
                }
            }
        }
        expiring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_key_of_another_account_is_named() {
        let cluster = "arn:aws:kms:us-east-1:111122223333:key/aaaa";
        assert_eq!(
            foreign_account("arn:aws:kms:us-east-1:111122223333:key/bbbb", cluster),
            None
        );
        assert!(
            foreign_account("arn:aws:kms:us-east-1:444455556666:key/bbbb", cluster)
                .unwrap()
                .contains("account 444455556666")
        );
        assert_eq!(foreign_account("alias/kaws-prod-ca", cluster), None);
        assert_eq!(arn_account("arn:aws:kms:x"), None);
    }
}
