//! The cluster's public key infrastructure: one table of certificates, and
//! the pure functions that turn a row of it into a certificate.
//!
//! Every certificate kaws makes is described by one [`CertSpec`] in
//! [`CLUSTER_CERTS`] (the cluster's own) or by [`ADMIN_CERT`] (each
//! administrator's). Generation, CSR signing, `cluster check`, renewal and
//! the docs all read the table; nothing changes it at run time. For an
//! administrator, the certificate says what the table says, never what the
//! CSR asks for.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::settings::{Cidr, ClusterSettings, KeyAlgorithm};
use crate::signer::{CaSigner, Capture, Signer};

/// Key usages, independent of any X.509 library so that checks and docs can
/// read them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUsage {
    DigitalSignature,
    KeyEncipherment,
    KeyCertSign,
    CrlSign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtUsage {
    ServerAuth,
    ClientAuth,
}

/// Where a certificate's subject alternative names come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sans {
    None,
    /// The in-cluster service names, `kubernetes.<domain>`, localhost and the
    /// first service address.
    Apiserver,
    /// `etcd-0..2.<domain>` (the etcd servers' DNS records), localhost.
    Etcd,
}

/// Which servers may decrypt a key: the boot issue's IAM policies and the
/// docs are driven from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nobody but a primary administrator (with the cluster's KMS key).
    PrimaryAdministrators,
    Controllers,
    Workers,
    /// Both the masters and the workers: the bootstrap token, which workers
    /// present and the masters turn into its kube-system Secret.
    ControllersAndWorkers,
    Etcd,
    /// The administrator named by the file, under their own KMS key.
    Administrator,
}

/// What a row of the table makes. Each is sealed by KMS as
/// `<stem>-key.pem.encrypted`; the public half, if any, sits beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Material {
    /// A key pair and its certificate, `<stem>.pem`.
    Certificate,
    /// A bare key pair, its public key in `<stem>.pub` (the service-account
    /// signing key).
    KeyPair,
    /// The apiserver's EncryptionConfiguration with its secretbox keys
    /// (see [`crate::encryption`]); nothing public.
    EncryptionConfig,
    /// The workers' bootstrap token, `<id>.<secret>` (see
    /// [`crate::bootstrap_token`]); nothing public.
    BootstrapToken,
}

impl Holder {
    /// Whether a server role that is `role` holds what this holder holds.
    pub fn held_by(self, role: Holder) -> bool {
        self == role
            || (self == Holder::ControllersAndWorkers
                && matches!(role, Holder::Controllers | Holder::Workers))
    }
}

/// One row of the certificate table.
#[derive(Debug)]
pub struct CertSpec {
    /// File stem: `<stem>.pem`, `<stem>-key.pem.encrypted`.
    pub stem: &'static str,
    pub purpose: &'static str,
    /// The stem of the CA row that signs it (a CA names itself): etcd and
    /// the front proxy are trust domains of their own, so a certificate one
    /// CA signed is never accepted where another's is expected.
    pub issuer: &'static str,
    /// Common name; `{cluster}` is replaced by the cluster's name.
    pub common_name: &'static str,
    pub organizations: &'static [&'static str],
    pub is_ca: bool,
    pub key_usages: &'static [KeyUsage],
    /// Add keyEncipherment when the key is RSA (TLS key exchange).
    pub rsa_key_encipherment: bool,
    pub ext_usages: &'static [ExtUsage],
    pub sans: Sans,
    pub lifetime_days: u32,
    /// What the row makes: a certificate, a bare key pair, or the
    /// apiserver's encryption configuration.
    pub material: Material,
    pub holder: Holder,
}

pub const CA_LIFETIME_DAYS: u32 = 3650;
pub const LEAF_LIFETIME_DAYS: u32 = 365;

