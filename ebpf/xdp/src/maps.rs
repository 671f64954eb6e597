//! The fast path's tables. Userspace (ovnest-datapath's `fastpath`) is the only writer.
//! Values are denormalised so a frame costs two lookups: its ingress port (VIF or child
//! table) and, for unicast, its destination (L2 table). Those tables and the ARP
//! responder's are flat tables (`ovnest_common::flat`): arrays probed in a window, with a
//! spill map for keys whose window is full. Values are read in place and never written
//! from here.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, PerCpuArray, XskMap},
};
use ovnest_common::{
    ArpKey, ChildKey, MacKey, PortStats, XskSlot,
    flat::{ArpSlot, ChildSlot, MacSlot, VifSlot, array_len, slots, spill},
    maps::capacity,
};

/// VIF table: ifindex of a bound VIF → the VM's own logical port.
#[map]
pub static VIFS: Array<VifSlot> = Array::with_max_entries(array_len(slots::VIFS, spill::VIFS), 0);

/// VIF keys whose window is full → their spill pair in `VIFS`.
#[map]
pub static VIF_SPILL: HashMap<u32, u32> = HashMap::with_max_entries(spill::VIFS, 0);

/// Child table: (parent ifindex, vid) → container logical port.
#[map]
pub static CHILDREN: Array<ChildSlot> =
    Array::with_max_entries(array_len(slots::CHILDREN, spill::CHILDREN), 0);

/// Child keys whose window is full → their spill pair in `CHILDREN`.
#[map]
pub static CHILD_SPILL: HashMap<ChildKey, u32> = HashMap::with_max_entries(spill::CHILDREN, 0);

/// L2 table: (datapath, MAC) → logical port.
#[map]
pub static MACS: Array<MacSlot> = Array::with_max_entries(array_len(slots::MACS, spill::MACS), 0);

/// L2 keys whose window is full → their spill pair in `MACS`.
#[map]
pub static MAC_SPILL: HashMap<MacKey, u32> = HashMap::with_max_entries(spill::MACS, 0);

/// ARP responder: (datapath, IPv4) → owning port and its MAC.
#[map]
pub static ARP_TARGETS: Array<ArpSlot> =
    Array::with_max_entries(array_len(slots::ARP_TARGETS, spill::ARP_TARGETS), 0);

/// ARP keys whose window is full → their spill pair in `ARP_TARGETS`.
#[map]
pub static ARP_SPILL: HashMap<ArpKey, u32> = HashMap::with_max_entries(spill::ARP_TARGETS, 0);

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
