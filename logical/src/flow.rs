//! The packet model: every header field and register OVN's logical flows match on or
//! write ([`Flow`]), and the fields themselves ([`Field`]) with their widths, their
//! place in the flow, how OVS prints them and when they may be set — OVS's
//! `struct flow` and meta-flow, reduced to what OVN uses.
//!
//! A flow is an array of 64-bit words so that the classifier can mask and hash it a
//! word at a time; fields that share a word are packed as OVS packs them (ARP's
//! opcode is `nw_proto`, ICMP's type and code are the transport ports, ND's link-layer
//! addresses are ARP's hardware addresses).

use std::fmt;

use crate::value::{self, Format};

/// Words in a [`Flow`].
pub const WORDS: usize = 25;

/// Connection tracking states (`ct_state` bits, OVS's `CS_*`).
pub mod cs {
    pub const NEW: u32 = 0x01;
    pub const ESTABLISHED: u32 = 0x02;
    pub const RELATED: u32 = 0x04;
    pub const REPLY_DIR: u32 = 0x08;
    pub const INVALID: u32 = 0x10;
    pub const TRACKED: u32 = 0x20;
    pub const SRC_NAT: u32 = 0x40;
    pub const DST_NAT: u32 = 0x80;
    /// Names in bit order, as OVS prints them.
    pub const NAMES: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];

    /// `est|trk`-style text (OVS's `format_flags` with `ct_state_to_string`).
    pub fn format(state: u32) -> String {
        let mut out = String::new();
        for (i, name) in NAMES.iter().enumerate() {
            if state & (1 << i) != 0 {
                if !out.is_empty() {
                    out.push('|');
                }
                out.push_str(name);
            }
        }
        if state >> 8 != 0 {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(&format!("0x{:x}", state & !0xff));
        }
        if out.is_empty() { "0".into() } else { out }
    }

    /// Parses `est,rpl`-style flags on top of `default` (OVS's `parse_ct_state`, as
    /// ovn-trace's `--ct` takes them: `trk` is always set).
    pub fn parse(s: &str, default: u32) -> Result<u32, String> {
        let mut state = default;
        for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
            let i = NAMES
                .iter()
                .position(|n| *n == part)
                .ok_or_else(|| format!("{part}: unknown connection tracking state flag"))?;
            state |= 1 << i;
        }
        Ok(state)
    }
}

/// Logical flags (`flags`, register 10), ovn-controller's `MLF_*` bits.
pub mod mlf {
    pub const ALLOW_LOOPBACK: u32 = 1 << 0;
    pub const LOOKUP_MAC_BIT: u32 = 6;
    pub const LOOKUP_LB_HAIRPIN_BIT: u32 = 7;
    pub const LOOKUP_FDB_BIT: u32 = 8;
    pub const CHECK_PORT_SEC_BIT: u32 = 12;
    pub const USE_LB_AFF_SESSION: u32 = 1 << 14;
}

/// IP fragment bits (`nw_frag`).
pub mod frag {
    pub const ANY: u8 = 1;
    pub const LATER: u8 = 2;
}

pub const ETH_TYPE_IP: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_RARP: u16 = 0x8035;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;

/// A microflow: the values of every field for one packet, plus the registers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flow {
    pub w: [u64; WORDS],
    /// The original direction's addresses of a tracked connection (OVS's `ct_nw_*`);
    /// not matched by logical flows, read by load-balancer hairpin checks.
    pub ct_nw_src: u32,
    pub ct_nw_dst: u32,
    pub ct_ipv6_src: u128,
    pub ct_ipv6_dst: u128,
    pub ct_nw_proto: u8,
    pub ct_tp_src: u16,
    pub ct_tp_dst: u16,
}

/// Where a field lives: `bits` bits at `shift` in word `word`; a 128-bit field spans
/// words `word` (high half) and `word + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub word: u8,
    pub shift: u8,
    pub bits: u8,
}

const fn loc(word: u8, shift: u8, bits: u8) -> Loc {
    Loc { word, shift, bits }
}

