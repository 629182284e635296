//! The repository's advisory write lock.
//!
//! Commands that write a cluster take its lock file exclusively (its place
//! is [`crate::layout::Repo::lock_file`]), so two
//! kaws processes never interleave their writes. A second command waits a
//! short while, then says who holds the lock (the holder writes its pid and
//! command into the file). The OS releases the lock when the process dies,
//! so a killed kaws never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub struct RepoLock {
    file: File,
    path: std::path::PathBuf,
    /// This command created the lock file (it did not exist before).
    created: bool,
}

impl RepoLock {
    /// Release the lock, and remove its file if this command created it:
    /// for a command that was refused, so that it leaves nothing behind
    /// (a refused `cluster init` would otherwise leave the lock of a
    /// cluster that does not exist). Removing is safe while the lock is
    /// held, because [`acquire`] holds a lock only on the file its path
    /// names: a waiter that locks the removed file opens the path again.
    pub fn release_refused(self) {
        if self.created && same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` still names the file open as `file`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// How long a second writer waits before giving up.
pub const WAIT: Duration = Duration::from_secs(5);

/// Open the lock file as kaws' own: never through a symbolic link (a
/// committed `clusters/.prod.lock -> ~/.bashrc` would have kaws truncate
/// the target), and only a regular file with one link, owned by this user.
fn open_own(path: &Path) -> Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: &str| {
        Error::conflict(format!(
            "{}: {why}; kaws writes its lock file only as a file of its own",
            crate::text::escape_path(path)
        ))
        .with_hint("nothing was written; remove it (`rm` removes a link, not its target) and run the command again")
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                refuse("is a symbolic link")
            } else {
                Error::io("open the lock file", path, e)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("inspect the lock file", path, e))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refuse("has other hard links"));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(refuse("belongs to another user"));
    }
    Ok(file)
}

pub fn acquire(path: &Path, what: &str) -> Result<RepoLock> {
    let created = std::fs::symlink_metadata(path).is_err();
    let mut file = open_own(path)?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            // A lock on a file a refused command has since removed locks
            // nothing: open the path again.
            Ok(()) if !same_file(&file, path) => {
                file = open_own(path)?;
            }
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder: String = holder.trim().chars().take(200).collect();
                return Err(Error::conflict(format!(
                    "{}: another kaws command is writing this repository ({})",
                    path.display(),
                    if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder
                    }
                ))
                .with_hint("wait for it to finish, then run the command again"));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "pid {} running `kaws {what}`", std::process::id());
    Ok(RepoLock {
        file,
        path: path.to_path_buf(),
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".kaws.lock");
        let _a = acquire(&p, "cluster init a").unwrap();
        // A second open file description in the same process conflicts too.
        let err = acquire(&p, "cluster init b").err().unwrap();
        assert!(
            err.message().contains("cluster init a"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_refused_command_removes_only_a_lock_file_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".new.lock");
        acquire(&p, "cluster init new").unwrap().release_refused();
        assert!(!p.exists());
        std::fs::write(&p, b"").unwrap();
        acquire(&p, "cluster renew new").unwrap().release_refused();
        assert!(p.exists(), "a lock file it did not create stays");
    }

    #[test]
    fn links_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("bashrc");
        std::fs::write(&target, b"keep me").unwrap();
        let sym = dir.path().join("sym.lock");
        std::os::unix::fs::symlink(&target, &sym).unwrap();
        assert!(acquire(&sym, "x").is_err());
        let dangling = dir.path().join("dangling.lock");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(acquire(&dangling, "x").is_err());
        assert!(!dir.path().join("nowhere").exists());
        let hard = dir.path().join("hard.lock");
        std::fs::hard_link(&target, &hard).unwrap();
        assert!(acquire(&hard, "x").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }
}
