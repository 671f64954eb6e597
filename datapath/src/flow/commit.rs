//! [`Flow`] → frame: writes the header fields a decision changed back into the frame,
//! fixing the IPv4 header, TCP/UDP and ICMP checksums incrementally (RFC 1624), as OVS's
//! `commit_odp_actions` + `odp_execute` do. A change the datapath cannot write (the
//! Ethertype, the IP protocol, an SCTP port...) is refused by name, so the caller drops
//! the frame and counts it: never a frame with half its changes.

use ovnest_logical::flow::{Field, Flow};

use super::Layers;

/// A field a decision changed that this datapath cannot rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot rewrite {0:?}")]
pub struct Unwritable(pub Field);

/// The fields a frame rewrite may touch, in the order they are written.
const WRITABLE: &[Field] = &[
    Field::EthSrc,
    Field::EthDst,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::IpDscp,
    Field::IpEcn,
    Field::IpTtl,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::Ipv6Label,
    Field::TcpSrc,
    Field::TcpDst,
    Field::Icmpv4Type,
    Field::Icmpv4Code,
    Field::Icmpv6Type,
    Field::Icmpv6Code,
    Field::ArpOp,
    Field::ArpSha,
    Field::ArpSpa,
    Field::ArpTha,
    Field::ArpTpa,
];

/// Fields whose value only exists in the pipeline (registers, conntrack): changes to
/// them never reach the wire.
fn is_metadata(f: Field) -> bool {
    matches!(
        f,
        Field::Metadata
            | Field::Reg(_)
            | Field::Xreg(_)
            | Field::Xxreg(_)
            | Field::PktMark
            | Field::CtState
            | Field::CtMark
            | Field::CtLabel
    )
}

/// Every field of a flow, for finding what changed.
const ALL: &[Field] = &[
    Field::EthSrc,
    Field::EthDst,
    Field::EthType,
    Field::VlanTci,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::Ipv6Label,
    Field::IpProto,
    Field::IpDscp,
    Field::IpEcn,
    Field::IpTtl,
    Field::IpFrag,
    Field::ArpSha,
    Field::ArpTha,
    Field::TcpSrc,
    Field::TcpDst,
    Field::TcpFlags,
    Field::NdTarget,
];

/// The fields `to` changed relative to `from` (packet fields only; shared storage such
/// as ARP's opcode in `nw_proto` is reported under the packet's own name).
pub fn changed(from: &Flow, to: &Flow) -> impl Iterator<Item = Field> {
    let (from, to) = (*from, *to);
    ALL.iter()
        .copied()
        .filter(move |&f| from.get(f) != to.get(f))
        .map(move |f| rename(f, &from))
        .filter(|f| !is_metadata(*f))
}

/// Names a changed storage slot by the field the packet has there.
fn rename(f: Field, flow: &Flow) -> Field {
    let arp = matches!(flow.dl_type(), 0x0806 | 0x8035);
    let proto = flow.nw_proto();
    match f {
        Field::Ipv4Src if arp => Field::ArpSpa,
        Field::Ipv4Dst if arp => Field::ArpTpa,
        Field::IpProto if arp => Field::ArpOp,
        Field::TcpSrc if proto == 1 && flow.dl_type() == 0x0800 => Field::Icmpv4Type,
        Field::TcpDst if proto == 1 && flow.dl_type() == 0x0800 => Field::Icmpv4Code,
        Field::TcpSrc if proto == 58 => Field::Icmpv6Type,
        Field::TcpDst if proto == 58 => Field::Icmpv6Code,
        Field::TcpSrc if proto == 132 => Field::SctpSrc,
        Field::TcpDst if proto == 132 => Field::SctpDst,
        Field::TcpSrc if proto == 17 => Field::UdpSrc,
        Field::TcpDst if proto == 17 => Field::UdpDst,
        f => f,
    }
}

/// Checks that every change from `from` to `to` can be written.
pub fn check(from: &Flow, to: &Flow) -> Result<(), Unwritable> {
    for f in changed(from, to) {
        let ok = WRITABLE.contains(&f) || matches!(f, Field::UdpSrc | Field::UdpDst);
        if !ok {
            return Err(Unwritable(f));
        }
    }
    Ok(())
}