/// When a field may be written (OVS's `mf_are_prereqs_ok`): a set of a field whose
/// prerequisites the packet does not meet does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prereq {
    None,
    Ipv4,
    Ipv6,
    IpAny,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmpv4,
    Icmpv6,
    Nd,
    NdSolicit,
    NdAdvert,
}

/// How OVS prints a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Decimal,
    Hexadecimal,
    Ethernet,
    Ipv4,
    Ipv6,
    CtState,
    Frag,
    TcpFlags,
}

/// An OVS field OVN's symbols map to (meta-flow's `MFF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Metadata,
    Reg(u8),
    Xreg(u8),
    Xxreg(u8),
    PktMark,
    CtState,
    CtMark,
    CtLabel,
    EthSrc,
    EthDst,
    EthType,
    VlanTci,
    Ipv4Src,
    Ipv4Dst,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    IpProto,
    IpDscp,
    IpEcn,
    IpTtl,
    IpFrag,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    TcpSrc,
    TcpDst,
    TcpFlags,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    Icmpv4Type,
    Icmpv4Code,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
}

// Word assignments.
const W_META: u8 = 0;
const W_REGS: u8 = 1; // 1..=8: reg(2i) in the high half of word 1+i
const W_CT: u8 = 9; // ct_state low 32, ct_mark high 32
const W_CT_LABEL: u8 = 10; // 10..=11
const W_DL_DST: u8 = 12; // vlan_tci low 16, dl_dst high 48
const W_DL_SRC: u8 = 13; // dl_type low 16, dl_src high 48
const W_NW: u8 = 14; // nw_dst low 32, nw_src high 32
const W_IPV6_SRC: u8 = 15; // 15..=16
const W_IPV6_DST: u8 = 17; // 17..=18
const W_ND_TARGET: u8 = 19; // 19..=20
const W_TP_SRC: u8 = 21; // tp_src low 16, arp_sha high 48
const W_TP_DST: u8 = 22; // tp_dst low 16, arp_tha high 48
const W_IP: u8 = 23; // nw_proto 0..8, nw_tos 8..16, nw_ttl 16..24, nw_frag 24..32, tcp_flags 32..48
const W_MARK: u8 = 24; // pkt_mark low 32, ipv6_label 32..52

impl Field {
    /// The field's width in bits (meta-flow's `n_bits`).
    pub fn width(self) -> u32 {
        use Field::*;
        match self {
            Metadata | Xreg(_) => 64,
            Reg(_) | PktMark | CtState | CtMark | Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa => 32,
            Xxreg(_) | CtLabel | Ipv6Src | Ipv6Dst | NdTarget => 128,
            EthSrc | EthDst | ArpSha | ArpTha | NdSll | NdTll => 48,
            EthType | VlanTci | ArpOp | TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst => 16,
            Ipv6Label => 20,
            TcpFlags => 12,
            IpProto | IpTtl | Icmpv4Type | Icmpv4Code | Icmpv6Type | Icmpv6Code => 8,
            IpDscp => 6,
            IpEcn | IpFrag => 2,
        }
    }

    /// Where the field is stored. Fields narrower in storage than in width (ARP's
    /// opcode) read their high bits as zero.
    #[inline]
    pub fn loc(self) -> Loc {
        use Field::*;
        match self {
            Metadata => loc(W_META, 0, 64),
            Reg(i) => loc(W_REGS + i / 2, if i % 2 == 0 { 32 } else { 0 }, 32),
            Xreg(i) => loc(W_REGS + i, 0, 64),
            Xxreg(i) => loc(W_REGS + 2 * i, 0, 128),
            CtState => loc(W_CT, 0, 32),
            CtMark => loc(W_CT, 32, 32),
            CtLabel => loc(W_CT_LABEL, 0, 128),
            VlanTci => loc(W_DL_DST, 0, 16),
            EthDst => loc(W_DL_DST, 16, 48),
            EthType => loc(W_DL_SRC, 0, 16),
            EthSrc => loc(W_DL_SRC, 16, 48),
            Ipv4Dst | ArpTpa => loc(W_NW, 0, 32),
            Ipv4Src | ArpSpa => loc(W_NW, 32, 32),
            Ipv6Src => loc(W_IPV6_SRC, 0, 128),
            Ipv6Dst => loc(W_IPV6_DST, 0, 128),
            NdTarget => loc(W_ND_TARGET, 0, 128),
            TcpSrc | UdpSrc | SctpSrc => loc(W_TP_SRC, 0, 16),
            Icmpv4Type | Icmpv6Type => loc(W_TP_SRC, 0, 8),
            ArpSha | NdSll => loc(W_TP_SRC, 16, 48),
            TcpDst | UdpDst | SctpDst => loc(W_TP_DST, 0, 16),
            Icmpv4Code | Icmpv6Code => loc(W_TP_DST, 0, 8),
            ArpTha | NdTll => loc(W_TP_DST, 16, 48),
            IpProto | ArpOp => loc(W_IP, 0, 8),
            IpEcn => loc(W_IP, 8, 2),
            IpDscp => loc(W_IP, 10, 6),
            IpTtl => loc(W_IP, 16, 8),
            IpFrag => loc(W_IP, 24, 2),
            TcpFlags => loc(W_IP, 32, 12),
            PktMark => loc(W_MARK, 0, 32),
            Ipv6Label => loc(W_MARK, 32, 20),
        }
    }

