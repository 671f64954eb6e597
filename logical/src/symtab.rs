//! OVN's logical fields (lib/logical-fields.c): every symbol a match or action may name,
//! with its width, what it stands for (a field, a bit range of another symbol, a
//! predicate expanding to an expression, or a string naming a logical port), its level
//! of measurement and its prerequisites (`ip4.src` implies `eth.type == 0x800`).

use rustc_hash::FxHashMap;

use crate::flow::Field;

/// Index of a symbol in a [`SymbolTable`].
pub type SymId = u16;

/// Level of measurement (OVN's `enum expr_level`): what comparisons make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only equality: identifiers such as an Ethertype.
    Nominal,
    /// A predicate over ordinal fields: may be tested either way.
    Boolean,
    /// Bits may be examined one by one: all relations.
    Ordinal,
}

/// Write scopes (OVN's `enum expr_write_scope`).
pub const WR_DEFAULT: u8 = 1;
pub const WR_CT_COMMIT: u8 = 2;

/// The OVN-only fields that exist in the controller's packet rewrite, not in OVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OvnField {
    Icmp4FragMtu,
    Icmp6FragMtu,
}

impl OvnField {
    pub fn name(self) -> &'static str {
        match self {
            OvnField::Icmp4FragMtu => "icmp4.frag_mtu",
            OvnField::Icmp6FragMtu => "icmp6.frag_mtu",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolKind {
    /// An OVS field.
    Field(Field),
    /// Bits `ofs..ofs + width` of another symbol.
    Subfield {
        parent: SymId,
        ofs: u32,
    },
    /// A Boolean expression, e.g. `ip4` is `eth.type == 0x800`.
    Predicate(String),
    /// A logical port name, held as its tunnel key in `field`.
    String(Field),
    Ovn(OvnField),
}

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    /// Bits; 0 for string symbols.
    pub width: u32,
    pub kind: SymbolKind,
    pub level: Level,
    pub prereqs: Option<String>,
    pub must_crossproduct: bool,
    /// Scopes in which it may be written (`WR_*` bits); 0 when read-only.
    pub rw: u8,
}

/// OVN's symbol table, built once.
pub fn symtab() -> &'static SymbolTable {
    static TABLE: std::sync::LazyLock<SymbolTable> = std::sync::LazyLock::new(SymbolTable::ovn);
    &TABLE
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&symtab().format_ref(*self))
    }
}

impl FieldRef {
    /// The OVS field and bits this reference reads.
    #[inline]
    pub fn resolve(self) -> Subfield {
        symtab().resolve(self)
    }

    pub fn symbol(self) -> &'static Symbol {
        symtab().get(self.sym)
    }
}

/// The symbol table ovn-controller and ovn-trace build with `ovn_init_symtab`.
#[derive(Debug, Clone)]
pub struct SymbolTable {
    syms: Vec<Symbol>,
    by_name: FxHashMap<String, SymId>,
    /// Each symbol resolved once ([`SymbolTable::resolve`] runs per action executed).
    /// With it, whether the result is the same whatever the reference's bit range
    /// (strings, predicates, OVN fields).
    resolved: Vec<(Subfield, bool)>,
}

/// A reference to a symbol or a bit range of it (OVN's `struct expr_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldRef {
    pub sym: SymId,
    pub ofs: u32,
    pub n_bits: u32,
}

/// A field reference resolved to the OVS field it reads (OVN's `expr_resolve_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subfield {
    pub field: Field,
    pub ofs: u32,
    pub n_bits: u32,
}

