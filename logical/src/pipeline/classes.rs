//! Packet classes: a frame's ethertype and IP protocol. No logical action rewrites
//! them, and most of OVN's tables are decided by them for all but a few flows:
//! ls_in_arp_rsp's flows are ARP or ND, ls_in_dhcp_options' UDP, lr_in_ip_input's
//! catch-all is the only flow many ICMP frames can reach... When a table is built,
//! each class gets the flow every frame of the class ends at, when there is one (the
//! first flow in lookup order that a frame of the class can match, if all frames of
//! the class match it), and a traversal looks up only the tables where its class
//! does not decide.
//!
//! Sound by construction: a flow before the chosen one is one no frame of the class
//! can match (it pins the ethertype or protocol to another value), and the chosen one
//! matches every frame of the class (it constrains nothing but the ethertype and
//! protocol, to the class's values), so the classifier would return it too.

use crate::flow::{ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, Field, Flow};

use super::{CONJ, Term};

/// Ethertypes with a class of their own; index 3 is every other one.
const ETH: [u64; 3] = [
    ETH_TYPE_IP as u64,
    ETH_TYPE_IPV6 as u64,
    ETH_TYPE_ARP as u64,
];
/// IP protocols with a class of their own (ICMP, TCP, UDP, ICMPv6, SCTP); index 5
/// is every other one, and every frame that is not IP (ARP's opcode shares the field).
const PROTO: [u64; 5] = [1, 6, 17, 58, 132];
const N_PROTO: usize = PROTO.len() + 1;

/// Classes: (ethertype index) × (protocol index).
pub(super) const N: usize = (ETH.len() + 1) * N_PROTO;

/// The outcome of a class that needs a lookup.
pub(super) const LOOKUP: u32 = u32::MAX;

/// A set of classes, one bit each.
type Set = u32;
const ALL: Set = (1 << N) - 1;

/// The class of `flow`.
#[inline(always)]
pub(super) fn of(flow: &Flow) -> usize {
    let eth = flow.get(Field::EthType) as u64;
    let e = ETH.iter().position(|&t| t == eth).unwrap_or(ETH.len());
    let p = if e < 2 {
        let proto = flow.get(Field::IpProto) as u64;
        PROTO
            .iter()
            .position(|&t| t == proto)
            .unwrap_or(PROTO.len())
    } else {
        PROTO.len()
    };
    e * N_PROTO + p
}

/// Per class, the rule id (as the classifier returns it) every frame of the class gets
/// from a table, or [`LOOKUP`]: `exact` as the classifier would answer; `quiet` for
/// walks that record nothing (no trace), where a table whose every flow the class
/// can reach says only `next;` is passed over (with the `skip` bit) even when a
/// lookup would have found one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outcomes {
    pub(super) exact: [u32; N],
    pub(super) quiet: [u32; N],
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            exact: [LOOKUP; N],
            quiet: [LOOKUP; N],
        }
    }
}

impl Outcomes {
    /// From a table's flows in lookup order: (rule id, its classes, whether its only
    /// action is `next;`). `skip` is the bit that tells the walk to go on to the next
    /// table. Reads flows only until every class is decided.
    pub(super) fn new(
        flows: impl IntoIterator<Item = (u32, FlowClasses, bool)>,
        skip: u32,
    ) -> Outcomes {
        let mut out = Outcomes::default();
        let (mut exact, mut quiet) = (ALL, ALL);
        // Classes that passed a `next;` flow they might match.
        let mut passed: Set = 0;
        for (id, c, next_only) in flows {
            let mut met = c.can & exact;
            exact &= !met;
            while met != 0 {
                let i = met.trailing_zeros() as usize;
                met &= met - 1;
                if c.all & (1 << i) != 0 {
                    out.exact[i] = id;
                }
            }
            let mut met = c.can & quiet;
            while met != 0 {
                let i = met.trailing_zeros() as usize;
                met &= met - 1;
                let bit = 1 << i;
                if next_only && c.all & bit == 0 {
                    passed |= bit;
                    continue;
                }
                quiet &= !bit;
                if c.all & bit != 0 {
                    out.quiet[i] = match (next_only, passed & bit != 0) {
                        (true, _) => id | skip,
                        (false, false) => id,
                        (false, true) => LOOKUP,
                    };
                }
            }
            if exact | quiet == 0 {
                break;
            }
        }
        out
    }
}

