//! The table as the poll threads share it: both directions of a connection may arrive
//! on different queues, so there is one table per datapath, not per thread.

use std::{
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use ovnest_logical::{
    conntrack::{Conntrack, Error, Request, Zone},
    flow::Flow,
};

use super::{Met, Table};

/// One datapath's connection table, behind a lock that only frames needing conntrack
/// take, once per frame (the slow path; the XDP side will read the table without it).
#[derive(Debug)]
pub struct Shared {
    table: Mutex<Table>,
    epoch: Instant,
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
            epoch: Instant::now(),
        }
    }

    /// The table's clock, milliseconds since it was made.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The table, its clock set to `now`. A thread that panicked holding the lock left
    /// the table consistent (no operation panics half-way), so poisoning is ignored.
    pub fn lock(&self, now: u64) -> MutexGuard<'_, Table> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.set_now(now);
        t
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

impl Conntrack for Tracker<'_> {
    fn execute(&mut self, zone: Zone, flow: &mut Flow, req: &Request) -> Result<(), Error> {
        let (shared, now) = (self.shared, self.now);
        self.guard
            .get_or_insert_with(|| shared.lock(now))
            .execute_for(zone, flow, req, &mut self.met)
    }
}
