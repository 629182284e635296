//! Writing files so that they appear all at once or not at all.
//!
//! Every file kaws writes goes through here: a temporary file in the same
//! directory, written, flushed to disk, then renamed into place. New files
//! are linked into place without replacing anything (`persist_noclobber`),
//! so a file that appeared meanwhile is never overwritten; replacements only
//! happen where a command was asked to replace.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix of kaws' temporary files and directories; `cluster check` and the
/// next writing command recognise leftovers of a killed run by it.
pub const TEMP_PREFIX: &str = ".kaws-tmp-";

/// Whether secret files (kubeconfigs) get mode 0600.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Public,
    Private,
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_in(dir: &Path, mode: Mode) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let bits = if mode == Mode::Private { 0o600 } else { 0o644 };
        builder.permissions(fs::Permissions::from_mode(bits));
    }
    builder
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))
}

fn write_temp(path: &Path, contents: &[u8], mode: Mode) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(path);
    let mut tmp = temp_in(dir, mode)?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", path, e))?;
    Ok(tmp)
}

/// Flush a directory's entries, so a rename into it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("flush the directory", dir, e))?;
    }
    Ok(())
}

/// Write a new file; refuse if anything exists at `path`.
pub fn write_new(path: &Path, contents: &[u8], mode: Mode) -> Result<()> {
    let tmp = write_temp(path, contents, mode)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::conflict(format!("{}: already exists", path.display())).with_hint(
                "kaws never overwrites a file it did not create in this run; move it away first",
            )
        } else {
            Error::io("write", path, e.error)
        }
    })?;
    sync_dir(parent_of(path))
}

/// Replace `path` (or create it) atomically. Only for files the user asked
/// kaws to change.
pub fn replace(path: &Path, contents: &[u8], mode: Mode) -> Result<()> {
    let tmp = write_temp(path, contents, mode)?;
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    sync_dir(parent_of(path))
}

/// An empty temporary directory beside `path`, on the same file system, so
/// that it can be renamed onto `path`.
fn staging_dir_beside(path: &Path) -> Result<tempfile::TempDir> {
    let parent = parent_of(path);
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(parent)
        .map_err(|e| Error::io("create a staging directory in", parent, e))
}

/// Whether anything, a dangling symbolic link included, sits at `path`.
/// `Path::exists` follows links, so a link to nowhere would look absent
/// and a link to a file would look like that file.
pub fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// The largest KMS ciphertext kaws reads: a sealed 4096-bit RSA key is
/// about 3 KiB; nothing legitimate comes near this.
pub const MAX_CIPHERTEXT_BYTES: u64 = 64 * 1024;

/// Read a `*-key.pem.encrypted` file (KMS ciphertext).
pub fn read_ciphertext(path: &Path) -> Result<Vec<u8>> {
    read_limited(
        path,
        MAX_CIPHERTEXT_BYTES,
        "a KMS ciphertext",
        "kaws writes these files itself; restore it from git",
    )
}

/// Read a regular file of at most `max` bytes, never through a symbolic
/// link: a file anyone may commit could otherwise point at `/dev/zero`
/// (a size of 0 that never ends), a FIFO (a read that never returns),
/// `/dev/stdin` or a file outside the repository. The file is opened with
/// `O_NOFOLLOW | O_NONBLOCK`, checked on the open descriptor to be a
/// regular file, and read with a hard limit whatever its size claims.
pub fn read_limited(path: &Path, max: u64, what: &str, hint: &str) -> Result<Vec<u8>> {
    read_regular(path, max, false, what, hint)
}

/// [`read_limited`] for a file the user names or owns (a kubeconfig):
/// a symbolic link is followed, but the target must still be a regular
/// file within the limit.
pub fn read_limited_following(path: &Path, max: u64, what: &str, hint: &str) -> Result<Vec<u8>> {
    read_regular(path, max, true, what, hint)
}

fn read_regular(path: &Path, max: u64, follow: bool, what: &str, hint: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if !follow && e.raw_os_error() == Some(libc::ELOOP) {
                Error::input(format!(
                    "{}: is a symbolic link; kaws reads no file of a repository through a link",
                    crate::text::escape_path(path)
                ))
                .with_hint(hint.to_string())
            } else {
                Error::io("read", path, e)
            }
        })?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() {
        return Err(Error::input(format!(
            "{}: is not a regular file, so it cannot be {what}",
            crate::text::escape_path(path)
        ))
        .with_hint(hint.to_string()));
    }
    let too_large = |len: u64| {
        Error::input(format!(
            "{}: {len} bytes is too large for {what} (at most {max})",
            crate::text::escape_path(path)
        ))
        .with_hint(hint.to_string())
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    (&file)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io("read", path, e))?;
    if out.len() as u64 > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// A directory built aside and renamed into place as a whole.