    /// Whether OVS can match arbitrary bits of the field (an ordinal field in OVN).
    pub fn maskable(self) -> bool {
        use Field::*;
        !matches!(
            self,
            EthType
                | IpProto
                | IpDscp
                | IpEcn
                | IpTtl
                | ArpOp
                | Icmpv4Type
                | Icmpv4Code
                | Icmpv6Type
                | Icmpv6Code
        )
    }

    #[inline]
    pub fn is_register(self) -> bool {
        matches!(self, Field::Reg(_) | Field::Xreg(_) | Field::Xxreg(_))
    }

    #[inline]
    pub fn prereq(self) -> Prereq {
        use Field::*;
        match self {
            Metadata | Reg(_) | Xreg(_) | Xxreg(_) | PktMark | CtState | CtMark | CtLabel
            | EthSrc | EthDst | EthType | VlanTci => Prereq::None,
            Ipv4Src | Ipv4Dst => Prereq::Ipv4,
            Ipv6Src | Ipv6Dst | Ipv6Label => Prereq::Ipv6,
            IpProto | IpDscp | IpEcn | IpTtl | IpFrag => Prereq::IpAny,
            ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => Prereq::Arp,
            TcpSrc | TcpDst | TcpFlags => Prereq::Tcp,
            UdpSrc | UdpDst => Prereq::Udp,
            SctpSrc | SctpDst => Prereq::Sctp,
            Icmpv4Type | Icmpv4Code => Prereq::Icmpv4,
            Icmpv6Type | Icmpv6Code => Prereq::Icmpv6,
            NdTarget => Prereq::Nd,
            NdSll => Prereq::NdSolicit,
            NdTll => Prereq::NdAdvert,
        }
    }

    pub fn style(self) -> Style {
        use Field::*;
        match self {
            EthSrc | EthDst | ArpSha | ArpTha | NdSll | NdTll => Style::Ethernet,
            Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa => Style::Ipv4,
            Ipv6Src | Ipv6Dst | NdTarget => Style::Ipv6,
            CtState => Style::CtState,
            IpFrag => Style::Frag,
            TcpFlags => Style::TcpFlags,
            IpProto | IpDscp | IpEcn | IpTtl | ArpOp | TcpSrc | TcpDst | UdpSrc | UdpDst
            | SctpSrc | SctpDst | Icmpv4Type | Icmpv4Code | Icmpv6Type | Icmpv6Code => {
                Style::Decimal
            }
            _ => Style::Hexadecimal,
        }
    }

    /// The field's storage size in bytes, as OVS's `n_bytes` (for hex printing).
    pub fn n_bytes(self) -> u32 {
        use Field::*;
        match self {
            Metadata | Xreg(_) => 8,
            Xxreg(_) | CtLabel | Ipv6Src | Ipv6Dst | NdTarget => 16,
            EthSrc | EthDst | ArpSha | ArpTha | NdSll | NdTll => 6,
            Reg(_) | PktMark | CtState | CtMark | Ipv4Src | Ipv4Dst | ArpSpa | ArpTpa
            | Ipv6Label => 4,
            EthType | VlanTci | ArpOp | TcpSrc | TcpDst | UdpSrc | UdpDst | SctpSrc | SctpDst
            | TcpFlags => 2,
            _ => 1,
        }
    }