/// Which classes a flow's match can match, and which it matches whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FlowClasses {
    pub(super) can: Set,
    pub(super) all: Set,
}

impl FlowClasses {
    /// From a flow's conjunctions (`CONJ` headers, each followed by its terms).
    pub(super) fn of_terms(terms: &[Term]) -> FlowClasses {
        let mut out = FlowClasses::default();
        let mut i = 0;
        while i < terms.len() {
            debug_assert_eq!(terms[i].0, CONJ);
            let n = terms[i].1 as usize;
            let (can, all) = conj(&terms[i + 1..i + 1 + n]);
            out.can |= can;
            out.all |= all & can;
            i += 1 + n;
        }
        out
    }
}

/// The classes of one conjunction's terms: (can match, matches whole).
fn conj(terms: &[Term]) -> (Set, Set) {
    let (eth, proto) = (Field::EthType.loc(), Field::IpProto.loc());
    let (mut can, mut all) = (ALL, ALL);
    for &(w, m, v) in terms {
        let (own, bits) = if w == eth.word {
            (eth_classes(m & 0xffff, v), 0xffff)
        } else if w == proto.word {
            (proto_classes(m & 0xff, v), 0xff)
        } else {
            (Own { can: ALL, exact: 0 }, 0)
        };
        can &= own.can;
        all &= own.exact;
        if m & !bits != 0 {
            all = 0;
        }
    }
    (can, all)
}

/// Per term: the classes it can match, and those where it holds for every frame.
struct Own {
    can: Set,
    exact: Set,
}

/// The classes with ethertype index `e`.
fn eth_set(e: usize) -> Set {
    ((1 << N_PROTO) - 1) << (e * N_PROTO)
}

/// The IP classes with protocol index `p`.
fn proto_set(p: usize) -> Set {
    (1 << p) | (1 << (N_PROTO + p))
}

fn eth_classes(m: u64, v: u64) -> Own {
    if m == 0 {
        return Own {
            can: ALL,
            exact: ALL,
        };
    }
    let mut own = Own { can: 0, exact: 0 };
    for (e, &t) in ETH.iter().enumerate() {
        if (t ^ v) & m == 0 {
            own.can |= eth_set(e);
            own.exact |= eth_set(e);
        }
    }
    // Other ethertypes: any value unless the term names a known one whole.
    if m != 0xffff || !ETH.contains(&(v & 0xffff)) {
        own.can |= eth_set(ETH.len());
    }
    own
}

