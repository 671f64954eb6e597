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

    /// `mac` as [`mac48`], in two word loads instead of six byte loads.
    #[inline(always)]
    pub fn mac48(&self) -> u64 {
        let base = self as *const MacKey as *const u8;
        // SAFETY: bytes 4..10 of `self` are `mac` (asserted below); MacKey is 4-aligned,
        // so offset 4 is 4-aligned and offset 8 2-aligned.
        let (lo, hi) = unsafe {
            (
                (base.add(4) as *const u32).read(),
                (base.add(8) as *const u16).read(),
            )
        };
        u64::from(u32::from_le(lo)) | u64::from(u16::from_le(hi)) << 32
    }
}
const _: () = assert!(core::mem::offset_of!(MacKey, mac) == 4);
const _: () = assert!(core::mem::align_of::<MacKey>() == 4);

/// A MAC packed into the low 48 bits of a `u64`, first octet lowest: what one
/// little-endian load of its six bytes gives, so both sides of the kernel agree on it.
#[inline(always)]
pub const fn mac48(mac: &[u8; 6]) -> u64 {
    u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0])
}

/// The six octets of a [`mac48`].
#[inline(always)]
pub const fn mac_octets(mac48: u64) -> [u8; 6] {
    let b = mac48.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
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
const _: () = assert!(core::mem::offset_of!(PortEntry, macs) == 16);
const _: () = assert!(core::mem::align_of::<PortEntry>() == 4);

impl PortEntry {
    #[inline(always)]
    pub fn is_local(&self) -> bool {
        self.flags & PORT_LOCAL != 0
    }

    /// Port security on the source MAC: with `PORT_SECURITY` unset every MAC is allowed.
    #[inline(always)]
    pub fn allows_source(&self, mac: &[u8; 6]) -> bool {
        self.allows_source48(mac48(mac))
    }

    /// [`PortEntry::allows_source`] on a [`mac48`].
    #[inline(always)]
    pub fn allows_source48(&self, mac: u64) -> bool {
        if self.flags & PORT_SECURITY == 0 {
            return true;
        }
        let mut i = 0;
        while i < MAX_PORT_MACS {
            if i < self.n_macs as usize && self.mac48_at(i) == mac {
                return true;
            }
            i += 1;
        }
        false
    }

    /// `macs[i]` as [`mac48`], in three 16-bit loads.
    #[inline(always)]
    fn mac48_at(&self, i: usize) -> u64 {
        let words = self.macs[i].as_ptr() as *const u16;
        // SAFETY: `macs[i]` is 6 bytes inside `self`; it starts at offset 16 + 6 * i of a
        // 4-aligned struct (asserted below), so it is 2-aligned.
        let (a, b, c) = unsafe { (words.read(), words.add(1).read(), words.add(2).read()) };
        u64::from(u16::from_le(a))
            | u64::from(u16::from_le(b)) << 16
            | u64::from(u16::from_le(c)) << 32
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
    // SAFETY: as above.
    unsafe impl aya::Pod for super::super::flat::ArpSlot {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];

    #[test]
    fn packed_macs_read_the_same_from_bytes_and_from_words() {
        assert_eq!(mac48(&MAC), 0x3301_ff10_ac02);
        assert_eq!(mac_octets(mac48(&MAC)), MAC);
        assert_eq!(MacKey::new(7, MAC).mac48(), mac48(&MAC));
    }

    #[test]
    fn port_security_checks_every_listed_mac_and_only_those() {
        let mut port = PortEntry {
            flags: PORT_SECURITY,
            n_macs: 3,
            ..Default::default()
        };
        for (i, last) in [1u8, 2, 3, 4].into_iter().enumerate() {
            port.macs[i] = [2, 0, 0, 0, 0, last];
        }
        assert!(port.allows_source(&[2, 0, 0, 0, 0, 3]));
        assert!(!port.allows_source(&[2, 0, 0, 0, 0, 4]), "beyond n_macs");
        assert!(!port.allows_source48(mac48(&MAC)));
        port.flags = 0;
        assert!(port.allows_source48(mac48(&MAC)), "no port security");
    }
}
