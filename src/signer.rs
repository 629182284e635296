//! The one seam for signing certificates, beside [`crate::kms::Sealer`]:
//! a CA signs through a [`Signer`], and nothing that issues a certificate
//! (`cluster init`, `admin sign`, `cluster renew`, a future rotation) knows
//! whether the CA's key is a key kaws decrypted ([`CaSigner::Local`], the
//! `sealed` design) or an asymmetric KMS key that signs with `kms:Sign`
//! and never releases the private key ([`CaSigner::Kms`]).
//!
//! Both certificate builders (rcgen for the cluster's certificates, the
//! hand-written DER of [`crate::der`] for administrators) produce the
//! to-be-signed bytes first; the signer signs them and [`wrap`] assembles
//! the certificate. rcgen's signing trait is synchronous while KMS is
//! reached asynchronously, so rcgen is handed a [`Capture`] key that
//! records the bytes it would sign: no runtime is blocked inside rcgen.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::kms::AwsKms;
use crate::pki::PrivateKey;
use crate::settings::{CaKey, KeyAlgorithm};

/// The signature algorithms kaws signs certificates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigAlg {
    EcdsaP256Sha256,
    RsaPkcs1Sha256,
}

impl SigAlg {
    pub fn of(alg: KeyAlgorithm) -> Self {
        if alg.is_rsa() {
            SigAlg::RsaPkcs1Sha256
        } else {
            SigAlg::EcdsaP256Sha256
        }
    }

    pub fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SigAlg::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SigAlg::RsaPkcs1Sha256 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// KMS' name of the signing algorithm.
    pub fn kms_name(self) -> &'static str {
        match self {
            SigAlg::EcdsaP256Sha256 => "ECDSA_SHA_256",
            SigAlg::RsaPkcs1Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        }
    }

    /// The AlgorithmIdentifier, DER.
    pub fn identifier_der(self) -> Vec<u8> {
        use yasna::models::ObjectIdentifier;
        yasna::construct_der(|w| match self {
            SigAlg::EcdsaP256Sha256 => w.write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(&[1, 2, 840, 10045, 4, 3, 2]))
            }),
            SigAlg::RsaPkcs1Sha256 => w.write_sequence(|w| {
                w.next().write_oid(&ObjectIdentifier::from_slice(&[
                    1, 2, 840, 113549, 1, 1, 11,
                ]));
                w.next().write_null();
            }),
        })
    }
}

/// Something that signs the bytes of a certificate for a CA.
#[allow(async_fn_in_trait)]
pub trait Signer {
    /// The CA's public key, a DER SubjectPublicKeyInfo.
    fn public_key_der(&self) -> &[u8];
    fn algorithm(&self) -> SigAlg;
    /// Sign `message` (a DER TBSCertificate) with SHA-256 and the CA's key.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// Where the key lives, for errors ("ca-key.pem.encrypted", "KMS key ...").
    fn describe(&self) -> String;
}

/// A CA's key: decrypted from the repository, or held by KMS.
pub enum CaSigner {
    Local {
        key: PrivateKey,
        spki: Vec<u8>,
        alg: SigAlg,
        /// The sealed file it came from (`ca-key.pem.encrypted`).
        file: String,
    },
    Kms(KmsSigner),
}

impl CaSigner {
    pub fn local(key: PrivateKey, file: impl Into<String>) -> Result<Self> {
        let alg = if key.key_pair().algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            SigAlg::EcdsaP256Sha256
        } else if key.key_pair().algorithm() == &rcgen::PKCS_RSA_SHA256 {
            SigAlg::RsaPkcs1Sha256
        } else {
            return Err(Error::input(
                "the signing key's algorithm is not one kaws uses (ECDSA P-256 or RSA)",
            ));
        };
        Ok(CaSigner::Local {
            spki: key.public_key_der(),
            key,
            alg,
            file: file.into(),
        })
    }

    /// The decrypted key, for the `sealed` design's callers that seal it
    /// again (a new CA made by `cluster renew`).
    pub fn local_key(&self) -> Option<&PrivateKey> {
        match self {
            CaSigner::Local { key, .. } => Some(key),
            CaSigner::Kms(_) => None,
        }
    }
}

impl Signer for CaSigner {
    fn public_key_der(&self) -> &[u8] {
        match self {
            CaSigner::Local { spki, .. } => spki,
            CaSigner::Kms(k) => &k.spki,
        }
    }

    fn algorithm(&self) -> SigAlg {
        match self {
            CaSigner::Local { alg, .. } => *alg,
            CaSigner::Kms(k) => k.alg,
        }
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            CaSigner::Local { key, .. } => {
                use rcgen::SigningKey;
                key.key_pair()
                    .sign(message)
                    .map_err(|e| Error::input(format!("could not sign: {e}")))
            }
            CaSigner::Kms(k) => k.kms.sign(&k.key_id, k.alg, &k.what, message).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            CaSigner::Local { file, .. } => file.clone(),
            CaSigner::Kms(k) => format!("KMS key {}", k.key_id),
        }
    }
}