    /// Formats `v` as OVS's `mf_format` does for a full-field value.
    pub fn format_value(self, v: u128) -> String {
        match self.style() {
            Style::Decimal => format!("{}", v as u64),
            Style::Hexadecimal | Style::TcpFlags => value::to_string(|s| value::write_hex(s, v)),
            Style::Ethernet => value::mac_string(v as u64),
            Style::Ipv4 => std::net::Ipv4Addr::from(v as u32).to_string(),
            Style::Ipv6 => value::ipv6_string(v),
            Style::CtState => cs::format(v as u32),
            Style::Frag => match v as u8 & 3 {
                0 => "no".into(),
                1 => "first".into(),
                3 => "later".into(),
                _ => "<error>".into(),
            },
        }
    }

    /// The OVS field name (for `--detailed` output of registers and errors).
    pub fn ovs_name(self) -> String {
        use Field::*;
        match self {
            Reg(i) => format!("reg{i}"),
            Xreg(i) => format!("xreg{i}"),
            Xxreg(i) => format!("xxreg{i}"),
            f => format!("{f:?}"),
        }
    }
}

impl Flow {
    #[inline]
    pub fn get(&self, f: Field) -> u128 {
        let l = f.loc();
        if l.bits == 128 {
            (u128::from(self.w[l.word as usize]) << 64) | u128::from(self.w[l.word as usize + 1])
        } else {
            u128::from((self.w[l.word as usize] >> l.shift) & low_bits(l.bits))
        }
    }

    /// Sets the bits of `f` under `mask` to those of `v`. Bits beyond the field's
    /// storage are ignored.
    #[inline]
    pub fn set_masked(&mut self, f: Field, v: u128, mask: u128) {
        let l = f.loc();
        if l.bits == 128 {
            let (hi, lo) = (l.word as usize, l.word as usize + 1);
            let (vh, vl) = ((v >> 64) as u64, v as u64);
            let (mh, ml) = ((mask >> 64) as u64, mask as u64);
            self.w[hi] = (self.w[hi] & !mh) | (vh & mh);
            self.w[lo] = (self.w[lo] & !ml) | (vl & ml);
        } else {
            let m = (mask as u64 & low_bits(l.bits)) << l.shift;
            let val = ((v as u64) & low_bits(l.bits)) << l.shift;
            let w = &mut self.w[l.word as usize];
            *w = (*w & !m) | (val & m);
        }
    }

    #[inline]
    pub fn set(&mut self, f: Field, v: u128) {
        self.set_masked(f, v, u128::MAX);
    }

    /// Forgets the connection (OVS's `flow_clear_conntrack`, what `ct_clear` does):
    /// state, mark, label and the original direction's tuple.
    pub fn clear_conntrack(&mut self) {
        self.set(Field::CtState, 0);
        self.set(Field::CtMark, 0);
        self.set(Field::CtLabel, 0);
        self.ct_nw_proto = 0;
        self.ct_tp_src = 0;
        self.ct_tp_dst = 0;
        match self.dl_type() {
            ETH_TYPE_IP => {
                self.ct_nw_src = 0;
                self.ct_nw_dst = 0;
            }
            ETH_TYPE_IPV6 => {
                self.ct_ipv6_src = 0;
                self.ct_ipv6_dst = 0;
            }
            _ => {}
        }
    }

    #[inline]
    pub fn reg(&self, i: u8) -> u32 {
        self.get(Field::Reg(i)) as u32
    }

    #[inline]
    pub fn set_reg(&mut self, i: u8, v: u32) {
        self.set(Field::Reg(i), u128::from(v));
    }

    /// Zeroes registers `0..n` (whole words at a time: reg(2i) and reg(2i+1) share one).
    #[inline]
    pub fn clear_regs(&mut self, n: u8) {
        let whole = usize::from(n / 2);
        self.w[usize::from(W_REGS)..usize::from(W_REGS) + whole].fill(0);
        if n % 2 == 1 {
            self.set_reg(n - 1, 0);
        }
    }