/// One's-complement checksum arithmetic.
pub mod csum {
    /// Adds `data` (big-endian 16-bit words) to a partial sum.
    pub fn add(mut sum: u32, data: &[u8]) -> u32 {
        let (words, rest) = data.as_chunks::<2>();
        for w in words {
            sum += u32::from(u16::from_be_bytes(*w));
        }
        if let [last] = rest {
            sum += u32::from(*last) << 8;
        }
        sum
    }

    pub fn fold(mut sum: u32) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The checksum of `data`.
    pub fn of(data: &[u8]) -> u16 {
        fold(add(0, data))
    }

    /// RFC 1624 eq. 3: the checksum after 16-bit words `old` became `new`.
    pub fn update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
        let mut sum = u32::from(!csum);
        for w in old.as_chunks::<2>().0 {
            sum += u32::from(!u16::from_be_bytes(*w));
        }
        for w in new.as_chunks::<2>().0 {
            sum += u32::from(u16::from_be_bytes(*w));
        }
        fold(sum)
    }
}

fn put(b: &mut [u8], off: usize, v: &[u8]) -> Option<()> {
    b.get_mut(off..off + v.len())?.copy_from_slice(v);
    Some(())
}

/// Updates a 16-bit checksum at `at` for bytes `range` being replaced by `new`.
fn patch_csum(b: &mut [u8], at: usize, old: &[u8], new: &[u8]) -> Option<()> {
    let c = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?);
    let n = csum::update(c, old, new);
    put(b, at, &n.to_be_bytes())
}

