//! Who may use a cluster's KMS key, and for which files.
//!
//! The certificate table (`pki::CLUSTER_CERTS`) says which holder needs each
//! private key. From it come the "who may decrypt which file" table of the
//! docs, the per-role files the module's IAM policies list (a test holds the
//! two together after a real apply), and the key policy that
//! `kaws cluster key-policy` prints. Nothing here talks to AWS.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::kms::EncryptionContext;
use crate::layout::{self, ClusterName};
use crate::pki::{self, Holder};

/// The module's server roles (IAM role `<cluster>-<name>`), and the holder
/// of the table each one is.
pub const SERVER_ROLES: &[(&str, Holder)] = &[
    ("controller", Holder::Controllers),
    ("worker", Holder::Workers),
    ("etcd", Holder::Etcd),
];

/// The plaintext names (`<stem>-key.pem`, the `kaws:file` label) of the
/// cluster keys a holder needs, in table order.
pub fn key_files(holder: Holder) -> Vec<String> {
    pki::CLUSTER_CERTS
        .iter()
        .filter(|c| c.holder.held_by(holder))
        .map(|c| layout::key_name(c.stem))
        .collect()
}

/// The public files (certificates, `<stem>.pub`) a holder's servers fetch,
/// in table order: the public half of each row it holds, and the
/// certificate of each such row's CA (to verify its peers). Never a CA's
/// key: a CA row's holder is a primary administrator, never a server.
pub fn cert_files(holder: Holder) -> Vec<String> {
    let held: Vec<&pki::CertSpec> = pki::CLUSTER_CERTS
        .iter()
        .filter(|c| c.holder == holder)
        .collect();
    pki::CLUSTER_CERTS
        .iter()
        .filter(|row| {
            held.iter().any(|h| {
                h.stem == row.stem || (h.has_certificate() && pki::issuer_of(h).stem == row.stem)
            })
        })
        .filter_map(layout::public_file_name)
        .collect()
}

/// The KMS actions that read a cluster key's plaintext or move it to another
/// KMS key: what the key policy keeps from whoever does not hold the file.
const READ_ACTIONS: &[&str] = &["kms:Decrypt", "kms:ReEncryptFrom"];

/// What a primary administrator's kaws commands call with an encryption
/// context (`cluster init`/`renew` encrypt, `admin sign`/`check`/`renew`
/// decrypt, `reencrypt` re-encrypts from one key to another).
const ADMIN_CONTEXT_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// An IAM principal a key policy may name: `arn:<partition>:iam::<account>:user/...`
/// or `...:role/...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalArn {
    text: String,
    partition: String,
    account: String,
}

impl PrincipalArn {
    pub fn parse(s: &str) -> Result<Self> {
        let shown: String = s.chars().take(120).collect();
        let bad = |why: &str, hint: &str| {
            Error::input(format!("administrator {shown:?}: {why}")).with_hint(hint.to_string())
        };
        const FORM: &str = "give the ARN of an IAM role or user, such as arn:aws:iam::123456789012:role/kaws-admin (`aws iam get-role --role-name NAME --query Role.Arn`)";
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(bad("not an ARN", FORM));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            return Err(bad(
                "unknown partition (aws, aws-cn or aws-us-gov expected)",
                FORM,
            ));
        }
        if service == "sts" && resource.starts_with("assumed-role/") {
            let role = resource.split('/').nth(1).unwrap_or("ROLE");
            return Err(bad(
                "a role session, not a role (this is what `aws sts get-caller-identity` prints)",
                &format!("name the role itself: `aws iam get-role --role-name {role} --query Role.Arn` prints its ARN, path included"),
            ));
        }
        if service != "iam" || !region.is_empty() {
            return Err(bad("not an IAM ARN", FORM));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account id must be 12 digits", FORM));
        }
        if resource == "root" {
            return Err(bad(
                "the whole account cannot be a primary administrator",
                "the policy already lets the account's IAM policies grant use of the key; name the roles or users of the people who hold the cluster's keys",
            ));
        }
        let name = resource
            .strip_prefix("role/")
            .or_else(|| resource.strip_prefix("user/"));
        // IAM names and paths: letters, digits, + = , . @ _ - and / (no wildcard:
        // a key policy's principal must name one principal).
        let ok_name = name.is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 512
                && !n.ends_with('/')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        });
        if !ok_name {
            return Err(bad(
                "not an IAM role or user (role/NAME or user/NAME, no wildcards)",
                FORM,
            ));
        }
        Ok(PrincipalArn {
            text: s.to_string(),
            partition: partition.to_string(),
            account: account.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A 12-digit AWS account id.
fn parse_account(s: &str) -> Result<String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(
            Error::input(format!("invalid account id {:?}", s.chars().take(40).collect::<String>()))
                .with_hint("give the 12 digits of the AWS account that holds the KMS key and the cluster (`aws sts get-caller-identity --query Account`)"),
        )
    }
}