/// A CA key held by KMS: its ARN and public key (from GetPublicKey).
pub struct KmsSigner {
    pub kms: AwsKms,
    pub key_id: String,
    pub spki: Vec<u8>,
    pub alg: SigAlg,
    /// What the key is, for errors: "the cluster certificate authority".
    pub what: String,
}

/// The key rcgen is given: it records the to-be-signed bytes and returns a
/// placeholder; the real signature comes from a [`Signer`] afterwards.
pub(crate) struct Capture {
    raw_public_key: Vec<u8>,
    alg: SigAlg,
    tbs: Mutex<Option<Vec<u8>>>,
}

impl Capture {
    pub(crate) fn new(signer: &impl Signer) -> Result<Self> {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(signer.public_key_der())
            .map_err(|e| {
                Error::input(format!(
                    "{}: its public key does not parse: {e}",
                    signer.describe()
                ))
            })?;
        Ok(Capture {
            raw_public_key: spki.subject_public_key.data.to_vec(),
            alg: signer.algorithm(),
            tbs: Mutex::new(None),
        })
    }

    /// The bytes rcgen asked to sign (the last ones).
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        self.tbs.lock().ok().and_then(|mut t| t.take())
    }
}

impl rcgen::PublicKeyData for Capture {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg.rcgen()
    }
}

impl rcgen::SigningKey for Capture {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        if let Ok(mut t) = self.tbs.lock() {
            *t = Some(msg.to_vec());
        }
        Ok(vec![0])
    }
}

/// A certificate (or any signed X.509 structure) as PEM: the TBS bytes, the
/// algorithm and the signature.
pub fn wrap(tbs: &[u8], alg: SigAlg, signature: &[u8], tag: &str) -> String {
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(tbs);
            w.next().write_der(&alg.identifier_der());
            w.next().write_bitvec_bytes(signature, signature.len() * 8);
        })
    });
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Sign `tbs` with `signer` and assemble the certificate.
pub async fn sign_certificate(signer: &impl Signer, tbs: Vec<u8>) -> Result<String> {
    let sig = signer.sign(&tbs).await?;
    Ok(wrap(&tbs, signer.algorithm(), &sig, "CERTIFICATE"))
}

/// `--ca-kms-key CA=KEY` values, by CA stem: each CA at most once, only
/// CAs of the table, only with `--ca-key kms`.
pub fn parse_ca_kms_keys(given: &[String], mode: CaKey) -> Result<BTreeMap<String, String>> {
    let mut keys = BTreeMap::new();
    if !given.is_empty() && mode == CaKey::Sealed {
        return Err(Error::input(
            "--ca-kms-key applies only to --ca-key kms: a sealed CA key is generated by kaws",
        )
        .with_hint("leave out --ca-kms-key, or use --ca-key kms"));
    }
    let cas: Vec<&str> = crate::pki::cas().map(|c| c.stem).collect();
    for g in given {
        let shown: String = g.chars().take(120).collect();
        let (ca, key) = g.split_once('=').ok_or_else(|| {
            Error::input(format!("--ca-kms-key {shown:?}: expected CA=KEY")).with_hint(format!(
                "name the CA ({}) and its KMS key, for example --ca-kms-key ca=alias/my-ca",
                cas.join(", ")
            ))
        })?;
        if !cas.contains(&ca) {
            return Err(Error::input(format!(
                "--ca-kms-key {shown:?}: {ca:?} is not one of the cluster's CAs"
            ))
            .with_hint(format!("the CAs are {}", cas.join(", "))));
        }
        crate::settings::validate_kms_key(key)?;
        if keys.insert(ca.to_string(), key.to_string()).is_some() {
            return Err(
                Error::input(format!("--ca-kms-key: {ca} is given more than once"))
                    .with_hint("give each CA one key"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for key in keys.values() {
        if !seen.insert(key) {
            return Err(Error::input(format!(
                "--ca-kms-key: {key} is given for two CAs: each CA is a trust domain of its own and needs a key of its own"
            ))
            .with_hint("give each CA its own KMS key, or leave one out and kaws creates it"));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_kms_keys_are_parsed_strictly() {
        let ok = parse_ca_kms_keys(&["ca=alias/a".into(), "etcd-ca=alias/b".into()], CaKey::Kms)
            .unwrap();
        assert_eq!(ok.len(), 2);
        for bad in [
            vec!["ca".to_string()],
            vec!["node=alias/a".to_string()],
            vec!["ca=alias/a".to_string(), "ca=alias/b".to_string()],
            vec!["ca=alias/a".to_string(), "etcd-ca=alias/a".to_string()],
        ] {
            assert!(parse_ca_kms_keys(&bad, CaKey::Kms).is_err(), "{bad:?}");
        }
        assert!(parse_ca_kms_keys(&["ca=alias/a".into()], CaKey::Sealed).is_err());
    }

    #[tokio::test]
    async fn local_signatures_verify() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let signer = CaSigner::local(key, "ca-key.pem.encrypted").unwrap();
        let sig = signer.sign(b"message").await.unwrap();
        let spki = signer.public_key_der().to_vec();
        use x509_parser::prelude::FromDer;
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
        let pk = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            parsed.subject_public_key.data.to_vec(),
        );
        pk.verify(b"message", &sig).unwrap();
    }
}