pub const CA: CertSpec = CertSpec {
    stem: "ca",
    purpose: "cluster certificate authority",
    issuer: "ca",
    common_name: "kube-{cluster}-ca",
    organizations: &[],
    is_ca: true,
    key_usages: &[
        KeyUsage::KeyCertSign,
        KeyUsage::CrlSign,
        KeyUsage::DigitalSignature,
    ],
    rsa_key_encipherment: false,
    ext_usages: &[],
    sans: Sans::None,
    lifetime_days: CA_LIFETIME_DAYS,
    material: Material::Certificate,
    holder: Holder::PrimaryAdministrators,
};

/// etcd's own trust domain: etcd trusts only this CA, so no certificate
/// the cluster CA signed (a node's, an administrator's) is an etcd client.
pub const ETCD_CA: CertSpec = CertSpec {
    stem: "etcd-ca",
    purpose: "etcd certificate authority (etcd's server, peer and client certificates)",
    issuer: "etcd-ca",
    common_name: "kube-{cluster}-etcd-ca",
    ..CA
};

/// The front proxy's trust domain (kubeadm's front-proxy-ca): the apiserver
/// trusts a request's X-Remote-User headers only from a client certificate
/// this CA signed, so no certificate of the cluster CA can assert them.
pub const FRONT_PROXY_CA: CertSpec = CertSpec {
    stem: "front-proxy-ca",
    purpose: "front-proxy certificate authority (the aggregation layer's request headers)",
    issuer: "front-proxy-ca",
    common_name: "kube-{cluster}-front-proxy-ca",
    ..CA
};

/// The cluster's own certificates and keys, CAs first (each CA before any
/// row it signs).
pub const CLUSTER_CERTS: &[CertSpec] = &[
    CA,
    ETCD_CA,
    FRONT_PROXY_CA,
    CertSpec {
        stem: "apiserver",
        purpose: "kube-apiserver serving certificate",
        issuer: "ca",
        common_name: "kube-{cluster}-apiserver",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ServerAuth, ExtUsage::ClientAuth],
        sans: Sans::Apiserver,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "kubelet-signer",
        purpose: "intermediate CA under the cluster CA: the controller-manager signs kubelets' client CSRs with it (kubernetes.io/kube-apiserver-client-kubelet)",
        issuer: "ca",
        common_name: "kube-{cluster}-kubelet-signer",
        organizations: &[],
        // Not a root of the table (no KMS key, no trust domain of its own):
        // keyCertSign makes it an intermediate CA (CA:TRUE, pathlen 0) whose
        // key the masters decrypt. The apiserver trusts it through
        // client-ca.pem, the cluster CA and it.
        is_ca: false,
        key_usages: &[
            KeyUsage::KeyCertSign,
            KeyUsage::CrlSign,
            KeyUsage::DigitalSignature,
        ],
        rsa_key_encipherment: false,
        ext_usages: &[],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "bootstrap-token",
        purpose: "the workers' bootstrap token (group system:bootstrappers: may only ask for a node client certificate)",
        // No certificate: nothing signs it.
        issuer: "ca",
        common_name: "",
        organizations: &[],
        is_ca: false,
        key_usages: &[],
        rsa_key_encipherment: false,
        ext_usages: &[],
        sans: Sans::None,
        lifetime_days: 0,
        material: Material::BootstrapToken,
        holder: Holder::ControllersAndWorkers,
    },
    CertSpec {
        stem: "kube-proxy",
        purpose: "kube-proxy's client certificate (bound to system:node-proxier)",
        issuer: "ca",
        common_name: "system:kube-proxy",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Workers,
    },
    CertSpec {
        stem: "flannel",
        purpose: "flanneld's client certificate (bound to kaws:flannel: nodes and nodes/status only)",
        issuer: "ca",
        common_name: "kaws:flannel",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Workers,
    },
    CertSpec {
        stem: "etcd",
        purpose: "etcd server and peer certificate",
        issuer: "etcd-ca",
        common_name: "kube-{cluster}-etcd",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ServerAuth, ExtUsage::ClientAuth],
        sans: Sans::Etcd,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Etcd,
    },
    CertSpec {
        stem: "etcd-client",
        purpose: "the apiserver's client certificate for etcd",
        issuer: "etcd-ca",
        common_name: "kube-{cluster}-apiserver-etcd-client",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "front-proxy-client",
        purpose: "the apiserver's client certificate towards aggregated APIs (--proxy-client-cert-file)",
        issuer: "front-proxy-ca",
        // What --requestheader-allowed-names accepts.
        common_name: "front-proxy-client",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "controller-manager",
        purpose: "kube-controller-manager's client certificate",
        issuer: "ca",
        common_name: "system:kube-controller-manager",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "scheduler",
        purpose: "kube-scheduler's client certificate",
        issuer: "ca",
        common_name: "system:kube-scheduler",
        organizations: &[],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "bootstrap",
        purpose: "masters apply kaws' RBAC bindings (the shared node certificate's rights) at boot; like kubeadm's admin.conf",
        issuer: "ca",
        common_name: "kaws:bootstrap",
        organizations: &["system:masters"],
        is_ca: false,
        key_usages: &[KeyUsage::DigitalSignature],
        rsa_key_encipherment: true,
        ext_usages: &[ExtUsage::ClientAuth],
        sans: Sans::None,
        lifetime_days: LEAF_LIFETIME_DAYS,
        material: Material::Certificate,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "service-account",
        purpose: "signs service account tokens (key pair only; public key in service-account.pub)",
        issuer: "ca",
        common_name: "",
        organizations: &[],
        is_ca: false,
        key_usages: &[],
        rsa_key_encipherment: false,
        ext_usages: &[],
        sans: Sans::None,
        lifetime_days: 0,
        material: Material::KeyPair,
        holder: Holder::Controllers,
    },
    CertSpec {
        stem: "secrets-encryption",
        purpose: "the apiserver's EncryptionConfiguration: secretbox keys that encrypt Secrets in etcd",
        // No certificate: nothing signs it.
        issuer: "ca",
        common_name: "",
        organizations: &[],
        is_ca: false,
        key_usages: &[],
        rsa_key_encipherment: false,
        ext_usages: &[],
        sans: Sans::None,
        lifetime_days: 0,
        material: Material::EncryptionConfig,
        holder: Holder::Controllers,
    },
];