/// The key policy of a cluster's KMS key.
///
/// - The account's IAM policies may grant use of the key: that is how the
///   servers reach it, each through its role's IAM policy, which allows
///   `kms:Decrypt` only for its own files (per-file encryption context).
/// - The primary administrators are named: DescribeKey without condition
///   (it carries no encryption context), and the calls kaws makes with one,
///   limited to this cluster's context.
/// - Whatever IAM says, a cluster key file can be decrypted (or re-encrypted
///   away) only by the primary administrators and the role of the table that
///   holds it; `ca-key.pem` by the primary administrators alone.
pub fn key_policy(
    cluster: &ClusterName,
    administrators: &[String],
    account: Option<&str>,
) -> Result<Value> {
    if administrators.is_empty() {
        return Err(Error::input("no primary administrator given").with_hint(
            "name at least one with --administrator ARN (an IAM role or user); nobody else may decrypt the CA key",
        ));
    }
    let mut admins: Vec<PrincipalArn> = Vec::new();
    for a in administrators {
        let p = PrincipalArn::parse(a)?;
        if !admins.contains(&p) {
            admins.push(p);
        }
    }
    let partition = admins[0].partition.clone();
    if let Some(other) = admins.iter().find(|a| a.partition != partition) {
        return Err(Error::input(format!(
            "administrator {} is in partition {}, {} in {partition}",
            other.text, other.partition, admins[0].text
        ))
        .with_hint(
            "a KMS key and its administrators live in one partition; give ARNs of one partition",
        ));
    }
    let account = match account {
        Some(a) => parse_account(a)?,
        None => {
            let first = admins[0].account.clone();
            if admins.iter().any(|a| a.account != first) {
                return Err(Error::input(
                    "the administrators belong to more than one AWS account, so kaws cannot tell which one holds the key and the cluster",
                )
                .with_hint("give the account that holds the KMS key and the cluster with --account ID"));
            }
            first
        }
    };

    let admin_arns: Vec<&str> = admins.iter().map(|a| a.as_str()).collect();
    let cluster_ctx = format!("kms:EncryptionContext:{}", EncryptionContext::CLUSTER_KEY);
    let file_ctx = format!("kms:EncryptionContext:{}", EncryptionContext::FILE_KEY);
    let mut statements = vec![
        json!({
            "Sid": "EnableIAMPolicies",
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:{partition}:iam::{account}:root") },
            "Action": "kms:*",
            "Resource": "*"
        }),
        json!({
            "Sid": "PrimaryAdministratorsDescribeKey",
            "Effect": "Allow",
            "Principal": { "AWS": admin_arns },
            "Action": "kms:DescribeKey",
            "Resource": "*"
        }),
        json!({
            "Sid": "PrimaryAdministratorsUseClusterKeys",
            "Effect": "Allow",
            "Principal": { "AWS": admin_arns },
            "Action": ADMIN_CONTEXT_ACTIONS,
            "Resource": "*",
            "Condition": { "StringEquals": { cluster_ctx.clone(): cluster.as_str() } }
        }),
    ];
    // One statement per holder of the table, naming every role that holds
    // its files: a file two roles hold (the bootstrap token) is kept from
    // everyone else, not from one of the two.
    let role_arn = |role: &str| {
        format!(
            "arn:{partition}:iam::{account}:role/{}",
            server_role_name(cluster, role)
        )
    };
    let mut holders: Vec<(String, Holder, Vec<String>)> = vec![(
        "OnlyPrimaryAdministratorsReadCaKey".to_string(),
        Holder::PrimaryAdministrators,
        vec![],
    )];
    for (role, holder) in SERVER_ROLES {
        let sid: String = format!(
            "OnlyPrimaryAdministratorsAnd{}ReadItsKeys",
            capitalize(role)
        );
        holders.push((sid, *holder, vec![role_arn(role)]));
    }
    holders.push((
        "OnlyPrimaryAdministratorsControllerAndWorkerReadTheirKeys".to_string(),
        Holder::ControllersAndWorkers,
        SERVER_ROLES
            .iter()
            .filter(|(_, h)| Holder::ControllersAndWorkers.held_by(*h))
            .map(|(r, _)| role_arn(r))
            .collect(),
    ));
    for (sid, holder, role_arns) in holders {
        let files: Vec<String> = pki::CLUSTER_CERTS
            .iter()
            .filter(|c| c.holder == holder)
            .map(|c| layout::key_name(c.stem))
            .collect();
        if files.is_empty() {
            continue;
        }
        let mut allowed: Vec<&str> = admin_arns.clone();
        allowed.extend(role_arns.iter().map(String::as_str));
        statements.push(json!({
            "Sid": sid,
            "Effect": "Deny",
            "Principal": { "AWS": "*" },
            "Action": READ_ACTIONS,
            "Resource": "*",
            "Condition": {
                "StringEquals": { cluster_ctx.clone(): cluster.as_str(), file_ctx.clone(): files },
                "ArnNotEquals": { "aws:PrincipalArn": allowed }
            }
        }));
    }
    Ok(json!({
        "Version": "2012-10-17",
        "Id": format!("kaws-{cluster}"),
        "Statement": statements
    }))
}

