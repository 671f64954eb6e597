//! Geneve in XDP, shared by the program and userspace: the outer header template of each
//! peer chassis (encapsulation from the decision cache) and the key of the decision
//! cache for frames received from a tunnel (decapsulation).
//!
//! The outer headers are OVN's as `ovnest_datapath::geneve::encapsulate` writes them:
//! Ethernet, IPv4 without options (DF, TTL 64, id 0), UDP to 6081, Geneve with OVN's
//! one option (class 0x0102, type 0x80, 4 bytes).

use core::mem::size_of;

use crate::cache::CacheKey;

/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + Geneve (8) + OVN's option (8).
pub const OVERHEAD: usize = 58;
/// Offsets in the outer headers.
pub const IP: usize = 14;
pub const UDP: usize = IP + 20;
pub const GENEVE: usize = UDP + 8;
/// The option's 4 data bytes.
pub const OPTION_DATA: usize = GENEVE + 12;
pub const UDP_PORT: u16 = 6081;

/// Peer templates the `TUNNEL_PEERS` array holds (index: the peer's chassis number).
pub const MAX_PEERS: u32 = 1024;
/// Underlay interfaces the `UNDERLAYS` devmap holds.
pub const MAX_UNDERLAYS: u32 = 16;

/// Value of `TUNNEL_PEERS`: one peer chassis's outer headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelPeer {
    /// The generation of the tables the template was made from: only entries of that
    /// generation use it (a slot rewritten from other tables is a miss for them).
    pub generation: u64,
    /// The 58 outer bytes with the per-frame fields zero: IPv4 total length and
    /// checksum, UDP source port, length and checksum, the VNI and the option data.
    pub header: [u8; OVERHEAD],
    /// 1: fill the UDP checksum (the peer's Encap `options:csum`).
    pub csum: u8,
    /// 1: the slot holds a peer (an all-zero slot is none).
    pub valid: u8,
    /// One's-complement sum of the template's IPv4 header words, folded: the header
    /// checksum is `!fold(ip_sum + total length)`.
    pub ip_sum: u16,
    pub _pad: [u8; 2],
    /// The underlay interface (a devmap key).
    pub ifindex: u32,
    pub _pad2: u32,
}
const _: () = assert!(size_of::<TunnelPeer>() == 80);

impl Default for TunnelPeer {
    fn default() -> Self {
        TunnelPeer {
            generation: 0,
            header: [0; OVERHEAD],
            csum: 0,
            valid: 0,
            ip_sum: 0,
            _pad: [0; 2],
            ifindex: 0,
            _pad2: 0,
        }
    }
}

impl TunnelPeer {
    /// The remote Encap.ip the template sends to.
    pub fn remote_ip(&self) -> [u8; 4] {
        let h = &self.header;
        [h[IP + 16], h[IP + 17], h[IP + 18], h[IP + 19]]
    }
}

/// Key of the `TUNNEL_CACHE` map: a frame received from a tunnel. The receiving chassis
/// runs only the egress pipeline of `egress` for the inner frame, which starts with the
/// flow `flow::ingress` gives it on port (VNI, ingress key) and `reg15 = egress`: so the
/// key is the inner frame's [`CacheKey`] with `datapath` = VNI and `inport` = the
/// option's ingress key, the option's egress key, and the sender (only known peers'
/// frames are decided, and a peer's entries go with it at the next generation).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    pub base: CacheKey,
    pub egress: u32,
    /// The outer IPv4 source.
    pub remote_ip: [u8; 4],
}
const _: () = assert!(size_of::<TunnelKey>() == 72);
// The XDP program builds a key in a `CacheKey6` and reads its first 72 bytes as a
// `TunnelKey`: `egress` and `remote_ip` are the first IPv6 word's low and high halves.
const _: () = assert!(
    core::mem::offset_of!(TunnelKey, egress)
        == core::mem::offset_of!(crate::cache::CacheKey6, ipv6)
);
const _: () = assert!(core::mem::offset_of!(TunnelKey, remote_ip) == 68);
const _: () = assert!(core::mem::align_of::<TunnelKey>() == 8);

/// Index into the `TUNNEL_STATS` per-CPU array. Every Geneve frame the underlay program
/// sees bumps exactly one `Decap*`; every encapsulating cache hit `EncapHit` or
/// `EncapUpcall`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelCounter {
    /// A cached decision encapsulated in XDP and sent to the underlay.
    EncapHit = 0,
    /// A cached encapsulation whose peer template is gone or is another chassis's now,
    /// or that needs a UDP checksum over more than the program sums: up to userspace.
    EncapUpcall = 1,
    /// Decapsulated and carried out from the cache.
    DecapHit = 2,
    /// No entry for the inner frame: up to userspace, which installs.
    DecapMiss = 3,
    /// An entry of another generation, or whose connections changed: a miss.
    DecapStale = 4,
    /// The outer IPv4 is a fragment.
    DecapFragment = 5,
    /// Not exactly OVN's one option (other options, version, OAM, payload type).
    DecapOptions = 6,
    /// The UDP checksum is set: verified in userspace.
    DecapChecksum = 7,
    /// Outer IPv4 options, or lengths that disagree with the frame.
    DecapHeaders = 8,
    /// The inner frame has no key (tagged, IPv6, IPv4 options...).
    DecapUncacheable = 9,
}

impl TunnelCounter {
    pub const COUNT: u32 = 10;
    pub const ALL: [TunnelCounter; 10] = [
        TunnelCounter::EncapHit,
        TunnelCounter::EncapUpcall,
        TunnelCounter::DecapHit,
        TunnelCounter::DecapMiss,
        TunnelCounter::DecapStale,
        TunnelCounter::DecapFragment,
        TunnelCounter::DecapOptions,
        TunnelCounter::DecapChecksum,
        TunnelCounter::DecapHeaders,
        TunnelCounter::DecapUncacheable,
    ];

    /// Stable snake_case name, used in status output and Prometheus labels.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelCounter::EncapHit => "encap_hits",
            TunnelCounter::EncapUpcall => "encap_upcalls",
            TunnelCounter::DecapHit => "decap_hits",
            TunnelCounter::DecapMiss => "decap_misses",
            TunnelCounter::DecapStale => "decap_stale",
            TunnelCounter::DecapFragment => "decap_fragment",
            TunnelCounter::DecapOptions => "decap_options",
            TunnelCounter::DecapChecksum => "decap_checksum",
            TunnelCounter::DecapHeaders => "decap_headers",
            TunnelCounter::DecapUncacheable => "decap_uncacheable",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] plain data, sizes pinned above to the sum of their fields (no
    // hidden padding), every bit pattern valid.
    unsafe impl aya::Pod for super::TunnelPeer {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TunnelKey {}
}
