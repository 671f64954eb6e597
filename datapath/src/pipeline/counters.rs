//! Per-thread counters, folded into a shared view now and then.
//!
//! Every frame that enters the pipeline ends in exactly one [`Verdict`]: the XDP program's
//! [`Counter`]s plus the outcomes only userspace has (flooding, services). A poll thread
//! counts into its own [`LocalCounters`] (plain adds, no atomics) and folds them into the
//! [`SharedCounters`] during housekeeping; readers see totals a fold interval late.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ovnest_common::{Counter, PortStats, maps::capacity};

/// How one frame ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Same meaning as in the XDP program.
    Fast(Counter),
    /// Broadcast, multicast or unknown unicast copied to the switch's other ports (maybe
    /// none).
    Flooded,
    /// A service (DHCP, …) answered or consumed it.
    Serviced,
    /// Drop: the egress interface's transmit batch was full, or its AF_XDP TX ring (the
    /// kernel is not completing that interface's transmits; such a frame was counted
    /// by its decision too).
    DropTxFull,
    /// The logical pipeline decided the frame (see [`LogicalOutcome`]).
    Logical(LogicalOutcome),
}

/// How a frame the logical pipeline decided ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicalOutcome {
    /// Sent to at least its last local destination.
    Delivered,
    /// Decided and rewritten, but the egress batch was full.
    DeliveredTxFull,
    /// The pipeline dropped it (an ACL, port security, no L2 match...).
    Dropped,
    /// The decision needs an action this datapath cannot execute yet (fail closed; the
    /// action's name is counted in `unsupported_action`).
    Unsupported,
    /// The walk exceeded the resubmit limits (a loop in the logical flows).
    Aborted,
    /// The decision delivers to a port not bound here (no tunnels yet).
    NotLocal,
    /// The decision changes a header this datapath cannot rewrite.
    Unwritable,
    /// Not parseable as a frame at all.
    Malformed,
    /// The port's datapath has no logical flows.
    NoDatapath,
    /// A controller action handled by pinctrl (counted per action, besides the frame's own
    /// verdict).
    ControllerHandled,
    /// A controller action pinctrl refused or failed.
    ControllerFailed,
    /// A Geneve copy sent to another chassis (counted per copy, besides the frame's own
    /// verdict).
    TunnelCopy,
    /// The frame's only destinations were on other chassis: sent there, nothing here.
    Tunnelled,
    /// A tunnel copy for a chassis with no usable tunnel (no peer, no underlay).
    TunnelNoPeer,
    /// A frame on the underlay interface that is not Geneve to port 6081.
    TunnelNotGeneve,
    /// A Geneve frame that is malformed (see [`crate::geneve::Malformed`]).
    TunnelMalformed,
    /// A Geneve frame from an address that is no known chassis's Encap.ip.
    TunnelUnknownPeer,
}

impl LogicalOutcome {
    pub const ALL: [LogicalOutcome; 17] = [
        LogicalOutcome::Delivered,
        LogicalOutcome::DeliveredTxFull,
        LogicalOutcome::Dropped,
        LogicalOutcome::Unsupported,
        LogicalOutcome::Aborted,
        LogicalOutcome::NotLocal,
        LogicalOutcome::Unwritable,
        LogicalOutcome::Malformed,
        LogicalOutcome::NoDatapath,
        LogicalOutcome::ControllerHandled,
        LogicalOutcome::ControllerFailed,
        LogicalOutcome::TunnelCopy,
        LogicalOutcome::Tunnelled,
        LogicalOutcome::TunnelNoPeer,
        LogicalOutcome::TunnelNotGeneve,
        LogicalOutcome::TunnelMalformed,
        LogicalOutcome::TunnelUnknownPeer,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            LogicalOutcome::Delivered => "logical_delivered",
            LogicalOutcome::DeliveredTxFull => "logical_delivered_tx_full",
            LogicalOutcome::Dropped => "logical_dropped",
            LogicalOutcome::Unsupported => "logical_unsupported",
            LogicalOutcome::Aborted => "logical_aborted",
            LogicalOutcome::NotLocal => "logical_not_local",
            LogicalOutcome::Unwritable => "logical_unwritable",
            LogicalOutcome::Malformed => "logical_malformed",
            LogicalOutcome::NoDatapath => "logical_no_datapath",
            LogicalOutcome::ControllerHandled => "controller_handled",
            LogicalOutcome::ControllerFailed => "controller_failed",
            LogicalOutcome::TunnelCopy => "tunnel_copies",
            LogicalOutcome::Tunnelled => "logical_tunnelled",
            LogicalOutcome::TunnelNoPeer => "tunnel_no_peer",
            LogicalOutcome::TunnelNotGeneve => "tunnel_not_geneve",
            LogicalOutcome::TunnelMalformed => "tunnel_malformed",
            LogicalOutcome::TunnelUnknownPeer => "tunnel_unknown_peer",
        }
    }
}

