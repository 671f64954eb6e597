//! The per-VM lock: concurrent plugin runs for one VM (a runtime starting many
//! containers at once) take turns choosing tags and claiming pool ports. An advisory
//! `flock` on a file under the state directory, released when the process exits, so a
//! killed run never leaves it held.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

pub struct Lock {
    _file: File,
}

/// The lock file of `vm_port` (its name made safe for a path).
pub fn path(state_dir: &Path, vm_port: &str, what: &str) -> PathBuf {
    let safe: String = vm_port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join(format!("{safe}.{what}.lock"))
}

impl Lock {
    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> io::Result<Lock> {
        Lock::take(path, libc::LOCK_EX).map(|l| l.expect("a blocking flock returns only when held"))
    }

    /// `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Lock>> {
        Lock::take(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn take(path: &Path, op: libc::c_int) -> io::Result<Option<Lock>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(Some(Lock { _file: file }));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => return Err(e),
            }
        }
    }
}
