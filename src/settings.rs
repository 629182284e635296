//! A cluster's settings: `clusters/<cluster>/terraform.tfvars.json`.
//!
//! The same file is Terraform's variable file and kaws' record of the
//! cluster, so it is JSON (no value can break Terraform's syntax) and its
//! keys are the Terraform entry point's variable names. Every value is
//! validated when read as well as when written: the file may have been
//! edited by hand or by a stranger's commit.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::ClusterName;

/// The largest settings file kaws will read; anything bigger is not ours.
const MAX_SETTINGS_BYTES: u64 = 64 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub cluster: String,
    pub domain: String,
    pub zone_id: String,
    pub region: String,
    pub kms_key_id: String,
    pub ssh_key_name: String,
    /// Who may reach the bastion's SSH port; empty for nobody outside the VPC.
    #[serde(default = "default_ssh_cidr")]
    pub ssh_cidr: String,
    #[serde(default)]
    pub ami: String,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    #[serde(default = "default_vpc_cidr")]
    pub vpc_cidr: String,
    #[serde(default = "default_service_cidr")]
    pub service_cidr: String,
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// S3 bucket holding the Terraform state; empty for local state.
    #[serde(default)]
    pub state_bucket: String,
    /// Where servers live. Settings written before topologies existed have
    /// no such field: those clusters were built public and stay public.
    #[serde(default = "Topology::before_topologies")]
    pub topology: Topology,
    /// NAT gateways of the private topology; ignored when public.
    #[serde(default)]
    pub nat: Nat,
}

/// The SSH CIDR of settings that name none: what kaws used to open, so a
/// hand-written file keeps the access it was written for. `kaws cluster
/// init` itself opens nothing unless `--ssh-cidr` is given.
pub fn default_ssh_cidr() -> String {
    "0.0.0.0/0".into()
}
pub fn default_instance_type() -> String {
    "t3.medium".into()
}
pub fn default_kubernetes_version() -> String {
    "v1.35.4".into()
}
pub fn default_vpc_cidr() -> String {
    "10.0.0.0/16".into()
}
pub fn default_service_cidr() -> String {
    "10.3.0.0/24".into()
}
pub fn default_pod_cidr() -> String {
    "10.2.0.0/16".into()
}

impl ClusterSettings {
    /// Check every value; the error names the field and what is wrong.
    pub fn validate(&self) -> Result<()> {
        ClusterName::parse(&self.cluster)?;
        validate_domain(&self.domain)?;
        validate_zone_id(&self.zone_id)?;
        validate_region(&self.region)?;
        validate_kms_key(&self.kms_key_id)?;
        validate_ssh_key_name(&self.ssh_key_name)?;
        if !self.ssh_cidr.is_empty() {
            Cidr::parse("ssh_cidr", &self.ssh_cidr)?;
        }
        if !self.ami.is_empty() {
            validate_ami(&self.ami)?;
        }
        validate_instance_type(&self.instance_type)?;
        validate_kubernetes_version(&self.kubernetes_version)?;
        Cidr::parse("vpc_cidr", &self.vpc_cidr)?;
        let svc = Cidr::parse("service_cidr", &self.service_cidr)?;
        svc.first_host()?;
        Cidr::parse("pod_cidr", &self.pod_cidr)?;
        if !self.state_bucket.is_empty() {
            validate_bucket(&self.state_bucket)?;
        }
        Ok(())
    }

    /// Read and validate the settings file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsutil::read_limited(
            path,
            MAX_SETTINGS_BYTES,
            "a settings file",
            "restore the file from git (`git checkout -- <file>`)",
        )?;
        Self::from_json(&bytes, path)
    }

    /// Parse and validate settings read from `path` (named in errors).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self> {
        let settings: ClusterSettings = serde_json::from_slice(bytes).map_err(|e| {
            Error::input(format!(
                "{}: not valid cluster settings: {e}",
                path.display()
            ))
            .with_hint("fix the JSON by hand or restore it from git (`git checkout -- <file>`)")
        })?;
        settings.validate().map_err(|e| {
            let hint = e.hint().map(str::to_string);
            let err = Error::input(format!("{}: {}", path.display(), e.message()));
            match hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        })?;
        Ok(settings)
    }

    #[expect(
        clippy::expect_used,
        reason = "a struct of strings and enums always serializes"
    )]
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("settings serialize");
        v.push(b'\n');
        v
    }
}

