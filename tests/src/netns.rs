//! Network namespaces and veth pairs for kernel tests.
//!
//! Every test makes its own namespaces with unique names (`ovt<pid>-<n>-<label>`) and
//! deletes them on drop, so tests run in parallel and leave nothing behind.

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace with `lo` up. `label` only makes names readable.
    pub fn new(label: &str) -> NetNs {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ovt{}-{n}-{label}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cmd` inside the namespace; panics with its output if it fails.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        run(&full)
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip"];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    /// The ifindex of `ifname` inside the namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let out = self.exec(&["cat", &format!("/sys/class/net/{ifname}/ifindex")]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("ifindex of {ifname} in {}: {e}: {out:?}", self.name))
    }

    /// Moves the calling thread into the namespace until the guard drops. Sockets opened
    /// meanwhile stay in it; so do BPF attachments and devmap entries made meanwhile.
    pub fn enter(&self) -> Entered {
        enter(&self.name)
    }

    /// Turns IPv6 off for the interfaces created afterwards in this namespace: the kernel
    /// then sends no router solicitation or MLD report of its own on them, so a receiver
    /// that counts every frame counts only the test's.
    pub fn without_ipv6(&self) -> &Self {
        for scope in ["all", "default"] {
            self.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{scope}.disable_ipv6=1"),
            ]);
        }
        self
    }

    /// A veth pair: `here` in this namespace, `there` in `peer` (both up).
    pub fn veth_to(&self, here: &str, peer: &NetNs, there: &str) {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            peer.name(),
        ]);
        self.ip(&["link", "set", here, "up"]);
        peer.ip(&["link", "set", there, "up"]);
    }

    /// A veth pair with both ends in this namespace.
    pub fn veth_pair(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }

    /// Turns GRO on for `ifname`: a veth only accepts XDP-redirected frames when its
    /// peer end runs NAPI, which GRO (or an XDP program) enables.
    pub fn gro_on(&self, ifname: &str) {
        self.exec(&["ethtool", "-K", ifname, "gro", "on"]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the existing named namespace `name` (`ip netns add`)
/// until the guard drops.
pub fn enter(name: &str) -> Entered {
    let original = File::open("/proc/thread-self/ns/net").expect("open own netns");
    let target = File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("open netns {name}: {e}"));
    setns(&target);
    Entered { original }
}

/// While alive, the calling thread is in another namespace.
pub struct Entered {
    original: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        setns(&self.original);
    }
}

fn setns(ns: &File) {
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Runs a command and returns its stdout; panics with stderr when it fails.
pub fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
