//! The seal: a record of what a primary administrator approved, so that a
//! committer's change cannot reach a privileged command unseen.
//!
//! `clusters/<c>/seal.json` lists every file that shapes the cluster's trust
//! or what Terraform runs, each with its SHA-256: the whole cluster
//! directory (but Terraform's state and working data, kaws' own temporary
//! files and the seal itself), everything under `terraform/`, and
//! `kaws.json`. The list is found by walking those places, never from a list
//! of names, so a file nobody expected is covered too. Who sealed, when, with
//! which command, and a generation number go with it; the SHA-256 of all of
//! that is encrypted by the cluster's KMS key under an encryption context of
//! its own (`kaws:file=kaws-seal`), and the ciphertext is the seal's
//! authenticator. Without the right to encrypt with that key, nobody can
//! write a seal that opens under it.
//!
//! This module owns the format, the walk and the comparison; nothing here
//! talks to AWS (`ops::seal` does).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layout::{self, AdminName, ClusterName};

/// The seal's file name, in the cluster directory.
pub const SEAL_FILE: &str = "seal.json";

/// The `kaws:file` label of the seal's encryption context: no file kaws
/// seals a key in is called that (key files end in `-key.pem`, and names
/// starting with `kaws` are reserved).
pub const CONTEXT_FILE: &str = "kaws-seal";

/// The format of `seal.json` this kaws writes and reads.
pub const FORMAT: u32 = 1;

/// No file of a repository kaws reads comes near this; a bigger one is not
/// hashed (a sparse or endless file would hold the command up).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest `seal.json` kaws reads (a cluster with 10,000 administrators
/// lists 30,000 files, about 3 MB).
const MAX_SEAL_BYTES: u64 = 32 * 1024 * 1024;

/// Files in the cluster directory that are not sealed: Terraform's state
/// and working data (Terraform rewrites them at every apply; `plan` shows
/// what they would change) and the seal itself.
pub const NOT_SEALED: &[&str] = &[
    SEAL_FILE,
    ".terraform",
    "terraform.tfstate",
    "terraform.tfstate.backup",
    ".terraform.tfstate.lock.info",
    ".terraform.lock.hcl",
];

/// What sits at a path, as the walk found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A regular file and its SHA-256, in hex.
    File(String),
    /// Something kaws never seals: a symbolic link, a FIFO, a device, a
    /// socket, a directory nested too deep, a file too large.
    Odd(&'static str),
}

/// Every sealed path of a cluster (relative to the repository root, `/`
/// separated) and what is there now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub entries: BTreeMap<String, Found>,
}

impl Walk {
    /// The regular files and their digests.
    pub fn files(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .filter_map(|(p, f)| match f {
                Found::File(d) => Some((p.clone(), d.clone())),
                Found::Odd(_) => None,
            })
            .collect()
    }

    /// Entries that can never be sealed.
    pub fn odd(&self) -> Vec<(&str, &'static str)> {
        self.entries
            .iter()
            .filter_map(|(p, f)| match f {
                Found::Odd(k) => Some((p.as_str(), *k)),
                Found::File(_) => None,
            })
            .collect()
    }
}

/// The cluster directory's path relative to the repository root.
pub fn cluster_prefix(cluster: &ClusterName) -> String {
    format!("clusters/{cluster}/")
}