/// `clusters/<cluster>/<admin>.kms.json`: which KMS key seals an
/// administrator's private key. The ciphertext names its key only in a form
/// KMS reads, and `cluster check` must know the key to report its health
/// without decrypting (a primary administrator may not use others' keys).
/// Public: an ARN is not a secret. Administrators created before kaws
/// recorded it have none; everything but the health report works without it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdminKeyRecord {
    /// The key as the administrator gave it (id, alias or ARN).
    pub kms_key: String,
    /// The key's ARN when the private key was sealed: an alias may move.
    pub kms_key_arn: String,
}

impl AdminKeyRecord {
    /// The record at `path`, `None` if there is none. A record that does
    /// not parse or names no valid key is an error naming the file.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        // A link, dangling or not, is there: `read_limited` refuses it.
        if !crate::fsutil::present(path) {
            return Ok(None);
        }
        let bytes = crate::fsutil::read_limited(
            path,
            4096,
            "a KMS key record",
            "restore the file from git (`git checkout -- <file>`)",
        )?;
        let record: AdminKeyRecord = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!("{}: not a KMS key record: {e}", path.display()))
                .with_hint("restore the file from git (`git checkout -- <file>`)")
        })?;
        for k in [&record.kms_key, &record.kms_key_arn] {
            validate_kms_key(k).map_err(|e| {
                Error::input(format!("{}: {}", path.display(), e.message()))
                    .with_hint("restore the file from git (`git checkout -- <file>`)")
            })?;
        }
        Ok(Some(record))
    }

    #[expect(clippy::expect_used, reason = "a struct of strings always serializes")]
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("record serializes");
        v.push(b'\n');
        v
    }
}

fn bad(field: &str, value: &str, why: &str, hint: &str) -> Error {
    let shown: String = value.chars().take(100).collect();
    Error::input(format!("invalid {field} {shown:?}: {why}")).with_hint(hint.to_string())
}

/// A DNS name: labels of letters, digits and hyphens, at least two labels.
pub fn validate_domain(s: &str) -> Result<()> {
    let hint =
        "give a DNS name such as example.com (the cluster's API will be kubernetes.<domain>)";
    let s_trim = s.strip_suffix('.').unwrap_or(s);
    if s_trim.is_empty() || s_trim.len() > 253 - "kubernetes.".len() {
        return Err(bad("domain", s, "wrong length", hint));
    }
    let labels: Vec<&str> = s_trim.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("domain", s, "needs at least two labels", hint));
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        if !ok {
            return Err(bad("domain", s, &format!("label {l:?} is not valid"), hint));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(bad("domain", s, "the last label is all digits", hint));
    }
    Ok(())
}

fn validate_zone_id(s: &str) -> Result<()> {
    let s2 = s.strip_prefix("/hostedzone/").unwrap_or(s);
    if s2.is_empty() || s2.len() > 32 || !s2.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad(
            "zone id",
            s,
            "not a Route 53 hosted zone id",
            "find it with `aws route53 list-hosted-zones` (for example Z0123456789ABCDEFGHIJ)",
        ));
    }
    Ok(())
}

fn validate_region(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.contains('-');
    if !ok {
        return Err(bad(
            "region",
            s,
            "not an AWS region",
            "give a region such as us-east-1",
        ));
    }
    Ok(())
}

fn validate_ssh_key_name(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(bad(
            "ssh key name",
            s,
            "not an EC2 key pair name",
            "give the name of an EC2 key pair (`aws ec2 describe-key-pairs`)",
        ));
    }
    Ok(())
}

fn validate_ami(s: &str) -> Result<()> {
    let ok = s.strip_prefix("ami-").is_some_and(|h| {
        !h.is_empty() && h.len() <= 32 && h.bytes().all(|c| c.is_ascii_hexdigit())
    });
    if !ok {
        return Err(bad(
            "ami",
            s,
            "not an AMI id",
            "give an id such as ami-0123456789abcdef0, or leave it out to use Flatcar stable",
        ));
    }
    Ok(())
}

fn validate_instance_type(s: &str) -> Result<()> {
    let ok = s.len() <= 32
        && s.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && b.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(bad(
            "instance type",
            s,
            "not an EC2 instance type",
            "give a type such as t3.medium",
        ));
    }
    Ok(())
}

