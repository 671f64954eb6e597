//! Network namespaces by file: the container's (`CNI_NETNS`) and the VM's own (where the
//! plugin runs). Entering one moves only the calling thread, and only until the guard
//! drops.

use std::{fs::File, io, os::fd::AsRawFd, path::Path};

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// While alive, the calling thread is in another network namespace.
pub struct Entered {
    original: File,
}

impl Entered {
    pub fn enter(netns: &File) -> io::Result<Entered> {
        let original = File::open("/proc/thread-self/ns/net")?;
        setns(netns)?;
        Ok(Entered { original })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Going back to a namespace this thread was in cannot fail short of the file
        // being gone, which an open descriptor prevents.
        if let Err(e) = setns(&self.original) {
            tracing::error!("returning to the original network namespace: {e}");
        }
    }
}

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns on an open namespace descriptor only changes this thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
