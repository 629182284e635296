//! Merging a cluster, a user and a context into a kubeconfig.
//!
//! A merge, never an overwrite: every other entry and field of the file
//! survives, unknown ones included, because the file is handled as a
//! generic YAML tree. A file that does not parse is refused, never replaced.
//!
//! The user is either an exec entry (kubectl runs `kaws admin credential`,
//! and no key is in the file) or, when asked, the embedded certificate and
//! key. Every credential field of our user is replaced, so switching from
//! one to the other leaves nothing of the first behind (an old key is
//! wiped); like every merge, it keeps the fields that are not credentials.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::fsutil::{self, Mode};

/// Larger kubeconfigs exist, but not this large.
const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The kubeconfig kubectl would use: `explicit`, else the first path of
/// KUBECONFIG, else ~/.kube/config.
pub fn default_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_ref()
        .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::input("HOME is not set, so ~/.kube/config cannot be found")
                .with_hint("pass --kubeconfig PATH")
        })?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

/// What to merge in.
pub struct Entry<'a> {
    pub cluster: &'a str,
    pub server: &'a str,
    pub ca_pem: &'a [u8],
    pub user: &'a str,
    pub credentials: Credentials<'a>,
}

/// How kubectl gets the user's client certificate and key.
pub enum Credentials<'a> {
    /// kubectl runs a credential plugin on each call.
    Exec(&'a ExecPlugin),
    /// Both in the file, base64 PEM; the key is zeroized after use.
    Embedded {
        cert_pem: &'a [u8],
        key_pem: &'a [u8],
    },
}

/// A kubeconfig `exec` entry (client.authentication.k8s.io/v1).
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    /// An absolute path: kubectl runs it from any directory.
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// What kubectl prints when `command` cannot be run.
    pub install_hint: String,
}

impl ExecPlugin {
    fn to_yaml(&self) -> Value {
        let env = if self.env.is_empty() {
            Value::Null
        } else {
            Value::Sequence(
                self.env
                    .iter()
                    .map(|(k, v)| {
                        map(vec![
                            ("name", k.as_str().into()),
                            ("value", v.as_str().into()),
                        ])
                    })
                    .collect(),
            )
        };
        map(vec![
            (
                "apiVersion",
                crate::exec_credential::ApiVersion::V1_STR.into(),
            ),
            ("command", self.command.as_str().into()),
            (
                "args",
                Value::Sequence(self.args.iter().map(|a| a.as_str().into()).collect()),
            ),
            ("env", env),
            ("interactiveMode", "Never".into()),
            ("provideClusterInfo", false.into()),
            ("installHint", self.install_hint.as_str().into()),
        ])
    }
}

fn b64(data: &[u8]) -> String {
    use std::fmt::Write;
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn read_existing(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    }
    // The user's own file: a link to it is followed, but it must be a
    // regular file within the limit, whatever its size claims.
    fsutil::read_limited_following(
        path,
        MAX_KUBECONFIG_BYTES,
        "a kubeconfig",
        "pass --kubeconfig with another path",
    )
    .map(|b| Some(Zeroizing::new(b)))
}

/// No kubeconfig nests flow collections this deep; the YAML parser takes
/// time quadratic in the depth before reaching its own recursion limit
/// (200,000 levels: over a minute), so deeper files are refused unparsed.
const MAX_FLOW_NESTING: usize = 100;

/// Whether `[` / `{` nest deeper than `max` outside quotes and comments.
/// A rough scan: quotes and comments it misreads can only hide nesting,
/// never invent it, in any file the parser would accept.
fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut comment = false;
    for &b in text {
        if comment {
            comment = b != b'\n';
            continue;
        }
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => quote = Some(b),
            b'#' => comment = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn parse_existing(text: &[u8], path: &Path) -> Result<Option<Mapping>> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let refuse = |why: String| {
        Error::input(format!("{}: cannot be read as a kubeconfig ({why}); it was left untouched", path.display()))
            .with_hint("fix the file (`kubectl config view` shows the problem), or pass --kubeconfig with another path")
    };
    if nests_deeper_than(text, MAX_FLOW_NESTING) {
        return Err(refuse(format!(
            "collections nested more than {MAX_FLOW_NESTING} levels deep"
        )));
    }
    let value: Value = serde_yaml_ng::from_slice(text).map_err(|e| refuse(e.to_string()))?;
    match value {
        Value::Mapping(m) => Ok(Some(m)),
        Value::Null => Ok(None),
        _ => Err(refuse("the top level is not a mapping".into())),
    }
}