impl CertSpec {
    pub const fn has_certificate(&self) -> bool {
        matches!(self.material, Material::Certificate)
    }

    /// Whether the row's secret is a private key (not the encryption
    /// configuration).
    pub const fn is_key_pair(&self) -> bool {
        matches!(self.material, Material::Certificate | Material::KeyPair)
    }

    /// Whether the row's certificate signs others: a CA of the table, or
    /// an intermediate (keyCertSign among its usages) whose key a server
    /// holds.
    pub fn signs(&self) -> bool {
        self.is_ca || self.key_usages.contains(&KeyUsage::KeyCertSign)
    }
}

/// Every administrator's client certificate. CN and O come from the
/// administrator's name and groups; nothing else comes from the CSR.
pub const ADMIN_CERT: CertSpec = CertSpec {
    stem: "{admin}",
    purpose: "an administrator's client certificate",
    issuer: "ca",
    common_name: "{admin}",
    organizations: &[],
    is_ca: false,
    key_usages: &[KeyUsage::DigitalSignature],
    rsa_key_encipherment: true,
    ext_usages: &[ExtUsage::ClientAuth],
    sans: Sans::None,
    lifetime_days: LEAF_LIFETIME_DAYS,
    material: Material::Certificate,
    holder: Holder::Administrator,
};

/// Number of etcd servers the module builds; their names go into the etcd SANs.
pub const ETCD_SERVERS: usize = 3;

pub fn spec(stem: &str) -> Option<&'static CertSpec> {
    CLUSTER_CERTS.iter().find(|s| s.stem == stem)
}

/// The CA rows of the table, in order.
pub fn cas() -> impl Iterator<Item = &'static CertSpec> {
    CLUSTER_CERTS.iter().filter(|s| s.is_ca)
}

