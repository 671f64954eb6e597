//! Daemons started by hand (no systemd): each with a pidfile and a log under the lab's
//! directory, stopped by its pidfile.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Runs a command to completion; its stderr is in the error.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| {
        format!("running {program} (is it installed? scripts/setup.sh installs it)")
    })?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `run` inside network namespace `ns`.
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// The pid recorded in `pidfile`, if the process is alive.
pub fn alive(pidfile: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// Sends SIGTERM to the pidfile's process and waits up to `grace` for it to exit, then
/// SIGKILL. Returns whether something was running.
pub fn stop(pidfile: &Path, grace: Duration) -> bool {
    let Some(pid) = alive(pidfile) else {
        let _ = std::fs::remove_file(pidfile);
        return false;
    };
    // SAFETY: signalling a pid we started; at worst it already exited.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if alive(pidfile).is_none() {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    if alive(pidfile).is_some() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(pidfile);
    true
}

/// Polls `probe` until it is true or `timeout` passes.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    while !probe() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    Ok(())
}

/// Paths of one daemon's files in `dir`.
pub struct Daemon {
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn new(dir: &Path, name: &str) -> Daemon {
        Daemon {
            pidfile: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.log")),
        }
    }

    pub fn pidfile_arg(&self) -> String {
        format!("--pidfile={}", self.pidfile.display())
    }

    pub fn log_arg(&self) -> String {
        format!("--log-file={}", self.log.display())
    }
}

/// While alive, the calling thread is in another network namespace.
pub struct InNetns {
    original: std::fs::File,
}

/// Moves the calling thread into the named namespace `name` (`ip netns`) until the guard
/// drops. Sockets, BPF attachments and test runs made meanwhile act in that namespace.
pub fn enter_netns(name: &str) -> anyhow::Result<InNetns> {
    let original = std::fs::File::open("/proc/thread-self/ns/net")?;
    let target = std::fs::File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("namespace {name}"))?;
    setns(&target)?;
    Ok(InNetns { original })
}

fn setns(ns: &std::fs::File) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd only changes the calling thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for InNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original) {
            tracing::error!("returning to the original network namespace: {e}");
        }
    }
}