impl SymbolTable {
    /// OVN 23.03's logical fields.
    pub fn ovn() -> SymbolTable {
        let mut t = SymbolTable {
            syms: Vec::with_capacity(160),
            by_name: FxHashMap::default(),
            resolved: Vec::new(),
        };
        t.add_string("inport", Field::Reg(14));
        t.add_string("outport", Field::Reg(15));

        // Registers: xxreg0/1 are fields; xreg0..3 and reg0..7 are their subfields;
        // xreg4 is a field with reg8/9 as its halves (MFF_N_LOG_REGS = 10).
        for i in 0..2u8 {
            t.add_field(&format!("xxreg{i}"), Field::Xxreg(i), None, false);
        }
        for xi in 0..5u8 {
            let name = format!("xreg{xi}");
            if xi / 2 < 2 {
                let ofs = 64 * (1 - u32::from(xi % 2));
                t.add_subfield(&name, None, &format!("xxreg{}", xi / 2), ofs, 64);
            } else {
                t.add_field(&name, Field::Xreg(xi), None, false);
            }
        }
        for i in 0..10u8 {
            let name = format!("reg{i}");
            if i / 4 < 2 {
                let ofs = 32 * (3 - u32::from(i % 4));
                t.add_subfield(&name, None, &format!("xxreg{}", i / 4), ofs, 32);
            } else {
                let ofs = 32 * (1 - u32::from(i % 2));
                t.add_subfield(&name, None, &format!("xreg{}", i / 2), ofs, 32);
            }
        }

        t.add_field("flags", Field::Reg(10), None, false);
        t.add_subfield("flags.loopback", None, "flags", 0, 1);
        t.add_subfield("flags.force_snat_for_dnat", None, "flags", 2, 1);
        t.add_subfield("flags.force_snat_for_lb", None, "flags", 3, 1);
        t.add_subfield("flags.skip_snat_for_lb", None, "flags", 9, 1);
        t.add_subfield("flags.use_snat_zone", None, "flags", 11, 1);

        t.add_field_scoped("ct_mark", Field::CtMark, None, false, WR_CT_COMMIT);
        for (name, ofs, w) in [
            ("ct_mark.blocked", 0, 1),
            ("ct_mark.natted", 1, 1),
            ("ct_mark.ecmp_reply_port", 16, 16),
            ("ct_mark.skip_snat", 2, 1),
            ("ct_mark.force_snat", 3, 1),
        ] {
            t.add_subfield_scoped(name, None, "ct_mark", ofs, w, WR_CT_COMMIT);
        }
        t.add_field_scoped("ct_label", Field::CtLabel, None, false, WR_CT_COMMIT);
        for (name, ofs, w) in [
            ("ct_label.blocked", 0, 1),
            ("ct_label.natted", 1, 1),
            ("ct_label.ecmp_reply_eth", 32, 48),
            ("ct_label.ecmp_reply_port", 80, 16),
            ("ct_label.label", 96, 32),
            ("ct_label.skip_snat", 2, 1),
            ("ct_label.force_snat", 3, 1),
        ] {
            t.add_subfield_scoped(name, None, "ct_label", ofs, w, WR_CT_COMMIT);
        }
        t.add_field("ct_state", Field::CtState, None, false);
        for (i, name) in crate::flow::cs::NAMES.iter().enumerate() {
            let prereq = if *name == "trk" { None } else { Some("ct.trk") };
            t.add_subfield(&format!("ct.{name}"), prereq, "ct_state", i as u32, 1);
        }

        t.add_field("eth.src", Field::EthSrc, None, false);
        t.add_field("eth.dst", Field::EthDst, None, false);
        t.add_field("eth.type", Field::EthType, None, true);
        t.add_predicate("eth.bcast", "eth.dst == ff:ff:ff:ff:ff:ff");
        t.add_subfield("eth.mcast", None, "eth.dst", 40, 1);
        t.add_predicate("eth.mcastv6", "eth.dst[32..47] == 0x3333");

        t.add_field("vlan.tci", Field::VlanTci, None, false);
        t.add_predicate("vlan.present", "vlan.tci[12]");
        t.add_subfield("vlan.pcp", Some("vlan.present"), "vlan.tci", 13, 3);
        t.add_subfield("vlan.vid", Some("vlan.present"), "vlan.tci", 0, 12);

        t.add_predicate("ip4", "eth.type == 0x800");
        t.add_predicate("ip6", "eth.type == 0x86dd");
        t.add_predicate("ip", "ip4 || ip6");
        t.add_field("ip.proto", Field::IpProto, Some("ip"), true);
        t.add_field("ip.dscp", Field::IpDscp, Some("ip"), false);
        t.add_field("ip.ecn", Field::IpEcn, Some("ip"), false);
        t.add_field("ip.ttl", Field::IpTtl, Some("ip"), false);

        t.add_field("ip4.src", Field::Ipv4Src, Some("ip4"), false);
        t.add_field("ip4.dst", Field::Ipv4Dst, Some("ip4"), false);
        t.add_predicate("ip4.src_mcast", "ip4.src[28..31] == 0xe");
        t.add_predicate("ip4.mcast", "eth.mcast && ip4.dst[28..31] == 0xe");

        t.add_predicate("icmp4", "ip4 && ip.proto == 1");
        t.add_field("icmp4.type", Field::Icmpv4Type, Some("icmp4"), false);
        t.add_field("icmp4.code", Field::Icmpv4Code, Some("icmp4"), false);

        t.add_predicate("igmp", "ip4 && ip.proto == 2");

        t.add_field("ip6.src", Field::Ipv6Src, Some("ip6"), false);
        t.add_field("ip6.dst", Field::Ipv6Dst, Some("ip6"), false);
        t.add_field("ip6.label", Field::Ipv6Label, Some("ip6"), false);

        t.add_predicate(
            "ip6.mcast_rsvd",
            "ip6.dst[116..127] == 0xff0 && ip6.dst[0..111] == 0x0",
        );
        t.add_predicate(
            "ip6.mcast_all_nodes",
            "ip6.dst == ff01::1 || ip6.dst == ff02::1",
        );
        t.add_predicate(
            "ip6.mcast_all_rtrs",
            "ip6.dst == ff01::2 || ip6.dst == ff02::2 || ip6.dst == ff05::2",
        );
        t.add_predicate("ip6.mcast_sol_node", "ip6.dst == ff02::1:ff00:0000/104");
        t.add_predicate(
            "ip6.mcast_flood",
            "eth.mcastv6 && (ip6.mcast_rsvd || ip6.mcast_all_nodes || ip6.mcast_all_rtrs || ip6.mcast_sol_node)",
        );
        t.add_predicate("ip6.mcast", "eth.mcastv6 && ip6.dst[120..127] == 0xff");

        t.add_predicate("icmp6", "ip6 && ip.proto == 58");
        t.add_field("icmp6.type", Field::Icmpv6Type, Some("icmp6"), true);
        t.add_field("icmp6.code", Field::Icmpv6Code, Some("icmp6"), true);

        t.add_predicate("icmp", "icmp4 || icmp6");

        t.add_field("ip.frag", Field::IpFrag, Some("ip"), false);
        t.add_predicate("ip.is_frag", "ip.frag[0]");
        t.add_predicate("ip.later_frag", "ip.frag[1]");
        t.add_predicate("ip.first_frag", "ip.is_frag && !ip.later_frag");

        t.add_predicate("arp", "eth.type == 0x806");
        t.add_field("arp.op", Field::ArpOp, Some("arp"), false);
        t.add_field("arp.spa", Field::ArpSpa, Some("arp"), false);
        t.add_field("arp.sha", Field::ArpSha, Some("arp"), false);
        t.add_field("arp.tpa", Field::ArpTpa, Some("arp"), false);
        t.add_field("arp.tha", Field::ArpTha, Some("arp"), false);

        // RARP shares ARP's fields; OVN adds them as subfields of a second name.
        t.add_predicate("rarp", "eth.type == 0x8035");
        for (name, f) in [
            ("rarp.op", Field::ArpOp),
            ("rarp.spa", Field::ArpSpa),
            ("rarp.sha", Field::ArpSha),
            ("rarp.tpa", Field::ArpTpa),
            ("rarp.tha", Field::ArpTha),
        ] {
            t.add_alias(name, f, "rarp");
        }

        t.add_predicate(
            "nd",
            "icmp6.type == {135, 136} && icmp6.code == 0 && ip.ttl == 255",
        );
        t.add_predicate(
            "nd_ns",
            "icmp6.type == 135 && icmp6.code == 0 && ip.ttl == 255",
        );
        t.add_predicate(
            "nd_na",
            "icmp6.type == 136 && icmp6.code == 0 && ip.ttl == 255",
        );
        t.add_predicate(
            "nd_rs",
            "icmp6.type == 133 && icmp6.code == 0 && ip.ttl == 255",
        );
        t.add_predicate(
            "nd_ra",
            "icmp6.type == 134 && icmp6.code == 0 && ip.ttl == 255",
        );
        t.add_field("nd.target", Field::NdTarget, Some("nd"), false);
        t.add_field("nd.sll", Field::NdSll, Some("nd_ns"), false);
        t.add_field("nd.tll", Field::NdTll, Some("nd_na"), false);

        t.add_predicate(
            "mldv1",
            "ip6.src == fe80::/10 && icmp6.type == {130, 131, 132}",
        );
        t.add_predicate("mldv2", "ip6.dst == ff02::16 && icmp6.type == 143");

        t.add_predicate("tcp", "ip.proto == 6");
        t.add_field("tcp.src", Field::TcpSrc, Some("tcp"), false);
        t.add_field("tcp.dst", Field::TcpDst, Some("tcp"), false);
        t.add_field("tcp.flags", Field::TcpFlags, Some("tcp"), false);

        t.add_predicate("udp", "ip.proto == 17");
        t.add_field("udp.src", Field::UdpSrc, Some("udp"), false);
        t.add_field("udp.dst", Field::UdpDst, Some("udp"), false);

        t.add_predicate("sctp", "ip.proto == 132");
        t.add_field("sctp.src", Field::SctpSrc, Some("sctp"), false);
        t.add_field("sctp.dst", Field::SctpDst, Some("sctp"), false);

        t.add_field("pkt.mark", Field::PktMark, None, false);

        t.add_ovn_field("icmp4.frag_mtu", OvnField::Icmp4FragMtu, 16);
        t.add_ovn_field("icmp6.frag_mtu", OvnField::Icmp6FragMtu, 32);
        t.resolved = (0..t.syms.len())
            .map(|i| {
                let r = FieldRef {
                    sym: i as SymId,
                    ofs: 0,
                    n_bits: 0,
                };
                // Fixed: the walk ignores the bit range (it ended at no field).
                let other = FieldRef {
                    ofs: 1,
                    n_bits: 1,
                    ..r
                };
                let fixed = t.resolve_walk(r) == t.resolve_walk(other);
                (t.resolve_walk(r), fixed)
            })
            .collect();
        t
    }

