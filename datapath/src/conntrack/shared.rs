//! The table as the poll threads share it: both directions of a connection may arrive
//! on different queues, so there is one table per datapath, not per thread.

use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering::Relaxed},
};

use ovnest_common::ct::CtDep;
use ovnest_logical::{
    conntrack::{Affinity, Conntrack, Error, HairpinReply, Request, Zone},
    flow::Flow,
};

use super::{Met, Mirror, Table};

/// One datapath's connection table, behind a lock that only frames needing conntrack
/// take, once per frame (the slow path; XDP reads the mirrored connections without it).
#[derive(Debug)]
pub struct Shared {
    table: Mutex<Table>,
    /// Set once a mirror is attached (read per frame without the lock).
    mirrored: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new(Table::DEFAULT_LIMIT)
    }
}

impl Shared {
    pub fn new(limit: usize) -> Shared {
        Shared {
            table: Mutex::new(Table::new(limit)),
            mirrored: AtomicBool::new(false),
        }
    }

    /// The table's clock: `CLOCK_MONOTONIC` milliseconds, the clock XDP stamps
    /// mirrored connections with (`bpf_ktime_get_coarse_ns`).
    pub fn now(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }

    /// The table, its clock set to `now`. A thread that panicked holding the lock left
    /// the table consistent (no operation panics half-way), so poisoning is ignored.
    pub fn lock(&self, now: u64) -> MutexGuard<'_, Table> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.set_now(now);
        t
    }

    /// Whether established connections are mirrored for XDP.
    pub fn has_mirror(&self) -> bool {
        self.mirrored.load(Relaxed)
    }

    /// Mirrors established connections from now on (the first mirror attached stays).
    pub fn attach_mirror(&self, mirror: Box<dyn Mirror>) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !t.has_mirror() {
            t.set_mirror(mirror);
            self.mirrored.store(true, Relaxed);
        }
    }

    /// A tracker for one frame: it takes the lock at its first `ct()` only. `related`:
    /// for an ICMP error, the tuple of the packet it quotes.
    pub fn tracker(&self, now: u64, related: Option<super::Tuple>) -> Tracker<'_> {
        Tracker {
            shared: self,
            now,
            guard: None,
            met: Met::for_icmp_error(related),
        }
    }
}

/// [`Conntrack`] for one frame's walk through the pipeline.
pub struct Tracker<'a> {
    shared: &'a Shared,
    now: u64,
    guard: Option<MutexGuard<'a, Table>>,
    /// The connections the frame met so far.
    met: Met,
}

impl Tracker<'_> {
    /// Connections held and the table's counters, when the frame went through it.
    pub fn table_stats(&self) -> Option<(usize, super::Stats)> {
        self.guard.as_ref().map(|t| (t.len(), t.stats))
    }

    /// Releases the table; returns the mirrored connections the frame's decision
    /// depends on, `None` when it holds for this frame only ([`Met::deps`]).
    pub fn finish(self) -> Option<([CtDep; ovnest_common::ct::CT_DEPS], usize)> {
        drop(self.guard);
        let deps = self.met.deps()?;
        let mut out = [CtDep::default(); ovnest_common::ct::CT_DEPS];
        out[..deps.len()].copy_from_slice(deps);
        Some((out, deps.len()))
    }
}

impl Conntrack for Tracker<'_> {
    fn execute(&mut self, zone: Zone, flow: &mut Flow, req: &Request) -> Result<(), Error> {
        let (shared, now) = (self.shared, self.now);
        let result = self
            .guard
            .get_or_insert_with(|| shared.lock(now))
            .execute_for(zone, flow, req, &mut self.met);
        if result.is_err() {
            self.met.refuse();
        }
        result
    }

    fn learn_hairpin_reply(&mut self, reply: HairpinReply) -> bool {
        let (shared, now) = (self.shared, self.now);
        self.guard
            .get_or_insert_with(|| shared.lock(now))
            .learn_hairpin_reply(reply)
    }

    fn hairpin_reply_learned(&mut self, reply: &HairpinReply) -> bool {
        let (shared, now) = (self.shared, self.now);
        let learned = self
            .guard
            .get_or_insert_with(|| shared.lock(now))
            .hairpin_reply_learned(reply);
        if !learned {
            // The next hairpin session may learn it: not a decision to cache.
            self.met.refuse();
        }
        learned
    }

    fn commit_lb_affinity(
        &mut self,
        session: Affinity,
        backend: (u128, u16),
        timeout_s: u16,
    ) -> bool {
        let (shared, now) = (self.shared, self.now);
        self.met.refuse();
        self.guard
            .get_or_insert_with(|| shared.lock(now))
            .commit_lb_affinity(session, backend, timeout_s)
    }

    fn lb_affinity(&mut self, session: &Affinity) -> Option<(u128, u16)> {
        let (shared, now) = (self.shared, self.now);
        // Sessions age: what this answers holds for this packet only.
        self.met.refuse();
        self.guard
            .get_or_insert_with(|| shared.lock(now))
            .lb_affinity(session)
    }
}
