//! The decision cache's map keys and values, shared by the XDP program and userspace.
//!
//! A key is a projection of the logical pipeline's packet model
//! (`ovnest_logical::flow::Flow`, 25 64-bit words) at the start of the ingress pipeline:
//! the datapath (`metadata`), the logical inport (`reg14`) and every word a frame's
//! headers fill, each word stored with the value the flow holds (a native-endian `u64`,
//! fields packed within it as the flow packs them). Userspace builds it from a `Flow`
//! by picking words, the XDP program from the frame's bytes; both must agree bit for
//! bit (`tests/tests/xdp_cache.rs` checks it on random frames).
//!
//! IPv6 frames carry six more words (addresses, ND target), so they have a key type
//! and a map of their own: the common IPv4 key stays 64 bytes, which is what the kernel
//! hashes on every lookup.

use core::mem::size_of;

/// Words of the flow a key holds, by their index in `Flow::w` (the layout is
/// `ovnest_logical::flow`'s; `datapath/src/cache` checks these against it).
pub mod word {
    /// `metadata`: the datapath's tunnel key.
    pub const METADATA: usize = 0;
    /// `reg14` (logical inport) is the high half of this word, `reg15` the low one.
    pub const REG14_15: usize = 8;
    /// `vlan_tci` low 16 bits, `eth.dst` high 48.
    pub const DL_DST: usize = 12;
    /// `eth.type` low 16, `eth.src` high 48.
    pub const DL_SRC: usize = 13;
    /// IPv4 (or ARP) destination low 32, source high 32.
    pub const NW: usize = 14;
    /// IPv6 source, destination and ND target: two words each, high half first.
    pub const IPV6: usize = 15;
    /// `tp_src` low 16 (ICMP type), ARP sha / ND sll high 48.
    pub const TP_SRC: usize = 21;
    /// `tp_dst` low 16 (ICMP code), ARP tha / ND tll high 48.
    pub const TP_DST: usize = 22;
    /// `nw_proto` (ARP op) bits 0..8, TOS 8..16, TTL 16..24, frag 24..32, TCP flags 32..44.
    pub const IP: usize = 23;
    /// `pkt_mark` low 32, IPv6 flow label 32..52.
    pub const MARK: usize = 24;
    /// Words of a flow.
    pub const WORDS: usize = 25;
}

/// Key of the `CACHE` map: every frame but IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Datapath tunnel key (flow word 0; datapath keys are 24-bit).
    pub datapath: u32,
    /// Logical inport tunnel key (`reg14`).
    pub inport: u32,
    /// Flow words 12, 13, 14, 21, 22, 23, 24 in that order.
    pub w: [u64; 7],
}
const _: () = assert!(size_of::<CacheKey>() == 64);

/// Index of each projected word in [`CacheKey::w`].
pub mod slot {
    pub const DL_DST: usize = 0;
    pub const DL_SRC: usize = 1;
    pub const NW: usize = 2;
    pub const TP_SRC: usize = 3;
    pub const TP_DST: usize = 4;
    pub const IP: usize = 5;
    pub const MARK: usize = 6;
    /// Flow word of each slot.
    pub const WORDS: [usize; 7] = [
        super::word::DL_DST,
        super::word::DL_SRC,
        super::word::NW,
        super::word::TP_SRC,
        super::word::TP_DST,
        super::word::IP,
        super::word::MARK,
    ];
}

/// Key of the `CACHE6` map: IPv6 frames (flow words 15..=20 added).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheKey6 {
    pub base: CacheKey,
    pub ipv6: [u64; 6],
}
const _: () = assert!(size_of::<CacheKey6>() == 112);

impl CacheKey {
    /// The key of a flow given as its words, or `None` when a word the projection
    /// leaves out is not zero (registers, conntrack, IPv6 words: a key cannot describe
    /// such a flow).
    pub fn from_words(w: &[u64; word::WORDS]) -> Option<CacheKey> {
        let (key, ipv6) = CacheKey6::split(w)?;
        (ipv6 == [0; 6]).then_some(key)
    }
}

impl CacheKey6 {
    /// The IPv6 key of a flow given as its words (see [`CacheKey::from_words`]).
    pub fn from_words(w: &[u64; word::WORDS]) -> Option<CacheKey6> {
        let (base, ipv6) = CacheKey6::split(w)?;
        Some(CacheKey6 { base, ipv6 })
    }

