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

/// The exact outcome of a class whose few candidate flows are checked in order
/// ([`Outcomes::list`]).
pub(super) const LIST: u32 = u32::MAX - 1;

/// A class's list holds at most this many conjunctions...
const MAX_ENTRIES: usize = 6;
/// ... of at most this many terms each (beyond the class's own).
pub(super) const MAX_TERMS: usize = 3;

/// One conjunction of a list: its flow's rule id and its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) id: u32,
    n: u8,
    terms: [Term; MAX_TERMS],
}

impl Entry {
    /// Its terms (beyond the class's own).
    pub(super) fn terms(&self) -> &[Term] {
        &self.terms[..usize::from(self.n)]
    }

    #[inline(always)]
    fn matches(&self, flow: &Flow) -> bool {
        self.terms[..usize::from(self.n)]
            .iter()
            .all(|&(w, m, v)| flow.w[usize::from(w)] & m == v)
    }
}

/// Per class, what a table gives every frame of the class. `exact`, as the classifier
/// would answer: a rule id (as the classifier returns it), [`LIST`] (the few flows the
/// class can match, checked in lookup order: `spans` into `entries`), or [`LOOKUP`].
/// `quiet`, for walks that record nothing (no trace): a table whose every flow the
/// class can reach says only `next;` is passed over (with the `skip` bit) even when a
/// lookup would have found one of them; [`LOOKUP`] defers to `exact`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcomes {
    pub(super) exact: [u32; N],
    pub(super) quiet: [u32; N],
    spans: [(u16, u16); N],
    entries: Vec<Entry>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            exact: [LOOKUP; N],
            quiet: [LOOKUP; N],
            spans: [(0, 0); N],
            entries: Vec::new(),
        }
    }
}