fn validate_kubernetes_version(s: &str) -> Result<()> {
    let parts: Vec<&str> = s.strip_prefix('v').unwrap_or("").split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|c| c.is_ascii_digit()));
    if !ok {
        return Err(bad(
            "kubernetes version",
            s,
            "not of the form vMAJOR.MINOR.PATCH",
            "give a version such as v1.35.4",
        ));
    }
    Ok(())
}

fn validate_bucket(s: &str) -> Result<()> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return Err(bad(
            "state bucket",
            s,
            "not an S3 bucket name",
            "give 3 to 63 lowercase letters, digits, dots and hyphens",
        ));
    }
    Ok(())
}

/// A KMS key reference: key id, key ARN, `alias/NAME` or alias ARN.
pub fn validate_kms_key(s: &str) -> Result<()> {
    let hint = "give a key id (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN, alias/NAME or an alias ARN";
    let is_uuid = |k: &str| {
        let parts: Vec<&str> = k.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        (parts.len() == 5
            && parts
                .iter()
                .zip(lens)
                .all(|(p, n)| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit())))
            // Multi-Region keys: mrk- followed by 32 hex digits.
            || k.strip_prefix("mrk-")
                .is_some_and(|h| h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    let is_alias = |a: &str| {
        a.strip_prefix("alias/").is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 250
                && !n.starts_with("aws/")
                && n.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"/_-".contains(&c))
        })
    };
    let ok = if let Some(rest) = s.strip_prefix("arn:") {
        // arn:PARTITION:kms:REGION:ACCOUNT:key/ID or :alias/NAME
        let f: Vec<&str> = rest.splitn(5, ':').collect();
        f.len() == 5
            && f[0].starts_with("aws")
            && f[1] == "kms"
            && !f[2].is_empty()
            && f[3].len() == 12
            && f[3].bytes().all(|c| c.is_ascii_digit())
            && (f[4].strip_prefix("key/").is_some_and(is_uuid) || is_alias(f[4]))
    } else {
        is_uuid(s) || is_alias(s)
    };
    if ok {
        Ok(())
    } else {
        Err(bad("KMS key", s, "not a KMS key reference", hint))
    }
}

/// An IPv4 network in CIDR notation, with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let hint = "give an IPv4 network such as 10.0.0.0/16";
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad(field, s, "missing /PREFIX", hint))?;
        let addr = Ipv4Addr::from_str(a).map_err(|_| bad(field, s, "not an IPv4 address", hint))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p: &u8| *p <= 32 && p.to_string() == p_str(s, a))
            .ok_or_else(|| bad(field, s, "the prefix must be 0 to 32", hint))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(addr) & !mask != 0 {
            let net = Ipv4Addr::from(u32::from(addr) & mask);
            return Err(bad(
                field,
                s,
                "host bits are set",
                &format!("did you mean {net}/{prefix}?"),
            ));
        }
        Ok(Cidr { addr, prefix })
    }

    /// The first usable address (the Kubernetes service IP of the apiserver).
    pub fn first_host(&self) -> Result<Ipv4Addr> {
        if self.prefix >= 31 {
            return Err(Error::input(format!(
                "invalid service CIDR {self}: /{} has no room for services",
                self.prefix
            ))
            .with_hint("give a network of /30 or larger, such as 10.3.0.0/24"));
        }
        Ok(Ipv4Addr::from(u32::from(self.addr) + 1))
    }

    /// The n-th address of the network (the cluster DNS service is the 10th).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        (u64::from(n) < size - 1).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The algorithm of the private keys kaws generates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 4] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        !matches!(self, KeyAlgorithm::EcdsaP256)
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "key algorithm",
                    s,
                    "not supported",
                    "choose one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096",
                )
            })
    }
}

/// The network layout of a cluster (`--topology`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// etcd, masters and nodes in private subnets behind NAT gateways; only
    /// the bastion and the load balancers public; S3 and KMS through VPC
    /// endpoints.
    #[default]
    Private,
    /// Every server in a public subnet with a public address.
    Public,
}

impl Topology {
    pub const ALL: [Topology; 2] = [Topology::Private, Topology::Public];

