//! Frame → [`Flow`]: every header field OVN's logical flows may match, read from the
//! frame as OVS's `flow_extract` reads it (Ethernet, one 802.1Q tag, ARP/RARP, IPv4 with
//! fragments, IPv6 with extension headers, TCP/UDP/SCTP ports and TCP flags, ICMPv4,
//! ICMPv6 and ND targets/link-layer options). A header that is cut short leaves the
//! fields it would have set at zero, as in OVS; nothing here panics on any input.

use ovnest_logical::flow::{Field, Flow, frag};

const ETH_TYPE_VLAN: u16 = 0x8100;
const ETH_TYPE_IP: u16 = 0x0800;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_RARP: u16 = 0x8035;

/// Where the layers of a frame start, for rewriting it later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layers {
    /// Offset of the network header (after Ethernet and any tag).
    pub l3: usize,
    /// Offset of the transport header, when there is one the flow describes.
    pub l4: Option<usize>,
}

fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn be48(b: &[u8], o: usize) -> Option<u64> {
    let s = b.get(o..o + 6)?;
    Some(s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn be128(b: &[u8], o: usize) -> Option<u128> {
    Some(u128::from_be_bytes(b.get(o..o + 16)?.try_into().ok()?))
}

/// Reads `frame` into a flow. `None` when it is shorter than an Ethernet header.
/// Registers and metadata are zero; the caller sets the logical ports.
pub fn extract(frame: &[u8]) -> Option<(Flow, Layers)> {
    let mut f = Flow::default();
    f.set(Field::EthDst, u128::from(be48(frame, 0)?));
    f.set(Field::EthSrc, u128::from(be48(frame, 6)?));
    let mut off = 12;
    let mut ty = be16(frame, off)?;
    off += 2;
    if ty == ETH_TYPE_VLAN {
        let Some(tci) = be16(frame, off) else {
            return Some((f, Layers { l3: off, l4: None }));
        };
        // OVS marks a present tag with the CFI bit (OVN's `vlan.present`).
        f.set(Field::VlanTci, u128::from(tci | 0x1000));
        let Some(inner) = be16(frame, off + 2) else {
            return Some((f, Layers { l3: off, l4: None }));
        };
        ty = inner;
        off += 4;
    }
    // OVS treats values below 0x600 as 802.3 lengths: no ethertype.
    if ty < 0x600 {
        ty = 0x05ff;
    }
    f.set(Field::EthType, u128::from(ty));
    let mut layers = Layers { l3: off, l4: None };
    match ty {
        ETH_TYPE_IP => layers.l4 = ipv4(frame, off, &mut f),
        ETH_TYPE_IPV6 => layers.l4 = ipv6(frame, off, &mut f),
        ETH_TYPE_ARP | ETH_TYPE_RARP => arp(frame, off, &mut f),
        _ => {}
    }
    Some((f, layers))
}

fn ipv4(b: &[u8], off: usize, f: &mut Flow) -> Option<usize> {
    let vihl = *b.get(off)?;
    let ihl = usize::from(vihl & 0xf) * 4;
    if vihl >> 4 != 4 || ihl < 20 || b.len() < off + ihl {
        return None;
    }
    let tot_len = usize::from(be16(b, off + 2)?);
    if tot_len < ihl || b.len() < off + tot_len {
        return None;
    }
    let tos = b[off + 1];
    f.set(Field::IpDscp, u128::from(tos >> 2));
    f.set(Field::IpEcn, u128::from(tos & 3));
    f.set(Field::IpTtl, u128::from(b[off + 8]));
    let proto = b[off + 9];
    f.set(Field::IpProto, u128::from(proto));
    f.set(Field::Ipv4Src, u128::from(be32(b, off + 12)?));
    f.set(Field::Ipv4Dst, u128::from(be32(b, off + 16)?));
    let frag_off = be16(b, off + 6)?;
    let mut fr = 0;
    if frag_off & 0x3fff != 0 {
        fr |= frag::ANY;
        if frag_off & 0x1fff != 0 {
            fr |= frag::LATER;
        }
    }
    f.set(Field::IpFrag, u128::from(fr));
    if fr & frag::LATER != 0 {
        return None;
    }
    let l4 = off + ihl;
    transport(&b[..off + tot_len], l4, proto, false, f).then_some(l4)
}

fn ipv6(b: &[u8], off: usize, f: &mut Flow) -> Option<usize> {
    let vtcfl = be32(b, off)?;
    if vtcfl >> 28 != 6 {
        return None;
    }
    let payload_len = usize::from(be16(b, off + 4)?);
    let end = off + 40 + payload_len;
    if b.len() < end {
        return None;
    }
    let b = &b[..end];
    let tc = ((vtcfl >> 20) & 0xff) as u8;
    f.set(Field::IpDscp, u128::from(tc >> 2));
    f.set(Field::IpEcn, u128::from(tc & 3));
    f.set(Field::Ipv6Label, u128::from(vtcfl & 0xf_ffff));
    f.set(Field::IpTtl, u128::from(b[off + 7]));
    f.set(Field::Ipv6Src, be128(b, off + 8)?);
    f.set(Field::Ipv6Dst, be128(b, off + 24)?);
    let mut next = b[off + 6];
    let mut l4 = off + 40;
    let mut fr = 0;
    // Extension headers: hop-by-hop, routing, destination options, fragment.
    loop {
        match next {
            0 | 43 | 60 => {
                let nh = *b.get(l4)?;
                let len = (usize::from(*b.get(l4 + 1)?) + 1) * 8;
                next = nh;
                l4 += len;
            }
            44 => {
                let nh = *b.get(l4)?;
                let frag_off = be16(b, l4 + 2)?;
                fr |= frag::ANY;
                if frag_off & 0xfff8 != 0 {
                    fr |= frag::LATER;
                }
                next = nh;
                l4 += 8;
            }
            _ => break,
        }
        if l4 > b.len() {
            return None;
        }
    }
    f.set(Field::IpProto, u128::from(next));
    f.set(Field::IpFrag, u128::from(fr));
    if fr & frag::LATER != 0 {
        return None;
    }
    transport(b, l4, next, true, f).then_some(l4)
}

fn transport(b: &[u8], l4: usize, proto: u8, v6: bool, f: &mut Flow) -> bool {
    match proto {
        6 => {
            let (Some(src), Some(dst), Some(flags)) =
                (be16(b, l4), be16(b, l4 + 2), be16(b, l4 + 12))
            else {
                return false;
            };
            if b.len() < l4 + 20 {
                return false;
            }
            f.set(Field::TcpSrc, u128::from(src));
            f.set(Field::TcpDst, u128::from(dst));
            f.set(Field::TcpFlags, u128::from(flags & 0x0fff));
            true
        }
        17 | 132 => {
            let (Some(src), Some(dst)) = (be16(b, l4), be16(b, l4 + 2)) else {
                return false;
            };
            if b.len() < l4 + if proto == 17 { 8 } else { 12 } {
                return false;
            }
            f.set(Field::TcpSrc, u128::from(src));
            f.set(Field::TcpDst, u128::from(dst));
            true
        }
        1 if !v6 => {
            if b.len() < l4 + 8 {
                return false;
            }
            f.set(Field::TcpSrc, u128::from(b[l4]));
            f.set(Field::TcpDst, u128::from(b[l4 + 1]));
            true
        }
        2 if !v6 => {
            if b.len() < l4 + 8 {
                return false;
            }
            f.set(Field::TcpSrc, u128::from(b[l4]));
            f.set(Field::TcpDst, u128::from(b[l4 + 1]));
            true
        }
        58 if v6 => {
            if b.len() < l4 + 4 {
                return false;
            }
            let (ty, code) = (b[l4], b[l4 + 1]);
            f.set(Field::TcpSrc, u128::from(ty));
            f.set(Field::TcpDst, u128::from(code));
            if code == 0 && (ty == 135 || ty == 136) {
                nd(b, l4, ty, f);
            }
            true
        }
        _ => true,
    }
}

/// ND target and the source/target link-layer address option (RFC 4861 §4.3, §4.4).
fn nd(b: &[u8], l4: usize, ty: u8, f: &mut Flow) {
    let Some(target) = be128(b, l4 + 8) else {
        return;
    };
    f.set(Field::NdTarget, target);
    let mut o = l4 + 24;
    while o + 8 <= b.len() {
        let (opt, len) = (b[o], usize::from(b[o + 1]) * 8);
        if len == 0 || o + len > b.len() {
            // OVS rejects the whole ND packet here; the addresses stay zero.
            f.set(Field::NdTarget, 0);
            f.set(Field::NdSll, 0);
            f.set(Field::NdTll, 0);
            return;
        }
        if len == 8 {
            let mac = be48(b, o + 2).unwrap_or(0);
            if opt == 1 && ty == 135 {
                f.set(Field::NdSll, u128::from(mac));
            } else if opt == 2 && ty == 136 {
                f.set(Field::NdTll, u128::from(mac));
            }
        }
        o += len;
    }
}

fn arp(b: &[u8], off: usize, f: &mut Flow) {
    // Ethernet/IPv4 ARP only, as OVS.
    if b.len() < off + 28
        || be16(b, off) != Some(1)
        || be16(b, off + 2) != Some(ETH_TYPE_IP)
        || b[off + 4] != 6
        || b[off + 5] != 4
    {
        return;
    }
    let op = be16(b, off + 6).unwrap_or(0);
    // OVS keeps the opcode in nw_proto: only values that fit.
    if op <= 0xff {
        f.set(Field::ArpOp, u128::from(op));
    }
    f.set(Field::ArpSha, u128::from(be48(b, off + 8).unwrap_or(0)));
    f.set(Field::ArpSpa, u128::from(be32(b, off + 14).unwrap_or(0)));
    f.set(Field::ArpTha, u128::from(be48(b, off + 18).unwrap_or(0)));
    f.set(Field::ArpTpa, u128::from(be32(b, off + 24).unwrap_or(0)));
}