    #[inline]
    pub fn dl_type(&self) -> u16 {
        self.get(Field::EthType) as u16
    }

    #[inline]
    pub fn nw_proto(&self) -> u8 {
        self.get(Field::IpProto) as u8
    }

    #[inline]
    pub fn nw_frag(&self) -> u8 {
        self.get(Field::IpFrag) as u8
    }

    #[inline]
    pub fn tp_src(&self) -> u16 {
        self.get(Field::TcpSrc) as u16
    }

    #[inline]
    pub fn tp_dst(&self) -> u16 {
        self.get(Field::TcpDst) as u16
    }

    #[inline]
    pub fn is_ip_any(&self) -> bool {
        matches!(self.dl_type(), ETH_TYPE_IP | ETH_TYPE_IPV6)
    }

    /// OVS's `mf_are_prereqs_ok`.
    #[inline]
    pub fn prereqs_ok(&self, p: Prereq) -> bool {
        let dl = self.dl_type();
        let later = self.nw_frag() & frag::LATER != 0;
        let nd = || {
            dl == ETH_TYPE_IPV6
                && self.nw_proto() == 58
                && self.tp_dst() == 0
                && matches!(self.tp_src(), 135 | 136)
        };
        match p {
            Prereq::None => true,
            Prereq::Ipv4 => dl == ETH_TYPE_IP,
            Prereq::Ipv6 => dl == ETH_TYPE_IPV6,
            Prereq::IpAny => self.is_ip_any(),
            Prereq::Arp => dl == ETH_TYPE_ARP || dl == ETH_TYPE_RARP,
            Prereq::Tcp => self.is_ip_any() && self.nw_proto() == 6 && !later,
            Prereq::Udp => self.is_ip_any() && self.nw_proto() == 17 && !later,
            Prereq::Sctp => self.is_ip_any() && self.nw_proto() == 132 && !later,
            Prereq::Icmpv4 => dl == ETH_TYPE_IP && self.nw_proto() == 1,
            Prereq::Icmpv6 => dl == ETH_TYPE_IPV6 && self.nw_proto() == 58,
            Prereq::Nd => nd(),
            Prereq::NdSolicit => nd() && self.tp_src() == 135,
            Prereq::NdAdvert => nd() && self.tp_src() == 136,
        }
    }

    /// Reads `n_bits` bits of `f` starting at bit `ofs`.
    #[inline]
    pub fn get_bits(&self, f: Field, ofs: u32, n_bits: u32) -> u128 {
        (self.get(f) >> ofs) & value::ones(n_bits)
    }

    /// Writes the low `n_bits` of `v` into `f` at bit `ofs`.
    #[inline]
    pub fn set_bits(&mut self, f: Field, ofs: u32, n_bits: u32, v: u128) {
        let mask = value::ones(n_bits) << ofs;
        self.set_masked(f, v << ofs, mask);
    }
}

/// Constant bits written into one word of a flow, found once (when an action is
/// parsed) so that running the action reads no symbol table: what
/// [`Flow::set_masked`] does for a write whose bits lie in one word, when the packet
/// meets the field's prerequisites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WordSet {
    word: u8,
    shift: u8,
    bits: u8,
    prereq: Prereq,
    /// In place in the word.
    value: u64,
}

impl WordSet {
    /// Bits `ofs..ofs + n_bits` of `f` set to `v` (as [`Flow::set_bits`] sets them)
    /// when the packet meets `prereq`; none when the bits span two words.
    pub fn new(f: Field, ofs: u32, n_bits: u32, v: u128, prereq: Prereq) -> Option<WordSet> {
        if n_bits == 0 || ofs >= 128 {
            return None;
        }
        let l = f.loc();
        let width = if l.bits == 128 {
            u128::MAX
        } else {
            u128::from(low_bits(l.bits))
        };
        let mask = (value::ones(n_bits) << ofs) & width;
        let val = ((v & value::ones(n_bits)) << ofs) & mask;
        let (word, mask, val) = if l.bits < 128 {
            (l.word, (mask as u64) << l.shift, (val as u64) << l.shift)
        } else if mask >> 64 == 0 {
            // The low half is the second word.
            (l.word + 1, mask as u64, val as u64)
        } else if mask as u64 == 0 {
            (l.word, (mask >> 64) as u64, (val >> 64) as u64)
        } else {
            return None;
        };
        let (shift, bits) = (mask.trailing_zeros(), mask.count_ones());
        // The bits of a field's subfield are contiguous.
        (mask != 0 && low_bits(bits as u8) << shift == mask).then_some(WordSet {
            word,
            shift: shift as u8,
            bits: bits as u8,
            prereq,
            value: val,
        })
    }

