//! The repository's advisory write lock.
//!
//! Commands that write a cluster take `<repo>/.kaws.lock` exclusively, so two
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
    _file: File,
}

/// How long a second writer waits before giving up.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn acquire(path: &Path, what: &str) -> Result<RepoLock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open the lock file", path, e))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
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
    Ok(RepoLock { _file: file })
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
}