/// The row of the CA that signs `spec` (the table test holds every issuer
/// to a CA row).
pub fn issuer_of(row: &CertSpec) -> &'static CertSpec {
    spec(row.issuer)
        .filter(|s| s.is_ca)
        .unwrap_or(&CLUSTER_CERTS[0])
}

/// The subject alternative names a row asks for, in a cluster.
pub fn sans_for(sans: Sans, settings: &ClusterSettings) -> Result<(Vec<String>, Vec<IpAddr>)> {
    let domain = settings.domain.trim_end_matches('.');
    Ok(match sans {
        Sans::None => (vec![], vec![]),
        Sans::Apiserver => {
            let svc = Cidr::parse("service_cidr", &settings.service_cidr)?.first_host()?;
            (
                vec![
                    "kubernetes".into(),
                    "kubernetes.default".into(),
                    "kubernetes.default.svc".into(),
                    "kubernetes.default.svc.cluster".into(),
                    "kubernetes.default.svc.cluster.local".into(),
                    format!("kubernetes.{domain}"),
                    "localhost".into(),
                ],
                vec![IpAddr::from([127, 0, 0, 1]), IpAddr::V4(svc)],
            )
        }
        Sans::Etcd => {
            let mut dns: Vec<String> = (0..ETCD_SERVERS)
                .map(|i| format!("etcd-{i}.{domain}"))
                .collect();
            dns.push("localhost".into());
            (dns, vec![IpAddr::from([127, 0, 0, 1])])
        }
    })
}

/// Validity of a new certificate: starts a few minutes back for clock skew.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// `days` from now, never past `cap` (the CA's own end).
    pub fn days(days: u32, cap: Option<OffsetDateTime>) -> Self {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc());
        let not_before = now - Duration::minutes(5);
        let mut not_after = now + Duration::days(i64::from(days));
        if let Some(cap) = cap {
            not_after = not_after.min(cap);
        }
        Validity {
            not_before,
            not_after,
        }
    }
}

/// Concrete parameters for one certificate: what a row plus a cluster (or
/// an administrator) say it must contain.
#[derive(Clone, Debug)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl Subject {
    pub fn for_cluster(spec: &CertSpec, settings: &ClusterSettings) -> Result<Self> {
        let (dns_names, ip_addresses) = sans_for(spec.sans, settings)?;
        Ok(Subject {
            common_name: spec.common_name.replace("{cluster}", &settings.cluster),
            organizations: spec.organizations.iter().map(|s| s.to_string()).collect(),
            dns_names,
            ip_addresses,
        })
    }

    pub fn for_admin(name: &str, groups: &[String]) -> Self {
        Subject {
            common_name: name.to_string(),
            organizations: groups.to_vec(),
            dns_names: vec![],
            ip_addresses: vec![],
        }
    }

    fn distinguished_name(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for o in &self.organizations {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        dn
    }
}