impl Verdict {
    pub const COUNT: usize = Counter::COUNT as usize + 3 + LogicalOutcome::ALL.len();

    #[inline(always)]
    pub const fn index(self) -> usize {
        match self {
            Verdict::Fast(c) => c as usize,
            Verdict::Flooded => Counter::COUNT as usize,
            Verdict::Serviced => Counter::COUNT as usize + 1,
            Verdict::DropTxFull => Counter::COUNT as usize + 2,
            Verdict::Logical(o) => Counter::COUNT as usize + 3 + o as usize,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Fast(c) => c.name(),
            Verdict::Flooded => "flooded",
            Verdict::Serviced => "serviced",
            Verdict::DropTxFull => "drop_tx_full",
            Verdict::Logical(o) => o.name(),
        }
    }

    /// All verdicts in index order.
    pub fn all() -> impl Iterator<Item = Verdict> {
        Counter::ALL
            .into_iter()
            .map(Verdict::Fast)
            .chain([Verdict::Flooded, Verdict::Serviced, Verdict::DropTxFull])
            .chain(LogicalOutcome::ALL.into_iter().map(Verdict::Logical))
    }
}

/// Flood copy outcomes (a flooded frame counts once as [`Verdict::Flooded`]; its copies
/// count here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodStats {
    /// Copies handed to an egress batch (the original buffer counts as one).
    pub copies: u64,
    /// Copies not made: no free UMEM chunk, or the egress batch was full.
    pub dropped: u64,
}

/// A port's counters and the fold epoch it was last listed in: one compare per update
/// decides whether the slot joins the dirty list.
#[derive(Clone, Copy, Debug, Default)]
struct PortSlot {
    stats: PortStats,
    epoch: u64,
}