    fn split(w: &[u64; word::WORDS]) -> Option<(CacheKey, [u64; 6])> {
        let mut covered = [false; word::WORDS];
        covered[word::METADATA] = true;
        covered[word::REG14_15] = true;
        for i in slot::WORDS {
            covered[i] = true;
        }
        let mut ipv6 = [0; 6];
        for (i, v) in ipv6.iter_mut().enumerate() {
            covered[word::IPV6 + i] = true;
            *v = w[word::IPV6 + i];
        }
        let stray = (0..word::WORDS).any(|i| !covered[i] && w[i] != 0);
        let meta = w[word::METADATA];
        // reg15 (outport) is zero when the ingress pipeline starts.
        let regs = w[word::REG14_15];
        if stray || meta > u64::from(u32::MAX) || regs as u32 != 0 {
            return None;
        }
        let mut key = CacheKey {
            datapath: meta as u32,
            inport: (regs >> 32) as u32,
            w: [0; 7],
        };
        for (s, i) in slot::WORDS.iter().enumerate() {
            key.w[s] = w[*i];
        }
        Some((key, ipv6))
    }
}

/// [`CacheAction::kind`]: the decision drops the frame (counted as `drop_reason`).
pub const ACTION_DROP: u8 = 0;
/// [`CacheAction::kind`]: one output, to `out_ifindex` with `out_tag`.
pub const ACTION_OUTPUT: u8 = 1;
/// [`CacheAction::kind`]: exactly one tunnel copy and no local delivery: the inner
/// rewrite, then the outer headers of peer `tunnel_peer` (`crate::tunnel`), out of
/// `out_ifindex` (the underlay interface).
pub const ACTION_ENCAP: u8 = 2;

/// [`CacheAction::family`]: which header the L3 rewrites address.
pub const FAMILY_OTHER: u8 = 0;
pub const FAMILY_IPV4: u8 = 1;
pub const FAMILY_ARP: u8 = 2;
pub const FAMILY_IPV6: u8 = 3;

/// [`CacheAction::rewrite`] bits: the header fields an output writes.
pub mod rewrite {
    pub const ETH_DST: u32 = 1 << 0;
    pub const ETH_SRC: u32 = 1 << 1;
    /// IPv4 source / destination, or ARP spa / tpa (`nw_src`, `nw_dst`).
    pub const NW_SRC: u32 = 1 << 2;
    pub const NW_DST: u32 = 1 << 3;
    /// IPv4 TOS byte.
    pub const IP4_TOS: u32 = 1 << 4;
    /// IPv4 TTL or IPv6 hop limit.
    pub const TTL: u32 = 1 << 5;
    /// Apply `ip_csum_delta` to the IPv4 header checksum.
    pub const IP4_CSUM: u32 = 1 << 6;
    /// TCP/UDP source port, or both ICMP type and code (`tp_src`: type, `tp_dst`: code).
    pub const TP_SRC: u32 = 1 << 7;
    pub const TP_DST: u32 = 1 << 8;
    pub const ICMP: u32 = 1 << 9;
    pub const ARP_OP: u32 = 1 << 10;
    pub const ARP_SHA: u32 = 1 << 11;
    pub const ARP_THA: u32 = 1 << 12;
    /// IPv6 version / traffic class / flow label word.
    pub const IP6_VTCFL: u32 = 1 << 13;
    pub const IP6_SRC: u32 = 1 << 14;
    pub const IP6_DST: u32 = 1 << 15;
}

/// Transport checksum updates, in the order userspace's `commit` makes them: after the
/// source address, after the destination address, after the ports (or ICMP type/code).
pub const L4_STEPS: usize = 3;

