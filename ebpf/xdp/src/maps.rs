//! The fast path's tables. Userspace (ovnest-datapath's `fastpath`) is the only writer.
//! Values are denormalised so a frame costs two hash lookups: its ingress port (VIF or
//! child table) and, for unicast, its destination (L2 table). Values are copied out on
//! lookup and never written from here.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, PerCpuArray, XskMap},
};
use ovnest_common::{
    ArpKey, ArpTarget, ChildKey, EgressPort, IngressPort, MacKey, PortStats, XskSlot,
    maps::{BenchTemplate, capacity},
};

/// VIF table: ifindex of a bound VIF → the VM's own logical port.
#[map]
pub static VIFS: HashMap<u32, IngressPort> = HashMap::with_max_entries(capacity::VIFS, 0);

/// Child table: (parent ifindex, vid) → container logical port.
#[map]
pub static CHILDREN: HashMap<ChildKey, IngressPort> =
    HashMap::with_max_entries(capacity::CHILDREN, 0);

/// L2 table: (datapath, MAC) → logical port.
#[map]
pub static MACS: HashMap<MacKey, EgressPort> = HashMap::with_max_entries(capacity::MACS, 0);

/// ARP responder: (datapath, IPv4) → owning port and its MAC.
#[map]
pub static ARP_TARGETS: HashMap<ArpKey, ArpTarget> =
    HashMap::with_max_entries(capacity::ARP_TARGETS, 0);

/// Redirect targets, keyed by ifindex.
#[map]
pub static DEVICES: DevMapHash = DevMapHash::with_max_entries(capacity::DEVICES, 0);

/// ifindex → the XSKMAP slots of its queues.
#[map]
pub static XSK_SLOTS: HashMap<u32, XskSlot> = HashMap::with_max_entries(capacity::VIFS, 0);

/// AF_XDP sockets of the userspace datapath.
#[map]
pub static XSKS: XskMap = XskMap::with_max_entries(capacity::XSKS, 0);

/// One counter per verdict and drop reason (`ovnest_common::Counter`).
#[map]
pub static COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(ovnest_common::Counter::COUNT, 0);

/// Per logical port traffic, indexed by `PortEntry::stats_slot`.
#[map]
pub static PORT_STATS: PerCpuArray<PortStats> =
    PerCpuArray::with_max_entries(capacity::STATS_SLOTS, 0);

/// The baseline program's single egress ifindex (benchmarks only).
#[map]
pub static BASELINE_EGRESS: Array<u32> = Array::with_max_entries(1, 0);

/// Frames counted by `bench_sink` (benchmarks only).
#[map]
pub static BENCH_RECEIVED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The generator's frames, one per flow (benchmarks only).
#[map]
pub static BENCH_TEMPLATES: Array<BenchTemplate> =
    Array::with_max_entries(capacity::BENCH_FLOWS, 0);

/// How many of `BENCH_TEMPLATES` are in use (benchmarks only).
#[map]
pub static BENCH_FLOWS: Array<u32> = Array::with_max_entries(1, 0);

/// The next flow each CPU's generator sends (benchmarks only).
#[map]
pub static BENCH_NEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
