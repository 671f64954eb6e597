//! One poll thread: a UMEM, one XSK per bound interface on its queue, and the loop
//! receive → process → flush transmit → recycle, with housekeeping every N iterations.

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{debug, info, warn};
use xdpilone::{Umem as XskUmem, UmemConfig};

use super::{AfXdpConfig, AfXdpError, BindMode, area::Area, socket::Xsk};
use crate::pipeline::{
    BATCH, Controller, Desc, FramePool, Pipeline, Service, SharedCounters, Snapshot, SnapshotCell,
    TxBatches, Umem, Verdict,
};

/// Headroom the kernel leaves before received data (`XDP_PACKET_HEADROOM`); flood copies
/// start at the same offset so a tag push always finds room.
const XDP_PACKET_HEADROOM: u32 = 256;
/// Iterations between housekeeping (snapshot refresh, stop flag, counter fold).
const HOUSEKEEPING_EVERY: u32 = 1024;
/// A thread that sleeps between frames makes few passes: after a wake-up it does its
/// housekeeping anyway once this long has gone by since the last (pinctrl's timers,
/// conntrack expiry), as the 100 ms poll(2) timeout of an idle thread guarantees.
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
/// Connections the housekeeping pass may expire at once (bounds the time the table's
/// lock is held).
const CT_EXPIRE_BUDGET: usize = 4096;
/// Empty passes between two looks at the clock while the thread spins (a vDSO read, no
/// syscall; the first empty pass after a busy one reads it too, unless it does not spin).
const SPIN_CHECK_EVERY: u32 = 64;

/// What a poll thread did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub queue: u32,
    pub received: u64,
    pub transmitted: u64,
    /// Descriptors the TX ring had no room for (dropped after they were counted).
    pub tx_ring_full: u64,
}

/// A poll thread's sockets and memory, not yet running.
pub struct Worker {
    pub(super) queue: u32,
    pub(super) mode: BindMode,
    // Drop order: sockets, then the xdpilone UMEM registration, then the memory.
    pub(super) xsks: Vec<Xsk>,
    pub(super) _umem: XskUmem,
    pub(super) pool: FramePool,
    frame_size: u32,
    /// How long the thread spins after its last frame before it sleeps.
    busy_poll: std::time::Duration,
    area: Area,
    /// The connection table shared with the other poll threads of the datapath.
    pub(super) conntrack: Option<std::sync::Arc<crate::conntrack::Shared>>,
}

// SAFETY: xdpilone's `Umem` is not `Send` only because it holds a raw pointer to the area.
// A `Worker` owns that area and every socket and ring that refers to it, and moves as one
// bundle to the single thread that then uses all of them; nothing is shared with the
// thread that opened it (the rings themselves are `Send`).
unsafe impl Send for Worker {}

impl Worker {
    /// Opens one XSK per interface on `queue`, trying zero-copy first when asked and
    /// falling back to copy mode (veth, generic XDP) with a log line.
    pub fn open(
        config: &AfXdpConfig,
        interfaces: &[u32],
        queue: u32,
    ) -> Result<Worker, AfXdpError> {
        if config.zero_copy {
            match Worker::open_with(config, interfaces, queue, BindMode::ZeroCopy) {
                Ok(worker) => return Ok(worker),
                Err(e) => {
                    info!("queue {queue}: zero-copy AF_XDP unavailable ({e}); using copy mode")
                }
            }
        }
        Worker::open_with(config, interfaces, queue, BindMode::Copy)
    }

