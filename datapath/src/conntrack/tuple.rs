//! A connection's tuple, read from and written back to a flow.

use ovnest_logical::{
    flow::{ETH_TYPE_IP, ETH_TYPE_IPV6, Field, Flow, frag},
    pipeline::v4_mapped,
};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// What conntrack keys a packet by, in one direction. Addresses are IPv6 or
/// IPv4-mapped; for ICMP `sport` is the type and `dport` the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tuple {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
}

/// What a packet is to conntrack before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A packet conntrack keys.
    Tuple(Tuple),
    /// A packet conntrack refuses (`ct.inv`): non-IP, a later fragment.
    Invalid,
    /// An ICMP error: related to the connection of the packet it quotes, if any.
    IcmpError,
}

impl Tuple {
    pub fn classify(flow: &Flow) -> Class {
        let v6 = match flow.dl_type() {
            ETH_TYPE_IP => false,
            ETH_TYPE_IPV6 => true,
            _ => return Class::Invalid,
        };
        if flow.nw_frag() & frag::LATER != 0 {
            return Class::Invalid;
        }
        let (src, dst) = if v6 {
            (flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst))
        } else {
            (
                v4_mapped(flow.get(Field::Ipv4Src) as u32),
                v4_mapped(flow.get(Field::Ipv4Dst) as u32),
            )
        };
        let proto = flow.nw_proto();
        let (sport, dport) = match proto {
            TCP | UDP | SCTP => (flow.tp_src(), flow.tp_dst()),
            ICMP | ICMPV6 => {
                let ty = flow.tp_src();
                if icmp_error(proto, ty) {
                    return Class::IcmpError;
                }
                (ty, flow.tp_dst())
            }
            _ => (0, 0),
        };
        Class::Tuple(Tuple {
            src,
            dst,
            sport,
            dport,
            proto,
            v6,
        })
    }

    /// The tuple of the other direction.
    pub fn reverse(self) -> Tuple {
        match self.proto {
            ICMP | ICMPV6 => Tuple {
                src: self.dst,
                dst: self.src,
                sport: icmp_reply(self.proto, self.sport),
                ..self
            },
            _ => Tuple {
                src: self.dst,
                dst: self.src,
                sport: self.dport,
                dport: self.sport,
                ..self
            },
        }
    }

    /// Whether the protocol has ports NAT may change.
    pub fn has_ports(self) -> bool {
        matches!(self.proto, TCP | UDP | SCTP)
    }

    /// Writes addresses (and ports, for protocols with ports) into `flow`.
    pub fn write(self, flow: &mut Flow) {
        if self.v6 {
            flow.set(Field::Ipv6Src, self.src);
            flow.set(Field::Ipv6Dst, self.dst);
        } else {
            flow.set(Field::Ipv4Src, self.src & 0xffff_ffff);
            flow.set(Field::Ipv4Dst, self.dst & 0xffff_ffff);
        }
        if self.has_ports() {
            flow.set(Field::TcpSrc, u128::from(self.sport));
            flow.set(Field::TcpDst, u128::from(self.dport));
        }
    }

    /// Fills the flow's original-direction fields (`ct_nw_*`, `ct_tp_*`).
    pub fn write_orig(self, flow: &mut Flow) {
        if self.v6 {
            flow.ct_ipv6_src = self.src;
            flow.ct_ipv6_dst = self.dst;
        } else {
            flow.ct_nw_src = self.src as u32;
            flow.ct_nw_dst = self.dst as u32;
        }
        flow.ct_nw_proto = self.proto;
        flow.ct_tp_src = self.sport;
        flow.ct_tp_dst = self.dport;
    }
}

/// The tuple of the packet an ICMP error quotes (RFC 792, RFC 4443: its IP header and
/// at least the first 8 bytes of its payload), from the ICMP message `l4`; `None` when
/// `l4` is no ICMP error or too short.
pub fn quoted(l4: &[u8], v6: bool) -> Option<Tuple> {
    let proto = if v6 { ICMPV6 } else { ICMP };
    if !icmp_error(proto, u16::from(*l4.first()?)) {
        return None;
    }
    let ip = l4.get(8..)?;
    let (proto, src, dst, inner) = if v6 {
        if ip.first()? >> 4 != 6 {
            return None;
        }
        let a = |o: usize| -> Option<u128> {
            Some(u128::from_be_bytes(ip.get(o..o + 16)?.try_into().ok()?))
        };
        (*ip.get(6)?, a(8)?, a(24)?, ip.get(40..)?)
    } else {
        if ip.first()? >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let a = |o: usize| -> Option<u128> {
            Some(v4_mapped(u32::from_be_bytes(
                ip.get(o..o + 4)?.try_into().ok()?,
            )))
        };
        (*ip.get(9)?, a(12)?, a(16)?, ip.get(ihl..)?)
    };
    let be16 = |o: usize| -> Option<u16> {
        Some(u16::from_be_bytes(inner.get(o..o + 2)?.try_into().ok()?))
    };
    let (sport, dport) = match proto {
        TCP | UDP | SCTP => (be16(0)?, be16(2)?),
        ICMP | ICMPV6 => (u16::from(*inner.first()?), u16::from(*inner.get(1)?)),
        _ => (0, 0),
    };
    Some(Tuple {
        src,
        dst,
        sport,
        dport,
        proto,
        v6,
    })
}

/// ICMP error types (destination unreachable, time exceeded, ...): they belong to a
/// connection as related traffic, never as one of their own.
fn icmp_error(proto: u8, ty: u16) -> bool {
    match proto {
        ICMP => matches!(ty, 3 | 4 | 5 | 11 | 12),
        _ => matches!(ty, 1..=4),
    }
}

/// The type a reply to ICMP type `ty` has (echo, timestamp, info, address mask).
fn icmp_reply(proto: u8, ty: u16) -> u16 {
    match (proto, ty) {
        (ICMP, 8) => 0,
        (ICMP, 0) => 8,
        (ICMP, 13) => 14,
        (ICMP, 14) => 13,
        (ICMP, 15) => 16,
        (ICMP, 16) => 15,
        (ICMP, 17) => 18,
        (ICMP, 18) => 17,
        (ICMPV6, 128) => 129,
        (ICMPV6, 129) => 128,
        (_, t) => t,
    }
}
