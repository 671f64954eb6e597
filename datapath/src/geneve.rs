//! Geneve (RFC 8926) as OVN uses it between chassis (ovn-architecture(7), "Tunnel
//! Encapsulations"): the VNI is the logical datapath's tunnel key, and one option, class
//! 0x0102 type 0x80 length 4, carries the 15-bit logical ingress port key and the 16-bit
//! logical egress port key (a multicast group's key when ≥ 32768). UDP port 6081; the
//! outer frame is IPv4 with DF set and TTL 64, as OVS's userspace tunnel sends it.
//!
//! Pure: [`encapsulate`] writes the outer headers in front of an inner frame already in
//! place; [`decapsulate`] checks a received frame and says where its inner frame is and
//! what metadata it carries. No allocation, no panics on any input.

use crate::flow::csum;

/// Geneve's IANA UDP port.
pub const UDP_PORT: u16 = 6081;
/// OVN's option class and type (the type's top bit: critical).
pub const OVN_OPTION_CLASS: u16 = 0x0102;
pub const OVN_OPTION_TYPE: u8 = 0x80;
/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + Geneve (8) + OVN's option (8).
pub const OVERHEAD: usize = 58;
/// Where the inner frame starts in an encapsulated frame [`encapsulate`] writes.
pub const INNER: usize = OVERHEAD;
/// Port keys ≥ this are multicast groups (`_MC_flood` is 32768).
pub const MULTICAST_KEY_MIN: u16 = 32768;
/// The source port range OVS picks from (its `tnl_udp_port_min`/`max` defaults).
const SRC_PORT_MIN: u32 = 32768;
const SRC_PORT_MAX: u32 = 61000;
/// Trans Ether Bridging: the inner payload is an Ethernet frame.
const PROTO_ETHERNET: u16 = 0x6558;
const IPPROTO_UDP: u8 = 17;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// The Geneve header without options: ver/opt_len, flags, protocol, VNI, reserved.
const GENEVE_BASE: usize = 8;
/// Offsets of the outer headers in an encapsulated frame (no VLAN, IPv4 without options).
const IP: usize = 14;
const UDP: usize = IP + 20;
const GENEVE: usize = UDP + 8;

/// What the tunnel carries besides the frame: OVN's logical metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The logical datapath's tunnel key (24 bits).
    pub vni: u32,
    /// The logical ingress port's tunnel key (15 bits).
    pub ingress: u16,
    /// The logical egress port's tunnel key, or a multicast group's (16 bits).
    pub egress: u16,
}

impl Metadata {
    /// The option's 4 data bytes: bit 31 zero, ingress in bits 30..16, egress in 15..0.
    pub fn option_data(&self) -> [u8; 4] {
        ((u32::from(self.ingress & 0x7fff) << 16) | u32::from(self.egress)).to_be_bytes()
    }

    pub fn egress_is_multicast(&self) -> bool {
        self.egress >= MULTICAST_KEY_MIN
    }
}

/// The underlay side of one tunnel: this chassis's endpoint and the remote one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Underlay {
    /// The underlay interface's MAC and the next hop's toward `remote_ip`.
    pub local_mac: [u8; 6],
    pub next_hop_mac: [u8; 6],
    /// This chassis's Encap.ip and the remote chassis's.
    pub local_ip: [u8; 4],
    pub remote_ip: [u8; 4],
    /// The remote Encap's `options:csum`: fill the UDP checksum (else zero).
    pub csum: bool,
}

/// OVS's choice of UDP source port from a flow hash: spread over 32768..61000, so the
/// underlay's ECMP and the receiver's RSS see one flow per inner flow.
pub fn source_port(hash: u32) -> u16 {
    ((u64::from(hash) * u64::from(SRC_PORT_MAX - SRC_PORT_MIN)) >> 32) as u16 + SRC_PORT_MIN as u16
}

/// The frame cannot be encapsulated: too short a buffer for the headers, or an inner
/// frame too long for IPv4's 16-bit length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong;