/// Value of both cache maps: what the pipeline decided for the key's frames, and the
/// generation of the tables it decided with (a lookup whose entry is of another
/// generation than `CACHE_GEN` is a miss).
///
/// An output carries every header change as the new bytes plus, for checksums, the
/// one's-complement sum of the 16-bit words replaced and written (RFC 1624), folded:
/// constant per entry because the key fixes every field the change reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheAction {
    pub generation: u64,
    /// [`ACTION_DROP`] or [`ACTION_OUTPUT`].
    pub kind: u8,
    /// `FAMILY_*`: the frame's network header.
    pub family: u8,
    /// VID to push on output (0: none).
    pub out_tag: u16,
    /// Interface the output leaves by (a devmap key).
    pub out_ifindex: u32,
    /// Per-port counter slot of the output port.
    pub out_stats_slot: u32,
    /// Drop: the `Counter` to bump.
    pub drop_reason: u32,
    /// `rewrite::*` bits.
    pub rewrite: u32,
    /// Offset of the transport checksum from the transport header (16 TCP, 6 UDP, 2 ICMP).
    pub l4_csum_at: u8,
    /// Bit i: transport checksum step i is made.
    pub l4_steps: u8,
    /// Bit i: step i only when the checksum is not zero (UDP's "no checksum").
    pub l4_if_set: u8,
    pub ttl: u8,
    pub l4_delta: [u16; L4_STEPS],
    pub ip_csum_delta: u16,
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// IPv4 TOS.
    pub tos: u8,
    pub _pad: u8,
    /// ARP opcode (16 bits on the wire).
    pub arp_op: [u8; 2],
    /// IPv4 source/destination or ARP spa/tpa.
    pub nw_src: [u8; 4],
    pub nw_dst: [u8; 4],
    /// TCP/UDP ports (network order), or ICMP `[type, code]` in `tp_src`.
    pub tp_src: [u8; 2],
    pub tp_dst: [u8; 2],
    pub arp_sha: [u8; 6],
    pub arp_tha: [u8; 6],
    pub ip6_vtcfl: [u8; 4],
    pub ip6_src: [u8; 16],
    pub ip6_dst: [u8; 16],
    /// [`ACTION_ENCAP`]: index of the peer's outer header template in `TUNNEL_PEERS`.
    pub tunnel_peer: u32,
    /// Connections the decision went through (`crate::ct`): the first `ct_n` of `ct`
    /// must hold their serials for the entry to be used. 0 for a stateless decision.
    pub ct_n: u32,
    /// [`ACTION_ENCAP`]: the VNI (the datapath's tunnel key, 24 bits).
    pub tunnel_vni: u32,
    pub ct: [crate::ct::CtDep; crate::ct::CT_DEPS],
    /// [`ACTION_ENCAP`]: OVN's option data (ingress and egress port keys, as
    /// `geneve::Metadata::option_data` writes them).
    pub tunnel_option: [u8; 4],
    /// [`ACTION_ENCAP`]: the peer's Encap.ip the template must still hold (a template
    /// slot reused for another chassis is a miss, not a misdelivery).
    pub tunnel_remote: [u8; 4],
    /// [`ACTION_ENCAP`]: the outer UDP source port userspace derives from the flow's
    /// hash (network order): constant per entry, the key fixes the flow.
    pub tunnel_sport: [u8; 2],
    pub _pad4: [u8; 6],
}
const _: () = assert!(size_of::<CacheAction>() == 176);

/// Index into the `CACHE_STATS` per-CPU array: what a lookup found. Every frame the
/// program hands to the cache bumps exactly one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheCounter {
    /// An entry of the current generation: executed in XDP.
    Hit = 0,
    /// No entry: up to userspace, which decides and installs.
    Miss = 1,
    /// An entry of another generation (the tables changed since), or one whose
    /// connections changed or went (`crate::ct`): a miss.
    Stale = 2,
    /// The key cannot describe the frame (IPv4 options, IPv6 extension headers,
    /// fragments, truncated headers, ND): always decided in userspace, never cached.
    Uncacheable = 3,
}

impl CacheCounter {
    pub const COUNT: u32 = 4;
    pub const ALL: [CacheCounter; 4] = [
        CacheCounter::Hit,
        CacheCounter::Miss,
        CacheCounter::Stale,
        CacheCounter::Uncacheable,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            CacheCounter::Hit => "hits",
            CacheCounter::Miss => "misses",
            CacheCounter::Stale => "stale",
            CacheCounter::Uncacheable => "uncacheable",
        }
    }
}

/// Entries of each cache map unless configured otherwise (`ovnest run --cache-size`).
pub const DEFAULT_CACHE_ENTRIES: u32 = 16384;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] plain data, sizes pinned above to the sum of their fields (no
    // hidden padding), every bit pattern valid.
    unsafe impl aya::Pod for super::CacheKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CacheKey6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CacheAction {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_project_exactly_the_words_frames_fill() {
        let mut w = [0u64; word::WORDS];
        w[word::METADATA] = 1;
        w[word::REG14_15] = 7 << 32;
        w[word::DL_SRC] = 0x0800;
        w[word::NW] = 0xac10_ff85_ac10_ff82;
        let key = CacheKey::from_words(&w).unwrap();
        assert_eq!((key.datapath, key.inport), (1, 7));
        assert_eq!(key.w[slot::NW], w[word::NW]);
        // An IPv6 word makes it an IPv6 key.
        w[word::IPV6 + 1] = 1;
        assert!(CacheKey::from_words(&w).is_none());
        assert_eq!(CacheKey6::from_words(&w).unwrap().ipv6[1], 1);
        // A register or an outport the key cannot hold.
        w[3] = 1;
        assert!(CacheKey6::from_words(&w).is_none());
        w[3] = 0;
        w[word::REG14_15] |= 2;
        assert!(CacheKey6::from_words(&w).is_none());
    }
}
