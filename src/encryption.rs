//! Secrets at rest: the kube-apiserver's EncryptionConfiguration.
//!
//! kaws makes the whole configuration file, 32-byte secretbox keys included,
//! and seals it with KMS like any private key (row `secrets-encryption` of
//! the certificate table). The masters decrypt it into their tmpfs and the
//! apiserver reads it there (`--encryption-provider-config`); it never
//! reaches a disk, Terraform or user data.
//!
//! The file is armoured between `# -----BEGIN KAWS ENCRYPTION
//! CONFIGURATION-----` comment lines: YAML ignores them, and the servers'
//! decrypt step, which writes only what looks like PEM, takes it.
//!
//! Re-keying (`kaws cluster renew --new-keys`) puts a new key first, which
//! encrypts from then on, and keeps every older key after it, so Secrets
//! written before stay readable. `identity` comes last: Secrets written
//! before encryption was turned on stay readable too.

use std::fmt::Write as _;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Secret;

pub const BEGIN: &str = "# -----BEGIN KAWS ENCRYPTION CONFIGURATION-----";
pub const END: &str = "# -----END KAWS ENCRYPTION CONFIGURATION-----";

/// Keys kept at most: the newest and older ones still needed to read
/// Secrets not rewritten since. Older ones are dropped on re-keying.
pub const MAX_KEYS: usize = 8;

/// One secretbox key: its name and its base64 (44 characters, 32 bytes).
struct Key {
    name: String,
    secret_b64: Zeroizing<String>,
}

