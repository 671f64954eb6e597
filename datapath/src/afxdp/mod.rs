//! AF_XDP sockets and the poll threads that feed the [`pipeline`](crate::pipeline).
//!
//! Layout: one poll thread per configured core, thread `q` serving queue `q` of every bound
//! interface. Each thread owns one UMEM shared by its sockets (one XSK per interface on its
//! queue, each with its own fill and completion ring), so a frame received on one interface
//! is transmitted on another by passing its descriptor, without a copy in userspace. The
//! XDP program redirects to the socket of the queue the frame arrived on, through the
//! XSKMAP slots [`AfXdp::register`] fills via `FastPath::register_xsk`.
//!
//! Ring discipline (as OVS's netdev-afxdp): batches of [`BATCH`](crate::pipeline::BATCH)
//! descriptors, fill ring topped up in batches, one TX commit per touched interface per
//! pass, need-wakeup honoured on both (a syscall only when the kernel asks), no allocation
//! and no lock on the packet path, exit on an atomic flag.
//!
//! Ring access: the `xdpilone` crate (pure Rust, no libbpf/libxdp, maintained), whose
//! reserve/insert/commit guards are the ring protocol with rollback built in. Chosen over
//! hand-rolled rings without a head-to-head measurement: its per-batch work is a few
//! loads and stores plus one release store per commit, the same as libxdp's inline ring
//! helpers. One quirk is avoided on purpose: `WriteTx::insert(iter)` may consume one item
//! past the reservation, so descriptors are inserted one by one up to `capacity()`. A
//! second: a reservation is checked against a cached copy of the kernel's consumer that
//! is refreshed only when it shows no room at all, so TX and fill take a second
//! reservation when the first offered less than asked (`socket.rs`).
//!
//! Two things copy mode (veth) needs that zero-copy drivers do for themselves: the kernel
//! sends TX descriptors only inside `sendto`, 32 per call, so the poll thread kicks until
//! the ring is empty and does not sleep while frames wait; and every socket's fill ring
//! holds at most an equal share of half the UMEM, because a fill ring gives chunks back
//! only when its interface receives (idle interfaces would otherwise hold them all).
//! Its licence is EUPL-1.2 (copyleft), to be noted next to the project's Apache-2.0.
//!
//! Zero-copy is tried first when configured; drivers without it (veth, generic XDP)
//! fail the bind and the thread falls back to copy mode with a log line.

mod area;
mod socket;
mod worker;

use core::sync::atomic::AtomicBool;
use std::{sync::Arc, thread::JoinHandle};

pub use worker::{Worker, WorkerReport};

use crate::{
    fastpath::{FastPath, FastPathError},
    pipeline::{Controller, NoServices, SharedCounters, SnapshotCell},
};

/// How a socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames in and out (works everywhere, veth included).
    Copy,
}

/// [`AfXdpConfig::busy_poll`]'s default: none. On a host whose cores the poll threads
/// share with the VMs (the lab's 2 vCPUs, BENCHMARKS.md §10), a spin takes the CPU that
/// the tasks its frames wake (the receiving stacks, the applications) need next: sleeping
/// at once gave 1.08–1.38× the sequential TCP connections per second of a 500 µs spin in
/// 7 of 9 cases, with 26–33 % less CPU per connection (the spin won the other two, on a
/// quiet machine), and a spin keeps a core busy while traffic trickles. With cores of its
/// own, spinning spares frames a wake-up: a ping through the upcall path took ~20 µs with
/// the thread awake, 230–720 µs at 10 ms intervals (5 and 80 µs without an agent).
pub const DEFAULT_BUSY_POLL: std::time::Duration = std::time::Duration::ZERO;

