//! One `ovnest bench` at a time: a second run would reuse the first one's namespace names,
//! tear its labs down, and restore the host settings under it.

use std::{
    fs::{File, OpenOptions},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// Held for the whole run; the kernel releases it when the file closes, also on a crash.
pub struct RunLock {
    _file: File,
}

/// Where the lock lives: the namespaces and host settings it guards are machine-wide.
pub fn default_path() -> PathBuf {
    std::env::temp_dir().join("ovnest-bench.lock")
}

/// Takes the lock at `path`, or says who holds it.
pub fn take(path: &Path) -> anyhow::Result<RunLock> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(path).unwrap_or_default();
        bail!(
            "another ovnest bench is running (pid {}, lock {}); wait for it or stop it",
            holder.trim(),
            path.display()
        );
    }
    use std::io::{Seek as _, Write as _};
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(RunLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_until_the_first_ends() {
        let path =
            std::env::temp_dir().join(format!("ovnest-bench-lock-test-{}", std::process::id()));
        let first = take(&path).expect("the first run takes the lock");
        let refused = take(&path).err().expect("a second run is refused");
        assert!(
            refused
                .to_string()
                .contains(&std::process::id().to_string()),
            "names the holder: {refused}"
        );
        drop(first);
        take(&path).expect("free again once the first run ends");
        let _ = std::fs::remove_file(&path);
    }
}
