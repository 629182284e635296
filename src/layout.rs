//! The layout of a kaws repository, and the names allowed in it.
//!
//! This module is the only place that knows where things live:
//!
//! ```text
//! <repo>/kaws.json                       marks the repository root
//! <repo>/terraform/                      the Terraform module kaws ships
//! <repo>/clusters/<cluster>/             one directory per cluster
//!     terraform.tfvars.json              the cluster's settings
//!     main.tf.json                       the cluster's Terraform entry point
//!     pki.auto.tfvars.json               what the module needs from the certificate table
//!     <cert>.pem                         certificates (public)
//!     <cert>-key.pem.encrypted           KMS ciphertext of a private key
//!     <admin>.csr / <admin>.pem          an administrator's request / certificate
//!     <admin>.kms.json                   the KMS key sealing <admin>-key.pem.encrypted
//! ```
//!
//! Names are validated here too, so that no user input ever becomes a path
//! component that escapes its directory.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file that marks the root of a kaws repository.
pub const MARKER: &str = "kaws.json";

/// A cluster or administrator name: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok_inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let ok_edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && ok_edge(&b[0])
        && ok_edge(&b[b.len() - 1])
        && b.iter().all(ok_inner)
}

fn name_error(what: &str, s: &str) -> Error {
    let shown: String = s.chars().take(80).collect();
    Error::input(format!("invalid {what} name {shown:?}")).with_hint(
        "use 1 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit",
    )
}