fn named_list<'m>(root: &'m mut Mapping, key: &str, path: &Path) -> Result<&'m mut Vec<Value>> {
    let k = Value::from(key);
    if matches!(root.get(&k), None | Some(Value::Null)) {
        root.insert(k.clone(), Value::Sequence(vec![]));
    }
    match root.get_mut(&k) {
        Some(Value::Sequence(s)) => Ok(s),
        _ => Err(Error::input(format!(
            "{}: `{key}` is not a list; the file was left untouched",
            path.display()
        ))
        .with_hint("fix the file, or pass --kubeconfig with another path")),
    }
}

/// Refuse a list in which two entries share a name: kubectl refuses such a
/// file, and kaws could not tell which entry to update.
fn refuse_duplicates(list: &[Value], key: &str, path: &Path) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for name in list
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
    {
        if !seen.insert(name) {
            return Err(Error::input(format!(
                "{}: two entries of `{key}` are named \"{}\"; kubectl refuses such a file too, and it was left untouched",
                path.display(),
                crate::text::escape(name)
            ))
            .with_hint("remove or rename one of them (`kubectl config view` names the problem), or pass --kubeconfig with another path"));
        }
    }
    Ok(())
}

/// Merge `fields` into the entry named `name` under its `inner` mapping,
/// keeping every other field (a context's namespace, a cluster's proxy),
/// as `kubectl config set-context` does; append a new entry if there is
/// none. `drop` lists fields that would contradict the new ones. Returns
/// a note for each value that changed.
fn update(
    list: &mut Vec<Value>,
    kind: &str,
    name: &str,
    inner: &str,
    fields: Vec<(&str, Value)>,
    drop: &[&str],
    secret: bool,
) -> Vec<String> {
    let found = list
        .iter_mut()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name));
    let Some(slot) = found else {
        let mut m = Mapping::new();
        for (k, v) in fields {
            m.insert(Value::from(k), v);
        }
        list.push(map(vec![("name", name.into()), (inner, Value::Mapping(m))]));
        return vec![];
    };
    let mut notes = Vec::new();
    let shown = crate::text::escape(name).into_owned();
    if !matches!(slot.get(inner), Some(Value::Mapping(_))) {
        if let Some(m) = slot.as_mapping_mut() {
            if let Some(mut old) = m.insert(Value::from(inner), Value::Mapping(Mapping::new())) {
                wipe(&mut old);
            }
        }
    }
    let Some(Value::Mapping(m)) = slot.get_mut(inner) else {
        return notes;
    };
    for f in drop {
        if let Some(mut old) = m.remove(*f) {
            notes.push(format!("{kind} {shown}: removed {f}"));
            wipe(&mut old);
        }
    }
    for (k, v) in fields {
        let key = Value::from(k);
        match m.get(&key) {
            Some(old) if *old == v => {}
            Some(old) => {
                if secret || k.ends_with("-data") {
                    notes.push(format!("{kind} {shown}: replaced {k}"));
                } else {
                    notes.push(format!(
                        "{kind} {shown}: {k} was \"{}\", now \"{}\"",
                        crate::text::escape(old.as_str().unwrap_or("?")),
                        crate::text::escape(v.as_str().unwrap_or("?"))
                    ));
                }
                if let Some(mut old) = m.insert(key, v) {
                    wipe(&mut old);
                }
            }
            None => {
                m.insert(key, v);
            }
        }
    }
    notes
}

/// Zeroize every string of a value (it may hold a key) before dropping it.
fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Sequence(seq) => seq.iter_mut().for_each(wipe),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| wipe(v)),
        Value::Tagged(t) => wipe(&mut t.value),
        _ => {}
    }
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::from(k), v);
    }
    Value::Mapping(m)
}