impl Outcomes {
    /// From a table's flows in lookup order: (rule id, its classes, whether its only
    /// action is `next;`, its terms). `skip` is the bit that tells the walk to go on to
    /// the next table. Reads flows only until every class is decided.
    pub(super) fn new<'a>(
        flows: impl IntoIterator<Item = (u32, FlowClasses, bool, &'a [Term])>,
        skip: u32,
    ) -> Outcomes {
        let mut out = Outcomes::default();
        let (mut exact, mut quiet) = (ALL, ALL);
        // Classes that passed a `next;` flow they might match.
        let mut passed: Set = 0;
        // The lists being gathered, for classes in `exact`.
        let mut lists: [Vec<Entry>; N] = std::array::from_fn(|_| Vec::new());
        for (id, c, next_only, terms) in flows {
            let mut met = c.can & exact;
            while met != 0 {
                let i = met.trailing_zeros() as usize;
                met &= met - 1;
                let list = &mut lists[i];
                if c.all & (1 << i) != 0 {
                    // Every frame of the class matches it: nothing after it counts.
                    exact &= !(1 << i);
                    if list.is_empty() {
                        out.exact[i] = id;
                    } else {
                        list.push(Entry {
                            id,
                            n: 0,
                            terms: [(0, 0, 0); MAX_TERMS],
                        });
                        out.exact[i] = LIST;
                    }
                } else if !add_conjs(list, id, terms, i) {
                    exact &= !(1 << i);
                    list.clear();
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
        // Classes no flow matches whole: their list is all they can match (possibly
        // nothing: an implicit drop).
        let mut open = exact;
        while open != 0 {
            let i = open.trailing_zeros() as usize;
            open &= open - 1;
            out.exact[i] = LIST;
        }
        for (i, list) in lists.iter().enumerate() {
            if out.exact[i] != LIST {
                continue;
            }
            // Classes often share a list (a register test, then the catch-all).
            let same = (0..i).find(|&j| {
                out.exact[j] == LIST && {
                    let (s, n) = out.spans[j];
                    out.entries[usize::from(s)..usize::from(s + n)] == list[..]
                }
            });
            out.spans[i] = match same {
                Some(j) => out.spans[j],
                None => {
                    let s = out.entries.len() as u16;
                    out.entries.extend_from_slice(list);
                    (s, list.len() as u16)
                }
            };
        }
        out
    }

    /// Where the list of `class` is in the table's entries (classes may share one).
    pub(super) fn span(&self, class: usize) -> (u16, u16) {
        self.spans[class]
    }

    /// The list of `class`, in lookup order.
    pub(super) fn entries(&self, class: usize) -> &[Entry] {
        let (s, n) = self.spans[class];
        &self.entries[usize::from(s)..usize::from(s + n)]
    }

    /// The rule the list of `class` gives `flow`: the first entry it matches.
    #[inline(always)]
    pub(super) fn list(&self, class: usize, flow: &Flow) -> Option<u32> {
        let (s, n) = self.spans[class];
        self.entries[usize::from(s)..usize::from(s + n)]
            .iter()
            .find(|e| e.matches(flow))
            .map(|e| e.id)
    }
}

/// Adds the conjunctions of flow `id` that class `class` can match to its list, without
/// the terms the class implies; false when the list would grow too long.
fn add_conjs(list: &mut Vec<Entry>, id: u32, terms: &[Term], class: usize) -> bool {
    let (eth, proto) = (Field::EthType.loc(), Field::IpProto.loc());
    let mut i = 0;
    while i < terms.len() {
        let n = terms[i].1 as usize;
        let conj_terms = &terms[i + 1..i + 1 + n];
        i += 1 + n;
        if conj(conj_terms).0 & (1 << class) == 0 {
            continue;
        }
        let mut e = Entry {
            id,
            n: 0,
            terms: [(0, 0, 0); MAX_TERMS],
        };
        for &(w, m, v) in conj_terms {
            // A term on the class's own fields alone, which the class can match, is
            // implied when the class knows that field's value.
            let implied = (w == eth.word && m == 0xffff && class / N_PROTO < ETH.len())
                || (w == proto.word
                    && m == 0xff
                    && class / N_PROTO < 2
                    && class % N_PROTO < PROTO.len());
            if implied {
                continue;
            }
            if usize::from(e.n) == MAX_TERMS {
                return false;
            }
            e.terms[usize::from(e.n)] = (w, m, v);
            e.n += 1;
        }
        if list.len() == MAX_ENTRIES {
            return false;
        }
        list.push(e);
    }
    true
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
        const SKIP: u32 = 1 << 31;
        let arp = terms(&[(Field::EthType, 0xffff, 0x806)]);
        let ttl = terms(&[(Field::IpTtl, 0xff, 1)]);
        let any = terms(&[]);
        let outcomes = |flows: &[(u32, &Vec<Term>, bool)]| {
            Outcomes::new(
                flows
                    .iter()
                    .map(|&(id, t, next)| (id, FlowClasses::of_terms(t), next, &t[..])),
                SKIP,
            )
        };
        let (arp_f, ip4_f) = (flow(0x806, 1), flow(0x800, 1));
        let o = outcomes(&[(7, &arp, false), (8, &any, false)]);
        assert_eq!(o.exact[of(&arp_f)], 7);
        assert_eq!(o.exact[of(&ip4_f)], 8);
        // A flow the class may or may not match, then the catch-all: a list.
        let o = outcomes(&[(7, &arp, false), (9, &ttl, false), (8, &any, false)]);
        assert_eq!(o.exact[of(&arp_f)], 7);
        assert_eq!(o.exact[of(&ip4_f)], LIST);
        assert_eq!(o.list(of(&ip4_f), &ip4_f), Some(8));
        let mut ttl1 = ip4_f;
        ttl1.set(Field::IpTtl, 1);
        assert_eq!(o.list(of(&ttl1), &ttl1), Some(9));
        // No catch-all: a frame no listed flow matches gets none.
        let o = outcomes(&[(7, &arp, false), (9, &ttl, false)]);
        assert_eq!(o.exact[of(&ip4_f)], LIST);
        assert_eq!(o.list(of(&ip4_f), &ip4_f), None);
        // A `next;` flow the class might match, then a catch-all `next;`: passed over
        // quietly.
        let o = outcomes(&[(7, &arp, false), (9, &ttl, true), (8, &any, true)]);
        assert_eq!(o.exact[of(&ip4_f)], LIST);
        assert_eq!(o.quiet[of(&ip4_f)], 8 | SKIP);
        assert_eq!(o.quiet[of(&arp_f)], 7);
        // ... unless the flow after it does something.
        let o = outcomes(&[(9, &ttl, true), (8, &any, false)]);
        assert_eq!(o.quiet[of(&ip4_f)], LOOKUP);
        // Too many candidates: a lookup.
        let many: Vec<Vec<Term>> = (0..=MAX_ENTRIES as u64)
            .map(|t| terms(&[(Field::IpTtl, 0xff, t)]))
            .collect();
        let mut flows: Vec<(u32, &Vec<Term>, bool)> = many
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u32, t, false))
            .collect();
        flows.push((99, &any, false));
        assert_eq!(outcomes(&flows).exact[of(&ip4_f)], LOOKUP);
    }
}