    /// The topology of settings written before the field existed.
    pub fn before_topologies() -> Self {
        Topology::Public
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Private => "private",
            Topology::Public => "public",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topology {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Topology::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "topology",
                    s,
                    "not a topology",
                    "choose private (servers behind NAT, the default) or public",
                )
            })
    }
}

/// How many NAT gateways a private cluster has (`--nat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nat {
    /// One per availability zone: a zone's servers lose their outbound
    /// path only when their own zone fails.
    #[default]
    PerZone,
    /// One for the whole cluster: cheaper, and a single point of failure.
    Single,
}

impl Nat {
    pub const ALL: [Nat; 2] = [Nat::PerZone, Nat::Single];

    pub fn as_str(self) -> &'static str {
        match self {
            Nat::PerZone => "per-zone",
            Nat::Single => "single",
        }
    }
}

impl fmt::Display for Nat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Nat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Nat::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "nat",
                    s,
                    "not a NAT layout",
                    "choose per-zone (one NAT gateway per zone, the default) or single (one for all zones, a single point of failure)",
                )
            })
    }
}

/// The prefix text after the slash, to refuse "08" or "+8".
fn p_str<'a>(s: &'a str, a: &str) -> &'a str {
    &s[a.len() + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("cidr", "10.3.0.0/24").unwrap();
        assert_eq!(c.first_host().unwrap(), Ipv4Addr::new(10, 3, 0, 1));
        assert_eq!(c.nth(10).unwrap(), Ipv4Addr::new(10, 3, 0, 10));
        for bad in [
            "10.3.0.1/24",
            "10.3.0.0",
            "10.3.0.0/33",
            "10.3.0/24",
            "x/8",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "",
            "::1/128",
        ] {
            assert!(Cidr::parse("cidr", bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("c", "10.0.0.0/31")
            .unwrap()
            .first_host()
            .is_err());
    }

    #[test]
    fn kms_keys() {
        for good in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/kaws",
            "alias/team/kaws_1",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:alias/kaws",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
        ] {
            validate_kms_key(good).unwrap();
        }
        for bad in [
            "",
            "alias/",
            "kaws",
            "alias/aws/ebs",
            "1234",
            "arn:aws:kms:us-east-1:123:key/x",
            "arn:aws:s3:::bucket",
            "alias/a b",
        ] {
            assert!(validate_kms_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains() {
        for good in ["example.com", "k8s.example.co.uk", "a-b.io", "example.com."] {
            validate_domain(good).unwrap();
        }
        for bad in [
            "",
            "com",
            "-a.com",
            "a..com",
            "a_b.com",
            "1.2.3.4",
            "ex ample.com",
            "a.com/x",
        ] {
            assert!(validate_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topologies() {
        for t in Topology::ALL {
            assert_eq!(t.as_str().parse::<Topology>().unwrap(), t);
        }
        for n in Nat::ALL {
            assert_eq!(n.as_str().parse::<Nat>().unwrap(), n);
        }
        for bad in ["", "Private", "privat", "per_zone"] {
            assert!(bad.parse::<Topology>().is_err(), "{bad}");
            assert!(bad.parse::<Nat>().is_err(), "{bad}");
        }
        // Settings from before topologies keep the public layout they were built with.
        let old = br#"{"cluster":"a","domain":"example.com","zone_id":"Z1","region":"us-east-1","kms_key_id":"alias/k","ssh_key_name":"k"}"#;
        let s = ClusterSettings::from_json(old, Path::new("t.json")).unwrap();
        assert_eq!((s.topology, s.nat), (Topology::Public, Nat::PerZone));
        assert_eq!(s.ssh_cidr, "0.0.0.0/0");
        let mut new = s.clone();
        new.topology = Topology::Private;
        new.ssh_cidr = String::new();
        let back = ClusterSettings::from_json(&new.to_json(), Path::new("t.json")).unwrap();
        assert_eq!(back, new);
        let text = String::from_utf8(new.to_json()).unwrap();
        assert!(
            text.contains("\"topology\": \"private\"") && text.contains("\"nat\": \"per-zone\""),
            "{text}"
        );
    }

    #[test]
    fn versions() {
        validate_kubernetes_version("v1.32.4").unwrap();
        for bad in ["1.32.4", "v1.32", "v1.32.x", "v1..4"] {
            assert!(validate_kubernetes_version(bad).is_err(), "{bad}");
        }
    }
}