    pub fn lookup(&self, name: &str) -> Option<SymId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, id: SymId) -> &Symbol {
        &self.syms[id as usize]
    }

    pub fn symbols(&self) -> impl Iterator<Item = (SymId, &Symbol)> {
        self.syms.iter().enumerate().map(|(i, s)| (i as SymId, s))
    }

    /// The OVS field and bit range a reference reads.
    #[inline]
    pub fn resolve(&self, r: FieldRef) -> Subfield {
        match self.resolved.get(r.sym as usize) {
            Some(&(base, true)) => base,
            Some(&(base, false)) => Subfield {
                field: base.field,
                ofs: base.ofs + r.ofs,
                n_bits: r.n_bits,
            },
            None => self.resolve_walk(r),
        }
    }

    fn resolve_walk(&self, r: FieldRef) -> Subfield {
        let mut sym = self.get(r.sym);
        let mut ofs = r.ofs;
        loop {
            match &sym.kind {
                SymbolKind::Subfield { parent, ofs: p } => {
                    ofs += p;
                    sym = self.get(*parent);
                }
                SymbolKind::Field(f) => {
                    return Subfield {
                        field: *f,
                        ofs,
                        n_bits: r.n_bits,
                    };
                }
                SymbolKind::String(f) => {
                    return Subfield {
                        field: *f,
                        ofs: 0,
                        n_bits: f.width(),
                    };
                }
                SymbolKind::Predicate(_) | SymbolKind::Ovn(_) => {
                    // Predicates and OVN fields never resolve to storage; callers
                    // reject them before resolving.
                    return Subfield {
                        field: Field::Reg(0),
                        ofs: 0,
                        n_bits: 0,
                    };
                }
            }
        }
    }

    /// Formats a field reference as OVN does (`reg0[1..3]`, `flags.loopback`).
    pub fn format_ref(&self, r: FieldRef) -> String {
        let sym = self.get(r.sym);
        if r.ofs != 0 || r.n_bits != sym.width {
            if r.n_bits != 1 {
                format!("{}[{}..{}]", sym.name, r.ofs, r.ofs + r.n_bits - 1)
            } else {
                format!("{}[{}]", sym.name, r.ofs)
            }
        } else {
            sym.name.clone()
        }
    }

    fn push(&mut self, sym: Symbol) -> SymId {
        let id = self.syms.len() as SymId;
        self.by_name.insert(sym.name.clone(), id);
        self.syms.push(sym);
        id
    }

    fn add_field(&mut self, name: &str, f: Field, prereqs: Option<&str>, cross: bool) {
        self.add_field_scoped(name, f, prereqs, cross, WR_DEFAULT);
    }

    fn add_field_scoped(
        &mut self,
        name: &str,
        f: Field,
        prereqs: Option<&str>,
        cross: bool,
        scope: u8,
    ) {
        self.push(Symbol {
            name: name.into(),
            width: f.width(),
            kind: SymbolKind::Field(f),
            level: if f.maskable() {
                Level::Ordinal
            } else {
                Level::Nominal
            },
            prereqs: prereqs.map(Into::into),
            must_crossproduct: cross,
            rw: if writable(f) { scope } else { 0 },
        });
    }

    /// A second name for an OVS field (RARP's fields are ARP's).
    fn add_alias(&mut self, name: &str, f: Field, prereqs: &str) {
        self.add_field(name, f, Some(prereqs), false);
    }

    fn add_subfield(&mut self, name: &str, prereqs: Option<&str>, parent: &str, ofs: u32, w: u32) {
        self.add_subfield_scoped(name, prereqs, parent, ofs, w, WR_DEFAULT);
    }

    fn add_subfield_scoped(
        &mut self,
        name: &str,
        prereqs: Option<&str>,
        parent: &str,
        ofs: u32,
        w: u32,
        scope: u8,
    ) {
        let pid = self.lookup(parent).expect("subfield parent defined first");
        let p = self.get(pid);
        let (level, rw) = (p.level, if p.rw != 0 { scope } else { 0 });
        self.push(Symbol {
            name: name.into(),
            width: w,
            kind: SymbolKind::Subfield { parent: pid, ofs },
            level,
            prereqs: prereqs.map(Into::into),
            must_crossproduct: false,
            rw,
        });
    }

    fn add_string(&mut self, name: &str, f: Field) {
        self.push(Symbol {
            name: name.into(),
            width: 0,
            kind: SymbolKind::String(f),
            level: Level::Nominal,
            prereqs: None,
            must_crossproduct: false,
            rw: WR_DEFAULT,
        });
    }

    fn add_predicate(&mut self, name: &str, expansion: &str) {
        let level = crate::expr::predicate_level(self, expansion);
        self.push(Symbol {
            name: name.into(),
            width: 1,
            kind: SymbolKind::Predicate(expansion.into()),
            level,
            prereqs: None,
            must_crossproduct: false,
            rw: 0,
        });
    }

    fn add_ovn_field(&mut self, name: &str, f: OvnField, width: u32) {
        self.push(Symbol {
            name: name.into(),
            width,
            kind: SymbolKind::Ovn(f),
            level: Level::Nominal,
            prereqs: None,
            must_crossproduct: false,
            rw: u8::MAX,
        });
    }
}

