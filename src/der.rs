//! DER for the two documents whose subject rcgen cannot express: an
//! administrator's CSR and certificate, whose subject carries one O per
//! Kubernetes group (rcgen keeps one value per attribute type).
//!
//! Everything here is fixed by the certificate table's ADMIN_CERT row; the
//! only inputs from a CSR are its CN, its O values and its public key.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};
use yasna::{DERWriter, Tag};

use crate::error::{Error, Result};
use crate::pki::{CertSpec, ExtUsage, KeyUsage, PrivateKey, Subject};

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_O: &[u64] = &[2, 5, 4, 10];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_RSA_SHA256: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const OID_AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];
const OID_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

/// The signature algorithm of a key kaws generated.
fn write_sig_alg(w: DERWriter, key: &PrivateKey) -> Result<()> {
    let alg = key.key_pair().algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        w.write_sequence(|w| w.next().write_oid(&oid(OID_ECDSA_SHA256)));
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(OID_RSA_SHA256));
            w.next().write_null();
        });
    } else {
        return Err(Error::input(
            "the signing key's algorithm is not one kaws uses (ECDSA P-256 or RSA)",
        ));
    }
    Ok(())
}

fn write_name(w: DERWriter, subject: &Subject) {
    w.write_sequence(|w| {
        for o in &subject.organizations {
            w.next().write_set(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(OID_O));
                    w.next().write_utf8_string(o);
                })
            });
        }
        w.next().write_set(|w| {
            w.next().write_sequence(|w| {
                w.next().write_oid(&oid(OID_CN));
                w.next().write_utf8_string(&subject.common_name);
            })
        });
    });
}

fn write_time(w: DERWriter, t: OffsetDateTime) {
    // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    if t.year() < 2050 {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

fn write_ext(w: DERWriter, arcs: &[u64], critical: bool, value: Vec<u8>) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(arcs));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(&value);
    });
}

/// The key identifier kaws uses: the first 20 bytes of SHA-256 of the key.
fn key_id(spki_der: &[u8]) -> Vec<u8> {
    Sha256::digest(spki_der)[..20].to_vec()
}

fn sign_and_wrap(key: &PrivateKey, tbs: Vec<u8>, tag: &str) -> Result<String> {
    use rcgen::SigningKey;
    let sig = key
        .key_pair()
        .sign(&tbs)
        .map_err(|e| Error::input(format!("could not sign: {e}")))?;
    let mut alg_err = Ok(());
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            alg_err = write_sig_alg(w.next(), key);
            w.next().write_bitvec_bytes(&sig, sig.len() * 8);
        })
    });
    alg_err?;
    Ok(pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// A PKCS#10 CSR for `subject`, signed by `key`.
pub fn csr(key: &PrivateKey, subject: &Subject) -> Result<String> {
    let spki = key.public_key_der();
    let info = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            write_name(w.next(), subject);
            w.next().write_der(&spki);
            // No attributes: a kaws CSR requests nothing but its subject.
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_set(|_| {}));
        })
    });
    sign_and_wrap(key, info, "CERTIFICATE REQUEST")
}

/// Everything a signed certificate needs from its issuer.
pub struct IssuerInfo<'a> {
    pub subject_der: &'a [u8],
    pub key_id: Vec<u8>,
    /// The algorithm the issuer's signer signs with.
    pub alg: crate::signer::SigAlg,
}

/// The TBSCertificate of a certificate for `spki_der` with exactly what
/// `spec` says, for the issuer's [`crate::signer::Signer`] to sign.
#[allow(clippy::too_many_arguments)]
pub fn certificate(
    spec: &CertSpec,
    subject: &Subject,
    spki_der: &[u8],
    subject_rsa: bool,
    issuer: &IssuerInfo<'_>,
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>> {
    let mut usages: Vec<KeyUsage> = spec.key_usages.to_vec();
    if subject_rsa && spec.rsa_key_encipherment {
        usages.push(KeyUsage::KeyEncipherment);
    }
    // keyUsage bits: digitalSignature(0), keyEncipherment(2), keyCertSign(5), cRLSign(6).
    let mut bits: u8 = 0;
    let mut len = 0;
    for u in &usages {
        let bit = match u {
            KeyUsage::DigitalSignature => 0,
            KeyUsage::KeyEncipherment => 2,
            KeyUsage::KeyCertSign => 5,
            KeyUsage::CrlSign => 6,
        };
        bits |= 0x80 >> bit;
        len = len.max(bit + 1);
    }
    let basic = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            if spec.signs() {
                w.next().write_bool(true);
            }
            // An intermediate (kubelet-signer) signs leaves only.
            if spec.signs() && !spec.is_ca {
                w.next().write_u8(0);
            }
        })
    });
    let ku = yasna::construct_der(|w| w.write_bitvec_bytes(&[bits], len));
    let eku = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for u in spec.ext_usages {
                let arcs = match u {
                    ExtUsage::ServerAuth => OID_SERVER_AUTH,
                    ExtUsage::ClientAuth => OID_CLIENT_AUTH,
                };
                w.next().write_oid(&oid(arcs));
            }
        })
    });
    let ski = yasna::construct_der(|w| w.write_bytes(&key_id(spki_der)));
    let aki = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_bytes(&issuer.key_id))
        })
    });
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), |w| w.write_u8(2));
            w.next().write_bigint_bytes(serial, true);
            w.next().write_der(&issuer.alg.identifier_der());
            w.next().write_der(issuer.subject_der);
            w.next().write_sequence(|w| {
                write_time(w.next(), not_before);
                write_time(w.next(), not_after);
            });
            write_name(w.next(), subject);
            w.next().write_der(spki_der);
            w.next().write_tagged(Tag::context(3), |w| {
                w.write_sequence(|w| {
                    write_ext(w.next(), OID_BASIC_CONSTRAINTS, true, basic);
                    write_ext(w.next(), OID_KEY_USAGE, true, ku);
                    if !spec.ext_usages.is_empty() {
                        write_ext(w.next(), OID_EXT_KEY_USAGE, false, eku);
                    }
                    write_ext(w.next(), OID_SUBJECT_KEY_ID, false, ski);
                    write_ext(w.next(), OID_AUTHORITY_KEY_ID, false, aki);
                })
            });
        })
    });
    Ok(tbs)
}