/// Writes `to`'s changes relative to `from` into `frame` (laid out as `layers`).
/// `Err` leaves the frame untouched.
pub fn commit(frame: &mut [u8], layers: Layers, from: &Flow, to: &Flow) -> Result<(), Unwritable> {
    check(from, to)?;
    let truncated = Unwritable(Field::EthType);
    let mut apply = || -> Option<()> {
        let l3 = layers.l3;
        let dl = from.dl_type();
        let proto = from.nw_proto();
        let mac = |f: &Flow, x: Field| (f.get(x) as u64).to_be_bytes()[2..].to_vec();
        if from.get(Field::EthDst) != to.get(Field::EthDst) {
            put(frame, 0, &mac(to, Field::EthDst))?;
        }
        if from.get(Field::EthSrc) != to.get(Field::EthSrc) {
            put(frame, 6, &mac(to, Field::EthSrc))?;
        }
        match dl {
            0x0806 | 0x8035 => {
                if from.get(Field::ArpOp) != to.get(Field::ArpOp) {
                    put(frame, l3 + 6, &(to.get(Field::ArpOp) as u16).to_be_bytes())?;
                }
                for (f, off) in [(Field::ArpSha, 8), (Field::ArpTha, 18)] {
                    if from.get(f) != to.get(f) {
                        put(frame, l3 + off, &mac(to, f))?;
                    }
                }
                for (f, off) in [(Field::ArpSpa, 14), (Field::ArpTpa, 24)] {
                    if from.get(f) != to.get(f) {
                        put(frame, l3 + off, &(to.get(f) as u32).to_be_bytes())?;
                    }
                }
            }
            0x0800 => {
                let l4 = layers.l4;
                // Addresses: IP header checksum and the L4 pseudo-header.
                for (f, off) in [(Field::Ipv4Src, 12), (Field::Ipv4Dst, 16)] {
                    if from.get(f) != to.get(f) {
                        let old = (from.get(f) as u32).to_be_bytes();
                        let new = (to.get(f) as u32).to_be_bytes();
                        put(frame, l3 + off, &new)?;
                        patch_csum(frame, l3 + 10, &old, &new)?;
                        if let Some(l4) = l4 {
                            match proto {
                                6 => patch_csum(frame, l4 + 16, &old, &new)?,
                                17 if frame.get(l4 + 6..l4 + 8)? != [0, 0] => {
                                    patch_csum(frame, l4 + 6, &old, &new)?
                                }
                                _ => {}
                            }
                        }
                    }
                }
                // TOS and TTL: the header checksum only.
                let tos = |f: &Flow| ((f.get(Field::IpDscp) << 2) | f.get(Field::IpEcn)) as u8;
                // A frame may end inside its IPv4 header (`extract` keeps what L2 says):
                // every access is checked.
                if tos(from) != tos(to) {
                    let old: [u8; 2] = frame.get(l3..l3 + 2)?.try_into().ok()?;
                    let new = [old[0], tos(to)];
                    patch_csum(frame, l3 + 10, &old, &new)?;
                    put(frame, l3, &new)?;
                }
                if from.get(Field::IpTtl) != to.get(Field::IpTtl) {
                    let old: [u8; 2] = frame.get(l3 + 8..l3 + 10)?.try_into().ok()?;
                    let new = [to.get(Field::IpTtl) as u8, old[1]];
                    patch_csum(frame, l3 + 10, &old, &new)?;
                    put(frame, l3 + 8, &new)?;
                }
                if let Some(l4) = l4 {
                    transport(frame, l4, proto, from, to)?;
                }
            }
            0x86dd => {
                let vtcfl = |f: &Flow| {
                    (6u32 << 28)
                        | (((f.get(Field::IpDscp) << 2) | f.get(Field::IpEcn)) as u32) << 20
                        | f.get(Field::Ipv6Label) as u32
                };
                if vtcfl(from) != vtcfl(to) {
                    put(frame, l3, &vtcfl(to).to_be_bytes())?;
                }
                if from.get(Field::IpTtl) != to.get(Field::IpTtl) {
                    *frame.get_mut(l3 + 7)? = to.get(Field::IpTtl) as u8;
                }
                for (f, off) in [(Field::Ipv6Src, 8), (Field::Ipv6Dst, 24)] {
                    if from.get(f) != to.get(f) {
                        let old = from.get(f).to_be_bytes();
                        let new = to.get(f).to_be_bytes();
                        put(frame, l3 + off, &new)?;
                        if let Some(l4) = layers.l4 {
                            match proto {
                                6 => patch_csum(frame, l4 + 16, &old, &new)?,
                                17 => patch_csum(frame, l4 + 6, &old, &new)?,
                                58 => patch_csum(frame, l4 + 2, &old, &new)?,
                                _ => {}
                            }
                        }
                    }
                }
                if let Some(l4) = layers.l4 {
                    transport(frame, l4, proto, from, to)?;
                }
            }
            _ => {}
        }
        Some(())
    };
    apply().ok_or(truncated)
}

fn transport(frame: &mut [u8], l4: usize, proto: u8, from: &Flow, to: &Flow) -> Option<()> {
    let (src_c, dst_c) = (
        from.get(Field::TcpSrc) != to.get(Field::TcpSrc),
        from.get(Field::TcpDst) != to.get(Field::TcpDst),
    );
    if !src_c && !dst_c {
        return Some(());
    }
    match proto {
        6 | 17 => {
            let at = if proto == 6 { l4 + 16 } else { l4 + 6 };
            let has_csum = proto == 6 || frame.get(l4 + 6..l4 + 8)? != [0, 0];
            for (changed, off, f) in [(src_c, 0, Field::TcpSrc), (dst_c, 2, Field::TcpDst)] {
                if changed {
                    let old = (from.get(f) as u16).to_be_bytes();
                    let new = (to.get(f) as u16).to_be_bytes();
                    put(frame, l4 + off, &new)?;
                    if has_csum {
                        patch_csum(frame, at, &old, &new)?;
                    }
                }
            }
        }
        1 | 58 => {
            // ICMP type and code share one 16-bit word.
            let old = [*frame.get(l4)?, *frame.get(l4 + 1)?];
            let new = [to.get(Field::TcpSrc) as u8, to.get(Field::TcpDst) as u8];
            put(frame, l4, &new)?;
            patch_csum(frame, l4 + 2, &old, &new)?;
        }
        _ => return None,
    }
    Some(())
}