    /// Writes the bits (all of the value when `on`, zero otherwise).
    #[inline(always)]
    pub fn apply(self, flow: &mut Flow, on: bool) {
        if self.prereq == Prereq::None || flow.prereqs_ok(self.prereq) {
            let m = low_bits(self.bits) << self.shift;
            let w = &mut flow.w[usize::from(self.word)];
            *w = (*w & !m) | if on { self.value } else { 0 };
        }
    }
}

#[inline]
fn low_bits(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// A field's value and mask placed in flow words, for building classifier matches.
pub fn to_words(
    f: Field,
    v: u128,
    mask: u128,
    out_v: &mut [u64; WORDS],
    out_m: &mut [u64; WORDS],
) -> bool {
    let l = f.loc();
    let storable = value::ones(u32::from(l.bits));
    // Bits of the field beyond its storage read as zero: a match on one there is
    // either always false (value 1) or no constraint (value 0).
    if v & mask & !storable != 0 {
        return false;
    }
    let (v, mask) = (v & storable, mask & storable);
    if l.bits == 128 {
        let (hi, lo) = (l.word as usize, l.word as usize + 1);
        out_v[hi] |= (v >> 64) as u64;
        out_m[hi] |= (mask >> 64) as u64;
        out_v[lo] |= v as u64;
        out_m[lo] |= mask as u64;
    } else {
        out_v[l.word as usize] |= (v as u64) << l.shift;
        out_m[l.word as usize] |= (mask as u64) << l.shift;
    }
    true
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flow({})", crate::trace::flow_format(self))
    }
}