/// AF_XDP settings (from the agent's `cores` and datapath options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Poll threads; thread `q` serves queue `q` of every interface.
    pub cores: u32,
    /// Chunk size, a power of two (2048 or 4096).
    pub frame_size: u32,
    /// Chunks per thread's UMEM.
    pub frames: u32,
    /// Entries of every ring (power of two).
    pub ring_size: u32,
    /// Try zero-copy before copy mode.
    pub zero_copy: bool,
    /// How long a poll thread keeps polling its rings after its last frame before it
    /// sleeps in poll(2) (busy-poll, as OVS's PMD threads and Linux's `busy_poll` do):
    /// a reply arriving meanwhile is picked up at once instead of after a wake-up.
    pub busy_poll: std::time::Duration,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            cores: 1,
            frame_size: 2048,
            frames: 8192,
            ring_size: 2048,
            zero_copy: true,
            busy_poll: DEFAULT_BUSY_POLL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AfXdpError {
    #[error("mapping the UMEM: {0}")]
    Memory(std::io::Error),
    #[error("AF_XDP {what} on ifindex {ifindex} queue {queue}: {}", std::io::Error::from_raw_os_error(*errno))]
    Socket {
        what: &'static str,
        ifindex: u32,
        queue: u32,
        errno: i32,
    },
    #[error("registering AF_XDP sockets in the XDP program: {0}")]
    Register(#[from] FastPathError),
    #[error("starting poll thread {queue}: {source}")]
    Thread { queue: u32, source: std::io::Error },
}

/// The userspace datapath's sockets on a set of interfaces, one [`Worker`] per queue.
pub struct AfXdp {
    interfaces: Vec<u32>,
    workers: Vec<Worker>,
    /// Where the poll threads install decisions (`--datapath hybrid`).
    cache: Option<crate::cache::CacheMaps>,
    /// One connection table for all poll threads: a connection's two directions may
    /// arrive on different queues.
    conntrack: Arc<crate::conntrack::Shared>,
}

impl AfXdp {
    /// Opens the sockets of `config.cores` queues on every interface in `interfaces`.
    pub fn open(config: &AfXdpConfig, interfaces: &[u32]) -> Result<AfXdp, AfXdpError> {
        let workers = (0..config.cores.max(1))
            .map(|queue| Worker::open(config, interfaces, queue))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AfXdp {
            interfaces: interfaces.to_vec(),
            workers,
            cache: None,
            conntrack: Default::default(),
        })
    }

    /// Makes every poll thread install the decisions it makes for frames the XDP
    /// program's decision cache missed.
    pub fn install_into(mut self, cache: crate::cache::CacheMaps) -> AfXdp {
        self.cache = Some(cache);
        self
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Number of queues per interface served.
    pub fn queues(&self) -> u32 {
        self.workers.len() as u32
    }

    /// Puts every socket in the XDP program's XSKMAP: interface `i` (in `open`'s order)
    /// owns slots `i * queues .. (i + 1) * queues`.
    pub fn register(&self, fastpath: &mut FastPath) -> Result<(), AfXdpError> {
        let queues = self.queues();
        for worker in &self.workers {
            for (ifindex, queue, fd) in worker.sockets() {
                let position = self
                    .interfaces
                    .iter()
                    .position(|i| *i == ifindex)
                    .unwrap_or(0) as u32;
                fastpath.register_xsk(ifindex, position * queues, queues, queue, fd)?;
            }
        }
        Ok(())
    }

    /// Starts one poll thread per worker. Each runs until `stop` is set and returns its
    /// report.
    /// `controller` makes each thread's controller (pinctrl) for logical decisions.
    pub fn spawn(
        self,
        cell: Arc<SnapshotCell>,
        shared: Arc<SharedCounters>,
        stop: Arc<AtomicBool>,
        controller: &dyn Fn() -> Box<dyn Controller + Send>,
    ) -> Result<Vec<JoinHandle<WorkerReport>>, AfXdpError> {
        let mut handles = Vec::with_capacity(self.workers.len());
        for mut worker in self.workers {
            worker.conntrack = Some(self.conntrack.clone());
            let queue = worker.queue();
            let (cell, shared, stop) = (cell.clone(), shared.clone(), stop.clone());
            let controller = controller();
            let cache = match &self.cache {
                Some(maps) => Some(maps.writer().map_err(|e| {
                    AfXdpError::Register(FastPathError::Map {
                        map: "CACHE",
                        source: e,
                    })
                })?),
                None => None,
            };
            let handle = std::thread::Builder::new()
                .name(format!("ovnest-xsk{queue}"))
                .spawn(move || {
                    pin_to_core(queue as usize);
                    worker.run_with_cache(&cell, &shared, &stop, NoServices, controller, cache)
                })
                .map_err(|source| AfXdpError::Thread { queue, source })?;
            handles.push(handle);
        }
        Ok(handles)
    }
}

/// Pins the calling thread to `core` (best effort: a refusal only costs locality).
fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data, zeroed is the empty set; CPU_SET bounds-checks the
    // index against the set's size; sched_setaffinity(0) acts on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::debug!("pinning poll thread to core {core} refused");
        }
    }
}