/// A validated cluster name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(s: &str) -> Result<Self> {
        if valid_name(s) {
            Ok(ClusterName(s.to_string()))
        } else {
            Err(name_error("cluster", s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// File stems an administrator may not take besides the table's own
/// (`pki::CLUSTER_CERTS`, whose stems are reserved by [`is_reserved_admin_name`]):
/// the names of kaws' and Terraform's files in a cluster directory.
/// `node` was the shared node identity of clusters made before per-node
/// identities; their directories may still hold `node.pem`.
pub const RESERVED_FILE_STEMS: &[&str] = &["terraform", "main", "pki", "node"];

/// Whether `s` is the stem of a file of the cluster's own: a row of the
/// certificate table, or one of [`RESERVED_FILE_STEMS`]. Derived from the
/// table, so a new row is reserved without another edit.
pub fn is_reserved_admin_name(s: &str) -> bool {
    crate::pki::spec(s).is_some() || RESERVED_FILE_STEMS.contains(&s)
}

/// Prefixes no administrator name may start with: every CN of the
/// certificate table is `kube-<cluster>-...`, `system:...` or `kaws:...`
/// (the last two cannot be names anyway, as `:` is not allowed), and
/// Kubernetes reserves `system:` for itself.
pub const RESERVED_ADMIN_PREFIXES: &[&str] = &["kube-", "system", "kaws"];

/// A validated administrator name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdminName(String);

impl AdminName {
    pub fn parse(s: &str) -> Result<Self> {
        if !valid_name(s) {
            return Err(name_error("administrator", s));
        }
        if is_reserved_admin_name(s) {
            return Err(Error::input(format!(
                "the administrator name {s:?} is reserved for the cluster's own certificates"
            ))
            .with_hint("choose another name, for example the person's user name"));
        }
        // An administrator's name is the certificate's CN, that is the
        // Kubernetes user name: it must never be a component's identity
        // (`kube-<cluster>-apiserver` is bound to system:kubelet-api-admin)
        // nor one of Kubernetes' or kaws' own.
        if let Some(prefix) = RESERVED_ADMIN_PREFIXES.iter().find(|p| s.starts_with(*p)) {
            return Err(Error::input(format!(
                "the administrator name {s:?} is reserved: names starting with {prefix:?} are the identities of the cluster's components"
            ))
            .with_hint("choose another name, for example the person's user name"));
        }
        Ok(AdminName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A kaws repository on disk.
#[derive(Clone, Debug)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// The repository rooted at `root` (which must hold the marker).
    pub fn at(root: &Path) -> Result<Self> {
        if root.join(MARKER).is_file() {
            Ok(Repo {
                root: root.to_path_buf(),
            })
        } else {
            Err(not_a_repo(root))
        }
    }

    /// Find the repository by walking up from `start`, as git does.
    pub fn discover(start: &Path) -> Result<Self> {
        let start = std::path::absolute(start).map_err(|e| Error::io("resolve", start, e))?;
        for dir in start.ancestors() {
            if dir.join(MARKER).is_file() {
                return Ok(Repo {
                    root: dir.to_path_buf(),
                });
            }
        }
        Err(not_a_repo(&start))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    pub fn clusters_dir(&self) -> PathBuf {
        self.root.join("clusters")
    }

    pub fn terraform_dir(&self) -> PathBuf {
        self.root.join("terraform")
    }

    /// The advisory lock of one cluster's writers. It lives outside the
    /// cluster directory, so it exists before the cluster does and survives
    /// the directory being swapped, and outside anything a commit can
    /// reach: in the git directory (`.git/kaws-<cluster>.lock`, as git keeps
    /// `index.lock`) when there is one. Only a repository that is not a git
    /// working tree keeps it at `clusters/.<cluster>.lock`; the lock is
    /// never opened through a link either way (see [`crate::lock`]).
    pub fn lock_file(&self, cluster: &ClusterName) -> PathBuf {
        match self.git_dir() {
            Some(git) => git.join(format!("kaws-{cluster}.lock")),
            None => self.clusters_dir().join(format!(".{cluster}.lock")),
        }
    }

    /// What this machine remembers of the newest seal it has seen of a
    /// cluster (see [`crate::seal::Seen`]): in the git directory, where no
    /// commit reaches, as the lock is. `None` outside a git working tree.
    pub fn seal_record(&self, cluster: &ClusterName) -> Option<PathBuf> {
        self.git_dir()
            .map(|git| git.join(format!("kaws-{cluster}.seal.json")))
    }

    /// The git directory of the working tree at the root: `.git` itself,
    /// or the directory a `.git` file (a linked worktree, a submodule)
    /// names. Never a symbolic link.
    fn git_dir(&self) -> Option<PathBuf> {
        let dot_git = self.root.join(".git");
        let meta = std::fs::symlink_metadata(&dot_git).ok()?;
        if meta.is_dir() {
            return Some(dot_git);
        }
        if !meta.is_file() {
            return None;
        }
        let text = crate::fsutil::read_limited(&dot_git, 4096, "a .git file", "").ok()?;
        let text = String::from_utf8(text).ok()?;
        let target = text.strip_prefix("gitdir:")?.trim();
        let dir = self.root.join(target);
        std::fs::symlink_metadata(&dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| dir)
    }

    pub fn cluster(&self, name: &ClusterName) -> ClusterDir {
        ClusterDir {
            dir: self.clusters_dir().join(name.as_str()),
            name: name.clone(),
        }
    }

    /// Every cluster directory of the repository, sorted by name.
    pub fn clusters(&self) -> Result<Vec<ClusterName>> {
        let dir = self.clusters_dir();
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(c) = ClusterName::parse(name) {
                    out.push(c);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn not_a_repo(dir: &Path) -> Error {
    Error::input(format!(
        "{}: not inside a kaws repository (no {MARKER} here or in any parent directory)",
        dir.display()
    ))
    .with_hint("run `kaws init <NAME>` to create one, or cd into an existing one")
}

/// The directory of one cluster, and every path inside it.
#[derive(Clone, Debug)]
pub struct ClusterDir {
    dir: PathBuf,
    name: ClusterName,
}

impl ClusterDir {
    pub fn name(&self) -> &ClusterName {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn exists(&self) -> bool {
        self.dir.join(SETTINGS_FILE).is_file()
    }

    /// Fail with a clear message when the cluster has not been created.
    pub fn require(&self) -> Result<()> {
        // Never a link: every file of the cluster would come from elsewhere.
        if std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::input(format!(
                "{}: is a symbolic link; a cluster directory must be a directory of this repository",
                self.dir.display()
            ))
            .with_hint("replace the link with the cluster's own directory (restore it from git)"));
        }
        if self.exists() {
            Ok(())
        } else {
            Err(Error::input(format!(
                "{}: no such cluster (no {SETTINGS_FILE})",
                self.dir.display()
            ))
            .with_hint(format!(
                "create it with `kaws cluster init {} ...`, or check the name with `ls clusters`",
                self.name
            )))
        }
    }

    pub fn settings(&self) -> PathBuf {
        self.dir.join(SETTINGS_FILE)
    }

    pub fn entry_point(&self) -> PathBuf {
        self.dir.join(ENTRY_POINT_FILE)
    }

    /// The Terraform variables kaws derives from the certificate table.
    pub fn pki_vars(&self) -> PathBuf {
        self.dir.join(PKI_VARS_FILE)
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("terraform.tfstate")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn admin_csr(&self, admin: &AdminName) -> PathBuf {
        self.dir.join(admin_csr_name(admin))
    }

    pub fn admin_cert(&self, admin: &AdminName) -> PathBuf {
        self.dir.join(cert_name(admin.as_str()))
    }

    pub fn admin_key(&self, admin: &AdminName) -> PathBuf {
        self.dir.join(encrypted_key_name(admin.as_str()))
    }

    /// `<admin>.kms.json`: which KMS key seals the administrator's key.
    pub fn admin_key_record(&self, admin: &AdminName) -> PathBuf {
        self.dir.join(format!("{}.kms.json", admin.as_str()))
    }

    /// Administrators with a CSR, a certificate or a key in this cluster.
    pub fn admins(&self) -> Result<Vec<AdminName>> {
        // A set: each administrator has up to three files, and a cluster may
        // have thousands of administrators.
        let mut out = std::collections::BTreeSet::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let stem = file
                .strip_suffix(".csr")
                .or_else(|| file.strip_suffix("-key.pem.encrypted"))
                .or_else(|| file.strip_suffix(".pem"));
            if let Some(Ok(a)) = stem.map(AdminName::parse) {
                out.insert(a);
            }
        }
        Ok(out.into_iter().collect())
    }
}

pub const SETTINGS_FILE: &str = "terraform.tfvars.json";

/// The cluster's Terraform entry point, JSON written with serde.
pub const ENTRY_POINT_FILE: &str = "main.tf.json";

/// Where older kaws versions wrote the entry point, as HCL. The next command
/// that runs Terraform replaces it with [`ENTRY_POINT_FILE`].
pub const OLD_ENTRY_POINT_FILE: &str = "main.tf";

/// What the module needs from the certificate table (which role reads and
/// decrypts which file, the number of etcd servers), written by kaws from
/// the table; Terraform loads it on its own (`*.auto.tfvars.json`).
pub const PKI_VARS_FILE: &str = "pki.auto.tfvars.json";

/// `<stem>.pem`
pub fn cert_name(stem: &str) -> String {
    format!("{stem}.pem")
}

/// `<stem>-key.pem`: the plaintext name, used only in the KMS encryption context.
pub fn key_name(stem: &str) -> String {
    format!("{stem}-key.pem")
}

/// The public half of a row: its certificate, `<stem>.pub` for a bare key
/// pair, nothing for the encryption configuration.
pub fn public_file_name(spec: &crate::pki::CertSpec) -> Option<String> {
    use crate::pki::Material;
    match spec.material {
        Material::Certificate => Some(cert_name(spec.stem)),
        Material::KeyPair => Some(format!("{}.pub", spec.stem)),
        Material::EncryptionConfig | Material::BootstrapToken => None,
    }
}

/// `<stem>-key.pem.encrypted`
pub fn encrypted_key_name(stem: &str) -> String {
    format!("{stem}-key.pem.encrypted")
}

pub fn admin_csr_name(admin: &AdminName) -> String {
    format!("{}.csr", admin.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "prod", "a-b", "0", "x1-2-y", &"a".repeat(63)] {
            assert!(ClusterName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "..",
            "a/b",
            "/etc",
            &"a".repeat(64),
            "é",
            "a b",
        ] {
            assert!(ClusterName::parse(bad).is_err(), "{bad}");
        }
        assert!(AdminName::parse("ca").is_err());
        // Every stem of the table, and kaws' own files' stems.
        for spec in crate::pki::CLUSTER_CERTS {
            assert!(AdminName::parse(spec.stem).is_err(), "{}", spec.stem);
        }
        for stem in ["terraform", "main", "pki"] {
            assert!(AdminName::parse(stem).is_err(), "{stem}");
        }
        // Every identity of the certificate table is refused as a name.
        for spec in crate::pki::CLUSTER_CERTS {
            let cn = spec.common_name.replace("{cluster}", "prod");
            assert!(AdminName::parse(&cn).is_err(), "{cn}");
        }
        for bad in [
            "kube-prod-apiserver",
            "kube-x-node",
            "system",
            "kaws-bootstrap",
        ] {
            assert!(AdminName::parse(bad).is_err(), "{bad}");
        }
        assert!(AdminName::parse("alice").is_ok());
    }

    #[test]
    fn discover_walks_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MARKER), "{}").unwrap();
        let deep = dir.path().join("clusters/x/y");
        std::fs::create_dir_all(&deep).unwrap();
        let repo = Repo::discover(&deep).unwrap();
        assert_eq!(repo.root(), dir.path());
        let other = tempfile::tempdir().unwrap();
        let err = Repo::discover(other.path()).unwrap_err();
        assert!(err.message().contains("not inside a kaws repository"));
    }
}