/// One poll thread's counters.
pub struct LocalCounters {
    verdicts: [u64; Verdict::COUNT],
    /// Indexed by `stats_slot`.
    ports: Vec<PortSlot>,
    /// Slots touched since the last fold, so folding does not scan every slot.
    dirty: Vec<u32>,
    /// Bumped by every fold; a slot whose epoch differs is not yet in `dirty`.
    epoch: u64,
    pub flood: FloodStats,
    /// Actions that made a decision unexecutable, by name (rare: a short list).
    unsupported: Vec<(&'static str, u64)>,
    /// The same by (action, logical flow uuid), for `ovnest status` to name the flows.
    unsupported_flows: Vec<(&'static str, u128, u64)>,
    /// Header fields a decision changed that could not be written, by name.
    unwritable: Vec<(&'static str, u64)>,
}

impl core::fmt::Debug for LocalCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let nonzero: Vec<(&str, u64)> = Verdict::all()
            .map(|v| (v.name(), self.get(v)))
            .filter(|(_, n)| *n != 0)
            .collect();
        f.debug_struct("LocalCounters")
            .field("verdicts", &nonzero)
            .field("flood", &self.flood)
            .finish_non_exhaustive()
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCounters {
    pub fn new() -> Self {
        LocalCounters {
            verdicts: [0; Verdict::COUNT],
            ports: vec![PortSlot::default(); capacity::STATS_SLOTS as usize],
            dirty: Vec::with_capacity(capacity::STATS_SLOTS as usize),
            epoch: 1,
            flood: FloodStats::default(),
            unsupported: Vec::new(),
            unsupported_flows: Vec::new(),
            unwritable: Vec::new(),
        }
    }

    /// Counts a frame dropped because its decision needs action `name`, met in the
    /// logical flow with uuid `flow`.
    pub fn unsupported(&mut self, name: &'static str, flow: Option<u128>) {
        bump(&mut self.unsupported, name);
        let Some(flow) = flow else { return };
        let known = self.unsupported_flows.len();
        match self
            .unsupported_flows
            .iter_mut()
            .find(|(n, f, _)| *n == name && *f == flow)
        {
            Some((_, _, c)) => *c += 1,
            None if known < MAX_UNSUPPORTED_FLOWS => self.unsupported_flows.push((name, flow, 1)),
            None => {}
        }
    }

    /// Frames dropped because their decision held something this datapath could not
    /// execute, by the action's (or conntrack failure's) name.
    pub fn unsupported_counts(&self) -> Vec<(&'static str, u64)> {
        self.unsupported.clone()
    }

    /// Counts a decision whose change to `field` could not be written.
    pub fn unwritable(&mut self, field: ovnest_logical::flow::Field) {
        bump(&mut self.unwritable, field_name(field));
        self.count(Verdict::Logical(LogicalOutcome::Unwritable));
    }

    /// Counts an outcome that is not the frame's own verdict (extra copies, controller
    /// actions).
    pub fn logical(&mut self, outcome: LogicalOutcome) {
        self.count(Verdict::Logical(outcome));
    }

    #[inline(always)]
    pub fn count(&mut self, verdict: Verdict) {
        if let Some(c) = self.verdicts.get_mut(verdict.index()) {
            *c += 1;
        }
    }

    pub fn get(&self, verdict: Verdict) -> u64 {
        self.verdicts.get(verdict.index()).copied().unwrap_or(0)
    }

    /// Sum over every verdict: the number of frames processed since the last fold.
    pub fn frames(&self) -> u64 {
        self.verdicts.iter().sum()
    }

    #[inline(always)]
    fn port(&mut self, slot: u32) -> Option<&mut PortStats> {
        let entry = self.ports.get_mut(slot as usize)?;
        if entry.epoch != self.epoch {
            entry.epoch = self.epoch;
            // Each slot joins once per epoch, so this stays within the reservation.
            if self.dirty.len() < self.dirty.capacity() {
                self.dirty.push(slot);
            }
        }
        Some(&mut entry.stats)
    }

    #[inline(always)]
    pub fn port_rx(&mut self, slot: u32, bytes: u32) {
        if let Some(s) = self.port(slot) {
            s.rx_packets += 1;
            s.rx_bytes += bytes as u64;
        }
    }

    #[inline(always)]
    pub fn port_tx(&mut self, slot: u32, bytes: u32) {
        if let Some(s) = self.port(slot) {
            s.tx_packets += 1;
            s.tx_bytes += bytes as u64;
        }
    }

    #[inline(always)]
    pub fn port_drop(&mut self, slot: u32) {
        if let Some(s) = self.port(slot) {
            s.drops += 1;
        }
    }

    /// This thread's traffic of `slot` since the last fold.
    pub fn port_stats(&self, slot: u32) -> PortStats {
        self.ports
            .get(slot as usize)
            .map(|p| p.stats)
            .unwrap_or_default()
    }

    /// Adds everything into `shared` and starts again from zero.
    pub fn fold_into(&mut self, shared: &SharedCounters) {
        for (total, local) in shared.verdicts.iter().zip(self.verdicts.iter_mut()) {
            total.fetch_add(core::mem::take(local), Relaxed);
        }
        for slot in self.dirty.drain(..) {
            let (Some(local), Some(total)) = (
                self.ports.get_mut(slot as usize),
                shared.ports.get(slot as usize),
            ) else {
                continue;
            };
            let local = core::mem::take(&mut local.stats);
            total[0].fetch_add(local.rx_packets, Relaxed);
            total[1].fetch_add(local.rx_bytes, Relaxed);
            total[2].fetch_add(local.tx_packets, Relaxed);
            total[3].fetch_add(local.tx_bytes, Relaxed);
            total[4].fetch_add(local.drops, Relaxed);
        }
        self.epoch += 1;
        let flood = core::mem::take(&mut self.flood);
        shared.flood_copies.fetch_add(flood.copies, Relaxed);
        shared.flood_dropped.fetch_add(flood.dropped, Relaxed);
        if !self.unsupported.is_empty()
            || !self.unwritable.is_empty()
            || !self.unsupported_flows.is_empty()
        {
            // Housekeeping only, and only after slow-path drops: the lock is not on the
            // packet path.
            let mut named = shared.named.lock().unwrap_or_else(|e| e.into_inner());
            for (name, n) in self.unsupported.drain(..) {
                *named.unsupported.entry(name).or_default() += n;
            }
            for (name, n) in self.unwritable.drain(..) {
                *named.unwritable.entry(name).or_default() += n;
            }
            for (name, flow, n) in self.unsupported_flows.drain(..) {
                let known = named.unsupported_flows.len();
                match named.unsupported_flows.get_mut(&(name, flow)) {
                    Some(c) => *c += n,
                    None if known < MAX_UNSUPPORTED_FLOWS => {
                        named.unsupported_flows.insert((name, flow), n);
                    }
                    None => {}
                }
            }
        }
    }
}

fn bump(list: &mut Vec<(&'static str, u64)>, name: &'static str) {
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some((_, c)) => *c += 1,
        None => list.push((name, 1)),
    }
}

fn field_name(f: ovnest_logical::flow::Field) -> &'static str {
    use ovnest_logical::flow::Field::*;
    match f {
        EthType => "eth.type",
        VlanTci => "vlan.tci",
        IpProto => "ip.proto",
        IpFrag => "ip.frag",
        TcpFlags => "tcp.flags",
        SctpSrc | SctpDst => "sctp.port",
        NdTarget | NdSll | NdTll => "nd",
        _ => "other",
    }
}

/// Distinct (action, flow) pairs named per thread and in total: a bound, so that a
/// database full of unsupported flows cannot grow the counters without limit.
pub const MAX_UNSUPPORTED_FLOWS: usize = 256;

/// Counters keyed by name: actions that are not supported, fields not writable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NamedCounters {
    pub unsupported: std::collections::BTreeMap<&'static str, u64>,
    /// Frames dropped by (unsupported action, uuid of the logical flow holding it); at
    /// most [`MAX_UNSUPPORTED_FLOWS`] pairs are named, the rest count only by action.
    pub unsupported_flows: std::collections::BTreeMap<(&'static str, u128), u64>,
    pub unwritable: std::collections::BTreeMap<&'static str, u64>,
}

/// The kernel's counters of one AF_XDP socket (`XDP_STATISTICS`), as last read by its poll
/// thread: what happened to frames before userspace saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub ifindex: u32,
    pub queue: u32,
    /// Frames XDP redirected to the socket that it could not take (no UMEM chunk).
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full (userspace not keeping up).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    pub rx_invalid_descs: u64,
    /// TX descriptors the kernel rejected (bad address or length).
    pub tx_invalid_descs: u64,
    /// Times the kernel looked for something to send and found the TX ring empty.
    pub tx_ring_empty: u64,
}

impl SocketStats {
    /// `(name, value)` of every counter, for status and metrics.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("rx_dropped", self.rx_dropped),
            ("rx_ring_full", self.rx_ring_full),
            ("rx_fill_ring_empty", self.rx_fill_ring_empty),
            ("rx_invalid_descs", self.rx_invalid_descs),
            ("tx_invalid_descs", self.tx_invalid_descs),
            ("tx_ring_empty", self.tx_ring_empty),
        ]
    }
}