/// Text of a value in a lexer format (for constants written back).
pub fn shown(v: u128, format: Format) -> String {
    value::Shown(v, format).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field but the registers (each of those is listed apart).
    const FIELDS: [Field; 38] = {
        use Field::*;
        [
            Metadata, PktMark, CtState, CtMark, CtLabel, EthSrc, EthDst, EthType, VlanTci, Ipv4Src,
            Ipv4Dst, Ipv6Src, Ipv6Dst, Ipv6Label, IpProto, IpDscp, IpEcn, IpTtl, IpFrag, ArpOp,
            ArpSpa, ArpTpa, ArpSha, ArpTha, TcpSrc, TcpDst, TcpFlags, UdpSrc, UdpDst, SctpSrc,
            SctpDst, Icmpv4Type, Icmpv4Code, Icmpv6Type, Icmpv6Code, NdTarget, NdSll, NdTll,
        ]
    };

    proptest::proptest! {
        /// A load run as one word's bits writes what `set_masked` writes, or is
        /// refused: any field (registers too), any bit range, any packet.
        #[test]
        fn word_sets_write_what_set_masked_writes(
            which in 0usize..(FIELDS.len() + 16 + 5 + 2),
            ofs in 0u32..128,
            n_bits in 1u32..=128,
            v: u128,
            words in proptest::array::uniform25(proptest::prelude::any::<u64>()),
            eth in proptest::sample::select(vec![0x0800u64, 0x86dd, 0x0806, 0x1234]),
        ) {
            let f = match which {
                i if i < FIELDS.len() => FIELDS[i],
                i if i < FIELDS.len() + 16 => Field::Reg((i - FIELDS.len()) as u8),
                i if i < FIELDS.len() + 21 => Field::Xreg((i - FIELDS.len() - 16) as u8),
                i => Field::Xxreg((i - FIELDS.len() - 21) as u8),
            };
            let width = f.width();
            proptest::prop_assume!(ofs < width);
            let n_bits = n_bits.min(width - ofs);
            let mut base = Flow { w: words, ..Flow::default() };
            base.set(Field::EthType, u128::from(eth));
            let mut want = base;
            if want.prereqs_ok(f.prereq()) {
                want.set_bits(f, ofs, n_bits, v);
            }
            if let Some(set) = WordSet::new(f, ofs, n_bits, v, f.prereq()) {
                let mut got = base;
                set.apply(&mut got, true);
                proptest::prop_assert_eq!(got, want);
                // Off: the same bits cleared.
                let mut cleared = base;
                set.apply(&mut cleared, false);
                let mut want_cleared = base;
                if want_cleared.prereqs_ok(f.prereq()) {
                    want_cleared.set_bits(f, ofs, n_bits, 0);
                }
                proptest::prop_assert_eq!(cleared, want_cleared);
            } else {
                // Refused only when the bits span two words, or lie beyond what the
                // flow stores of the field (ARP's opcode in `nw_proto`'s 8 bits).
                let l = f.loc();
                proptest::prop_assert!(
                    (width == 128 && ofs < 64 && ofs + n_bits > 64)
                        || (l.bits < 128 && ofs >= u32::from(l.bits))
                );
            }
        }
    }

    #[test]
    fn registers_overlay_as_ovs_lays_them_out() {
        let mut f = Flow::default();
        f.set(Field::Xxreg(0), 0x0000_0001_0000_0002_0000_0003_0000_0004);
        assert_eq!(f.reg(0), 1);
        assert_eq!(f.reg(1), 2);
        assert_eq!(f.reg(2), 3);
        assert_eq!(f.reg(3), 4);
        assert_eq!(f.get(Field::Xreg(0)), 0x0000_0001_0000_0002);
        f.set_reg(9, 7);
        assert_eq!(f.get(Field::Xreg(4)), 7);
        for n in [0u8, 1, 9, 10, 14, 16] {
            let mut g = Flow::default();
            for r in 0..16 {
                g.set_reg(r, 0x100 + u32::from(r));
            }
            g.clear_regs(n);
            for r in 0..16 {
                let want = if r < n { 0 } else { 0x100 + u32::from(r) };
                assert_eq!(g.reg(r), want, "clear_regs({n}) reg{r}");
            }
        }
    }

    #[test]
    fn shared_storage() {
        let mut f = Flow::default();
        f.set(Field::ArpOp, 2);
        assert_eq!(f.get(Field::IpProto), 2);
        f.set(Field::Icmpv4Type, 8);
        assert_eq!(f.tp_src(), 8);
        f.set(Field::IpDscp, 0x3f);
        f.set(Field::IpEcn, 1);
        assert_eq!((f.w[W_IP as usize] >> 8) & 0xff, 0xfd);
    }

    #[test]
    fn clear_conntrack_forgets_the_connection_not_the_packet() {
        let mut f = Flow::default();
        f.set(Field::EthType, ETH_TYPE_IP as u128);
        f.set(Field::Ipv4Dst, 0x0a00_0050);
        f.set(Field::CtState, u128::from(cs::TRACKED | cs::ESTABLISHED));
        f.set(Field::CtMark, 1);
        f.set(Field::CtLabel, 1 << 96);
        f.ct_nw_dst = 0x0a00_0050;
        f.ct_tp_dst = 80;
        f.clear_conntrack();
        assert_eq!(f.get(Field::CtState), 0);
        assert_eq!(f.get(Field::CtMark), 0);
        assert_eq!(f.get(Field::CtLabel), 0);
        assert_eq!((f.ct_nw_dst, f.ct_tp_dst), (0, 0));
        assert_eq!(f.get(Field::Ipv4Dst), 0x0a00_0050);
    }

    #[test]
    fn ct_state_text() {
        assert_eq!(cs::format(cs::ESTABLISHED | cs::TRACKED), "est|trk");
        assert_eq!(
            cs::parse("new", cs::TRACKED).unwrap(),
            cs::NEW | cs::TRACKED
        );
        assert!(cs::parse("bogus", 0).is_err());
    }
}
