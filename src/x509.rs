//! Reading what others wrote: CSRs and certificates, parsed with
//! x509-parser and checked before anything is trusted.
//!
//! A CSR is a file a stranger may have committed. It is size-limited,
//! parsed, its self-signature verified and its key checked for strength
//! before kaws looks at its subject, and nothing it requests beyond CN and O
//! ever reaches a certificate.

use std::path::Path;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::error::{Error, Result};
use crate::pki::fingerprint;

/// No legitimate CSR or certificate is anywhere near this size.
pub const MAX_PEM_BYTES: u64 = 64 * 1024;

/// A CSR holds a key, a CN and a few groups: a few KiB at most. A larger
/// one is refused before anything is shown to the signer, so that sheer
/// volume cannot bury a group in the prompt.
pub const MAX_CSR_BYTES: u64 = 16 * 1024;

/// Read a small PEM file, refusing oversized ones before reading them.
pub fn read_pem_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_limited(
        path,
        MAX_PEM_BYTES,
        "a PEM file",
        "this is not a file kaws wrote; restore it from git",
    )
}

/// Read an administrator's CSR, at most [`MAX_CSR_BYTES`].
pub fn read_csr_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_limited(
        path,
        MAX_CSR_BYTES,
        "a certificate signing request",
        "a CSR from `kaws admin create` is a few KiB; ask the administrator to make a new one",
    )
}

/// Decode the one PEM block of `tag` in `bytes`. A file kaws reads holds
/// exactly one block and nothing else: tools differ on which block of a
/// longer file they use (kaws and openssl the first, Terraform, the
/// servers and kubectl all of them), so a second certificate appended to
/// `ca.pem` would be trusted by the cluster without kaws ever seeing it.
pub fn decode_pem(bytes: &[u8], tag: &str, path: &Path) -> Result<Vec<u8>> {
    let shown = crate::text::escape_path(path);
    let bad = |why: String| {
        Error::input(format!("{shown}: {why}"))
            .with_hint("a file kaws wrote holds one PEM block; restore it from git")
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not a PEM text file".into()))?;
    let begins = text.matches("-----BEGIN").count();
    if begins > 1 {
        return Err(bad(format!(
            "holds {begins} PEM blocks; kaws accepts exactly one (a {tag})"
        )));
    }
    let block = pem::parse(text).map_err(|e| bad(format!("not valid PEM ({e})")))?;
    if block.tag() != tag {
        return Err(bad(format!(
            "holds a {:?} PEM block, expected {tag:?}",
            crate::text::escape(block.tag())
        )));
    }
    let end = format!("-----END {tag}-----");
    let start = text.find("-----BEGIN").unwrap_or(0);
    let after = text
        .rfind(&end)
        .map(|i| i + end.len())
        .unwrap_or(text.len());
    if !text[..start].trim().is_empty() || !text[after..].trim().is_empty() {
        return Err(bad("has text outside its PEM block".into()));
    }
    Ok(block.into_contents())
}

fn names(name: &X509Name<'_>, path: &Path) -> Result<(Option<String>, Vec<String>)> {
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| -> Result<String> {
        a.as_str().map(str::to_string).map_err(|_| {
            Error::input(format!(
                "{}: a subject attribute is not a text string",
                path.display()
            ))
        })
    };
    let mut cns = name.iter_common_name();
    let cn = cns.next().map(text).transpose()?;
    if cns.next().is_some() {
        return Err(Error::input(format!(
            "{}: the subject has more than one CN",
            path.display()
        )));
    }
    let orgs = name
        .iter_organization()
        .map(text)
        .collect::<Result<Vec<_>>>()?;
    Ok((cn, orgs))
}

/// Describe a public key, or refuse it as weak or unsupported.
pub fn check_key_strength(spki: &SubjectPublicKeyInfo<'_>, path: &Path) -> Result<String> {
    let alg = &spki.algorithm.algorithm;
    let refuse = |what: &str| {
        Error::input(format!("{}: {what}", path.display())).with_hint(
            "use an ECDSA P-256 or P-384, Ed25519 or RSA key of at least 2048 bits (`kaws admin create` makes one)",
        )
    };
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = spki
            .parsed()
            .map_err(|_| refuse("the RSA public key does not parse"))?
            .key_size();
        if bits < 2048 {
            return Err(refuse(&format!(
                "the RSA key has {bits} bits; at least 2048 are required"
            )));
        }
        Ok(format!("RSA {bits}"))
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => Ok("ECDSA P-256".into()),
            Some(c) if c == OID_NIST_EC_P384 => Ok("ECDSA P-384".into()),
            _ => Err(refuse("the EC key uses an unsupported curve")),
        }
    } else if *alg == OID_SIG_ED25519 {
        Ok("Ed25519".into())
    } else {
        Err(refuse(&format!(
            "the key type {alg} is not supported (DSA and others are refused)"
        )))
    }
}

