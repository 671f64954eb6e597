//! Keys and values of the BPF maps that the controller fills and the XDP program reads.
//!
//! A logical port is named by OVN's own numbers, `(datapath tunnel_key, port tunnel_key)`,
//! so a map entry can be traced back to its SB Port_Binding without a side table.

use core::mem::size_of;

/// Upper bound on the source MACs a port's `port_security` may allow.
pub const MAX_PORT_MACS: usize = 4;

/// A logical port: `Datapath_Binding.tunnel_key` and `Port_Binding.tunnel_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub datapath: u32,
    pub port: u32,
}
const _: () = assert!(size_of::<PortKey>() == 8);

/// Child table key: a container is identified by the VIF it arrives on and its VLAN id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildKey {
    pub parent_ifindex: u32,
    pub vid: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<ChildKey>() == 8);

impl ChildKey {
    pub const fn new(parent_ifindex: u32, vid: u16) -> Self {
        Self {
            parent_ifindex,
            vid,
            _pad: 0,
        }
    }
}

/// L2 table key: a MAC within one logical switch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacKey {
    pub datapath: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<MacKey>() == 12);

impl MacKey {
    pub const fn new(datapath: u32, mac: [u8; 6]) -> Self {
        Self {
            datapath,
            mac,
            _pad: [0; 2],
        }
    }
}

/// ARP responder key: an IPv4 address (network byte order, as on the wire) in one switch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArpKey {
    pub datapath: u32,
    pub ipv4: [u8; 4],
}
const _: () = assert!(size_of::<ArpKey>() == 8);

impl ArpKey {
    pub const fn new(datapath: u32, ipv4: [u8; 4]) -> Self {
        Self { datapath, ipv4 }
    }
}

/// What the ARP responder answers with, and which port owns the address (OVN does not
/// answer a port's request for its own address: ls_in_arp_rsp priority 100).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArpTarget {
    pub owner: PortKey,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<ArpTarget>() == 16);

/// `PortEntry::flags`: the port is bound on this chassis, `egress_ifindex` is valid.
pub const PORT_LOCAL: u16 = 1 << 0;
/// `PortEntry::flags`: enforce `macs` as the only allowed source MACs.
pub const PORT_SECURITY: u16 = 1 << 1;

/// Everything the fast path needs about one logical port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortEntry {
    /// Index into the per-port counter array; unique per port, assigned by userspace.
    pub stats_slot: u32,
    /// Interface frames for this port leave by: the VIF itself, or a container's parent.
    pub egress_ifindex: u32,
    /// VLAN id to push on egress (containers); 0 for none (VIFs).
    pub tag: u16,
    pub flags: u16,
    pub n_macs: u8,
    pub _pad: [u8; 3],
    pub macs: [[u8; 6]; MAX_PORT_MACS],
}
const _: () = assert!(size_of::<PortEntry>() == 40);

impl PortEntry {
    #[inline(always)]
    pub fn is_local(&self) -> bool {
        self.flags & PORT_LOCAL != 0
    }

    /// Port security on the source MAC: with `PORT_SECURITY` unset every MAC is allowed.
    #[inline(always)]
    pub fn allows_source(&self, mac: &[u8; 6]) -> bool {
        if self.flags & PORT_SECURITY == 0 {
            return true;
        }
        let mut i = 0;
        while i < MAX_PORT_MACS {
            if i < self.n_macs as usize && self.macs[i] == *mac {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Value of the VIF and child tables: the classified port with everything ingress needs,
/// so classification is one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IngressPort {
    pub key: PortKey,
    pub port: PortEntry,
}
const _: () = assert!(size_of::<IngressPort>() == 48);

/// Value of the L2 table: the destination port with everything egress needs, so the
/// forwarding decision is one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EgressPort {
    pub key: PortKey,
    pub stats_slot: u32,
    pub egress_ifindex: u32,
    pub tag: u16,
    pub flags: u16,
    pub _pad: u32,
}
const _: () = assert!(size_of::<EgressPort>() == 24);

impl EgressPort {
    pub fn of(key: PortKey, port: &PortEntry) -> EgressPort {
        EgressPort {
            key,
            stats_slot: port.stats_slot,
            egress_ifindex: port.egress_ifindex,
            tag: port.tag,
            flags: port.flags,
            _pad: 0,
        }
    }

    #[inline(always)]
    pub fn is_local(&self) -> bool {
        self.flags & PORT_LOCAL != 0
    }
}

/// Value of the `XSK_SLOTS` map: the XSKMAP index of an interface's queue 0. Queue `q`
/// of that interface uses `base + q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XskSlot {
    pub base: u32,
    pub n_queues: u32,
}
const _: () = assert!(size_of::<XskSlot>() == 8);

/// Largest frame the benchmark generator replays.
pub const BENCH_TEMPLATE_BYTES: usize = 1532;

/// One generator frame for `ovnest bench` (a map value: the bytes and their length).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BenchTemplate {
    pub len: u32,
    pub bytes: [u8; BENCH_TEMPLATE_BYTES],
}
const _: () = assert!(size_of::<BenchTemplate>() == 1536);

/// Capacity of the maps; the controller refuses (with a clear error) to grow past them.
pub mod capacity {
    pub const VIFS: u32 = 4096;
    pub const CHILDREN: u32 = 65536;
    pub const PORTS: u32 = 65536;
    pub const MACS: u32 = 65536;
    pub const ARP_TARGETS: u32 = 65536;
    pub const DEVICES: u32 = 4096;
    pub const XSKS: u32 = 1024;
    /// Per-port counter slots (`PortEntry::stats_slot` < this).
    pub const STATS_SLOTS: u32 = 65536;
    /// Flows the benchmark generator can cycle through.
    pub const BENCH_FLOWS: u32 = 1024;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain data with explicit padding fields, no
    // pointers and no invalid bit patterns, so any byte string of their size is a value.
    unsafe impl aya::Pod for super::PortKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ChildKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::MacKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ArpKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ArpTarget {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PortEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::XskSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::IngressPort {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EgressPort {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::BenchTemplate {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::super::PortStats {}
    // SAFETY: as above; their sizes are pinned in `flat` to the sum of the fields, so
    // there is no hidden padding.
    unsafe impl aya::Pod for super::super::flat::VifSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::super::flat::ChildSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::super::flat::MacSlot {}
}