/// Merge `entry` into the kubeconfig at `path`, written atomically, 0600.
/// Returns a note for every existing value that changed.
pub fn merge(path: &Path, entry: &Entry<'_>) -> Result<Vec<String>> {
    let existing = read_existing(path)?;
    let (text, notes) = merged_with_notes(existing.as_deref().map(|v| v.as_slice()), entry, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
    }
    fsutil::replace(path, text.as_bytes(), Mode::Private)?;
    Ok(notes)
}

/// The merged kubeconfig text: `existing` (the file's bytes, if any) with
/// `entry` merged in. `path` only names the file in errors.
pub fn merged(
    existing: Option<&[u8]>,
    entry: &Entry<'_>,
    path: &Path,
) -> Result<Zeroizing<String>> {
    merged_with_notes(existing, entry, path).map(|(text, _)| text)
}

/// [`merged`], with a note for every existing value that changed, so the
/// user sees what a merge replaced.
pub fn merged_with_notes(
    existing: Option<&[u8]>,
    entry: &Entry<'_>,
    path: &Path,
) -> Result<(Zeroizing<String>, Vec<String>)> {
    let existing = match existing {
        Some(t) => parse_existing(t, path)?,
        None => None,
    };
    let fresh = existing.is_none();
    let mut root = existing.unwrap_or_default();
    for (k, v) in [("apiVersion", "v1"), ("kind", "Config")] {
        root.entry(Value::from(k)).or_insert_with(|| Value::from(v));
    }
    for key in ["clusters", "users", "contexts"] {
        refuse_duplicates(named_list(&mut root, key, path)?, key, path)?;
    }
    let mut notes = update(
        named_list(&mut root, "clusters", path)?,
        "cluster",
        entry.cluster,
        "cluster",
        vec![
            ("server", entry.server.into()),
            ("certificate-authority-data", b64(entry.ca_pem).into()),
        ],
        &["certificate-authority", "insecure-skip-tls-verify"],
        false,
    );
    // Every other way to authenticate is removed from our user, so
    // switching between the exec entry and the embedded key leaves nothing
    // of the other behind (the old key is wiped); fields that are not
    // credentials survive, as everywhere in a merge.
    const AUTH: [&str; 10] = [
        "client-certificate-data",
        "client-key-data",
        "client-certificate",
        "client-key",
        "token",
        "tokenFile",
        "username",
        "password",
        "exec",
        "auth-provider",
    ];
    let fields: Vec<(&str, Value)> = match &entry.credentials {
        Credentials::Exec(plugin) => vec![("exec", plugin.to_yaml())],
        Credentials::Embedded { cert_pem, key_pem } => {
            let mut key_b64 = Zeroizing::new(b64(key_pem));
            vec![
                ("client-certificate-data", b64(cert_pem).into()),
                (
                    "client-key-data",
                    Value::String(std::mem::take(&mut *key_b64)),
                ),
            ]
        }
    };
    let drop: Vec<&str> = AUTH
        .iter()
        .copied()
        .filter(|a| !fields.iter().any(|(k, _)| k == a))
        .collect();
    notes.extend(update(
        named_list(&mut root, "users", path)?,
        "user",
        entry.user,
        "user",
        fields,
        &drop,
        true,
    ));
    notes.extend(update(
        named_list(&mut root, "contexts", path)?,
        "context",
        entry.cluster,
        "context",
        vec![
            ("cluster", entry.cluster.into()),
            ("user", entry.user.into()),
        ],
        &[],
        false,
    ));
    let current = Value::from("current-context");
    // Only a file with no current context gets ours: switching someone's
    // context behind their back is not a merge.
    let unset = matches!(root.get(&current), None | Some(Value::Null))
        || root.get(&current).and_then(Value::as_str) == Some("");
    if fresh || unset {
        root.insert(current, Value::from(entry.cluster));
    }
    let mut root = Value::Mapping(root);
    let text = serde_yaml_ng::to_string(&root).map(Zeroizing::new);
    wipe(&mut root);
    let text =
        text.map_err(|e| Error::input(format!("{}: could not write YAML: {e}", path.display())))?;
    Ok((text, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_entry_follows_the_merge_rules() {
        let plugin = ExecPlugin {
            command: "/usr/bin/kaws".into(),
            args: vec!["admin".into(), "credential".into()],
            env: vec![],
            install_hint: "install kaws".into(),
        };
        let e = Entry {
            cluster: "prod",
            server: "https://kubernetes.example.com",
            ca_pem: b"CA",
            user: "alice-prod",
            credentials: Credentials::Exec(&plugin),
        };
        let p = Path::new("config");
        // In place: the context keeps its namespace, the user its other
        // fields; every other credential is removed, with a note.
        let old = b"contexts:\n- name: prod\n  context: {cluster: prod, user: alice-prod, namespace: team}\nusers:\n- name: alice-prod\n  user: {client-key-data: S0VZ, token: t, as: bob}\n";
        let (text, notes) = merged_with_notes(Some(old), &e, p).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["contexts"][0]["context"]["namespace"], "team");
        let user = &v["users"][0]["user"];
        assert_eq!(user["as"], "bob");
        assert_eq!(user["exec"]["command"], "/usr/bin/kaws");
        assert!(user.get("client-key-data").is_none() && user.get("token").is_none());
        assert!(!text.contains("S0VZ"));
        for f in ["client-key-data", "token"] {
            assert!(
                notes
                    .iter()
                    .any(|n| n == &format!("user alice-prod: removed {f}")),
                "{notes:?}"
            );
        }
        // Two users of that name are refused, as kubectl refuses them.
        let dup = b"users:\n- name: alice-prod\n  user: {token: a}\n- name: alice-prod\n  user: {token: b}\n";
        assert!(merged(Some(dup), &e, p).is_err());
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn merge_keeps_what_was_there_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster: {server: 'https://o'}\nusers:\n- name: bob\n  user: {token: secret-token}\ncontexts:\n- name: other\n  context: {cluster: other, user: bob}\npreferences: {colors: true}\n",
        )
        .unwrap();
        let e = Entry {
            cluster: "prod",
            server: "https://kubernetes.example.com",
            ca_pem: b"CA",
            user: "alice-prod",
            credentials: Credentials::Embedded {
                cert_pem: b"CERT",
                key_pem: b"KEY",
            },
        };
        merge(&p, &e).unwrap();
        merge(&p, &e).unwrap();
        let v: Value = serde_yaml_ng::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["users"][1]["user"]["client-key-data"], "S0VZ");

        // Switching to the plugin leaves no key and no certificate behind.
        let plugin = ExecPlugin {
            command: "/usr/bin/kaws".into(),
            args: vec!["admin".into(), "credential".into()],
            env: vec![("AWS_PROFILE".into(), "ops".into())],
            install_hint: "install kaws".into(),
        };
        let exec = Entry {
            credentials: Credentials::Exec(&plugin),
            ..e
        };
        merge(&p, &exec).unwrap();
        let v: Value = serde_yaml_ng::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let user = &v["users"][1]["user"];
        assert_eq!(user.as_mapping().unwrap().len(), 1, "{user:?}");
        assert_eq!(user["exec"]["command"], "/usr/bin/kaws");
        assert_eq!(user["exec"]["interactiveMode"], "Never");
        assert_eq!(user["exec"]["env"][0]["value"], "ops");
        let e = Entry {
            credentials: Credentials::Embedded {
                cert_pem: b"CERT",
                key_pem: b"KEY",
            },
            ..exec
        };
        let v: Value = serde_yaml_ng::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["current-context"], "other");
        assert_eq!(v["users"].as_sequence().unwrap().len(), 2);
        assert_eq!(v["users"][0]["user"]["token"], "secret-token");
        assert_eq!(v["preferences"]["colors"], true);
        assert_eq!(v["clusters"].as_sequence().unwrap().len(), 2);

        let bad = dir.path().join("bad");
        std::fs::write(&bad, "clusters: [unclosed").unwrap();
        assert!(merge(&bad, &e).is_err());
        assert_eq!(std::fs::read(&bad).unwrap(), b"clusters: [unclosed");
    }
}