/// Writes the outer headers into `frame[..OVERHEAD]` for the inner frame already at
/// `frame[OVERHEAD..]` (the whole rest of `frame`). The UDP checksum covers the inner
/// frame when `underlay.csum` says so.
pub fn encapsulate(
    frame: &mut [u8],
    underlay: &Underlay,
    meta: &Metadata,
    src_port: u16,
) -> Result<(), TooLong> {
    if frame.len() < OVERHEAD + 14 {
        return Err(TooLong);
    }
    let udp_len = u16::try_from(frame.len() - UDP).map_err(|_| TooLong)?;
    let ip_len = udp_len.checked_add(20).ok_or(TooLong)?;
    let (outer, _) = frame.split_at_mut(OVERHEAD);
    // Ethernet.
    outer[0..6].copy_from_slice(&underlay.next_hop_mac);
    outer[6..12].copy_from_slice(&underlay.local_mac);
    outer[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    // IPv4: no options, DF, TTL 64, id 0 (DF datagrams are never fragmented: RFC 6864).
    let ip = &mut outer[IP..UDP];
    ip.copy_from_slice(&[
        0x45,
        0,
        0,
        0,
        0,
        0,
        0x40,
        0,
        64,
        IPPROTO_UDP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[12..16].copy_from_slice(&underlay.local_ip);
    ip[16..20].copy_from_slice(&underlay.remote_ip);
    let ip_csum = csum::of(ip);
    ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    // UDP.
    let udp = &mut outer[UDP..GENEVE];
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    // Geneve: version 0, 2 words of options, C (a critical option is present),
    // Ethernet payload, VNI; then OVN's option.
    let geneve = &mut outer[GENEVE..];
    geneve[0..4].copy_from_slice(&[0x02, 0x40, 0x65, 0x58]);
    geneve[4..8].copy_from_slice(&((meta.vni & 0x00ff_ffff) << 8).to_be_bytes());
    geneve[8..10].copy_from_slice(&OVN_OPTION_CLASS.to_be_bytes());
    geneve[10] = OVN_OPTION_TYPE;
    geneve[11] = 1;
    geneve[12..16].copy_from_slice(&meta.option_data());
    if underlay.csum {
        let mut sum = crate::wire::ipv4::pseudo_header_sum(
            underlay.local_ip,
            underlay.remote_ip,
            IPPROTO_UDP,
            udp_len,
        );
        sum = csum::add(sum, &frame[UDP..]);
        let mut c = csum::fold(sum);
        if c == 0 {
            // RFC 768: a computed zero is sent as all ones (zero means "none").
            c = 0xffff;
        }
        frame[UDP + 6..UDP + 8].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// The outer headers [`encapsulate`] writes for `underlay`, with the fields that change
/// per frame zero (IPv4 total length and checksum, UDP source port, length and
/// checksum, VNI, option data), and the one's-complement sum of the IPv4 header's words
/// (folded): the XDP program's template (`ovnest_common::tunnel::TunnelPeer`), made by
/// the same code so the bytes cannot drift.
pub fn template(underlay: &Underlay) -> ([u8; OVERHEAD], u16) {
    let mut frame = [0u8; OVERHEAD + 14];
    let meta = Metadata {
        vni: 0,
        ingress: 0,
        egress: 0,
    };
    let plain = Underlay {
        csum: false,
        ..*underlay
    };
    // A buffer of the minimum length, so it cannot fail.
    let _ = encapsulate(&mut frame, &plain, &meta, 0);
    let mut header = [0u8; OVERHEAD];
    header.copy_from_slice(&frame[..OVERHEAD]);
    header[IP + 2..IP + 4].fill(0);
    header[IP + 10..IP + 12].fill(0);
    header[UDP + 4..UDP + 6].fill(0);
    let mut sum = csum::add(0, &header[IP..UDP]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (header, sum as u16)
}

/// Why a received frame was not decapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotDecapsulated {
    /// Not a Geneve frame to port 6081 (the host stack's business).
    NotGeneve,
    /// Geneve, but unusable; counted and dropped.
    Malformed(Malformed),
}

/// The ways a Geneve frame is unusable, one drop counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Headers or options run past the frame or the lengths disagree.
    Truncated,
    /// An IPv4 fragment: OVN's tunnels never fragment (DF), reassembly is not done.
    Fragment,
    /// A Geneve version other than 0.
    Version,
    /// The OAM bit: control traffic, not a logical frame.
    Oam,
    /// The payload is not Ethernet.
    Protocol,
    /// No OVN option (class 0x0102 type 0x80 length 4): no logical ports.
    NoOvnOption,
    /// A critical option this chassis does not understand (RFC 8926 §3.5.1: drop).
    UnknownCritical,
    /// The UDP checksum is set and wrong.
    Checksum,
}

impl Malformed {
    pub const ALL: [Malformed; 8] = [
        Malformed::Truncated,
        Malformed::Fragment,
        Malformed::Version,
        Malformed::Oam,
        Malformed::Protocol,
        Malformed::NoOvnOption,
        Malformed::UnknownCritical,
        Malformed::Checksum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Malformed::Truncated => "geneve_truncated",
            Malformed::Fragment => "geneve_fragment",
            Malformed::Version => "geneve_version",
            Malformed::Oam => "geneve_oam",
            Malformed::Protocol => "geneve_protocol",
            Malformed::NoOvnOption => "geneve_no_ovn_option",
            Malformed::UnknownCritical => "geneve_unknown_critical",
            Malformed::Checksum => "geneve_checksum",
        }
    }
}

/// A decapsulated frame: where the inner frame is, what it carries, and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    pub meta: Metadata,
    /// The inner Ethernet frame's range in the received frame.
    pub inner: core::ops::Range<usize>,
    /// The outer source address: the sending chassis's Encap.ip.
    pub remote_ip: [u8; 4],
    pub src_port: u16,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Checks a frame received on the underlay (untagged Ethernet, IPv4) and finds the inner
/// frame and OVN's metadata in it. Never panics.
pub fn decapsulate(frame: &[u8]) -> Result<Decapsulated, NotDecapsulated> {
    use Malformed::*;
    use NotDecapsulated::{Malformed as Bad, NotGeneve};
    if frame.len() < IP + 20 || be16(frame, 12) != ETHERTYPE_IPV4 {
        return Err(NotGeneve);
    }
    let ip = &frame[IP..];
    if ip[0] >> 4 != 4 || ip[9] != IPPROTO_UDP {
        return Err(NotGeneve);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2));
    if ihl < 20 || total < ihl + 8 || total > ip.len() {
        // Too short to say which UDP port: not ours to judge unless it is.
        return if ip.len() >= ihl + 4 && ihl >= 20 && be16(ip, ihl + 2) == UDP_PORT {
            Err(Bad(Truncated))
        } else {
            Err(NotGeneve)
        };
    }
    let udp = &ip[ihl..total];
    if be16(udp, 2) != UDP_PORT {
        return Err(NotGeneve);
    }
    if be16(ip, 6) & 0x3fff != 0 {
        return Err(Bad(Fragment));
    }
    let udp_len = usize::from(be16(udp, 4));
    if udp_len < 8 + GENEVE_BASE || udp_len > udp.len() {
        return Err(Bad(Truncated));
    }
    let udp = &udp[..udp_len];
    let checksum = be16(udp, 6);
    let src = [ip[12], ip[13], ip[14], ip[15]];
    if checksum != 0 {
        let dst = [ip[16], ip[17], ip[18], ip[19]];
        let sum = crate::wire::ipv4::pseudo_header_sum(src, dst, IPPROTO_UDP, udp_len as u16);
        if csum::fold(csum::add(sum, udp)) != 0 {
            return Err(Bad(Checksum));
        }
    }
    let geneve = &udp[8..];
    if geneve[0] >> 6 != 0 {
        return Err(Bad(Version));
    }
    if geneve[1] & 0x80 != 0 {
        return Err(Bad(Oam));
    }
    if be16(geneve, 2) != PROTO_ETHERNET {
        return Err(Bad(Protocol));
    }
    let options_len = usize::from(geneve[0] & 0x3f) * 4;
    if geneve.len() < GENEVE_BASE + options_len + 14 {
        return Err(Bad(Truncated));
    }
    let vni = u32::from_be_bytes([0, geneve[4], geneve[5], geneve[6]]);
    let mut options = &geneve[GENEVE_BASE..GENEVE_BASE + options_len];
    let mut ports = None;
    while !options.is_empty() {
        if options.len() < 4 {
            return Err(Bad(Truncated));
        }
        let class = be16(options, 0);
        let kind = options[2];
        let len = usize::from(options[3] & 0x1f) * 4;
        if options.len() < 4 + len {
            return Err(Bad(Truncated));
        }
        if class == OVN_OPTION_CLASS && kind == OVN_OPTION_TYPE && len == 4 {
            let data = u32::from_be_bytes([options[4], options[5], options[6], options[7]]);
            ports = Some((((data >> 16) & 0x7fff) as u16, data as u16));
        } else if kind & 0x80 != 0 {
            return Err(Bad(UnknownCritical));
        }
        options = &options[4 + len..];
    }
    let Some((ingress, egress)) = ports else {
        return Err(Bad(NoOvnOption));
    };
    let start = IP + ihl + 8 + GENEVE_BASE + options_len;
    Ok(Decapsulated {
        meta: Metadata {
            vni,
            ingress,
            egress,
        },
        inner: start..IP + ihl + udp_len,
        remote_ip: src,
        src_port: be16(udp, 0),
    })
}

#[cfg(test)]
mod tests;