/// A CSR whose signature verifies and whose key is acceptable.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub spki_der: Vec<u8>,
    pub fingerprint: String,
    pub key_description: String,
    pub is_rsa: bool,
}

pub fn verify_csr(bytes: &[u8], path: &Path) -> Result<VerifiedCsr> {
    verify_csr_inner(bytes, path).map_err(|e| {
        e.or_hint("ask the administrator to run `kaws admin create` again and commit the new CSR")
    })
}

fn verify_csr_inner(bytes: &[u8], path: &Path) -> Result<VerifiedCsr> {
    let der = decode_pem(bytes, "CERTIFICATE REQUEST", path)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| {
        Error::input(format!(
            "{}: not a valid certificate signing request ({e})",
            path.display()
        ))
        .with_hint("ask the administrator to run `kaws admin create` again")
    })?;
    if !rest.is_empty() {
        return Err(Error::input(format!(
            "{}: trailing data after the CSR",
            path.display()
        )));
    }
    let info = &csr.certification_request_info;
    let key_description = check_key_strength(&info.subject_pki, path)?;
    csr.verify_signature().map_err(|_| {
        Error::input(format!(
            "{}: the signature does not verify: the CSR was altered or damaged",
            path.display()
        ))
        .with_hint("ask the administrator to run `kaws admin create` again, and check the fingerprint with them")
    })?;
    let (cn, organizations) = names(&info.subject, path)?;
    let common_name =
        cn.ok_or_else(|| Error::input(format!("{}: the CSR's subject has no CN", path.display())))?;
    let spki_der = info.subject_pki.raw.to_vec();
    Ok(VerifiedCsr {
        common_name,
        organizations,
        fingerprint: fingerprint(&spki_der),
        spki_der,
        is_rsa: info.subject_pki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION,
        key_description,
    })
}

/// What kaws needs to know of a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
    pub spki_der: Vec<u8>,
    pub fingerprint: String,
    pub der: Vec<u8>,
}

pub fn parse_cert(bytes: &[u8], path: &Path) -> Result<CertInfo> {
    parse_cert_inner(bytes, path)
        .map_err(|e| e.or_hint("the file is damaged or not a certificate: restore it from git"))
}

fn parse_cert_inner(bytes: &[u8], path: &Path) -> Result<CertInfo> {
    let der = decode_pem(bytes, "CERTIFICATE", path)?;
    let info = {
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|e| {
            Error::input(format!("{}: not a valid certificate ({e})", path.display()))
                .with_hint("restore it from git")
        })?;
        if !rest.is_empty() {
            return Err(Error::input(format!(
                "{}: trailing data after the certificate",
                path.display()
            ))
            .with_hint("restore it from git"));
        }
        let (common_name, organizations) = names(cert.subject(), path)?;
        let spki_der = cert.public_key().raw.to_vec();
        CertInfo {
            common_name,
            organizations,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            fingerprint: fingerprint(&spki_der),
            spki_der,
            der: vec![],
        }
    };
    Ok(CertInfo { der, ..info })
}

/// Whether the certificate `cert_der` carries a signature of the key of
/// the certificate `ca_der` (and names it as issuer).
pub fn issued_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pem_block_and_nothing_else() {
        let p = Path::new("ca.pem");
        let block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(decode_pem(block.as_bytes(), "CERTIFICATE", p).is_ok());
        assert!(decode_pem(format!("\n{block}\n").as_bytes(), "CERTIFICATE", p).is_ok());
        let two = format!("{block}{block}");
        let err = decode_pem(two.as_bytes(), "CERTIFICATE", p).unwrap_err();
        assert!(err.message().contains("2 PEM blocks"), "{}", err.message());
        for extra in [format!("x{block}"), format!("{block}trailing")] {
            assert!(
                decode_pem(extra.as_bytes(), "CERTIFICATE", p).is_err(),
                "{extra}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let p = Path::new("x.csr");
        for input in [
            &b""[..],
            b"garbage",
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            &[0xff, 0xfe, 0x00],
        ] {
            assert!(verify_csr(input, p).is_err());
            assert!(parse_cert(input, p).is_err());
        }
    }
}