fn proto_classes(m: u64, v: u64) -> Own {
    if m == 0 {
        return Own {
            can: ALL,
            exact: ALL,
        };
    }
    let ip = eth_set(0) | eth_set(1);
    // Not IP: the field is ARP's opcode or unknown.
    let mut own = Own {
        can: !ip & ALL,
        exact: 0,
    };
    for (p, &t) in PROTO.iter().enumerate() {
        if (t ^ v) & m == 0 {
            own.can |= proto_set(p);
            own.exact |= proto_set(p);
        }
    }
    if m != 0xff || !PROTO.contains(&(v & 0xff)) {
        own.can |= proto_set(PROTO.len());
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::ETH_TYPE_RARP;

    fn flow(eth: u16, proto: u8) -> Flow {
        let mut f = Flow::default();
        f.set(Field::EthType, eth.into());
        f.set(Field::IpProto, proto.into());
        f
    }

    fn terms(ts: &[(Field, u64, u64)]) -> Vec<Term> {
        let mut out = vec![(CONJ, ts.len() as u64, 0)];
        for &(f, m, v) in ts {
            let l = f.loc();
            out.push((l.word, m << l.shift, v << l.shift));
        }
        out
    }

    /// A term's classes agree with the frames: a class it "can" match has a frame it
    /// matches, a class it matches "all" of has none it does not, a class it cannot
    /// match has none it does.
    #[test]
    fn classes_agree_with_frames() {
        let eths = [
            ETH_TYPE_IP,
            ETH_TYPE_IPV6,
            ETH_TYPE_ARP,
            ETH_TYPE_RARP,
            0x88cc,
        ];
        let protos = [1u8, 6, 17, 58, 132, 2, 0, 255];
        let matches: Vec<Vec<(Field, u64, u64)>> = vec![
            vec![],
            vec![(Field::EthType, 0xffff, 0x800)],
            vec![(Field::EthType, 0xffff, 0x8035)],
            vec![(Field::EthType, 0xffff, 0x800), (Field::IpProto, 0xff, 17)],
            vec![(Field::EthType, 0xffff, 0x86dd), (Field::IpProto, 0xff, 2)],
            vec![(Field::EthType, 0xffff, 0x806), (Field::IpProto, 0xff, 1)],
            vec![(Field::IpProto, 0xfe, 0)],
            vec![(Field::EthType, 0xff00, 0x800)],
            vec![(Field::EthType, 0xffff, 0x800), (Field::IpTtl, 0xff, 1)],
            vec![(Field::EthType, 0xffff, 0x800), (Field::EthSrc, 1, 1)],
        ];
        for m in &matches {
            let fc = FlowClasses::of_terms(&terms(m));
            let hits = |f: &Flow| {
                m.iter()
                    .all(|&(fl, mask, v)| (f.get(fl) as u64 & mask) == v & mask)
            };
            for &e in &eths {
                for &p in &protos {
                    let f = flow(e, p);
                    let c = of(&f);
                    if hits(&f) {
                        assert!(fc.can & (1 << c) != 0, "{m:?} {e:#x}/{p}: can");
                    } else {
                        assert!(fc.all & (1 << c) == 0, "{m:?} {e:#x}/{p}: all");
                    }
                }
            }
        }
        // Exactness where it is claimed: ICMPv4 frames all match `ip4`.
        let ip4 = FlowClasses::of_terms(&terms(&[(Field::EthType, 0xffff, 0x800)]));
        assert!(ip4.all & (1 << of(&flow(0x800, 1))) != 0);
        assert!(ip4.can & (1 << of(&flow(0x806, 1))) == 0);
    }

    #[test]
    fn first_flow_a_class_can_match_decides_it() {
        let arp = FlowClasses::of_terms(&terms(&[(Field::EthType, 0xffff, 0x806)]));
        let ttl = FlowClasses::of_terms(&terms(&[(Field::IpTtl, 0xff, 1)]));
        let any = FlowClasses::of_terms(&terms(&[]));
        const SKIP: u32 = 1 << 31;
        let o = Outcomes::new([(7, arp, false), (8, any, false)], SKIP);
        assert_eq!(o.exact[of(&flow(0x806, 1))], 7);
        assert_eq!(o.exact[of(&flow(0x800, 1))], 8);
        let o = Outcomes::new([(7, arp, false), (9, ttl, false), (8, any, false)], SKIP);
        assert_eq!(o.exact[of(&flow(0x806, 1))], 7);
        assert_eq!(o.exact[of(&flow(0x800, 1))], LOOKUP);
        assert_eq!(o.quiet, o.exact);
        // A `next;` flow the class might match, then a catch-all `next;`: passed over
        // quietly, looked up exactly.
        let o = Outcomes::new([(7, arp, false), (9, ttl, true), (8, any, true)], SKIP);
        assert_eq!(o.exact[of(&flow(0x800, 1))], LOOKUP);
        assert_eq!(o.quiet[of(&flow(0x800, 1))], 8 | SKIP);
        assert_eq!(o.quiet[of(&flow(0x806, 1))], 7);
        // ... unless the flow after it does something.
        let o = Outcomes::new([(9, ttl, true), (8, any, false)], SKIP);
        assert_eq!(o.quiet[of(&flow(0x800, 1))], LOOKUP);
    }
}