/// A random positive serial of 127 bits (RFC 5280 allows up to 20 octets).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// The rcgen parameters for one certificate.
pub fn params(
    spec: &CertSpec,
    subject: &Subject,
    validity: Validity,
    rsa: bool,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject.distinguished_name();
    p.not_before = validity.not_before;
    p.not_after = validity.not_after;
    p.serial_number = Some(random_serial());
    p.is_ca = if spec.is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else if spec.signs() {
        // An intermediate signs leaves only.
        IsCa::Ca(BasicConstraints::Constrained(0))
    } else {
        IsCa::ExplicitNoCa
    };
    p.key_usages = spec
        .key_usages
        .iter()
        .map(|u| match u {
            KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
            KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        })
        .collect();
    if rsa && spec.rsa_key_encipherment {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = spec
        .ext_usages
        .iter()
        .map(|u| match u {
            ExtUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            ExtUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    for d in &subject.dns_names {
        let name = d
            .as_str()
            .try_into()
            .map_err(|_| Error::input(format!("{d:?} cannot be a DNS name in a certificate")))?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &subject.ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    p.use_authority_key_identifier_extension = !spec.is_ca;
    Ok(p)
}

/// A private key in memory, zeroized when dropped.
pub struct PrivateKey(KeyPair);

impl PrivateKey {
    pub fn generate(alg: KeyAlgorithm) -> Result<Self> {
        let kp = match alg {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            KeyAlgorithm::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
            }
            KeyAlgorithm::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
        };
        kp.map(PrivateKey)
            .map_err(|e| Error::input(format!("could not generate a {alg} key: {e}")))
    }

    /// Parse a decrypted PKCS#8 PEM key. `what` names it in errors.
    pub fn from_secret(secret: &Secret, what: &str) -> Result<Self> {
        let bad = || {
            Error::input(format!(
                "{what}: the decrypted key is not a PKCS#8 PEM private key"
            ))
            .with_hint("the file may belong to something else; restore it from git")
        };
        let text = secret.expose_str().ok_or_else(bad)?;
        let parsed = pem::parse(text).map_err(|_| bad())?;
        if parsed.tag() != "PRIVATE KEY" {
            let mut der = parsed.into_contents();
            der.zeroize();
            return Err(bad());
        }
        let der = Zeroizing::new(parsed.into_contents());
        KeyPair::try_from(der.as_slice())
            .map(PrivateKey)
            .map_err(|_| bad())
    }

    /// PKCS#8 PEM text, to be encrypted at once.
    pub fn to_secret(&self) -> Secret {
        Secret::from(self.0.serialize_pem())
    }

    pub fn public_key_pem(&self) -> String {
        self.0.public_key_pem()
    }

    /// DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        use rcgen::PublicKeyData;
        self.0.subject_public_key_info()
    }

    pub fn key_pair(&self) -> &KeyPair {
        &self.0
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// SHA-256 of a DER SubjectPublicKeyInfo, as 64 lowercase hex digits: the
/// same as `openssl pkey -pubin -outform DER | sha256sum`.
pub fn fingerprint(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// Make a self-signed CA certificate, signed by `signer` (the CA's own
/// key, decrypted or in KMS).
pub async fn self_signed(
    spec: &CertSpec,
    subject: &Subject,
    signer: &impl Signer,
    rsa: bool,
) -> Result<String> {
    let p = params(spec, subject, Validity::days(spec.lifetime_days, None), rsa)?;
    let capture = Capture::new(signer)?;
    p.self_signed(&capture)
        .map_err(|e| Error::input(format!("could not make the {} certificate: {e}", spec.stem)))?;
    let tbs = capture.take().ok_or_else(|| {
        Error::input(format!(
            "could not make the {} certificate: nothing to sign",
            spec.stem
        ))
    })?;
    crate::signer::sign_certificate(signer, tbs).await
}

/// A cluster CA ready to sign: its certificate and its signer (a
/// decrypted key or a KMS key: the CA does not know which).
pub struct Ca<'a> {
    /// The CA's row: names it in errors.
    pub row: &'static CertSpec,
    pub cert_pem: &'a str,
    pub signer: &'a CaSigner,
    pub not_after: OffsetDateTime,
    subject_der: Vec<u8>,
    key_id: Vec<u8>,
}

impl<'a> Ca<'a> {
    /// The cluster CA.
    pub fn new(cert_pem: &'a str, signer: &'a CaSigner) -> Result<Self> {
        Self::of(&CA, cert_pem, signer)
    }

    /// The CA of one CA row of the table.
    pub fn of(row: &'static CertSpec, cert_pem: &'a str, signer: &'a CaSigner) -> Result<Self> {
        let stem = row.stem;
        // Exactly one PEM block (C4), as every certificate kaws reads.
        let der = crate::x509::decode_pem(
            cert_pem.as_bytes(),
            "CERTIFICATE",
            std::path::Path::new(&format!("{stem}.pem")),
        )?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::input(format!("{stem}.pem: not a valid certificate: {e}")))?;
        let not_after = cert.validity().not_after.to_datetime();
        let subject_der = cert.subject().as_raw().to_vec();
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_else(|| Sha256::digest(cert.public_key().raw)[..20].to_vec());
        // The key must be the CA's, or every certificate it signs is useless.
        if cert.public_key().raw != signer.public_key_der() {
            return Err(match signer {
                CaSigner::Local { .. } => Error::input(format!(
                    "{stem}-key.pem.encrypted does not hold the key of {stem}.pem"
                ))
                .with_hint(
                    "restore both files from git; they must come from the same `kaws cluster init` or `kaws cluster renew`",
                ),
                CaSigner::Kms(k) => Error::input(format!(
                    "{stem}.pem: its public key is not the public key of KMS key {} (GetPublicKey), which the settings record for the {}",
                    k.key_id, row.purpose
                ))
                .with_hint(
                    "restore the CA certificate and terraform.tfvars.json from git and find out who changed them; kaws signs nothing with a key its CA certificate does not name",
                ),
            });
        }
        Ok(Ca {
            row,
            cert_pem,
            signer,
            not_after,
            subject_der,
            key_id,
        })
    }

    fn validity(&self, days: u32) -> Result<Validity> {
        let validity = Validity::days(days, Some(self.not_after));
        if validity.not_after <= validity.not_before + Duration::minutes(5) {
            return Err(Error::input(format!(
                "{}.pem: the {} has expired",
                self.row.stem, self.row.purpose
            ))
            .with_hint("a new CA means a new cluster PKI; see docs/guides/renew-certificates.md"));
        }
        Ok(validity)
    }

    /// Sign an administrator's certificate: [`ADMIN_CERT`] with the CSR's
    /// CN and O values and its public key, nothing else.
    pub async fn sign_admin(
        &self,
        subject: &Subject,
        spki_der: &[u8],
        days: u32,
        rsa: bool,
    ) -> Result<String> {
        let validity = self.validity(days)?;
        let serial = random_serial();
        let tbs = crate::der::certificate(
            &ADMIN_CERT,
            subject,
            spki_der,
            rsa,
            &crate::der::IssuerInfo {
                subject_der: &self.subject_der,
                key_id: self.key_id.clone(),
                alg: self.signer.algorithm(),
            },
            serial.as_ref(),
            validity.not_before,
            validity.not_after,
        )?;
        crate::signer::sign_certificate(self.signer, tbs).await
    }

    /// Sign a certificate for `public_key` (anything rcgen can encode).
    pub async fn sign(
        &self,
        spec: &CertSpec,
        subject: &Subject,
        public_key: &impl rcgen::PublicKeyData,
        days: u32,
        rsa: bool,
    ) -> Result<String> {
        let validity = self.validity(days)?;
        let p = params(spec, subject, validity, rsa)?;
        let capture = Capture::new(self.signer)?;
        let issuer = Issuer::from_ca_cert_pem(self.cert_pem, &capture).map_err(|e| {
            Error::input(format!("{}.pem: cannot sign with it: {e}", self.row.stem))
        })?;
        p.signed_by(public_key, &issuer).map_err(|e| {
            Error::input(format!("could not sign the {} certificate: {e}", spec.stem))
        })?;
        let tbs = capture.take().ok_or_else(|| {
            Error::input(format!(
                "could not sign the {} certificate: nothing to sign",
                spec.stem
            ))
        })?;
        crate::signer::sign_certificate(self.signer, tbs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        serde_json::from_str(
            r#"{"cluster":"prod","domain":"example.com","zone_id":"Z1","region":"us-east-1",
                "kms_key_id":"alias/k","ssh_key_name":"me"}"#,
        )
        .unwrap()
    }

    #[test]
    fn table_is_consistent() {
        assert_eq!(CLUSTER_CERTS[0].stem, "ca");
        for (i, c) in CLUSTER_CERTS.iter().enumerate() {
            // Every issuer is a CA row that comes before the rows it signs.
            let at = CLUSTER_CERTS.iter().position(|r| r.stem == c.issuer);
            assert!(
                at.is_some_and(|a| CLUSTER_CERTS[a].is_ca && a <= i),
                "{}",
                c.stem
            );
            assert_eq!(c.is_ca, c.issuer == c.stem, "{}", c.stem);
            if c.is_ca {
                assert_eq!(c.holder, Holder::PrimaryAdministrators, "{}", c.stem);
            }
        }
        assert_eq!(issuer_of(spec("etcd").unwrap()).stem, "etcd-ca");
        assert_eq!(issuer_of(spec("etcd-client").unwrap()).stem, "etcd-ca");
        assert_eq!(
            issuer_of(spec("front-proxy-client").unwrap()).stem,
            "front-proxy-ca"
        );
    }

    #[test]
    fn apiserver_sans() {
        let (dns, ips) = sans_for(Sans::Apiserver, &settings()).unwrap();
        assert!(dns.contains(&"kubernetes.example.com".to_string()));
        assert!(ips.contains(&"10.3.0.1".parse().unwrap()));
    }

    #[test]
    fn every_identity_is_reserved() {
        // S4: no administrator may take a component's user name, or a
        // group kaws binds rights to.
        let reserved = |n: &str| {
            crate::layout::is_reserved_admin_name(n)
                || crate::layout::RESERVED_ADMIN_PREFIXES
                    .iter()
                    .any(|p| n.starts_with(p))
        };
        for c in CLUSTER_CERTS.iter().filter(|c| !c.common_name.is_empty()) {
            let cn = c.common_name.replace("{cluster}", "prod");
            assert!(reserved(&cn), "{cn}");
            for o in c.organizations {
                assert!(reserved(o), "{o}");
            }
        }
        for name in [
            "system:bootstrappers",
            "system:nodes",
            "system:node:ip-10-0-1-2.ec2.internal",
        ] {
            assert!(reserved(name), "{name}");
        }
        assert!(spec("kubelet-signer").unwrap().signs());
        assert!(!spec("kube-proxy").unwrap().signs());
        assert!(Holder::ControllersAndWorkers.held_by(Holder::Workers));
        assert!(Holder::ControllersAndWorkers.held_by(Holder::Controllers));
        assert!(!Holder::ControllersAndWorkers.held_by(Holder::Etcd));
        assert!(!Holder::Controllers.held_by(Holder::Workers));
    }

    #[tokio::test]
    async fn sign_chain_roundtrip() {
        let s = settings();
        let ca_key = CaSigner::local(
            PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
            "ca-key.pem.encrypted",
        )
        .unwrap();
        let ca_pem = self_signed(&CA, &Subject::for_cluster(&CA, &s).unwrap(), &ca_key, false)
            .await
            .unwrap();
        let ca = Ca::new(&ca_pem, &ca_key).unwrap();
        let leaf = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let spec = spec("apiserver").unwrap();
        let pem = ca
            .sign(
                spec,
                &Subject::for_cluster(spec, &s).unwrap(),
                leaf.key_pair(),
                365,
                false,
            )
            .await
            .unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // The leaf verifies under the CA's key.
        let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
        let ca_cert = ca_cert.parse_x509().unwrap();
        let (_, leaf_cert) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let leaf_cert = leaf_cert.parse_x509().unwrap();
        leaf_cert
            .verify_signature(Some(ca_cert.public_key()))
            .unwrap();
        ca_cert.verify_signature(None).unwrap();
        let secret = leaf.to_secret();
        let again = PrivateKey::from_secret(&secret, "t").unwrap();
        assert_eq!(again.public_key_der(), leaf.public_key_der());
        // The wrong key for the CA is refused.
        let wrong = CaSigner::local(leaf, "x").unwrap();
        assert!(Ca::new(&ca_pem, &wrong).is_err());
    }
}
