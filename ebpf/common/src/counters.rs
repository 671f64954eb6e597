//! Counters: one per verdict and drop reason (per-CPU array indexed by [`Counter`]), and
//! per logical port traffic (per-CPU array indexed by `PortEntry::stats_slot`).

use core::mem::size_of;

/// Index into the `COUNTERS` per-CPU array. Every verdict bumps exactly one of them.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Unicast for a local port, redirected to its interface.
    Redirected = 0,
    /// Sent back out of the ingress interface (hairpin between siblings / parent).
    Hairpinned = 1,
    /// ARP request answered in the fast path.
    ArpReplied = 2,
    /// Handed to the userspace datapath through the XSKMAP.
    ToUserspace = 3,
    /// Drop: 802.1Q tag with no container behind it on this VIF.
    DropUnknownTag = 4,
    /// Drop: untagged frame on an interface that is not a bound VIF.
    DropUnknownVif = 5,
    /// Drop: VID 0 (priority tag) is not a container.
    DropVid0 = 6,
    /// Drop: VID 4095 is reserved.
    DropVid4095 = 7,
    /// Drop: 802.1ad service tag (0x88a8) from a VM.
    DropQinQ = 8,
    /// Drop: a second 802.1Q/802.1ad tag after the first (VLAN hopping).
    DropDoubleTag = 9,
    /// Drop: shorter than the headers it claims.
    DropTruncated = 10,
    /// Drop: source MAC not allowed by the logical port's port_security.
    DropPortSecurity = 11,
    /// Drop: needs userspace, but no AF_XDP socket is registered for this queue.
    DropNoUserspace = 12,
    /// Drop: destination port's interface is not in the device map.
    DropNoEgress = 13,
    /// Drop: the packet could not be rewritten (adjust_head failed).
    DropRewrite = 14,
    /// Drop: source MAC is multicast/broadcast (never a valid sender).
    DropBadSource = 15,
    /// Drop: known unicast addressed to the logical port it came from (OVN drops
    /// outport == inport unless flags.loopback).
    DropLoop = 16,
    /// Drop: the logical pipeline's decision, executed from the decision cache.
    DropLogical = 17,
    /// Drop: the cached decision delivers only to ports not bound here (no tunnels yet).
    DropNotLocal = 18,
}

impl Counter {
    pub const COUNT: u32 = 19;

    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::Redirected,
        Counter::Hairpinned,
        Counter::ArpReplied,
        Counter::ToUserspace,
        Counter::DropUnknownTag,
        Counter::DropUnknownVif,
        Counter::DropVid0,
        Counter::DropVid4095,
        Counter::DropQinQ,
        Counter::DropDoubleTag,
        Counter::DropTruncated,
        Counter::DropPortSecurity,
        Counter::DropNoUserspace,
        Counter::DropNoEgress,
        Counter::DropRewrite,
        Counter::DropBadSource,
        Counter::DropLoop,
        Counter::DropLogical,
        Counter::DropNotLocal,
    ];

    /// Stable snake_case name, used in status output and Prometheus labels.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Redirected => "redirected",
            Counter::Hairpinned => "hairpinned",
            Counter::ArpReplied => "arp_replied",
            Counter::ToUserspace => "to_userspace",
            Counter::DropUnknownTag => "drop_unknown_tag",
            Counter::DropUnknownVif => "drop_unknown_vif",
            Counter::DropVid0 => "drop_vid0",
            Counter::DropVid4095 => "drop_vid4095",
            Counter::DropQinQ => "drop_qinq",
            Counter::DropDoubleTag => "drop_double_tag",
            Counter::DropTruncated => "drop_truncated",
            Counter::DropPortSecurity => "drop_port_security",
            Counter::DropNoUserspace => "drop_no_userspace",
            Counter::DropNoEgress => "drop_no_egress",
            Counter::DropRewrite => "drop_rewrite",
            Counter::DropBadSource => "drop_bad_source",
            Counter::DropLoop => "drop_loop",
            Counter::DropLogical => "drop_logical",
            Counter::DropNotLocal => "drop_not_local",
        }
    }

    pub const fn is_drop(self) -> bool {
        (self as u32) >= Counter::DropUnknownTag as u32
    }
}

/// Traffic of one logical port, as seen by the fast path. `rx` counts every frame
/// classified to the port (ingress), `tx` frames delivered to it; `drops` is the part of
/// `rx` that was dropped, whatever the reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
}
const _: () = assert!(size_of::<PortStats>() == 40);

impl PortStats {
    pub fn add(&mut self, other: &PortStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.drops += other.drops;
    }
}