/// Walk what the seal covers: `kaws.json`, `terraform/` and the cluster
/// directory. No link is followed, only regular files are read (opened
/// without following links, checked on the open descriptor, read with a
/// hard limit), and directories deeper than a few levels are not entered.
pub fn walk(repo_root: &Path, cluster: &ClusterName) -> Result<Walk> {
    let mut w = Walk::default();
    entry(
        &mut w,
        &repo_root.join(layout::MARKER),
        layout::MARKER.to_string(),
    )?;
    walk_dir(&mut w, &repo_root.join("terraform"), "terraform/", 8, false)?;
    let prefix = cluster_prefix(cluster);
    walk_dir(
        &mut w,
        &repo_root.join("clusters").join(cluster.as_str()),
        &prefix,
        4,
        true,
    )?;
    Ok(w)
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// One path that should be a regular file (`kaws.json`).
fn entry(w: &mut Walk, path: &Path, rel: String) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let found = hash_file(path)?;
            w.entries.insert(rel, found);
        }
        Ok(m) => {
            w.entries.insert(rel, Found::Odd(kind_of(&m.file_type())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspect", path, e)),
    }
    Ok(())
}

fn walk_dir(w: &mut Walk, root: &Path, prefix: &str, depth: usize, cluster: bool) -> Result<()> {
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            w.entries.insert(
                prefix.trim_end_matches('/').to_string(),
                Found::Odd(kind_of(&m.file_type())),
            );
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("inspect", root, e)),
    }
    let mut stack = vec![(root.to_path_buf(), prefix.to_string(), 0usize)];
    while let Some((dir, rel, level)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let ft = e.file_type().map_err(|e| Error::io("inspect", &path, e))?;
            let here = format!("{rel}{name}");
            if cluster && level == 0 {
                if NOT_SEALED.contains(&name.as_str()) {
                    continue;
                }
                // kaws' own temporary files, while a command writes (or
                // after one was killed); `cluster check` reports leftovers.
                if name.starts_with(crate::fsutil::TEMP_PREFIX) && ft.is_file() {
                    continue;
                }
            }
            if ft.is_dir() {
                if level + 1 >= depth {
                    w.entries
                        .insert(here, Found::Odd("a directory nested too deep"));
                } else {
                    stack.push((path, format!("{here}/"), level + 1));
                }
            } else if ft.is_file() {
                let found = hash_file(&path)?;
                w.entries.insert(here, found);
            } else {
                w.entries.insert(here, Found::Odd(kind_of(&ft)));
            }
        }
    }
    Ok(())
}

/// SHA-256 of a regular file, read as `fsutil::read_limited` reads: never
/// through a link, never anything but a regular file, never past a limit.
fn hash_file(path: &Path) -> Result<Found> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        // Replaced by a link since it was listed.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Found::Odd("a symbolic link"))
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() {
        return Ok(Found::Odd(kind_of(&meta.file_type())));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Ok(Found::Odd("a file too large to seal"));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut r = (&file).take(MAX_FILE_BYTES + 1);
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total > MAX_FILE_BYTES {
        return Ok(Found::Odd("a file too large to seal"));
    }
    Ok(Found::File(hex::encode(h.finalize())))
}

/// What a seal records. Every field is covered by the authenticator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub format: u32,
    pub cluster: String,
    /// One more than the seal it replaced: a seal older than one already
    /// seen is a rollback.
    pub generation: u64,
    /// When, RFC 3339 UTC.
    pub sealed_at: String,
    /// Who, as AWS named the caller (`sts get-caller-identity`).
    pub sealed_by: String,
    /// The kaws command that sealed.
    pub command: String,
    /// The KMS key the authenticator is encrypted under (its ARN).
    pub kms_key: String,
    /// The sealed JSON documents (the settings, `kaws.json`), so that a
    /// change can be shown value by value.
    pub documents: BTreeMap<String, serde_json::Value>,
    /// Every sealed file and its SHA-256.
    pub files: BTreeMap<String, String>,
}

/// `seal.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealFile {
    pub seal: Body,
    /// The KMS ciphertext of [`Body::authenticated_text`], in hex.
    pub authenticator: String,
}