fn b64(data: &[u8]) -> Zeroizing<String> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Zeroizing::new(String::with_capacity(data.len().div_ceil(3) * 4));
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = Zeroizing::new((u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((*n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A 32-byte key's base64 form: 43 characters of the alphabet and one '='.
fn is_key_b64(s: &str) -> bool {
    s.len() == 44
        && s.ends_with('=')
        && s[..43]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

fn new_key(name: String) -> Key {
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
    Key {
        name,
        secret_b64: b64(bytes.as_ref()),
    }
}

fn render(keys: &[Key]) -> Secret {
    let mut s = Zeroizing::new(String::new());
    let _ = writeln!(s, "{BEGIN}");
    s.push_str(
        "# Made by kaws; sealed with KMS, decrypted only into the masters' tmpfs.\n\
         # The first key encrypts; every key decrypts. Re-key with\n\
         # `kaws cluster renew <cluster> --new-keys`.\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: EncryptionConfiguration\n\
         resources:\n\
         \x20 - resources:\n\
         \x20     - secrets\n\
         \x20   providers:\n\
         \x20     - secretbox:\n\
         \x20         keys:\n",
    );
    for k in keys {
        let _ = writeln!(s, "            - name: {}", k.name);
        let _ = writeln!(s, "              secret: {}", k.secret_b64.as_str());
    }
    s.push_str("      - identity: {}\n");
    let _ = writeln!(s, "{END}");
    Secret::new(std::mem::take(&mut *s).into_bytes())
}

/// Read back a configuration kaws made: its keys, newest first.
fn parse(secret: &Secret, what: &str) -> Result<Vec<Key>> {
    let bad = |why: &str| {
        Error::input(format!(
            "{what}: the decrypted file is not an encryption configuration kaws made ({why})"
        ))
        .with_hint("the file may belong to something else; restore it from git")
    };
    let text = secret.expose_str().ok_or_else(|| bad("not text"))?;
    if !text.starts_with(BEGIN) || !text.trim_end().ends_with(END) {
        return Err(bad("no KAWS ENCRYPTION CONFIGURATION armour"));
    }
    if !text.contains("kind: EncryptionConfiguration") {
        return Err(bad("no kind: EncryptionConfiguration"));
    }
    let mut keys = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- name: ") {
            if name.is_some() {
                return Err(bad("a key name without a secret"));
            }
            name = Some(n.to_string());
        } else if let Some(s) = line.strip_prefix("secret: ") {
            let n = name.take().ok_or_else(|| bad("a secret without a name"))?;
            if !is_key_b64(s) {
                return Err(bad(&format!("key {n:?} is not 32 bytes of base64")));
            }
            keys.push(Key {
                name: n,
                secret_b64: Zeroizing::new(s.to_string()),
            });
        }
    }
    if keys.is_empty() || name.is_some() {
        return Err(bad("no complete key"));
    }
    Ok(keys)
}

/// A key name no other key of the file has: `key-<n>`, counting up.
fn next_name(keys: &[Key]) -> String {
    let n = keys
        .iter()
        .filter_map(|k| k.name.strip_prefix("key-")?.parse::<u64>().ok())
        .max()
        .map_or(1, |m| m.saturating_add(1));
    format!("key-{n}")
}

/// A new configuration with one new key.
pub fn new_config() -> Secret {
    render(&[new_key("key-1".into())])
}

/// The configuration with a new first key, the older keys kept after it
/// (at most [`MAX_KEYS`] in all).
pub fn rotate(current: &Secret, what: &str) -> Result<Secret> {
    let mut keys = parse(current, what)?;
    let key = new_key(next_name(&keys));
    keys.insert(0, key);
    keys.truncate(MAX_KEYS);
    Ok(render(&keys))
}

/// Check a decrypted configuration; returns how many keys it holds.
pub fn validate(secret: &Secret, what: &str) -> Result<usize> {
    parse(secret, what).map(|k| k.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_config_parses_and_rotation_keeps_old_keys_second() {
        let c = new_config();
        let text = c.expose_str().unwrap().to_string();
        assert!(text.starts_with(BEGIN) && text.contains("-----BEGIN"));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["kind"], "EncryptionConfiguration");
        let keys = &v["resources"][0]["providers"][0]["secretbox"]["keys"];
        let first = keys[0]["secret"].as_str().unwrap().to_string();
        assert!(is_key_b64(&first));
        assert_eq!(v["resources"][0]["resources"][0], "secrets");
        assert!(v["resources"][0]["providers"][1]["identity"].is_mapping());

        let r = rotate(&c, "t").unwrap();
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(r.expose_str().unwrap()).unwrap();
        let keys = &v["resources"][0]["providers"][0]["secretbox"]["keys"];
        assert_eq!(keys[0]["name"], "key-2");
        assert_eq!(keys[1]["name"], "key-1");
        assert_eq!(keys[1]["secret"].as_str().unwrap(), first);
        assert_ne!(keys[0]["secret"].as_str().unwrap(), first);
        assert_eq!(validate(&r, "t").unwrap(), 2);

        let mut r = r;
        for _ in 0..20 {
            r = rotate(&r, "t").unwrap();
        }
        assert_eq!(validate(&r, "t").unwrap(), MAX_KEYS);
    }

    #[test]
    fn base64_is_standard() {
        assert_eq!(b64(b"").as_str(), "");
        assert_eq!(b64(b"f").as_str(), "Zg==");
        assert_eq!(b64(b"foobar").as_str(), "Zm9vYmFy");
        assert!(is_key_b64(&b64(&[0xffu8; 32])));
    }

    #[test]
    fn anything_else_is_refused_without_panic() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
            b"# -----BEGIN KAWS ENCRYPTION CONFIGURATION-----\nkind: EncryptionConfiguration\n# -----END KAWS ENCRYPTION CONFIGURATION-----\n",
            b"# -----BEGIN KAWS ENCRYPTION CONFIGURATION-----\nkind: EncryptionConfiguration\n- name: a\nsecret: short\n# -----END KAWS ENCRYPTION CONFIGURATION-----\n",
        ] {
            let e = validate(&Secret::new(bad.to_vec()), "x.encrypted").unwrap_err();
            assert!(e.message().contains("x.encrypted"), "{}", e.message());
        }
    }
}