/// The key policy of one CA's asymmetric KMS key (`--ca-key kms`): who
/// may issue certificates is exactly who may call `kms:Sign` on it.
///
/// - The account root keeps `kms:*` (without it the key is unmanageable),
///   but an explicit Deny overrides any IAM grant: nobody but the primary
///   administrators may call `kms:Sign`, and they only on whole
///   certificates (`kms:MessageType` RAW, the TBSCertificate kaws sends).
/// - The primary administrators may read the public key and describe the
///   key (`cluster check`).
/// - Nobody but `break_glass` (if given) may schedule the key's deletion or
///   disable it: deleting a CA key ends the cluster's PKI.
pub fn ca_key_policy(
    cluster: &ClusterName,
    ca_stem: &str,
    administrators: &[String],
    account: Option<&str>,
    break_glass: Option<&str>,
) -> Result<Value> {
    let ca = pki::cas().find(|c| c.stem == ca_stem).ok_or_else(|| {
        let names: Vec<&str> = pki::cas().map(|c| c.stem).collect();
        Error::input(format!("{ca_stem:?} is not one of the cluster's CAs"))
            .with_hint(format!("give one of {}", names.join(", ")))
    })?;
    // The same administrators, partition and account rules as the
    // cluster key's policy.
    let base = key_policy(cluster, administrators, account)?;
    let admin_arns = base["Statement"][1]["Principal"]["AWS"].clone();
    let mut statements = vec![
        base["Statement"][0].clone(),
        json!({
            "Sid": "PrimaryAdministratorsSignCertificates",
            "Effect": "Allow",
            "Principal": { "AWS": admin_arns },
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": { "StringEquals": { "kms:MessageType": "RAW" } }
        }),
        json!({
            "Sid": "PrimaryAdministratorsReadPublicKey",
            "Effect": "Allow",
            "Principal": { "AWS": admin_arns },
            "Action": ["kms:GetPublicKey", "kms:DescribeKey"],
            "Resource": "*"
        }),
        json!({
            "Sid": "OnlyPrimaryAdministratorsIssueCertificates",
            "Effect": "Deny",
            "Principal": { "AWS": "*" },
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": { "ArnNotEquals": { "aws:PrincipalArn": admin_arns } }
        }),
    ];
    let deletion = match break_glass {
        Some(b) => {
            let p = PrincipalArn::parse(b)?;
            json!({
                "Sid": "OnlyBreakGlassDeletesOrDisables",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"],
                "Resource": "*",
                "Condition": { "ArnNotEquals": { "aws:PrincipalArn": p.as_str() } }
            })
        }
        None => json!({
            "Sid": "NobodyDeletesOrDisables",
            "Effect": "Deny",
            "Principal": { "AWS": "*" },
            "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"],
            "Resource": "*"
        }),
    };
    statements.push(deletion);
    Ok(json!({
        "Version": "2012-10-17",
        "Id": format!("kaws-{cluster}-{}", ca.stem),
        "Statement": statements
    }))
}