impl Body {
    /// The SHA-256 of the body's canonical JSON (fields in declaration
    /// order, maps sorted or in file order), in hex.
    #[expect(
        clippy::expect_used,
        reason = "a seal holds only strings and maps with string keys"
    )]
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("a seal serializes");
        let mut h = Sha256::new();
        h.update(b"kaws-seal-v1\0");
        h.update(&json);
        hex::encode(h.finalize())
    }

    /// What KMS encrypts: the digest, labelled.
    pub fn authenticated_text(&self) -> Vec<u8> {
        format!("kaws-seal-v1:{}", self.digest()).into_bytes()
    }
}

impl SealFile {
    /// Read `seal.json`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        if !crate::fsutil::present(path) {
            return Ok(None);
        }
        let bytes = crate::fsutil::read_limited(
            path,
            MAX_SEAL_BYTES,
            "a seal",
            "restore it from git, or seal the cluster again with `kaws cluster seal`",
        )?;
        let file: SealFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!(
                "{}: not a kaws seal: {e}",
                crate::text::escape_path(path)
            ))
        })?;
        if file.seal.format != FORMAT {
            return Err(Error::input(format!(
                "{}: seal format {} is not the one this kaws reads ({FORMAT})",
                crate::text::escape_path(path),
                file.seal.format
            ))
            .with_hint("upgrade kaws, or seal the cluster again with `kaws cluster seal`"));
        }
        Ok(Some(file))
    }

    #[expect(
        clippy::expect_used,
        reason = "a seal holds only strings and maps with string keys"
    )]
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a seal serializes");
        v.push(b'\n');
        v
    }

    pub fn authenticator(&self) -> Option<Vec<u8>> {
        hex::decode(&self.authenticator).ok()
    }
}

/// The JSON documents a seal keeps whole (settings and `kaws.json`), read
/// from the repository as they are now.
pub fn documents(
    repo_root: &Path,
    cluster: &ClusterName,
    walk: &Walk,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for rel in [
        layout::MARKER.to_string(),
        format!("{}{}", cluster_prefix(cluster), layout::SETTINGS_FILE),
    ] {
        if !matches!(walk.entries.get(&rel), Some(Found::File(_))) {
            continue;
        }
        let value = crate::fsutil::read_limited(&repo_root.join(&rel), 64 * 1024, "JSON", "")
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if let Some(v) = value {
            out.insert(rel, v);
        }
    }
    out
}

/// How a path differs from the seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Added,
    Removed,
    Changed,
    /// A link, FIFO, device...: never sealed, never accepted.
    NotAFile,
}

#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub path: String,
    pub change: Change,
    /// Value by value, for the settings and `kaws.json`; the kind of entry
    /// for [`Change::NotAFile`].
    pub details: Vec<String>,
}

impl Difference {
    /// One line for a terminal: the path escaped, then what changed.
    pub fn line(&self) -> String {
        let what = match self.change {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::NotAFile => {
                let kind = self.details.first().map_or("not a regular file", |k| k);
                return format!(
                    "{}: {kind} where a file belongs: not a regular file, which kaws never seals or reads; remove it",
                    crate::text::escape(&self.path)
                );
            }
        };
        format!("{}: {what}", crate::text::escape(&self.path))
    }
}

/// An administrator's own files that changed as kaws expects, with no
/// approval: a new request (signing it asks anyway), or an administrator's
/// key moved to another KMS key of theirs (only they decrypt it, and kaws
/// checks it against their certificate each time).
#[derive(Clone, Debug, Serialize)]
pub struct Request {
    pub admin: String,
    /// `new-request` or `own-key`.
    pub kind: &'static str,
    pub files: Vec<String>,
}

/// How the repository differs from a seal.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    pub requests: Vec<Request>,
    pub differences: Vec<Difference>,
}

