//! The fast path's tables. Userspace (ovnest-datapath's `fastpath`) is the only writer.
//! Values are denormalised so a frame costs two lookups: its ingress port (VIF or child
//! table) and, for unicast, its destination (L2 table). Those three tables are hash maps
//! mirrored into flat arrays (`ovnest_common::flat`) that the program probes first.
//! Values are read in place and never written from here.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, PerCpuArray, XskMap},
};
use ovnest_common::{
    ArpKey, ArpTarget, ChildKey, EgressPort, IngressPort, MacKey, PortStats, XskSlot,
    flat::{ChildSlot, MacSlot, VifSlot, slots},
    maps::capacity,
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

/// Flat mirror of `VIFS`.
#[map]
pub static VIF_FLAT: Array<VifSlot> = Array::with_max_entries(slots::VIFS, 0);

/// Flat mirror of `CHILDREN`.
#[map]
pub static CHILD_FLAT: Array<ChildSlot> = Array::with_max_entries(slots::CHILDREN, 0);

/// Flat mirror of `MACS`.
#[map]
pub static MAC_FLAT: Array<MacSlot> = Array::with_max_entries(slots::MACS, 0);

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