pub struct Staging {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl Staging {
    /// Start building what will become `target` (which must not exist).
    pub fn new(target: &Path) -> Result<Self> {
        let dir = staging_dir_beside(target)?;
        Ok(Staging {
            dir,
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write one file of the staged directory, flushed to disk.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let path = self.dir.path().join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        f.write_all(contents)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("write", &path, e))
    }

    /// Rename the staged directory to its target. Fails, leaving nothing
    /// behind, if the target exists and is not empty.
    pub fn commit(self) -> Result<PathBuf> {
        sync_dir(self.dir.path())?;
        if self.target.exists() {
            return Err(Error::conflict(format!(
                "{}: already exists",
                self.target.display()
            ))
            .with_hint("kaws never overwrites an existing directory; choose another name or move it away"));
        }
        let staged = self.dir.keep();
        if let Err(e) = fs::rename(&staged, &self.target) {
            let _ = fs::remove_dir_all(&staged);
            return Err(Error::io("move the staged directory to", &self.target, e));
        }
        sync_dir(parent_of(&self.target))?;
        Ok(self.target)
    }
}

/// A new version of an existing directory, swapped in atomically.
///
/// Unchanged files are hard-linked into a staging directory beside the
/// original, changed files are written there, and the two directories are
/// exchanged with one `renameat2(RENAME_EXCHANGE)`: readers see the old
/// directory or the new one, never a mix. Terraform's working data
/// (`.terraform`) moves across untouched.
pub struct Rewrite {
    dir: PathBuf,
    staging: tempfile::TempDir,
}

fn link_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| Error::io("list", from, e))? {
        let entry = entry.map_err(|e| Error::io("list", from, e))?;
        let name = entry.file_name();
        if name == ".terraform" {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("inspect", &src, e))?;
        if ft.is_dir() {
            fs::create_dir(&dst).map_err(|e| Error::io("create", &dst, e))?;
            link_tree(&src, &dst)?;
        } else {
            fs::hard_link(&src, &dst).map_err(|e| Error::io("link", &src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Makes the next exchange fail, as on a filesystem without
    /// `RENAME_EXCHANGE`.
    static FAIL_EXCHANGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if FAIL_EXCHANGE.with(|f| f.replace(false)) {
        return Err(std::io::Error::from_raw_os_error(22));
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(Into::into)
}

impl Rewrite {
    pub fn new(dir: &Path) -> Result<Self> {
        let staging = staging_dir_beside(dir)?;
        link_tree(dir, staging.path())?;
        Ok(Rewrite {
            dir: dir.to_path_buf(),
            staging,
        })
    }

    /// Replace (or add) one file of the new version.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let path = self.staging.path().join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("replace", &path, e)),
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        f.write_all(contents)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("write", &path, e))
    }

    /// Leave one file out of the new version; whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let path = self.staging.path().join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }

    /// Swap the new version in; the old one is removed.
    pub fn commit(self) -> Result<()> {
        sync_dir(self.staging.path())?;
        let tf = self.dir.join(".terraform");
        if tf.exists() {
            fs::rename(&tf, self.staging.path().join(".terraform"))
                .map_err(|e| Error::io("move", &tf, e))?;
        }
        let moved = self.staging.path().join(".terraform");
        if let Err(e) = exchange(self.staging.path(), &self.dir) {
            // Nothing was swapped: Terraform's working data goes back where
            // it was before dropping the staging directory would delete it.
            if moved.exists() {
                if let Err(back) = fs::rename(&moved, &tf) {
                    // Keep the staging directory rather than lose it.
                    let kept = self.staging.keep();
                    return Err(Error::io("swap in the new version of", &self.dir, e)
                        .with_hint(format!(
                            "nothing changed, but .terraform could not be moved back ({back}): it is in {}; move it back to {} by hand",
                            kept.display(),
                            tf.display()
                        )));
                }
            }
            return Err(Error::io("swap in the new version of", &self.dir, e));
        }
        sync_dir(parent_of(&self.dir))?;
        // The staging path now holds the old version; dropping removes it.
        drop(self.staging);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_swap_keeps_terraform_s_working_data() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        fs::create_dir_all(dir.join(".terraform")).unwrap();
        fs::write(dir.join(".terraform/x"), b"x").unwrap();
        fs::write(dir.join("a"), b"old a").unwrap();
        let rw = Rewrite::new(&dir).unwrap();
        rw.write("a", b"new a").unwrap();
        FAIL_EXCHANGE.with(|f| f.set(true));
        assert!(rw.commit().is_err());
        assert_eq!(fs::read(dir.join(".terraform/x")).unwrap(), b"x");
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"old a");
        // Only the cluster directory is left: no staging directory.
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn rewrite_swaps_whole_directories() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        fs::create_dir_all(dir.join(".terraform")).unwrap();
        fs::write(dir.join("a"), b"old a").unwrap();
        fs::write(dir.join("b"), b"b").unwrap();
        fs::write(dir.join(".terraform/x"), b"x").unwrap();
        let r = Rewrite::new(&dir).unwrap();
        r.write("a", b"new a").unwrap();
        // Nothing visible changes before the commit.
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"old a");
        r.commit().unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"new a");
        assert_eq!(fs::read(dir.join("b")).unwrap(), b"b");
        assert_eq!(fs::read(dir.join(".terraform/x")).unwrap(), b"x");
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            1,
            "no leftovers"
        );
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        write_new(&p, b"one", Mode::Public).unwrap();
        let err = write_new(&p, b"two", Mode::Public).unwrap_err();
        assert!(err.message().contains("already exists"));
        assert_eq!(fs::read(&p).unwrap(), b"one");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn reads_only_regular_files_never_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"12345").unwrap();
        assert_eq!(read_limited(&f, 5, "x", "").unwrap(), b"12345");
        assert!(read_limited(&f, 4, "x", "").is_err());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let err = read_limited(&link, 5, "x", "").unwrap_err();
        assert!(err.message().contains("symbolic link"), "{}", err.message());
        assert_eq!(read_limited_following(&link, 5, "x", "").unwrap(), b"12345");
        // A device claims size 0 and never ends: refused unread.
        assert!(read_limited_following(Path::new("/dev/zero"), 5, "x", "").is_err());
        assert!(read_limited(dir.path(), 5, "x", "").is_err());
    }

    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        replace(&p, b"x", Mode::Private).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn staging_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("c");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"k").unwrap();
        let s = Staging::new(&target).unwrap();
        s.write("f", b"1").unwrap();
        assert!(s.commit().is_err());
        assert_eq!(fs::read(target.join("keep")).unwrap(), b"k");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