/// Compare what is there now with what was sealed (`sealed` empty when
/// there is no seal). New administrator requests, and only those, are
/// expected: `<name>.csr`, `<name>-key.pem.encrypted` and `<name>.kms.json`
/// of an administrator who has no certificate, now or in the seal.
pub fn compare(
    cluster: &ClusterName,
    sealed: &BTreeMap<String, String>,
    sealed_docs: &BTreeMap<String, serde_json::Value>,
    now: &Walk,
    now_docs: &BTreeMap<String, serde_json::Value>,
) -> Comparison {
    let prefix = cluster_prefix(cluster);
    let mut out = Comparison::default();
    let mut requests: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    let request_of = |path: &str| -> Option<(String, &'static str)> {
        let name = path.strip_prefix(&prefix)?;
        if name.contains('/') {
            return None;
        }
        let (stem, is_csr) = match name.strip_suffix(".csr") {
            Some(s) => (s, true),
            None => (
                name.strip_suffix("-key.pem.encrypted")
                    .or_else(|| name.strip_suffix(".kms.json"))?,
                false,
            ),
        };
        let admin = AdminName::parse(stem).ok()?;
        let cert = format!("{prefix}{}", layout::cert_name(admin.as_str()));
        match (now.entries.get(&cert), sealed.get(&cert)) {
            (None, None) => Some((admin.to_string(), "new-request")),
            // The key moved by its owner; the certificate as sealed.
            (Some(Found::File(d)), Some(s)) if d == s && !is_csr && sealed.contains_key(path) => {
                Some((admin.to_string(), "own-key"))
            }
            _ => None,
        }
    };
    let mut paths: Vec<&String> = sealed.keys().chain(now.entries.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let change = match (sealed.get(path), now.entries.get(path)) {
            (_, Some(Found::Odd(kind))) => {
                out.differences.push(Difference {
                    path: path.clone(),
                    change: Change::NotAFile,
                    details: vec![kind.to_string()],
                });
                continue;
            }
            (Some(a), Some(Found::File(b))) if a == b => continue,
            (Some(_), Some(Found::File(_))) => Change::Changed,
            (None, Some(Found::File(_))) => Change::Added,
            (Some(_), None) => Change::Removed,
            (None, None) => continue,
        };
        if change != Change::Removed {
            if let Some(admin) = request_of(path) {
                requests.entry(admin).or_default().push(path.clone());
                continue;
            }
        }
        let details = match (sealed_docs.get(path), now_docs.get(path)) {
            (Some(a), Some(b)) => value_changes(a, b),
            _ => vec![],
        };
        out.differences.push(Difference {
            path: path.clone(),
            change,
            details,
        });
    }
    out.requests = requests
        .into_iter()
        .map(|((admin, kind), files)| Request { admin, kind, files })
        .collect();
    out
}

/// `key: "old" -> "new"` for each top-level value that differs, escaped.
fn value_changes(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec![];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        Some(v) => crate::text::escape(&v.to_string()).into_owned(),
        None => "(absent)".to_string(),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let note = if k == "kms_key_id" {
                " (the KMS key that seals the cluster's keys: only `kaws cluster reencrypt` changes it)"
            } else {
                ""
            };
            format!(
                "{}: {} -> {}{note}",
                crate::text::escape(k),
                show(a.get(k)),
                show(b.get(k))
            )
        })
        .collect()
}

/// Now, as RFC 3339 UTC with whole seconds.
pub fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What this machine remembers of the newest seal it has seen of a
/// cluster (`.git/kaws-<cluster>.seal.json`): a seal of a lower
/// generation, or under another KMS key, is then shown before anything runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    pub generation: u64,
    pub sealed_at: String,
    pub sealed_by: String,
    pub kms_key: String,
    pub digest: String,
}

impl Seen {
    pub fn of(body: &Body) -> Self {
        Seen {
            generation: body.generation,
            sealed_at: body.sealed_at.clone(),
            sealed_by: body.sealed_by.clone(),
            kms_key: body.kms_key.clone(),
            digest: body.digest(),
        }
    }

