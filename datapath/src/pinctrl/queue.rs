//! The Southbound writes pinctrl asks for, shared with the agent: ovn-controller's
//! pinctrl thread fills `put_mac_bindings` / `put_fdbs` under `pinctrl_mutex` and
//! wakes the main thread, which writes the rows that are due. [`SbQueue`] is that
//! shared buffer: the datapath's [`Pinctrl`](super::Pinctrl) puts, the agent's writer
//! waits ([`SbQueue::wait_due`]) and transacts. The lock is taken once per controller
//! action or flush, never on the fast path.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::SbRequest;
use super::fdb::PutFdbs;
use super::mac_binding::PutMacBindings;
use super::svc_monitor::{Status, SvcCounters, SvcMonitorSpec, SvcMonitors};

#[derive(Debug, Default)]
pub(crate) struct Queues {
    pub(crate) mac_bindings: PutMacBindings,
    pub(crate) fdbs: PutFdbs,
    /// Load-balancer health checks (their state machines and status writes).
    pub(crate) svc: SvcMonitors,
}

/// A handle on the buffered Southbound writes; clones share them.
#[derive(Debug, Clone, Default)]
pub struct SbQueue {
    inner: Arc<(Mutex<Queues>, Condvar)>,
}

impl SbQueue {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queues> {
        // A writer that panicked holding the lock left plain data: keep using it.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes a writer blocked in [`SbQueue::wait_due`] (pinctrl's
    /// `notify_pinctrl_main`).
    pub(crate) fn notify(&self) {
        self.inner.1.notify_all();
    }

    /// Removes and returns the writes due at `now` (pinctrl's `run_put_mac_bindings`
    /// and `run_put_fdbs`).
    pub fn take_due(&self, now: Instant) -> Vec<SbRequest> {
        let mut q = self.lock();
        let mut out: Vec<SbRequest> = q
            .mac_bindings
            .flush(now)
            .into_iter()
            .map(SbRequest::MacBinding)
            .collect();
        out.extend(q.fdbs.flush().into_iter().map(SbRequest::Fdb));
        out.extend(
            q.svc
                .take_writes()
                .into_iter()
                .map(SbRequest::ServiceMonitorStatus),
        );
        out
    }

    /// Hands pinctrl the Service_Monitor rows of backends bound here (pinctrl's
    /// `sync_svc_monitors`, run by the agent on every Southbound change).
    pub fn sync_svc_monitors(&self, specs: Vec<SvcMonitorSpec>) {
        let mut q = self.lock();
        q.svc.sync(specs, Instant::now());
        let writes = q.svc.has_writes();
        drop(q);
        if writes {
            self.notify();
        }
    }

    /// The health checks' counters and how many backends are monitored.
    pub fn svc_monitor_counters(&self) -> (SvcCounters, usize) {
        let q = self.lock();
        (q.svc.counters().clone(), q.svc.len())
    }

    /// Each monitored row's UUID and the status pinctrl holds for it.
    pub fn svc_monitor_statuses(&self) -> Vec<(String, Option<Status>)> {
        self.lock().svc.statuses()
    }

    /// When the next buffered write is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        let q = self.lock();
        let fdb = (q.fdbs.pending() || q.svc.has_writes()).then(Instant::now);
        match (q.mac_bindings.next_due(), fdb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Blocks until writes are due or `timeout` passes, and returns the due ones
    /// (possibly none).
    pub fn wait_due(&self, timeout: Duration) -> Vec<SbRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let due = self.take_due(now);
            if !due.is_empty() || now >= deadline {
                return due;
            }
            let until = self.next_due().map_or(deadline, |d| d.min(deadline));
            let guard = self.lock();
            let wait = until.saturating_duration_since(Instant::now());
            // Re-checked at the top: a put between take_due and here notified before
            // the wait began, which at worst delays it to `until`.
            let _ = self
                .inner
                .1
                .wait_timeout(guard, wait.max(Duration::from_micros(100)));
        }
    }
}
