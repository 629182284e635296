//! The workers' bootstrap token: the one credential a new node holds before
//! it has a certificate of its own.
//!
//! A Kubernetes bootstrap token is `<id>.<secret>`, 6 and 16 characters of
//! `[a-z0-9]` (the format `kube-apiserver --enable-bootstrap-token-auth`
//! accepts from a `bootstrap-token-<id>` Secret in kube-system). kaws makes
//! it, seals it with KMS like every key (`bootstrap-token-key.pem`, no
//! newline: the kubelet's bootstrap kubeconfig reads it as a `tokenFile`),
//! and only the workers (to join) and the masters (to create the Secret)
//! may decrypt it. It authenticates as group `system:bootstrappers`, which
//! may only ask for a node client certificate.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Secret;

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_part(len: usize) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(len));
    while s.len() < len {
        // Rejection sampling keeps the characters uniform (252 = 7 * 36).
        let b: u8 = rand::random();
        if b < 252 {
            s.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    s
}

/// A new token, `<id>.<secret>`, with no trailing newline.
pub fn new_token() -> Secret {
    let mut t = Zeroizing::new(String::with_capacity(ID_LEN + 1 + SECRET_LEN));
    t.push_str(&random_part(ID_LEN));
    t.push('.');
    t.push_str(&random_part(SECRET_LEN));
    Secret::new(t.as_bytes().to_vec())
}

/// Check a decrypted token's format; `what` names the file in the error.
/// The error never quotes the token.
pub fn validate(secret: &Secret, what: &str) -> Result<()> {
    let ok = secret.expose_str().is_some_and(|s| {
        s.split_once('.').is_some_and(|(id, sec)| {
            id.len() == ID_LEN
                && sec.len() == SECRET_LEN
                && id.bytes().chain(sec.bytes()).all(|b| ALPHABET.contains(&b))
        })
    });
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{what}: not a bootstrap token (<6 of [a-z0-9]>.<16 of [a-z0-9]>, no newline)"
        ))
        .with_hint("run `kaws cluster renew --new-keys` to make a new one"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_valid_and_differ() {
        let a = new_token();
        let b = new_token();
        validate(&a, "a").unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 23);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "abcdef.0123456789abcdef\n",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef0",
        ] {
            assert!(
                validate(&Secret::new(bad.as_bytes().to_vec()), "t").is_err(),
                "{bad:?}"
            );
        }
    }
}