/// Totals over all poll threads, readable at any time.
pub struct SharedCounters {
    /// Last read per socket; written during housekeeping only.
    sockets: std::sync::Mutex<Vec<SocketStats>>,
    verdicts: [AtomicU64; Verdict::COUNT],
    ports: Box<[[AtomicU64; 5]]>,
    flood_copies: AtomicU64,
    flood_dropped: AtomicU64,
    named: std::sync::Mutex<NamedCounters>,
}

impl Default for SharedCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedCounters {
    pub fn new() -> Self {
        SharedCounters {
            verdicts: core::array::from_fn(|_| AtomicU64::new(0)),
            ports: (0..capacity::STATS_SLOTS)
                .map(|_| core::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            flood_copies: AtomicU64::new(0),
            flood_dropped: AtomicU64::new(0),
            named: std::sync::Mutex::new(NamedCounters::default()),
            sockets: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Records a socket's kernel counters (housekeeping: the lock is not on the packet
    /// path).
    pub fn set_socket(&self, stats: SocketStats) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        match sockets
            .iter_mut()
            .find(|s| (s.ifindex, s.queue) == (stats.ifindex, stats.queue))
        {
            Some(slot) => *slot = stats,
            None => sockets.push(stats),
        }
    }

    /// Every socket's kernel counters as last read.
    pub fn sockets(&self) -> Vec<SocketStats> {
        self.sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops by unsupported action and by unwritable field.
    pub fn named(&self) -> NamedCounters {
        self.named.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, verdict: Verdict) -> u64 {
        self.verdicts
            .get(verdict.index())
            .map_or(0, |c| c.load(Relaxed))
    }

    pub fn port_stats(&self, slot: u32) -> PortStats {
        let Some(p) = self.ports.get(slot as usize) else {
            return PortStats::default();
        };
        PortStats {
            rx_packets: p[0].load(Relaxed),
            rx_bytes: p[1].load(Relaxed),
            tx_packets: p[2].load(Relaxed),
            tx_bytes: p[3].load(Relaxed),
            drops: p[4].load(Relaxed),
        }
    }

    pub fn flood(&self) -> FloodStats {
        FloodStats {
            copies: self.flood_copies.load(Relaxed),
            dropped: self.flood_dropped.load(Relaxed),
        }
    }
}