    /// The record, if there is a readable one.
    pub fn load(path: &Path) -> Option<Self> {
        let bytes = crate::fsutil::read_limited(path, 64 * 1024, "a seal record", "").ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    #[expect(
        clippy::expect_used,
        reason = "a record of strings and a number always serializes"
    )]
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut v = serde_json::to_vec_pretty(self).expect("serializes");
        v.push(b'\n');
        crate::fsutil::replace(path, &v, crate::fsutil::Mode::Private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            format: FORMAT,
            cluster: "prod".into(),
            generation: 3,
            sealed_at: "2026-11-30T00:00:00Z".into(),
            sealed_by: "arn:aws:iam::123456789012:user/alice".into(),
            command: "cluster renew".into(),
            kms_key: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            documents: BTreeMap::new(),
            files: BTreeMap::from([("kaws.json".into(), "00".into())]),
        }
    }

    #[test]
    fn every_field_is_in_the_digest() {
        let b = body();
        let d = b.digest();
        let file = SealFile {
            seal: b.clone(),
            authenticator: "ab".into(),
        };
        let back: SealFile = serde_json::from_slice(&file.to_json()).unwrap();
        assert_eq!(back.seal.digest(), d, "a round trip keeps the digest");
        let mut c = b.clone();
        c.generation = 4;
        assert_ne!(c.digest(), d);
        let mut c = b.clone();
        c.files.insert("clusters/prod/x.tf".into(), "11".into());
        assert_ne!(c.digest(), d);
        let mut c = b;
        c.sealed_by.push('x');
        assert_ne!(c.digest(), d);
    }

    #[test]
    fn requests_are_expected_and_everything_else_differs() {
        let c = ClusterName::parse("prod").unwrap();
        let sealed = BTreeMap::from([
            ("clusters/prod/ca.pem".to_string(), "1".to_string()),
            ("clusters/prod/alice.csr".to_string(), "2".to_string()),
            ("clusters/prod/alice.pem".to_string(), "3".to_string()),
            (
                "clusters/prod/alice-key.pem.encrypted".to_string(),
                "a".to_string(),
            ),
        ]);
        let mut now = Walk::default();
        for (p, d) in [
            ("clusters/prod/ca.pem", "9"),
            ("clusters/prod/alice.csr", "8"),
            ("clusters/prod/alice.pem", "3"),
            ("clusters/prod/alice-key.pem.encrypted", "b"),
            ("clusters/prod/bob.csr", "4"),
            ("clusters/prod/bob-key.pem.encrypted", "5"),
            ("clusters/prod/bob.kms.json", "6"),
            ("clusters/prod/extra.tf", "7"),
        ] {
            now.entries.insert(p.into(), Found::File(d.into()));
        }
        now.entries
            .insert("clusters/prod/l.csr".into(), Found::Odd("a symbolic link"));
        let cmp = compare(&c, &sealed, &BTreeMap::new(), &now, &BTreeMap::new());
        assert_eq!(cmp.requests.len(), 2);
        assert_eq!(cmp.requests[0].admin, "alice");
        assert_eq!(cmp.requests[0].kind, "own-key");
        assert_eq!(cmp.requests[1].admin, "bob");
        assert_eq!(cmp.requests[1].kind, "new-request");
        let lines: Vec<String> = cmp.differences.iter().map(|d| d.line()).collect();
        assert_eq!(
            lines,
            [
                "clusters/prod/alice.csr: changed",
                "clusters/prod/ca.pem: changed",
                "clusters/prod/extra.tf: added",
                "clusters/prod/l.csr: a symbolic link where a file belongs: not a regular file, which kaws never seals or reads; remove it",
            ]
        );
    }

    #[test]
    fn settings_changes_are_shown_value_by_value() {
        let a = serde_json::json!({"ami": "ami-1", "domain": "a.example"});
        let b = serde_json::json!({"ami": "ami-2\u{1b}", "domain": "a.example"});
        assert_eq!(
            value_changes(&a, &b),
            ["ami: \"ami-1\" -> \"ami-2\\u001b\""]
        );
    }
}