    fn open_with(
        config: &AfXdpConfig,
        interfaces: &[u32],
        queue: u32,
        mode: BindMode,
    ) -> Result<Worker, AfXdpError> {
        // Every socket's fill ring gets an equal share of half the UMEM (the rest is for
        // frames in flight: received, queued to transmit, flood copies), at least two
        // batches, at most its ring: the UMEM grows with the number of interfaces if needed.
        let sockets = interfaces.len().max(1);
        let frames = (config.frames as usize).max(sockets * BATCH * 2 * 2);
        let fill_target = (frames / 2 / sockets).clamp(BATCH, config.ring_size as usize) as u32;
        let area = Area::new(frames * config.frame_size as usize).map_err(AfXdpError::Memory)?;
        let umem_config = UmemConfig {
            fill_size: config.ring_size,
            complete_size: config.ring_size,
            frame_size: config.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is page aligned (mmap), frames * frame_size long, and outlives the
        // xdpilone Umem and every socket: all are fields of the Worker declared before it.
        let umem = unsafe { XskUmem::new(umem_config, area.as_ptr_slice()) }.map_err(|e| {
            AfXdpError::Socket {
                what: "UMEM registration",
                ifindex: 0,
                queue,
                errno: e.get_raw(),
            }
        })?;
        let mut xsks = Vec::with_capacity(interfaces.len());
        for (i, ifindex) in interfaces.iter().enumerate() {
            xsks.push(Xsk::open(
                &umem,
                i == 0,
                *ifindex,
                queue,
                mode,
                config,
                fill_target,
            )?);
        }
        let mut pool = FramePool::with_capacity(frames, XDP_PACKET_HEADROOM);
        for chunk in 0..frames as u64 {
            pool.give(chunk * config.frame_size as u64);
        }
        for xsk in &mut xsks {
            xsk.prime(&mut pool);
        }
        Ok(Worker {
            queue,
            mode,
            xsks,
            _umem: umem,
            pool,
            frame_size: config.frame_size,
            busy_poll: config.busy_poll,
            area,
            conntrack: None,
        })
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// `(ifindex, queue, fd)` of every socket, for `FastPath::register_xsk`.
    pub fn sockets(&self) -> impl Iterator<Item = (u32, u32, i32)> + '_ {
        self.xsks.iter().map(|x| (x.ifindex, x.queue, x.fd()))
    }

    /// The poll loop. Returns when `stop` is set (checked every housekeeping interval and
    /// on every idle wakeup).
    pub fn run<S: Service>(
        self,
        cell: &SnapshotCell,
        shared: &SharedCounters,
        stop: &AtomicBool,
        services: S,
        controller: Box<dyn Controller + Send>,
    ) -> WorkerReport {
        self.run_with_cache(cell, shared, stop, services, controller, None)
    }

    /// [`Worker::run`], installing decisions into the XDP decision cache with `cache`.
    pub fn run_with_cache<S: Service>(
        mut self,
        cell: &SnapshotCell,
        shared: &SharedCounters,
        stop: &AtomicBool,
        services: S,
        controller: Box<dyn Controller + Send>,
        cache: Option<crate::cache::CacheWriter>,
    ) -> WorkerReport {
        let frame_mask = self.frame_size as u64 - 1;
        let busy_poll = self.busy_poll;
        let reserve = BATCH * 4;
        let Worker {
            xsks,
            pool,
            area,
            frame_size,
            queue,
            conntrack,
            ..
        } = &mut self;
        // SAFETY: the area stays mapped for this whole function (it is owned by `self`);
        // only this thread touches it, and the pipeline only touches chunks it received or
        // took from its pool, never chunks sitting in a fill or TX ring.
        let Some(umem) = (unsafe { Umem::from_raw(area.base(), area.len(), *frame_size) }) else {
            warn!("queue {queue}: bad frame size {frame_size}");
            return WorkerReport {
                queue: *queue,
                ..Default::default()
            };
        };
        let pool = core::mem::replace(pool, FramePool::with_capacity(0, 0));
        let mut pipeline = Pipeline::new(umem, pool, TxBatches::new(BATCH * 64), services);
        pipeline.controller = controller;
        pipeline.cache = cache;
        if let Some(ct) = conntrack.take() {
            pipeline.conntrack = ct;
        }
        let mut report = WorkerReport {
            queue: *queue,
            ..Default::default()
        };
        let adopted = cell.register_reader();
        let mut snapshot: Arc<Snapshot> = cell.load();
        adopted.store(snapshot.generation(), Ordering::SeqCst);
        let mut socket_of_device = Vec::new();
        prepare(
            &snapshot,
            xsks,
            &mut pipeline,
            &mut socket_of_device,
            frame_mask,
        );

        let mut pollfds: Vec<libc::pollfd> = xsks
            .iter()
            .map(|x| libc::pollfd {
                fd: x.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut rx = [Desc::default(); BATCH];
        let mut iteration: u32 = 0;
        let mut idle: u32 = 0;
        let mut idle_since = std::time::Instant::now();
        let mut last_housekeeping = std::time::Instant::now();
        let mut housekeeping_due = false;
        loop {
            iteration = iteration.wrapping_add(1);
            // Every pass: a new snapshot is adopted before the next batch (one atomic
            // load when nothing changed), and the adoption reported (coherence, see
            // `SnapshotCell`).
            if cell.generation() != snapshot.generation() {
                let latest = cell.load();
                debug!(
                    "queue {}: snapshot generation {}",
                    report.queue,
                    latest.generation()
                );
                snapshot = latest;
                prepare(
                    &snapshot,
                    xsks,
                    &mut pipeline,
                    &mut socket_of_device,
                    frame_mask,
                );
            }
            adopted.store(snapshot.generation(), Ordering::SeqCst);
            if iteration.is_multiple_of(HOUSEKEEPING_EVERY) || housekeeping_due {
                housekeeping_due = false;
                last_housekeeping = std::time::Instant::now();
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                pipeline.counters.fold_into(shared);
                read_socket_statistics(xsks, shared);
                pipeline.conntrack_housekeeping(CT_EXPIRE_BUDGET);
                // pinctrl's timers (health-check probes), sent in this pass's flush: a
                // busy thread gets here every HOUSEKEEPING_EVERY passes, a sleeping one
                // after a wake-up once HOUSEKEEPING_PERIOD has gone by (an idle one
                // wakes at least every 100 ms).
                pipeline.controller_run(&snapshot, std::time::Instant::now());
            }

            let mut received = 0;
            for xsk in xsks.iter_mut() {
                xsk.complete(&mut pipeline.pool, frame_mask);
                let n = xsk.receive(&mut rx);
                if n > 0 {
                    pipeline.process_batch(&snapshot, xsk.ifindex, &rx[..n]);
                    received += n;
                }
                xsk.refill(&mut pipeline.pool, reserve);
            }
            report.received += received as u64;
            report.transmitted += pipeline.tx.len() as u64;
            let Pipeline {
                tx, pool, counters, ..
            } = &mut pipeline;
            tx.flush(|device, count, descs| {
                match socket_of_device.get(device as usize).copied().flatten() {
                    Some(i) => {
                        // Refused by a full TX ring (the kernel is not completing this
                        // interface's transmits): counted where status shows it.
                        let refused = xsks[i].transmit(count, descs, pool, frame_mask);
                        report.tx_ring_full += u64::from(refused);
                        for _ in 0..refused {
                            counters.count(Verdict::DropTxFull);
                        }
                    }
                    None => descs.for_each(|d| pool.give(d.addr & !frame_mask)),
                }
            });

            // Frames a kick left on a TX ring (more than one call's budget, or a busy
            // device) are kicked again every pass; the thread does not sleep on them.
            let mut tx_waiting = false;
            for xsk in xsks.iter_mut() {
                if xsk.tx_pending() > 0 {
                    tx_waiting |= xsk.kick();
                }
            }

            // Busy-poll: after the last frame, spin `busy_poll` before sleeping, so the
            // next frame of a conversation (a TCP handshake's reply, a request's answer)
            // finds the thread awake instead of waiting for its wake-up.
            if received == 0 && !tx_waiting {
                idle += 1;
                if idle == 1 && !busy_poll.is_zero() {
                    idle_since = std::time::Instant::now();
                }
                if busy_poll.is_zero()
                    || (idle.is_multiple_of(SPIN_CHECK_EVERY) && idle_since.elapsed() >= busy_poll)
                {
                    pipeline.counters.fold_into(shared);
                    read_socket_statistics(xsks, shared);
                    adopted.store(crate::pipeline::SLEEPING, Ordering::SeqCst);
                    wait_readable(&mut pollfds, stop);
                    housekeeping_due = stop.load(Ordering::Relaxed)
                        || last_housekeeping.elapsed() >= HOUSEKEEPING_PERIOD;
                    // Not adopted until the top of the loop has loaded the snapshot.
                    adopted.store(0, Ordering::SeqCst);
                    idle = 0;
                }
            } else if received != 0 {
                idle = 0;
            }
        }
        pipeline.counters.fold_into(shared);
        read_socket_statistics(xsks, shared);
        report
    }
}

/// Sizes the transmit batches for a new snapshot and maps its devices to this thread's
/// sockets.
fn prepare<S: Service>(
    snapshot: &Snapshot,
    xsks: &[Xsk],
    pipeline: &mut Pipeline<'_, S>,
    socket_of_device: &mut Vec<Option<usize>>,
    frame_mask: u64,
) {
    socket_of_device.clear();
    socket_of_device.extend(
        snapshot
            .devices()
            .iter()
            .map(|d| xsks.iter().position(|x| x.ifindex == d.ifindex)),
    );
    let Pipeline { tx, pool, .. } = pipeline;
    tx.prepare(
        snapshot.devices().len(),
        |device| {
            socket_of_device
                .get(device as usize)
                .copied()
                .flatten()
                .is_some()
        },
        |d| pool.give(d.addr & !frame_mask),
    );
}

/// Publishes the kernel's counters of every socket (one getsockopt each: housekeeping and
/// before sleeping only).
fn read_socket_statistics(xsks: &[Xsk], shared: &SharedCounters) {
    for xsk in xsks {
        if let Some(stats) = xsk.statistics() {
            shared.set_socket(stats);
        }
    }
}

/// Sleeps until a socket has something to receive (or 100 ms pass, to see `stop`).
/// `fds` is built once per thread, so idling allocates nothing.
fn wait_readable(fds: &mut [libc::pollfd], stop: &AtomicBool) {
    if stop.load(Ordering::Relaxed) || fds.is_empty() {
        return;
    }
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs
    // for the duration of the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
}
