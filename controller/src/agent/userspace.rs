//! The userspace AF_XDP datapath under the agent (`--datapath hybrid|afxdp`): publishes
//! each reconcile's ports as a pipeline snapshot (picked up live by the poll threads),
//! reopens the sockets when the set of bound VIFs changes, and (`hybrid`) has the poll
//! threads install their decisions into the XDP decision cache.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use ovnest_datapath::{
    FastPath, LogicalPort,
    afxdp::{AfXdp, AfXdpConfig, AfXdpError, WorkerReport},
    cache::CacheStats,
    fastpath::Decisions,
    pipeline::{SharedCounters, Snapshot, SnapshotCell, TunnelTable},
};
use tracing::{info, warn};

/// What a snapshot is built from: ports, logical flows, tunnels.
type Input = (
    Vec<LogicalPort>,
    Option<Arc<ovnest_logical::Pipeline>>,
    Option<TunnelTable>,
);

pub struct Userspace {
    config: AfXdpConfig,
    cell: Arc<SnapshotCell>,
    pub counters: Arc<SharedCounters>,
    /// Decision cache installs by the poll threads (`hybrid`).
    pub cache_stats: Arc<CacheStats>,
    generation: u64,
    /// The generation published last.
    published: u64,
    /// MAC_Binding / FDB writes pinctrl buffers for the agent's Southbound writer.
    pub pinctrl_queue: ovnest_datapath::pinctrl::SbQueue,
    /// What it was built from: an unchanged input keeps its generation, so the XDP
    /// decision cache is not invalidated by a resync that changed nothing.
    last_input: Option<Input>,
    interfaces: BTreeSet<u32>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<WorkerReport>>,
}

impl Userspace {
    pub fn new(config: AfXdpConfig) -> Userspace {
        Userspace {
            config,
            cell: Arc::new(SnapshotCell::new(Snapshot::build(0, &[]))),
            counters: Arc::new(SharedCounters::new()),
            cache_stats: Arc::new(CacheStats::default()),
            generation: 0,
            published: 0,
            pinctrl_queue: Default::default(),
            last_input: None,
            interfaces: BTreeSet::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// Makes the poll threads see `ports` (and OVN's logical flows and the tunnels to
    /// other chassis, when given) from their next batch on.
    pub fn publish(
        &mut self,
        ports: &[LogicalPort],
        logical: Option<Arc<ovnest_logical::Pipeline>>,
        tunnels: Option<TunnelTable>,
    ) {
        if let Some((last_ports, last_logical, last_tunnels)) = &self.last_input
            && last_ports.as_slice() == ports
            && *last_tunnels == tunnels
            && match (last_logical, &logical) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        {
            return;
        }
        self.last_input = Some((ports.to_vec(), logical.clone(), tunnels.clone()));
        self.generation += 1;
        self.published = self.generation;
        let mut snapshot = Snapshot::build(self.generation, ports);
        if let Some(table) = tunnels {
            snapshot = snapshot.with_tunnels(table);
        }
        self.cell.publish(match logical {
            Some(p) => snapshot.with_logical(p),
            None => snapshot,
        });
    }

    /// The generation of the snapshot published last.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Waits until every poll thread decides frames with the last published snapshot
    /// (so a change can be acknowledged to the Southbound). False after `timeout`.
    pub fn wait_adopted(&self, timeout: std::time::Duration) -> bool {
        self.cell.wait_adopted(self.published, timeout)
    }

    /// Serves exactly `interfaces`: reopens the sockets when the set changed.
    pub fn serve(
        &mut self,
        interfaces: &BTreeSet<u32>,
        fast_path: &mut FastPath,
    ) -> Result<(), AfXdpError> {
        if *interfaces == self.interfaces && (!self.threads.is_empty() || interfaces.is_empty()) {
            return Ok(());
        }
        self.stop_threads();
        self.interfaces = interfaces.clone();
        if interfaces.is_empty() {
            return Ok(());
        }
        let list: Vec<u32> = interfaces.iter().copied().collect();
        let mut afxdp = AfXdp::open(&self.config, &list)?;
        afxdp.register(fast_path)?;
        if let Decisions::Cached { .. } = fast_path.decisions() {
            afxdp = afxdp.install_into(fast_path.cache_maps(self.cache_stats.clone())?);
        }
        self.stop = Arc::new(AtomicBool::new(false));
        let queue = self.pinctrl_queue.clone();
        self.threads = afxdp.spawn(
            self.cell.clone(),
            self.counters.clone(),
            self.stop.clone(),
            &|| Box::new(ovnest_datapath::pinctrl::Pinctrl::with_queue(queue.clone())),
        )?;
        info!(
            "AF_XDP datapath serving {} interface(s) on {} queue(s)",
            list.len(),
            self.config.cores
        );
        Ok(())
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(report) => info!(
                    "AF_XDP queue {}: {} received, {} transmitted, {} TX ring full",
                    report.queue, report.received, report.transmitted, report.tx_ring_full
                ),
                Err(_) => warn!("an AF_XDP poll thread panicked"),
            }
        }
    }
}

impl Drop for Userspace {
    fn drop(&mut self) {
        self.stop_threads();
    }
}
