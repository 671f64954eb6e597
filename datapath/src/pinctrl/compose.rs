//! Frames built from scratch as OVS's `lib/packets.c` and pinctrl compose them.

use crate::flow::csum;
use crate::wire::ipv4::{DONT_FRAGMENT, Ipv4Packet};

pub const ETH_TYPE_IP: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;

/// A MAC held in the low 48 bits of a flow field, as bytes.
pub fn mac(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// An Ethernet header.
pub fn eth(dst: [u8; 6], src: [u8; 6], ty: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&dst);
    b.extend_from_slice(&src);
    b.extend_from_slice(&ty.to_be_bytes());
    b
}

/// pinctrl's `pinctrl_compose_ipv4`: Ethernet + a 20-byte IPv4 header (ID 0, DF, TOS
/// 0 — it writes CS6 and `packet_set_ipv4` then resets it — and the given TTL) and
/// `payload_len` zero bytes. The header checksum is filled.
pub fn ipv4(
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    src: u32,
    dst: u32,
    proto: u8,
    ttl: u8,
    payload_len: usize,
) -> Vec<u8> {
    let mut b = eth(eth_dst, eth_src, ETH_TYPE_IP);
    b.resize(ETH_LEN + IPV4_LEN + payload_len, 0);
    let total = (IPV4_LEN + payload_len).min(usize::from(u16::MAX)) as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut b[ETH_LEN..]);
    ip.set_ver_ihl();
    ip.set_total_len(total);
    ip.set_flags_frag(DONT_FRAGMENT);
    ip.set_ttl(ttl);
    ip.set_protocol(proto);
    ip.set_src(src.to_be_bytes());
    ip.set_dst(dst.to_be_bytes());
    ip.fill_checksum_over(IPV4_LEN);
    b
}

/// pinctrl's `pinctrl_compose_ipv6` / OVS's `compose_ipv6`: Ethernet + IPv6 header
/// (traffic class and flow label 0) and `payload_len` zero bytes.
pub fn ipv6(
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    src: u128,
    dst: u128,
    proto: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Vec<u8> {
    let mut b = eth(eth_dst, eth_src, ETH_TYPE_IPV6);
    b.extend_from_slice(&0x6000_0000u32.to_be_bytes());
    b.extend_from_slice(&(payload_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    b.push(proto);
    b.push(hop_limit);
    b.extend_from_slice(&src.to_be_bytes());
    b.extend_from_slice(&dst.to_be_bytes());
    b.resize(ETH_LEN + IPV6_LEN + payload_len, 0);
    b
}

/// The IPv6 upper-layer checksum (RFC 8200 §8.1) of `l4` under the header at `l3`.
pub fn csum6(frame: &[u8], l3: usize, proto: u8, l4: &[u8]) -> u16 {
    let mut s = csum::add(0, &frame[l3 + 8..l3 + 40]);
    s += u32::from(proto);
    s += (l4.len() as u32) & 0xffff;
    s += (l4.len() as u32) >> 16;
    csum::fold(csum::add(s, l4))
}

/// The TCP/UDP checksum of `l4` under the IPv4 header at `l3`.
pub fn csum4(frame: &[u8], l3: usize, proto: u8, l4: &[u8]) -> u16 {
    let mut s = csum::add(0, &frame[l3 + 12..l3 + 20]);
    s += u32::from(proto);
    s += l4.len() as u32 & 0xffff;
    csum::fold(csum::add(s, l4))
}

/// OVS's `eth_push_vlan`: an 802.1Q tag with `tci` (the flow's CFI marker cleared).
pub fn push_vlan(frame: &mut Vec<u8>, tci: u16) {
    if frame.len() < 12 {
        return;
    }
    let tag = [
        0x81,
        0x00,
        ((tci & !0x1000) >> 8) as u8,
        (tci & !0x1000) as u8,
    ];
    frame.splice(12..12, tag);
}

/// The frame's VLAN TCI when the flow says it carried a tag (OVS pushes it back on the
/// packets pinctrl builds from it).
pub fn tagged(tci: u128) -> Option<u16> {
    let tci = tci as u16;
    (tci & 0x1000 != 0).then_some(tci)
}

/// `aa:bb:cc:dd:ee:ff` for six bytes (fewer print as they are).
pub fn mac_text(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