/// The IAM role name the module gives a server role (`local.iam_names` in
/// iam.tf): `<cluster>-<role>` when it fits IAM's 64 characters, else the
/// cluster name cut to 42, 8 hex digits of its SHA-256, and the role.
pub fn server_role_name(cluster: &ClusterName, role: &str) -> String {
    use sha2::{Digest, Sha256};
    let c = cluster.as_str();
    let plain = format!("{c}-{role}");
    if plain.len() <= 64 {
        return plain;
    }
    let hash = hex::encode(Sha256::digest(c.as_bytes()));
    // Cluster names are ASCII, so byte and character counts agree.
    format!("{}-{}-{role}", &c[..c.len().min(42)], &hash[..8])
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_key_policy_lets_only_administrators_sign_and_only_break_glass_delete() {
        let c = ClusterName::parse("prod").unwrap();
        let admins = vec!["arn:aws:iam::111122223333:role/admin".to_string()];
        let p = ca_key_policy(
            &c,
            "etcd-ca",
            &admins,
            None,
            Some("arn:aws:iam::111122223333:role/break-glass"),
        )
        .unwrap();
        let text = p.to_string();
        assert!(
            text.contains("OnlyPrimaryAdministratorsIssueCertificates"),
            "{text}"
        );
        assert!(text.contains("kms:ScheduleKeyDeletion") && text.contains("role/break-glass"));
        assert_eq!(p["Id"], "kaws-prod-etcd-ca");
        assert!(ca_key_policy(&c, "node", &admins, None, None).is_err());
        let p = ca_key_policy(&c, "ca", &admins, None, None).unwrap();
        assert!(p.to_string().contains("NobodyDeletesOrDisables"));
    }

    fn prod() -> ClusterName {
        ClusterName::parse("prod").unwrap()
    }

    const ADMIN: &str = "arn:aws:iam::123456789012:role/kaws-admin";

    #[test]
    fn every_cluster_key_has_exactly_one_holder_and_no_server_holds_the_ca_key() {
        let mut all: Vec<String> = key_files(Holder::PrimaryAdministrators);
        assert_eq!(
            all,
            ["ca-key.pem", "etcd-ca-key.pem", "front-proxy-ca-key.pem"].map(String::from)
        );
        for (_, h) in SERVER_ROLES {
            let files = key_files(*h);
            assert!(!files.is_empty());
            assert!(
                !files.iter().any(|f| f.ends_with("ca-key.pem")),
                "{files:?}"
            );
            all.extend(files);
        }
        // The bootstrap token is the one file two roles hold.
        all.sort();
        all.dedup();
        assert_eq!(all.len(), pki::CLUSTER_CERTS.len());
        assert!(key_files(Holder::Workers).contains(&"bootstrap-token-key.pem".to_string()));
        assert!(key_files(Holder::Controllers).contains(&"bootstrap-token-key.pem".to_string()));
    }

    /// What each server role fetches and decrypts, derived from the table,
    /// against expectations written by hand (what keys.tf listed before the
    /// table drove it): a fast check of what tests/terraform.rs reads back
    /// from IAM after a real apply.
    #[test]
    fn each_role_reads_what_it_needs_and_no_more() {
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let want = |v: &[&str]| sorted(v.iter().map(|s| s.to_string()).collect());
        for (role, holder) in SERVER_ROLES {
            let (certs, keys): (&[&str], &[&str]) = match *role {
                "etcd" => (&["etcd-ca.pem", "etcd.pem"], &["etcd-key.pem"]),
                "worker" => (
                    &["ca.pem", "kube-proxy.pem", "flannel.pem"],
                    &[
                        "bootstrap-token-key.pem",
                        "kube-proxy-key.pem",
                        "flannel-key.pem",
                    ],
                ),
                "controller" => (
                    &[
                        "ca.pem",
                        "etcd-ca.pem",
                        "front-proxy-ca.pem",
                        "front-proxy-client.pem",
                        "apiserver.pem",
                        "etcd-client.pem",
                        "service-account.pub",
                        "controller-manager.pem",
                        "scheduler.pem",
                        "bootstrap.pem",
                        "kubelet-signer.pem",
                    ],
                    &[
                        "apiserver-key.pem",
                        "service-account-key.pem",
                        "etcd-client-key.pem",
                        "controller-manager-key.pem",
                        "scheduler-key.pem",
                        "bootstrap-key.pem",
                        "front-proxy-client-key.pem",
                        "secrets-encryption-key.pem",
                        "kubelet-signer-key.pem",
                        "bootstrap-token-key.pem",
                    ],
                ),
                other => panic!("unexpected role {other}"),
            };
            assert_eq!(sorted(cert_files(*holder)), want(certs), "{role}");
            assert_eq!(sorted(key_files(*holder)), want(keys), "{role}");
        }
        // The variables file names the same, and the one etcd count.
        let vars: Value = serde_json::from_str(&crate::terraform::pki_vars()).unwrap();
        assert_eq!(vars["etcd_count"], json!(pki::ETCD_SERVERS));
        for (role, holder) in SERVER_ROLES {
            assert_eq!(vars["role_keys"][role], json!(key_files(*holder)));
            assert_eq!(vars["role_certs"][role], json!(cert_files(*holder)));
        }
    }

    #[test]
    fn policy_names_the_account_the_administrators_and_every_file_once() {
        let p = key_policy(&prod(), &[ADMIN.into(), ADMIN.into()], None).unwrap();
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st[0]["Principal"]["AWS"], "arn:aws:iam::123456789012:root");
        assert_eq!(st[1]["Principal"]["AWS"], json!([ADMIN]));
        // DescribeKey carries no encryption context: no condition on it.
        assert!(st[1].get("Condition").is_none());
        let denied: Vec<String> = st
            .iter()
            .filter(|s| s["Effect"] == "Deny")
            .flat_map(|s| {
                s["Condition"]["StringEquals"]["kms:EncryptionContext:kaws:file"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(denied.len(), pki::CLUSTER_CERTS.len());
        let ca = st
            .iter()
            .find(|s| s["Sid"] == "OnlyPrimaryAdministratorsReadCaKey")
            .unwrap();
        assert_eq!(
            ca["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
            json!([ADMIN])
        );
    }

    /// The names iam.tf computes, for a short and a 63-character cluster
    /// (the hash checked with `printf %s NAME | sha256sum`).
    #[test]
    fn server_role_names_follow_the_module() {
        assert_eq!(server_role_name(&prod(), "controller"), "prod-controller");
        let long = ClusterName::parse(&format!("l{}ng-cluster", "o".repeat(52))).unwrap();
        assert_eq!(long.as_str().len(), 63);
        assert_eq!(
            server_role_name(&long, "controller"),
            format!("{}-da9065e6-controller", &long.as_str()[..42])
        );
        assert!(server_role_name(&long, "controller").len() <= 64);
        let iam_tf = crate::terraform::MODULE_FILES
            .iter()
            .find(|(n, _)| *n == "iam.tf")
            .unwrap()
            .1;
        assert!(
            iam_tf.contains(
                r#""${substr(var.cluster, 0, 42)}-${substr(sha256(var.cluster), 0, 8)}-${role}""#
            ),
            "iam.tf names long roles another way: update server_role_name"
        );
    }

    #[test]
    fn bad_principals_are_refused_with_a_hint() {
        for bad in [
            "",
            "alice",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::123456789012:group/ops",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a\"b",
        ] {
            let e = key_policy(&prod(), &[bad.into()], None).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Input, "{bad}");
            assert!(e.hint().is_some(), "{bad}");
        }
        assert!(key_policy(&prod(), &[], None).is_err());
        let two = [
            ADMIN.to_string(),
            "arn:aws:iam::210987654321:user/bob".to_string(),
        ];
        assert!(key_policy(&prod(), &two, None).is_err());
        assert!(key_policy(&prod(), &two, Some("123456789012")).is_ok());
        assert!(key_policy(&prod(), &two, Some("1234")).is_err());
    }
}