/// Whether OVS lets actions write the field.
fn writable(f: Field) -> bool {
    !matches!(
        f,
        Field::CtState | Field::EthType | Field::IpProto | Field::IpFrag | Field::TcpFlags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_resolve_to_ovs_layout() {
        let t = SymbolTable::ovn();
        let r = |name: &str| {
            let id = t.lookup(name).unwrap();
            t.resolve(FieldRef {
                sym: id,
                ofs: 0,
                n_bits: t.get(id).width,
            })
        };
        assert_eq!(r("reg0").field, Field::Xxreg(0));
        assert_eq!(r("reg0").ofs, 96);
        assert_eq!(r("reg3").ofs, 0);
        assert_eq!(r("reg4").field, Field::Xxreg(1));
        assert_eq!(r("xreg1").ofs, 0);
        assert_eq!(r("reg8").field, Field::Xreg(4));
        assert_eq!(r("reg8").ofs, 32);
        assert_eq!(r("flags.loopback").field, Field::Reg(10));
        assert_eq!(r("ct_label.label").ofs, 96);
        assert_eq!(r("vlan.vid").n_bits, 12);
    }

    #[test]
    fn levels() {
        let t = SymbolTable::ovn();
        let level = |n: &str| t.get(t.lookup(n).unwrap()).level;
        assert_eq!(level("eth.type"), Level::Nominal);
        assert_eq!(level("ip4"), Level::Nominal);
        assert_eq!(level("eth.bcast"), Level::Boolean);
        assert_eq!(level("ip4.src"), Level::Ordinal);
        assert_eq!(level("ct.est"), Level::Ordinal);
        assert_eq!(level("inport"), Level::Nominal);
    }
}
