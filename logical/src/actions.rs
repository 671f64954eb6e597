//! OVN's actions (ovn-sb(5) "actions"; OVN's lib/actions.c): every action ovn-northd
//! 23.03 emits, parsed into a typed AST with the prerequisites it adds to its flow's
//! match, and printed back exactly as OVN prints it (`Display`), which is what
//! `ovnest trace` shows.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::expr::{self, Const, ConstSet};
use crate::flow::{Prereq, WordSet};
use crate::lex::{JsonStr, Lexer, Token};
use crate::symtab::{FieldRef, OvnField, SymbolKind, WR_CT_COMMIT, WR_DEFAULT, symtab};
use crate::value::{self, Format};

/// Logical tables per pipeline (OVN's `LOG_PIPELINE_LEN`).
pub const LOG_PIPELINE_LEN: u8 = 29;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pipeline {
    Ingress,
    Egress,
}

impl Pipeline {
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::Ingress => "ingress",
            Pipeline::Egress => "egress",
        }
    }
}

/// An option a `put_dhcp_opts` / `put_dhcpv6_opts` / `put_nd_ra_opts` /
/// `trigger_event` action may set: SB DHCP_Options rows, or OVN's fixed tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OptionDef {
    pub name: String,
    pub code: u32,
    /// `ipv4`, `static_routes`, `str`, `bool`, `uint8`, `uint16`, `uint32`, `mac`,
    /// `ipv6`, `domains`, `host_id`, ...
    pub ty: String,
}

/// Options by name.
#[derive(Debug, Clone, Default)]
pub struct OptionTable {
    by_name: FxHashMap<String, OptionDef>,
}

impl OptionTable {
    pub fn add(&mut self, name: &str, code: u32, ty: &str) {
        self.by_name.insert(
            name.to_owned(),
            OptionDef {
                name: name.to_owned(),
                code,
                ty: ty.to_owned(),
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&OptionDef> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// IPv6 router advertisement options (OVN's `nd_ra_opts_init`).
    pub fn nd_ra() -> OptionTable {
        let mut t = OptionTable::default();
        t.add("addr_mode", 0, "str");
        t.add("router_preference", 255, "str");
        t.add("slla", 1, "mac");
        t.add("prefix", 3, "ipv6");
        t.add("mtu", 5, "uint32");
        t.add("rdnss", 25, "ipv6");
        t.add("dnssl", 31, "str");
        t.add("route_info", 24, "str");
        t
    }

    /// `empty_lb_backends` event options (OVN's `controller_event_opts_init`).
    pub fn lb_event() -> OptionTable {
        let mut t = OptionTable::default();
        t.add("vip", 1, "str");
        t.add("protocol", 2, "str");
        t.add("load_balancer", 3, "str");
        t
    }
}

/// A `name = value` option of a controller action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenOption {
    pub def: OptionDef,
    pub value: ConstSet,
}

impl fmt::Display for GenOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.def.name, self.value)
    }
}

/// What parsing needs beyond the text: the option tables and where the flow sits.
#[derive(Debug, Clone)]
pub struct ParseParams<'a> {
    pub dhcp_opts: &'a OptionTable,
    pub dhcpv6_opts: &'a OptionTable,
    pub nd_ra_opts: &'a OptionTable,
    pub event_opts: &'a OptionTable,
    pub pipeline: Pipeline,
    pub table: u8,
    pub n_tables: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    Dnat,
    Snat,
    DnatInCzone,
    SnatInCzone,
}

impl NatKind {
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Dnat => "ct_dnat",
            NatKind::Snat => "ct_snat",
            NatKind::DnatInCzone => "ct_dnat_in_czone",
            NatKind::SnatInCzone => "ct_snat_in_czone",
        }
    }

    pub fn is_dst(self) -> bool {
        matches!(self, NatKind::Dnat | NatKind::DnatInCzone)
    }

    pub fn in_czone(self) -> bool {
        matches!(self, NatKind::DnatInCzone | NatKind::SnatInCzone)
    }
}

/// An IPv4 or IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addr {
    V4(u32),
    V6(u128),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::V4(a) => write!(f, "{}", Ipv4Addr::from(*a)),
            Addr::V6(a) => value::write_ipv6(f, *a),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LbBackend {
    pub addr: Addr,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbFlag {
    None,
    SkipSnat,
    ForceSnat,
}

/// Actions that run nested actions on a packet derived from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NestKind {
    Clone,
    Arp,
    Icmp4,
    Icmp4Error,
    Icmp6,
    Icmp6Error,
    TcpReset,
    SctpAbort,
    NdNa,
    NdNaRouter,
    NdNs,
    Reject,
}

impl NestKind {
    pub fn name(self) -> &'static str {
        match self {
            NestKind::Clone => "clone",
            NestKind::Arp => "arp",
            NestKind::Icmp4 => "icmp4",
            NestKind::Icmp4Error => "icmp4_error",
            NestKind::Icmp6 => "icmp6",
            NestKind::Icmp6Error => "icmp6_error",
            NestKind::TcpReset => "tcp_reset",
            NestKind::SctpAbort => "sctp_abort",
            NestKind::NdNa => "nd_na",
            NestKind::NdNaRouter => "nd_na_router",
            NestKind::NdNs => "nd_ns",
            NestKind::Reject => "reject",
        }
    }
}

/// `dst = name();` actions that store a 1-bit result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultKind {
    DnsLookup,
    ChkLbHairpin,
    ChkLbHairpinReply,
    CheckInPortSec,
    CheckOutPortSec,
    ChkEcmpNhMac,
    ChkEcmpNh,
    ChkLbAff,
}

impl ResultKind {
    pub fn name(self) -> &'static str {
        match self {
            ResultKind::DnsLookup => "dns_lookup",
            ResultKind::ChkLbHairpin => "chk_lb_hairpin",
            ResultKind::ChkLbHairpinReply => "chk_lb_hairpin_reply",
            ResultKind::CheckInPortSec => "check_in_port_sec",
            ResultKind::CheckOutPortSec => "check_out_port_sec",
            ResultKind::ChkEcmpNhMac => "chk_ecmp_nh_mac",
            ResultKind::ChkEcmpNh => "chk_ecmp_nh",
            ResultKind::ChkLbAff => "chk_lb_aff",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptsKind {
    DhcpV4,
    DhcpV6,
    NdRa,
}

impl OptsKind {
    pub fn name(self) -> &'static str {
        match self {
            OptsKind::DhcpV4 => "put_dhcp_opts",
            OptsKind::DhcpV6 => "put_dhcpv6_opts",
            OptsKind::NdRa => "put_nd_ra_opts",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
}

impl L4Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Sctp => 132,
        }
    }

    fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        }
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Output,
    Next {
        pipeline: Pipeline,
        table: u8,
        src_pipeline: Pipeline,
        src_table: u8,
    },
    Load {
        dst: FieldRef,
        value: Const,
        /// The load as one word's bits, for an integer without a mask (found when
        /// parsed: the datapath runs it without resolving `dst`).
        set: Option<WordSet>,
    },
    OvnFieldLoad {
        field: OvnField,
        value: u128,
    },
    Move {
        dst: FieldRef,
        src: FieldRef,
    },
    Exchange {
        a: FieldRef,
        b: FieldRef,
    },
    Push(FieldRef),
    Pop(FieldRef),
    DecTtl,
    CtNext {
        table: u8,
    },
    CtCommitV1 {
        mark: u32,
        mark_mask: u32,
        label: u128,
        label_mask: u128,
    },
    /// `ct_commit { ... };` (or plain `ct_commit;`).
    CtCommit(Vec<Action>),
    CtNat {
        kind: NatKind,
        table: u8,
        addr: Option<Addr>,
        port_range: Option<(u16, u16)>,
    },
    CtCommitNat {
        table: u8,
    },
    CtLb {
        mark: bool,
        table: u8,
        backends: Vec<LbBackend>,
        hash_fields: Option<String>,
        flag: LbFlag,
    },
    Select {
        dst: FieldRef,
        table: u8,
        members: Vec<(u16, u16)>,
    },
    CtClear,
    /// Nested actions shared, not copied, when a decision hands them to the
    /// controller.
    Nested {
        kind: NestKind,
        actions: Arc<[Action]>,
    },
    Igmp,
    GetMacBind {
        nd: bool,
        port: FieldRef,
        ip: FieldRef,
    },
    PutMacBind {
        nd: bool,
        port: FieldRef,
        ip: FieldRef,
        mac: FieldRef,
    },
    LookupMacBind {
        nd: bool,
        dst: FieldRef,
        port: FieldRef,
        ip: FieldRef,
        mac: FieldRef,
    },
    LookupMacBindIp {
        nd: bool,
        dst: FieldRef,
        port: FieldRef,
        ip: FieldRef,
    },
    PutOpts {
        kind: OptsKind,
        dst: FieldRef,
        options: Arc<[GenOption]>,
    },
    SetQueue(u16),
    Result {
        kind: ResultKind,
        dst: FieldRef,
        /// `dst = 1` as one word's bits (the result is written with it, or cleared).
        set: Option<WordSet>,
    },
    Log {
        name: Option<String>,
        verdict: &'static str,
        severity: &'static str,
        meter: Option<String>,
    },
    SetMeter {
        rate: u64,
        burst: u64,
    },
    CheckPktLarger {
        dst: FieldRef,
        len: i32,
    },
    TriggerEvent {
        event: String,
        options: Vec<GenOption>,
    },
    BindVport {
        vport: String,
        parent: FieldRef,
    },
    HandleSvcCheck {
        port: FieldRef,
    },
    FwdGroup {
        liveness: bool,
        child_ports: Vec<String>,
        table: u8,
    },
    Dhcp6Reply,
    CtSnatToVip,
    BfdMsg,
    PutFdb {
        port: FieldRef,
        mac: FieldRef,
    },
    GetFdb {
        dst: FieldRef,
        mac: FieldRef,
    },
    LookupFdb {
        dst: FieldRef,
        port: FieldRef,
        mac: FieldRef,
    },
    CommitEcmpNh {
        ipv6: bool,
        proto: L4Proto,
    },
    CommitLbAff {
        vip: Addr,
        vip_port: u16,
        backend: Addr,
        backend_port: u16,
        proto: Option<L4Proto>,
        timeout: u16,
    },
    Sample {
        probability: u16,
        collector_set: u32,
        obs_domain: u8,
        /// `None` for `$cookie`.
        obs_point: Option<u32>,
    },
}

impl Action {
    /// The action's name, for counters and reports of what the datapath cannot run.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Output => "output",
            Action::Next { .. } => "next",
            Action::Load { .. } => "load",
            Action::OvnFieldLoad { .. } => "ovn_field_load",
            Action::Move { .. } => "move",
            Action::Exchange { .. } => "exchange",
            Action::Push(_) => "push",
            Action::Pop(_) => "pop",
            Action::DecTtl => "dec_ttl",
            Action::CtNext { .. } => "ct_next",
            Action::CtCommitV1 { .. } | Action::CtCommit(_) => "ct_commit",
            Action::CtNat { kind, .. } => kind.name(),
            Action::CtCommitNat { .. } => "ct_commit_nat",
            Action::CtLb { mark: true, .. } => "ct_lb_mark",
            Action::CtLb { .. } => "ct_lb",
            Action::Select { .. } => "select",
            Action::CtClear => "ct_clear",
            Action::Nested { kind, .. } => kind.name(),
            Action::Igmp => "igmp",
            Action::GetMacBind { nd: false, .. } => "get_arp",
            Action::GetMacBind { .. } => "get_nd",
            Action::PutMacBind { nd: false, .. } => "put_arp",
            Action::PutMacBind { .. } => "put_nd",
            Action::LookupMacBind { nd: false, .. } => "lookup_arp",
            Action::LookupMacBind { .. } => "lookup_nd",
            Action::LookupMacBindIp { nd: false, .. } => "lookup_arp_ip",
            Action::LookupMacBindIp { .. } => "lookup_nd_ip",
            Action::PutOpts { kind, .. } => kind.name(),
            Action::SetQueue(_) => "set_queue",
            Action::Result { kind, .. } => kind.name(),
            Action::Log { .. } => "log",
            Action::SetMeter { .. } => "set_meter",
            Action::CheckPktLarger { .. } => "check_pkt_larger",
            Action::TriggerEvent { .. } => "trigger_event",
            Action::BindVport { .. } => "bind_vport",
            Action::HandleSvcCheck { .. } => "handle_svc_check",
            Action::FwdGroup { .. } => "fwd_group",
            Action::Dhcp6Reply => "handle_dhcpv6_reply",
            Action::CtSnatToVip => "ct_snat_to_vip",
            Action::BfdMsg => "handle_bfd_msg",
            Action::PutFdb { .. } => "put_fdb",
            Action::GetFdb { .. } => "get_fdb",
            Action::LookupFdb { .. } => "lookup_fdb",
            Action::CommitEcmpNh { .. } => "commit_ecmp_nh",
            Action::CommitLbAff { .. } => "commit_lb_aff",
            Action::Sample { .. } => "sample",
        }
    }
}

/// A list of actions printed as OVN prints it: `drop;` when empty.
pub struct Actions<'a>(pub &'a [Action]);

impl fmt::Display for Actions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("drop;");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

fn write_addr_port(
    f: &mut fmt::Formatter<'_>,
    addr: Addr,
    port: u16,
    brackets: bool,
) -> fmt::Result {
    match addr {
        Addr::V4(_) => {
            write!(f, "{addr}")?;
            if port != 0 {
                write!(f, ":{port}")?;
            }
        }
        Addr::V6(_) => {
            if brackets || port != 0 {
                write!(f, "[{addr}]")?;
            } else {
                write!(f, "{addr}")?;
            }
            if port != 0 {
                write!(f, ":{port}")?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Output => f.write_str("output;"),
            Action::Next {
                pipeline,
                table,
                src_pipeline,
                src_table,
            } => {
                if pipeline != src_pipeline {
                    write!(f, "next(pipeline={}, table={table});", pipeline.as_str())
                } else if u32::from(*table) != u32::from(*src_table) + 1 {
                    write!(f, "next({table});")
                } else {
                    f.write_str("next;")
                }
            }
            Action::Load { dst, value, .. } => write!(f, "{dst} = {value};"),
            Action::OvnFieldLoad { field, value } => {
                write!(f, "{} = {};", field.name(), value)
            }
            Action::Move { dst, src } => write!(f, "{dst} = {src};"),
            Action::Exchange { a, b } => write!(f, "{a} <-> {b};"),
            Action::Push(x) => write!(f, "push({x});"),
            Action::Pop(x) => write!(f, "pop({x});"),
            Action::DecTtl => f.write_str("ip.ttl--;"),
            Action::CtNext { .. } => f.write_str("ct_next;"),
            Action::CtCommitV1 {
                mark,
                mark_mask,
                label,
                label_mask,
            } => {
                let mut s = String::from("ct_commit(");
                if *mark_mask != 0 {
                    s.push_str(&format!("ct_mark={mark:#x}"));
                    if *mark_mask != u32::MAX {
                        s.push_str(&format!("/{mark_mask:#x}"));
                    }
                }
                if *label_mask != 0 {
                    if !s.ends_with('(') {
                        s.push_str(", ");
                    }
                    s.push_str("ct_label=");
                    s.push_str(&value::to_string(|w| value::write_hex(w, *label)));
                    if *label_mask != u128::MAX {
                        s.push('/');
                        s.push_str(&value::to_string(|w| value::write_hex(w, *label_mask)));
                    }
                }
                if s.ends_with('(') {
                    s.pop();
                } else {
                    s.push(')');
                }
                write!(f, "{s};")
            }
            Action::CtCommit(nested) if nested.is_empty() => f.write_str("ct_commit;"),
            Action::CtCommit(nested) => write!(f, "ct_commit {{ {} }};", Actions(nested)),
            Action::CtNat {
                kind,
                addr,
                port_range,
                ..
            } => {
                f.write_str(kind.name())?;
                if let Some(a) = addr {
                    write!(f, "({a}")?;
                    if let Some((lo, hi)) = port_range {
                        write!(f, ",{lo}")?;
                        if *hi != 0 {
                            write!(f, "-{hi}")?;
                        }
                    }
                    f.write_str(")")?;
                } else if let Some((lo, hi)) = port_range {
                    write!(f, ",{lo}")?;
                    if *hi != 0 {
                        write!(f, "-{hi}")?;
                    }
                    f.write_str(")")?;
                }
                f.write_str(";")
            }
            Action::CtCommitNat { .. } => f.write_str("ct_commit_nat;"),
            Action::CtLb {
                mark,
                backends,
                hash_fields,
                flag,
                ..
            } => {
                f.write_str(if *mark { "ct_lb_mark" } else { "ct_lb" })?;
                if !backends.is_empty() {
                    f.write_str("(backends=")?;
                    for (i, b) in backends.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write_addr_port(f, b.addr, b.port, false)?;
                    }
                    if let Some(h) = hash_fields {
                        write!(f, "; hash_fields=\"{h}\"")?;
                    }
                    match flag {
                        LbFlag::SkipSnat => f.write_str("; skip_snat")?,
                        LbFlag::ForceSnat => f.write_str("; force_snat")?,
                        LbFlag::None => {}
                    }
                    f.write_str(")")?;
                }
                f.write_str(";")
            }
            Action::Select { dst, members, .. } => {
                write!(f, "{dst} = select(")?;
                for (i, (id, w)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}={w}")?;
                }
                f.write_str(");")
            }
            Action::CtClear => f.write_str("ct_clear;"),
            Action::Nested { kind, actions } => {
                write!(f, "{} {{ {} }};", kind.name(), Actions(actions))
            }
            Action::Igmp => f.write_str("igmp;"),
            Action::GetMacBind { nd, port, ip } => {
                let name = if *nd { "get_nd" } else { "get_arp" };
                write!(f, "{name}({port}, {ip});")
            }
            Action::PutMacBind { nd, port, ip, mac } => {
                let name = if *nd { "put_nd" } else { "put_arp" };
                write!(f, "{name}({port}, {ip}, {mac});")
            }
            Action::LookupMacBind {
                nd,
                dst,
                port,
                ip,
                mac,
            } => {
                let name = if *nd { "lookup_nd" } else { "lookup_arp" };
                write!(f, "{dst} = {name}({port}, {ip}, {mac});")
            }
            Action::LookupMacBindIp { nd, dst, port, ip } => {
                let name = if *nd { "lookup_nd_ip" } else { "lookup_arp_ip" };
                write!(f, "{dst} = {name}({port}, {ip});")
            }
            Action::PutOpts { kind, dst, options } => {
                write!(f, "{dst} = {}(", kind.name())?;
                for (i, o) in options.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{o}")?;
                }
                f.write_str(");")
            }
            Action::SetQueue(q) => write!(f, "set_queue({q});"),
            Action::Result { kind, dst, .. } => write!(f, "{dst} = {}();", kind.name()),
            Action::Log {
                name,
                verdict,
                severity,
                meter,
            } => {
                f.write_str("log(")?;
                if let Some(n) = name {
                    write!(f, "name=\"{n}\", ")?;
                }
                write!(f, "verdict={verdict}, severity={severity}")?;
                if let Some(m) = meter {
                    write!(f, ", meter=\"{m}\"")?;
                }
                f.write_str(");")
            }
            Action::SetMeter { rate, burst } => {
                if *burst != 0 {
                    write!(f, "set_meter({rate}, {burst});")
                } else {
                    write!(f, "set_meter({rate});")
                }
            }
            Action::CheckPktLarger { dst, len } => write!(f, "{dst} = check_pkt_larger({len});"),
            Action::TriggerEvent { event, options } => {
                write!(f, "trigger_event(event = \"{event}\"")?;
                for o in options {
                    write!(f, ", {o}")?;
                }
                f.write_str(");")
            }
            Action::BindVport { vport, parent } => write!(f, "bind_vport(\"{vport}\", {parent});"),
            Action::HandleSvcCheck { port } => write!(f, "handle_svc_check({port});"),
            Action::FwdGroup {
                liveness,
                child_ports,
                ..
            } => {
                f.write_str("fwd_group(")?;
                if *liveness {
                    f.write_str("liveness=\"true\", ")?;
                }
                if !child_ports.is_empty() {
                    f.write_str("childports=")?;
                    for (i, p) in child_ports.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "\"{p}\"")?;
                    }
                }
                f.write_str(");")
            }
            Action::Dhcp6Reply => f.write_str("handle_dhcpv6_reply;"),
            Action::CtSnatToVip => f.write_str("ct_snat_to_vip;"),
            Action::BfdMsg => f.write_str("handle_bfd_msg();"),
            Action::PutFdb { port, mac } => write!(f, "put_fdb({port}, {mac});"),
            Action::GetFdb { dst, mac } => write!(f, "{dst} = get_fdb({mac});"),
            Action::LookupFdb { dst, port, mac } => write!(f, "{dst} = lookup_fdb({port}, {mac});"),
            Action::CommitEcmpNh { ipv6, proto } => write!(
                f,
                "commit_ecmp_nh(ipv6 = {}, proto = {});",
                if *ipv6 { "true" } else { "false" },
                proto.name()
            ),
            Action::CommitLbAff {
                vip,
                vip_port,
                backend,
                backend_port,
                proto,
                timeout,
            } => {
                f.write_str("commit_lb_aff(vip = \"")?;
                write_addr_port(f, *vip, *vip_port, true)?;
                f.write_str("\", backend = \"")?;
                write_addr_port(f, *backend, *backend_port, true)?;
                f.write_str("\"")?;
                if let Some(p) = proto {
                    write!(f, ", proto = {}", p.name())?;
                }
                write!(f, ", timeout = {timeout});")
            }
            Action::Sample {
                probability,
                collector_set,
                obs_domain,
                obs_point,
            } => {
                write!(
                    f,
                    "sample(probability={probability},collector_set={collector_set},obs_domain={obs_domain}"
                )?;
                match obs_point {
                    None => f.write_str(",obs_point=$cookie")?,
                    Some(p) => write!(f, ",obs_point={p}")?,
                }
                f.write_str(");")
            }
        }
    }
}

/// Parsed actions and the prerequisites they add to their flow's match (expression
/// texts, each to be AND-ed in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub actions: Vec<Action>,
    pub prereqs: Vec<String>,
}

/// Parses an actions string (OVN's `ovnacts_parse_string`).
pub fn parse(s: &str, pp: &ParseParams<'_>) -> Result<Parsed, String> {
    let mut lexer = Lexer::new(s);
    let mut ctx = Ctx {
        pp,
        lexer: &mut lexer,
        prereqs: Vec::new(),
        depth: 0,
        scope: WR_DEFAULT,
    };
    let actions = ctx.parse_actions(&Token::End);
    let prereqs = std::mem::take(&mut ctx.prereqs);
    match lexer.take_error() {
        Some(e) => Err(e),
        None => Ok(Parsed {
            actions: actions.unwrap_or_default(),
            prereqs,
        }),
    }
}

const MAX_NESTED_ACTION_DEPTH: u32 = 32;

struct Ctx<'a, 'l, 'p> {
    pp: &'p ParseParams<'p>,
    lexer: &'l mut Lexer<'a>,
    prereqs: Vec<String>,
    depth: u32,
    scope: u8,
}

impl Ctx<'_, '_, '_> {
    fn parse_actions(&mut self, sentinel: &Token) -> Option<Vec<Action>> {
        let mut out = Vec::new();
        if matches!(&self.lexer.token, Token::Id(s) if s == "drop")
            && self.lexer.lookahead() == Token::Semicolon
        {
            self.lexer.get();
            self.lexer.get();
            self.lexer.force_match(sentinel);
            return Some(out);
        }
        while !self.lexer.matches(sentinel) {
            if !self.parse_action(&mut out) {
                return None;
            }
        }
        Some(out)
    }

    /// Parses a field; adds the prerequisites of it and its parents.
    fn field(&mut self) -> Option<FieldRef> {
        let f = expr::parse_field(self.lexer, symtab())?;
        let mut sym = symtab().get(f.sym);
        if matches!(sym.kind, SymbolKind::Predicate(_)) {
            self.lexer.error(format!(
                "Predicate symbol {} used where lvalue required.",
                sym.name
            ));
            return None;
        }
        loop {
            if let Some(p) = &sym.prereqs {
                self.prereqs.push(p.clone());
            }
            match sym.kind {
                SymbolKind::Subfield { parent, .. } => sym = symtab().get(parent),
                _ => break,
            }
        }
        Some(f)
    }

    /// OVN's `expr_type_check`.
    fn type_check(&mut self, f: FieldRef, n_bits: u32, rw: bool) -> bool {
        let sym = symtab().get(f.sym);
        if n_bits != f.n_bits {
            let msg = if n_bits != 0 && f.n_bits != 0 {
                format!(
                    "Cannot use {}-bit field {}[{}..{}] where {}-bit field is required.",
                    f.n_bits,
                    sym.name,
                    f.ofs,
                    f.ofs + f.n_bits - 1,
                    n_bits
                )
            } else if n_bits != 0 {
                format!(
                    "Cannot use string field {} where numeric field is required.",
                    sym.name
                )
            } else {
                format!(
                    "Cannot use numeric field {} where string field is required.",
                    sym.name
                )
            };
            self.lexer.error(msg);
            return false;
        }
        if rw && sym.rw & self.scope == 0 {
            self.lexer
                .error(format!("Field {} is not modifiable.", sym.name));
            return false;
        }
        true
    }

    fn action_field(&mut self, n_bits: u32, rw: bool) -> Option<FieldRef> {
        let f = self.field()?;
        self.type_check(f, n_bits, rw).then_some(f)
    }

    fn uint16(&mut self, what: &str) -> Option<u16> {
        if let Token::Int(c) = &self.lexer.token
            && c.format == Format::Decimal
            && c.value <= u128::from(u16::MAX)
        {
            let v = c.value as u16;
            self.lexer.get();
            return Some(v);
        }
        self.lexer.syntax_error(Some(&format!("expecting {what}")));
        None
    }

    fn prereq(&mut self, p: &str) {
        self.prereqs.push(p.to_owned());
    }

    fn next_table(&mut self, name: &str) -> Option<u8> {
        if self.pp.table >= self.pp.n_tables {
            self.lexer
                .error(format!("\"{name}\" action not allowed in last table."));
            return None;
        }
        Some(self.pp.table + 1)
    }

    fn parse_action(&mut self, out: &mut Vec<Action>) -> bool {
        let id = match &self.lexer.token {
            Token::Template(_) => {
                self.lexer.error("Unexpanded template.");
                return false;
            }
            Token::Id(id) => id.clone(),
            _ => {
                self.lexer.syntax_error(None);
                return false;
            }
        };
        let la = self.lexer.lookahead();
        let action = if matches!(la, Token::Equals | Token::Exchange | Token::LSquare) {
            self.parse_set_action()
        } else {
            self.lexer.get();
            self.parse_named(&id)
        };
        if let Some(a) = action {
            out.push(a);
        }
        self.lexer.force_match(&Token::Semicolon);
        !self.lexer.has_error()
    }

    fn parse_named(&mut self, id: &str) -> Option<Action> {
        let table = self.pp.table;
        match id {
            "next" => self.parse_next(),
            "push" | "pop" => {
                self.lexer.force_match(&Token::LParen);
                let f = self.field()?;
                if !self.type_check(f, f.n_bits, id == "pop") {
                    return None;
                }
                self.lexer.force_match(&Token::RParen);
                Some(if id == "push" {
                    Action::Push(f)
                } else {
                    Action::Pop(f)
                })
            }
            "output" => Some(Action::Output),
            "ip.ttl" => {
                self.lexer.force_match(&Token::Decrement);
                self.prereq("ip");
                Some(Action::DecTtl)
            }
            "ct_next" => {
                if table >= self.pp.n_tables {
                    self.lexer
                        .error("\"ct_next\" action not allowed in last table.");
                    return None;
                }
                self.prereq("ip");
                Some(Action::CtNext { table: table + 1 })
            }
            "ct_commit" => self.parse_ct_commit(),
            "ct_dnat" => self.parse_ct_nat(NatKind::Dnat),
            "ct_snat" => self.parse_ct_nat(NatKind::Snat),
            "ct_dnat_in_czone" => self.parse_ct_nat(NatKind::DnatInCzone),
            "ct_snat_in_czone" => self.parse_ct_nat(NatKind::SnatInCzone),
            "ct_lb" => self.parse_ct_lb(false),
            "ct_lb_mark" => self.parse_ct_lb(true),
            "ct_clear" => Some(Action::CtClear),
            "ct_commit_nat" => {
                self.prereq("ip");
                let table = self.next_table("ct_commit_related")?;
                Some(Action::CtCommitNat { table })
            }
            "clone" => self.parse_nested(NestKind::Clone, None, WR_DEFAULT),
            "arp" => self.parse_nested(NestKind::Arp, Some("ip4"), self.scope),
            "icmp4" => self.parse_nested(NestKind::Icmp4, Some("ip4"), self.scope),
            "icmp4_error" => self.parse_nested(NestKind::Icmp4Error, Some("ip4"), self.scope),
            "icmp6" => self.parse_nested(NestKind::Icmp6, Some("ip6"), self.scope),
            "icmp6_error" => self.parse_nested(NestKind::Icmp6Error, Some("ip6"), self.scope),
            "igmp" => Some(Action::Igmp),
            "tcp_reset" => self.parse_nested(NestKind::TcpReset, Some("tcp"), self.scope),
            "sctp_abort" => self.parse_nested(NestKind::SctpAbort, Some("sctp"), self.scope),
            "nd_na" => self.parse_nested(NestKind::NdNa, Some("nd_ns"), self.scope),
            "nd_na_router" => self.parse_nested(NestKind::NdNaRouter, Some("nd_ns"), self.scope),
            "nd_ns" => self.parse_nested(NestKind::NdNs, Some("ip6"), self.scope),
            "reject" => self.parse_nested(NestKind::Reject, None, self.scope),
            "get_arp" | "get_nd" => {
                let nd = id == "get_nd";
                self.lexer.force_match(&Token::LParen);
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let ip = self.action_field(if nd { 128 } else { 32 }, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::GetMacBind { nd, port, ip })
            }
            "put_arp" | "put_nd" => {
                let nd = id == "put_nd";
                self.lexer.force_match(&Token::LParen);
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let ip = self.action_field(if nd { 128 } else { 32 }, false)?;
                self.lexer.force_match(&Token::Comma);
                let mac = self.action_field(48, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::PutMacBind { nd, port, ip, mac })
            }
            "set_queue" => {
                if !self.lexer.force_match(&Token::LParen) {
                    return None;
                }
                let q = self.lexer.get_int()?;
                if !self.lexer.force_match(&Token::RParen) {
                    return None;
                }
                if !(0..=61440).contains(&q) {
                    self.lexer.error(format!(
                        "Queue ID {q} for set_queue is not in valid range 0 to 61440."
                    ));
                    return None;
                }
                Some(Action::SetQueue(q as u16))
            }
            "log" => self.parse_log(),
            "set_meter" => self.parse_set_meter(),
            "trigger_event" => self.parse_trigger_event(),
            "bind_vport" => {
                if !self.lexer.force_match(&Token::LParen) {
                    return None;
                }
                let Token::Str(vport) = self.lexer.token.clone() else {
                    self.lexer.syntax_error(Some("expecting port name string"));
                    return None;
                };
                self.lexer.get();
                if !self.lexer.force_match(&Token::Comma) {
                    return None;
                }
                let parent = self.action_field(0, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::BindVport { vport, parent })
            }
            "handle_svc_check" => {
                if !self.lexer.force_match(&Token::LParen) {
                    return None;
                }
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::HandleSvcCheck { port })
            }
            "fwd_group" => self.parse_fwd_group(),
            "handle_dhcpv6_reply" => Some(Action::Dhcp6Reply),
            "handle_bfd_msg" => {
                if !self.lexer.force_match(&Token::LParen) {
                    return None;
                }
                self.lexer.force_match(&Token::RParen);
                Some(Action::BfdMsg)
            }
            "ct_snat_to_vip" => Some(Action::CtSnatToVip),
            "put_fdb" => {
                self.lexer.force_match(&Token::LParen);
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let mac = self.action_field(48, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::PutFdb { port, mac })
            }
            "commit_ecmp_nh" => self.parse_commit_ecmp_nh(),
            "commit_lb_aff" => self.parse_commit_lb_aff(),
            "sample" => self.parse_sample(),
            _ => {
                // Put the identifier back in the error position as OVN reports it.
                self.lexer
                    .error(format!("Syntax error at `{id}' expecting action."));
                None
            }
        }
    }

    fn parse_next(&mut self) -> Option<Action> {
        if self.pp.n_tables == 0 {
            self.lexer.error("\"next\" action not allowed here.");
            return None;
        }
        let mut pipeline = self.pp.pipeline;
        let mut table = i32::from(self.pp.table) + 1;
        if self.lexer.matches(&Token::LParen) {
            if self.lexer.is_int() {
                table = self.lexer.get_int()?;
            } else {
                loop {
                    if self.lexer.match_id("pipeline") {
                        if !self.lexer.force_match(&Token::Equals) {
                            return None;
                        }
                        if self.lexer.match_id("ingress") {
                            pipeline = Pipeline::Ingress;
                        } else if self.lexer.match_id("egress") {
                            pipeline = Pipeline::Egress;
                        } else {
                            self.lexer
                                .syntax_error(Some("expecting \"ingress\" or \"egress\""));
                            return None;
                        }
                    } else if self.lexer.match_id("table") {
                        if !self.lexer.force_match(&Token::Equals) {
                            return None;
                        }
                        table = self.lexer.force_int()?;
                    } else {
                        self.lexer
                            .syntax_error(Some("expecting \"pipeline\" or \"table\""));
                        return None;
                    }
                    if !self.lexer.matches(&Token::Comma) {
                        break;
                    }
                }
            }
            if !self.lexer.force_match(&Token::RParen) {
                return None;
            }
        }
        if table >= i32::from(self.pp.n_tables) || table < 0 {
            self.lexer.error(format!(
                "\"next\" action cannot advance beyond table {}.",
                self.pp.n_tables - 1
            ));
            return None;
        }
        Some(Action::Next {
            pipeline,
            table: table as u8,
            src_pipeline: self.pp.pipeline,
            src_table: self.pp.table,
        })
    }

    fn parse_ct_commit(&mut self) -> Option<Action> {
        match self.lexer.token {
            Token::LCurly => self
                .parse_nested(NestKind::Clone, Some("ip"), WR_CT_COMMIT)
                .map(|a| match a {
                    Action::Nested { actions, .. } => Action::CtCommit(actions.to_vec()),
                    a => a,
                }),
            Token::LParen => {
                self.prereq("ip");
                self.lexer.get();
                let (mut mark, mut mark_mask, mut label, mut label_mask) = (0, 0, 0, 0);
                while !self.lexer.matches(&Token::RParen) {
                    if self.lexer.match_id("ct_mark") {
                        if !self.lexer.force_match(&Token::Equals) {
                            return None;
                        }
                        match &self.lexer.token {
                            Token::Int(c) => {
                                mark = c.value as u32;
                                mark_mask = u32::MAX;
                            }
                            Token::MaskedInt(c) => {
                                mark = c.value as u32;
                                mark_mask = c.mask.unwrap_or(0) as u32;
                            }
                            _ => {
                                self.lexer.syntax_error(Some("expecting integer"));
                                return None;
                            }
                        }
                        self.lexer.get();
                    } else if self.lexer.match_id("ct_label") {
                        if !self.lexer.force_match(&Token::Equals) {
                            return None;
                        }
                        match &self.lexer.token {
                            Token::Int(c) => {
                                label = c.value;
                                label_mask = u128::MAX;
                            }
                            Token::MaskedInt(c) => {
                                label = c.value;
                                label_mask = c.mask.unwrap_or(0);
                            }
                            _ => {
                                self.lexer.syntax_error(Some("expecting integer"));
                                return None;
                            }
                        }
                        self.lexer.get();
                    } else {
                        self.lexer.syntax_error(None);
                        return None;
                    }
                    self.lexer.matches(&Token::Comma);
                }
                Some(Action::CtCommitV1 {
                    mark,
                    mark_mask,
                    label,
                    label_mask,
                })
            }
            _ => {
                self.prereq("ip");
                Some(Action::CtCommit(Vec::new()))
            }
        }
    }

    fn parse_ct_nat(&mut self, kind: NatKind) -> Option<Action> {
        self.prereq("ip");
        let table = self.next_table(kind.name())?;
        let mut addr = None;
        let mut port_range = None;
        if self.lexer.matches(&Token::LParen) {
            addr = match &self.lexer.token {
                Token::Int(c) if c.format == Format::Ipv4 => Some(Addr::V4(c.value as u32)),
                Token::Int(c) if c.format == Format::Ipv6 => Some(Addr::V6(c.value)),
                _ => {
                    self.lexer
                        .syntax_error(Some("expecting IPv4 or IPv6 address"));
                    return None;
                }
            };
            self.lexer.get();
            if self.lexer.matches(&Token::Comma) {
                let lo = match &self.lexer.token {
                    Token::Int(c) if c.format == Format::Decimal => c.value as u16,
                    _ => {
                        self.lexer
                            .syntax_error(Some("expecting Integer for port range"));
                        return None;
                    }
                };
                if lo == 0 {
                    self.lexer.syntax_error(Some("range can't be 0"));
                    return None;
                }
                self.lexer.get();
                let mut hi = 0;
                if self.lexer.matches(&Token::Hyphen) {
                    hi = match &self.lexer.token {
                        Token::Int(c) => c.value as u16,
                        _ => {
                            self.lexer
                                .syntax_error(Some("expecting Integer for port range"));
                            return None;
                        }
                    };
                    if hi <= lo {
                        self.lexer
                            .syntax_error(Some("range high should be greater than range low"));
                        return None;
                    }
                    self.lexer.get();
                }
                port_range = Some((lo, hi));
            }
            if !self.lexer.force_match(&Token::RParen) {
                return None;
            }
        }
        Some(Action::CtNat {
            kind,
            table,
            addr,
            port_range,
        })
    }

    fn parse_ct_lb(&mut self, mark: bool) -> Option<Action> {
        if self.pp.table >= self.pp.n_tables {
            self.lexer
                .error("\"ct_lb\" action not allowed in last table.");
            return None;
        }
        self.prereq("ip");
        let mut backends = Vec::new();
        let mut hash_fields = None;
        let mut flag = LbFlag::None;
        if self.lexer.matches(&Token::LParen) && !self.lexer.matches(&Token::RParen) {
            if !self.lexer.match_id("backends") || !self.lexer.force_match(&Token::Equals) {
                self.lexer.syntax_error(Some("expecting backends"));
                return None;
            }
            while !self.lexer.matches(&Token::Semicolon) && !self.lexer.matches(&Token::RParen) {
                let b = if self.lexer.matches(&Token::LSquare) {
                    let a = match &self.lexer.token {
                        Token::Int(c) if c.format == Format::Ipv6 => c.value,
                        _ => {
                            self.lexer.syntax_error(Some("expecting IPv6 address"));
                            return None;
                        }
                    };
                    self.lexer.get();
                    if !self.lexer.matches(&Token::RSquare) {
                        self.lexer.syntax_error(Some("no closing square bracket"));
                        return None;
                    }
                    let mut port = 0;
                    if self.lexer.matches(&Token::Colon) {
                        port = self.uint16("port number")?;
                    }
                    LbBackend {
                        addr: Addr::V6(a),
                        port,
                    }
                } else {
                    let addr = match &self.lexer.token {
                        Token::Int(c) if c.format == Format::Ipv4 => Addr::V4(c.value as u32),
                        Token::Int(c) if c.format == Format::Ipv6 => Addr::V6(c.value),
                        _ => {
                            self.lexer.syntax_error(Some("expecting IP address"));
                            return None;
                        }
                    };
                    self.lexer.get();
                    let mut port = 0;
                    if self.lexer.matches(&Token::Colon) {
                        if matches!(addr, Addr::V6(_)) {
                            self.lexer.syntax_error(Some(
                                "IPv6 address needs square brackets if port is included",
                            ));
                            return None;
                        }
                        port = self.uint16("port number")?;
                    }
                    LbBackend { addr, port }
                };
                self.lexer.matches(&Token::Comma);
                backends.push(b);
            }
            if self.lexer.match_id("hash_fields") {
                if !self.lexer.matches(&Token::Equals) {
                    self.lexer.syntax_error(Some("invalid hash_fields"));
                    return None;
                }
                let Token::Str(h) = self.lexer.token.clone() else {
                    self.lexer.syntax_error(Some("invalid hash_fields"));
                    return None;
                };
                hash_fields = Some(h);
                self.lexer.get();
                if !self.lexer.matches(&Token::Semicolon) {
                    self.lexer.get();
                }
            }
            if self.lexer.match_id("skip_snat") {
                flag = LbFlag::SkipSnat;
                self.lexer.get();
            } else if self.lexer.match_id("force_snat") {
                flag = LbFlag::ForceSnat;
                self.lexer.get();
            }
        }
        Some(Action::CtLb {
            mark,
            table: self.pp.table + 1,
            backends,
            hash_fields,
            flag,
        })
    }

    fn parse_nested(&mut self, kind: NestKind, prereq: Option<&str>, scope: u8) -> Option<Action> {
        if !self.lexer.force_match(&Token::LCurly) {
            return None;
        }
        if self.depth + 1 == MAX_NESTED_ACTION_DEPTH {
            self.lexer.error("maximum depth of nested actions reached");
            return None;
        }
        let mut inner = Ctx {
            pp: self.pp,
            lexer: &mut *self.lexer,
            prereqs: Vec::new(),
            depth: self.depth + 1,
            scope,
        };
        let actions = inner.parse_actions(&Token::RCurly);
        let inner_prereqs = std::mem::take(&mut inner.prereqs);
        match prereq {
            // OVN drops the nested actions' prerequisites for the packet-generating
            // actions and requires the packet type instead.
            Some(p) => self.prereq(p),
            None => self.prereqs.extend(inner_prereqs),
        }
        Some(Action::Nested {
            kind,
            actions: actions?.into(),
        })
    }

    fn parse_set_action(&mut self) -> Option<Action> {
        let lhs = self.field()?;
        if self.lexer.matches(&Token::Exchange) {
            return self.parse_assignment(true, lhs);
        }
        if !self.lexer.matches(&Token::Equals) {
            self.lexer.syntax_error(Some("expecting `=' or `<->'"));
            return None;
        }
        let fname = match &self.lexer.token {
            Token::Id(s) if self.lexer.lookahead() == Token::LParen => Some(s.clone()),
            Token::Id(_) => None,
            _ => return self.parse_load(lhs),
        };
        let Some(fname) = fname else {
            return self.parse_assignment(false, lhs);
        };
        let result = |this: &mut Self, kind: ResultKind, prereq: Option<&str>| {
            this.lexer.get();
            this.lexer.get();
            if !this.lexer.matches(&Token::RParen) {
                this.lexer
                    .error(format!("{} doesn't take any parameters", kind.name()));
                return None;
            }
            if !this.type_check(lhs, 1, true) {
                return None;
            }
            if let Some(p) = prereq {
                this.prereq(p);
            }
            Some(Action::Result {
                kind,
                dst: lhs,
                set: result_bit(lhs),
            })
        };
        match fname.as_str() {
            "select" => self.parse_select(lhs),
            "put_dhcp_opts" => self.parse_put_opts(lhs, OptsKind::DhcpV4),
            "put_dhcpv6_opts" => self.parse_put_opts(lhs, OptsKind::DhcpV6),
            "put_nd_ra_opts" => self.parse_put_opts(lhs, OptsKind::NdRa),
            "dns_lookup" => result(self, ResultKind::DnsLookup, Some("udp")),
            "check_pkt_larger" => {
                if !self.type_check(lhs, 1, true) {
                    return None;
                }
                self.lexer.get();
                if !self.lexer.force_match(&Token::LParen) {
                    return None;
                }
                let len = self.lexer.get_int()?;
                if !self.lexer.force_match(&Token::RParen) {
                    return None;
                }
                Some(Action::CheckPktLarger { dst: lhs, len })
            }
            "lookup_arp" | "lookup_nd" => {
                let nd = fname == "lookup_nd";
                if !self.type_check(lhs, 1, true) {
                    return None;
                }
                self.lexer.get();
                self.lexer.get();
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let ip = self.action_field(if nd { 128 } else { 32 }, false)?;
                self.lexer.force_match(&Token::Comma);
                let mac = self.action_field(48, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::LookupMacBind {
                    nd,
                    dst: lhs,
                    port,
                    ip,
                    mac,
                })
            }
            "lookup_arp_ip" | "lookup_nd_ip" => {
                let nd = fname == "lookup_nd_ip";
                if !self.type_check(lhs, 1, true) {
                    return None;
                }
                self.lexer.get();
                self.lexer.get();
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let ip = self.action_field(if nd { 128 } else { 32 }, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::LookupMacBindIp {
                    nd,
                    dst: lhs,
                    port,
                    ip,
                })
            }
            "chk_lb_hairpin" => result(self, ResultKind::ChkLbHairpin, None),
            "chk_lb_hairpin_reply" => result(self, ResultKind::ChkLbHairpinReply, None),
            "get_fdb" => {
                self.lexer.get();
                self.lexer.get();
                if lhs.n_bits != 0 && !self.type_check(lhs, 32, true) {
                    return None;
                }
                let mac = self.action_field(48, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::GetFdb { dst: lhs, mac })
            }
            "lookup_fdb" => {
                self.lexer.get();
                self.lexer.get();
                if !self.type_check(lhs, 1, true) {
                    return None;
                }
                let port = self.action_field(0, false)?;
                self.lexer.force_match(&Token::Comma);
                let mac = self.action_field(48, false)?;
                self.lexer.force_match(&Token::RParen);
                Some(Action::LookupFdb {
                    dst: lhs,
                    port,
                    mac,
                })
            }
            "check_in_port_sec" => result(self, ResultKind::CheckInPortSec, None),
            "check_out_port_sec" => result(self, ResultKind::CheckOutPortSec, None),
            "chk_ecmp_nh_mac" => result(self, ResultKind::ChkEcmpNhMac, None),
            "chk_ecmp_nh" => result(self, ResultKind::ChkEcmpNh, None),
            "chk_lb_aff" => result(self, ResultKind::ChkLbAff, None),
            _ => self.parse_assignment(false, lhs),
        }
    }

    fn parse_load(&mut self, lhs: FieldRef) -> Option<Action> {
        let sym = symtab().get(lhs.sym);
        if !self.type_check(lhs, lhs.n_bits, true) {
            return None;
        }
        let c = expr::parse_constant(self.lexer)?;
        // Type check as OVN's `expr_constant_parse` does, against the symbol.
        match (&c, sym.width) {
            (Const::Str(_), w) if w != 0 => {
                self.lexer.error(format!(
                    "Integer field {} is not compatible with string constant.",
                    sym.name
                ));
                return None;
            }
            (Const::Int(_), 0) => {
                self.lexer.error(format!(
                    "String field {} is not compatible with integer constant.",
                    sym.name
                ));
                return None;
            }
            (Const::Int(k), w) if expr::constant_width(k) > w => {
                self.lexer.error(format!(
                    "{}-bit constant is not compatible with {}-bit field {}.",
                    expr::constant_width(k),
                    w,
                    sym.name
                ));
                return None;
            }
            _ => {}
        }
        if let SymbolKind::Ovn(field) = sym.kind {
            let Const::Int(k) = c else { return None };
            return Some(Action::OvnFieldLoad {
                field,
                value: k.value,
            });
        }
        let set = match &c {
            Const::Int(k) if k.mask.is_none() => {
                let sf = lhs.resolve();
                WordSet::new(sf.field, sf.ofs, sf.n_bits, k.value, sf.field.prereq())
            }
            _ => None,
        };
        Some(Action::Load {
            dst: lhs,
            value: c,
            set,
        })
    }

    fn parse_assignment(&mut self, exchange: bool, lhs: FieldRef) -> Option<Action> {
        let rhs = self.field()?;
        let (ls, rs) = (symtab().get(lhs.sym), symtab().get(rhs.sym));
        let kind = |w: u32| if w != 0 { "integer" } else { "string" };
        if (ls.width != 0) != (rs.width != 0) {
            self.lexer.error(if exchange {
                format!(
                    "Can't exchange {} field ({}) with {} field ({}).",
                    kind(ls.width),
                    ls.name,
                    kind(rs.width),
                    rs.name
                )
            } else {
                format!(
                    "Can't assign {} field ({}) to {} field ({}).",
                    kind(rs.width),
                    rs.name,
                    kind(ls.width),
                    ls.name
                )
            });
            return None;
        }
        if lhs.n_bits != rhs.n_bits {
            self.lexer.error(if exchange {
                format!(
                    "Can't exchange {}-bit field with {}-bit field.",
                    lhs.n_bits, rhs.n_bits
                )
            } else {
                format!(
                    "Can't assign {}-bit value to {}-bit destination.",
                    rhs.n_bits, lhs.n_bits
                )
            });
            return None;
        }
        if !self.type_check(lhs, lhs.n_bits, true) || !self.type_check(rhs, rhs.n_bits, exchange) {
            return None;
        }
        Some(if exchange {
            Action::Exchange { a: lhs, b: rhs }
        } else {
            Action::Move { dst: lhs, src: rhs }
        })
    }

    fn parse_select(&mut self, dst: FieldRef) -> Option<Action> {
        if !self.type_check(dst, dst.n_bits, true) {
            return None;
        }
        if dst.n_bits < 16 {
            let sym = symtab().get(dst.sym);
            self.lexer.error(format!("cannot use {}-bit field {}[{}..{}] for \"select\", which requires at least 16 bits.", dst.n_bits, sym.name, dst.ofs, dst.ofs + dst.n_bits - 1));
            return None;
        }
        let table = self.next_table("select")?;
        self.lexer.get();
        self.lexer.get();
        let mut members = Vec::new();
        while !self.lexer.matches(&Token::RParen) {
            let id = self.uint16("id")?;
            let mut weight = 0;
            if self.lexer.matches(&Token::Equals) {
                weight = self.uint16("weight")?;
                if weight == 0 {
                    self.lexer.syntax_error(Some("weight can't be 0"));
                    return None;
                }
            }
            if weight == 0 {
                weight = 100;
            }
            self.lexer.matches(&Token::Comma);
            members.push((id, weight));
        }
        if members.len() <= 1 {
            self.lexer
                .syntax_error(Some("expecting at least 2 group members"));
            return None;
        }
        Some(Action::Select {
            dst,
            table,
            members,
        })
    }

    fn parse_gen_opt(&mut self, table: &OptionTable, what: &str) -> Option<GenOption> {
        let Token::Id(name) = self.lexer.token.clone() else {
            self.lexer.syntax_error(None);
            return None;
        };
        let Some(def) = table.get(&name).cloned() else {
            self.lexer
                .syntax_error(Some(&format!("expecting {what} option name")));
            return None;
        };
        self.lexer.get();
        if !self.lexer.force_match(&Token::Equals) {
            return None;
        }
        let value = expr::parse_constant_set(self.lexer)?;
        if def.ty != "host_id" {
            let is_str = matches!(value.values.first(), Some(Const::Str(_)));
            if def.ty == "str" || def.ty == "domains" {
                if !is_str {
                    self.lexer
                        .error(format!("{what} option {} requires string value.", def.name));
                    return None;
                }
            } else if is_str {
                self.lexer.error(format!(
                    "{what} option {} requires numeric value.",
                    def.name
                ));
                return None;
            }
        }
        Some(GenOption { def, value })
    }

    fn parse_put_opts(&mut self, dst: FieldRef, kind: OptsKind) -> Option<Action> {
        self.lexer.get();
        self.lexer.get();
        if !self.type_check(dst, 1, true) {
            return None;
        }
        let (table, what) = match kind {
            OptsKind::DhcpV4 => (self.pp.dhcp_opts, "DHCPv4"),
            OptsKind::DhcpV6 => (self.pp.dhcpv6_opts, "DHCPv6"),
            OptsKind::NdRa => (self.pp.nd_ra_opts, "IPv6 ND RA"),
        };
        let mut options = Vec::new();
        while !self.lexer.matches(&Token::RParen) {
            options.push(self.parse_gen_opt(table, what)?);
            self.lexer.matches(&Token::Comma);
        }
        match kind {
            OptsKind::DhcpV4 if !options.iter().any(|o| o.def.code == 0) => {
                self.lexer
                    .error("put_dhcp_opts requires offerip to be specified.");
                return None;
            }
            OptsKind::NdRa => {
                self.validate_nd_ra(&options)?;
                self.prereq("ip6");
            }
            _ => {}
        }
        Some(Action::PutOpts {
            kind,
            dst,
            options: options.into(),
        })
    }

    fn validate_nd_ra(&mut self, options: &[GenOption]) -> Option<()> {
        let (mut stateful, mut prefix, mut slla) = (false, false, false);
        for o in options {
            if o.value.values.len() > 1 {
                self.lexer
                    .error(format!("Invalid value for \"{}\" option", o.def.name));
                return None;
            }
            let c = o.value.values.first();
            let s = match c {
                Some(Const::Str(s)) => Some(s.as_str()),
                _ => None,
            };
            let int = match c {
                Some(Const::Int(k)) => Some(k),
                _ => None,
            };
            let ok = match o.def.code {
                0 => {
                    stateful |= s == Some("dhcpv6_stateful");
                    matches!(s, Some("slaac" | "dhcpv6_stateful" | "dhcpv6_stateless"))
                }
                255 => matches!(s, Some("MEDIUM" | "HIGH" | "LOW")),
                1 => {
                    slla = true;
                    int.is_some_and(|k| k.format == Format::Ethernet)
                }
                3 => {
                    prefix = true;
                    int.is_some_and(|k| k.format == Format::Ipv6 && k.mask.is_some())
                }
                5 => int.is_some_and(|k| k.format == Format::Decimal),
                25 => int.is_some_and(|k| k.format == Format::Ipv6),
                24 | 31 => s.is_some(),
                _ => true,
            };
            if !ok {
                self.lexer
                    .error(format!("Invalid value for \"{}\" option", o.def.name));
                return None;
            }
        }
        if !slla {
            self.lexer.error("slla option not present");
            return None;
        }
        if !stateful && !prefix {
            self.lexer.error(
                "prefix option needs to be set when address mode is slaac/dhcpv6_stateless.",
            );
            return None;
        }
        Some(())
    }

    fn parse_log(&mut self) -> Option<Action> {
        let (mut name, mut verdict, mut severity, mut meter) = (None, None, "info", None);
        if self.lexer.matches(&Token::LParen) {
            while !self.lexer.matches(&Token::RParen) {
                if self.lexer.match_id("verdict") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    verdict = Some(if self.lexer.match_id("drop") {
                        "drop"
                    } else if self.lexer.match_id("reject") {
                        "reject"
                    } else if self.lexer.match_id("allow") {
                        "allow"
                    } else {
                        self.lexer.syntax_error(Some("unknown verdict"));
                        return None;
                    });
                } else if self.lexer.match_id("name") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    let Token::Str(s) = self.lexer.token.clone() else {
                        self.lexer.syntax_error(Some("expecting string"));
                        return None;
                    };
                    if s.len() >= 64 {
                        self.lexer
                            .syntax_error(Some("name must be shorter than 64 characters"));
                        return None;
                    }
                    name = Some(s);
                    self.lexer.get();
                } else if self.lexer.match_id("severity") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    let Token::Id(s) = self.lexer.token.clone() else {
                        self.lexer.syntax_error(Some("expecting severity"));
                        return None;
                    };
                    severity = match s.as_str() {
                        "alert" => "alert",
                        "warning" => "warning",
                        "notice" => "notice",
                        "info" => "info",
                        "debug" => "debug",
                        _ => {
                            self.lexer.syntax_error(Some("unknown severity"));
                            return None;
                        }
                    };
                    self.lexer.get();
                } else if self.lexer.match_id("meter") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    let Token::Str(s) = self.lexer.token.clone() else {
                        self.lexer.syntax_error(Some("expecting string"));
                        return None;
                    };
                    meter = Some(s);
                    self.lexer.get();
                } else {
                    self.lexer.syntax_error(None);
                    return None;
                }
                self.lexer.matches(&Token::Comma);
            }
        }
        let Some(verdict) = verdict else {
            self.lexer.syntax_error(Some("expecting verdict"));
            return None;
        };
        Some(Action::Log {
            name,
            verdict,
            severity,
            meter,
        })
    }

    fn parse_set_meter(&mut self) -> Option<Action> {
        self.lexer.force_match(&Token::LParen);
        let dec = |t: &Token| match t {
            Token::Int(c) if c.format == Format::Decimal => c.value as u64,
            _ => 0,
        };
        let rate = dec(&self.lexer.token);
        self.lexer.get();
        let mut burst = 0;
        if self.lexer.matches(&Token::Comma) {
            burst = dec(&self.lexer.token);
            self.lexer.get();
        }
        self.lexer.force_match(&Token::RParen);
        if rate == 0 {
            self.lexer
                .error(format!("Rate {rate} for set_meter is not in valid."));
            return None;
        }
        Some(Action::SetMeter { rate, burst })
    }

    fn parse_trigger_event(&mut self) -> Option<Action> {
        self.lexer.force_match(&Token::LParen);
        if !self.lexer.match_id("event") {
            self.lexer.syntax_error(Some("Expecting 'event' option"));
            return None;
        }
        if !self.lexer.force_match(&Token::Equals) {
            return None;
        }
        let Token::Str(event) = self.lexer.token.clone() else {
            self.lexer.syntax_error(Some("Expecting string"));
            return None;
        };
        if event != "empty_lb_backends" {
            self.lexer.syntax_error(Some("Unknown event '-1'"));
            return None;
        }
        self.lexer.get();
        self.lexer.matches(&Token::Comma);
        let mut options = Vec::new();
        while !self.lexer.matches(&Token::RParen) {
            options.push(self.parse_gen_opt(self.pp.event_opts, &event)?);
            self.lexer.matches(&Token::Comma);
        }
        for o in &options {
            if o.value.values.len() > 1 || !matches!(o.value.values.first(), Some(Const::Str(_))) {
                self.lexer
                    .error(format!("Invalid value for \"{}\" option", o.def.name));
                return None;
            }
        }
        Some(Action::TriggerEvent { event, options })
    }

    fn parse_fwd_group(&mut self) -> Option<Action> {
        let mut liveness = false;
        let mut child_ports = Vec::new();
        if self.lexer.matches(&Token::LParen) {
            if self.lexer.match_id("liveness") {
                if !self.lexer.force_match(&Token::Equals) {
                    return None;
                }
                if self.lexer.match_string("true") || self.lexer.match_id("true") {
                    liveness = true;
                } else if self.lexer.match_string("false") || self.lexer.match_id("false") {
                    liveness = false;
                } else {
                    self.lexer.syntax_error(Some("expecting true or false"));
                    return None;
                }
                self.lexer.force_match(&Token::Comma);
            }
            if self.lexer.match_id("childports") {
                if !self.lexer.force_match(&Token::Equals) {
                    return None;
                }
                while !self.lexer.matches(&Token::RParen) {
                    let Token::Str(p) = self.lexer.token.clone() else {
                        self.lexer
                            .syntax_error(Some("expecting logical switch port"));
                        return None;
                    };
                    self.lexer.get();
                    self.lexer.matches(&Token::Comma);
                    child_ports.push(p);
                }
            }
        }
        Some(Action::FwdGroup {
            liveness,
            child_ports,
            table: self.pp.table + 1,
        })
    }

    fn parse_bool_param(&mut self) -> Option<bool> {
        if self.lexer.match_string("true") || self.lexer.match_id("true") {
            Some(true)
        } else if self.lexer.match_string("false") || self.lexer.match_id("false") {
            Some(false)
        } else {
            self.lexer.syntax_error(Some("expecting true or false"));
            None
        }
    }

    fn parse_proto(&mut self) -> Option<L4Proto> {
        if self.lexer.match_id("tcp") {
            Some(L4Proto::Tcp)
        } else if self.lexer.match_id("udp") {
            Some(L4Proto::Udp)
        } else if self.lexer.match_id("sctp") {
            Some(L4Proto::Sctp)
        } else {
            self.lexer.syntax_error(Some("invalid protocol"));
            None
        }
    }

    fn param(&mut self, name: &str) -> bool {
        if !self.lexer.match_id(name) || !self.lexer.force_match(&Token::Equals) {
            self.lexer.syntax_error(Some("invalid parameter"));
            return false;
        }
        true
    }

    fn parse_commit_ecmp_nh(&mut self) -> Option<Action> {
        self.lexer.force_match(&Token::LParen);
        if !self.param("ipv6") {
            return None;
        }
        let ipv6 = self.parse_bool_param()?;
        self.lexer.force_match(&Token::Comma);
        if !self.param("proto") {
            return None;
        }
        let proto = self.parse_proto()?;
        self.lexer.force_match(&Token::RParen);
        Some(Action::CommitEcmpNh { ipv6, proto })
    }

    fn parse_lb_key(&mut self) -> Option<(Addr, u16)> {
        let Token::Str(s) = self.lexer.token.clone() else {
            self.lexer.syntax_error(Some("invalid parameter"));
            return None;
        };
        let parsed = parse_ip_port(&s);
        if parsed.is_none() {
            self.lexer.syntax_error(Some("invalid parameter"));
        }
        self.lexer.get();
        parsed
    }

    fn parse_commit_lb_aff(&mut self) -> Option<Action> {
        self.lexer.force_match(&Token::LParen);
        if !self.param("vip") {
            return None;
        }
        let (vip, vip_port) = self.parse_lb_key()?;
        self.lexer.force_match(&Token::Comma);
        if !self.param("backend") {
            return None;
        }
        let (backend, backend_port) = self.parse_lb_key()?;
        if matches!(vip, Addr::V4(_)) != matches!(backend, Addr::V4(_)) {
            self.lexer.syntax_error(Some("invalid protocol family"));
            return None;
        }
        self.lexer.force_match(&Token::Comma);
        let mut proto = None;
        if vip_port != 0 {
            if !self.param("proto") {
                return None;
            }
            proto = Some(self.parse_proto()?);
            self.lexer.force_match(&Token::Comma);
        }
        if !self.param("timeout") {
            return None;
        }
        let timeout = self.uint16("affinity timeout")?;
        self.lexer.force_match(&Token::RParen);
        Some(Action::CommitLbAff {
            vip,
            vip_port,
            backend,
            backend_port,
            proto,
            timeout,
        })
    }

    fn parse_sample(&mut self) -> Option<Action> {
        let (mut probability, mut collector_set, mut obs_domain, mut obs_point) =
            (0u16, 0u32, 0u8, Some(0u32));
        if self.lexer.matches(&Token::LParen) {
            while !self.lexer.matches(&Token::RParen) {
                if self.lexer.match_id("probability") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    probability = self.uint16("probability")?;
                } else if self.lexer.match_id("obs_point") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    match self.lexer.token.clone() {
                        Token::Macro(m) if m == "cookie" => obs_point = None,
                        Token::Int(c) if c.format == Format::Decimal => {
                            obs_point = Some(c.value as u32)
                        }
                        _ => {
                            self.lexer
                                .syntax_error(Some("malformed sample observation_point_id"));
                            return None;
                        }
                    }
                    self.lexer.get();
                } else if self.lexer.match_id("obs_domain") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    if let Token::Int(c) = &self.lexer.token
                        && c.format == Format::Decimal
                    {
                        if c.value > 255 {
                            self.lexer
                                .syntax_error(Some("obs_domain must be 8-bit long"));
                            return None;
                        }
                        obs_domain = c.value as u8;
                    }
                    self.lexer.get();
                } else if self.lexer.match_id("collector_set") {
                    if !self.lexer.force_match(&Token::Equals) {
                        return None;
                    }
                    if let Token::Int(c) = &self.lexer.token
                        && c.format == Format::Decimal
                    {
                        collector_set = c.value as u32;
                    }
                    self.lexer.get();
                } else {
                    self.lexer.syntax_error(Some("unknown argument"));
                    return None;
                }
                self.lexer.matches(&Token::Comma);
            }
        }
        if probability == 0 {
            self.lexer.error("probability must be greater than zero");
            return None;
        }
        Some(Action::Sample {
            probability,
            collector_set,
            obs_domain,
            obs_point,
        })
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1` (OVN's
/// `ip_address_and_port_from_lb_key`).
pub fn parse_ip_port(s: &str) -> Option<(Addr, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        let a: std::net::Ipv6Addr = ip.parse().ok()?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 0,
            None => return None,
        };
        return Some((Addr::V6(u128::from(a)), port));
    }
    if let Ok(a) = s.parse::<std::net::Ipv6Addr>() {
        return Some((Addr::V6(u128::from(a)), 0));
    }
    let (ip, port) = match s.split_once(':') {
        Some((ip, p)) => (ip, p.parse().ok()?),
        None => (s, 0),
    };
    let a: Ipv4Addr = ip.parse().ok()?;
    Some((Addr::V4(u32::from(a)), port))
}

/// The string form of a JSON-escaped port name (used in friendly names).
pub fn quoted(s: &str) -> String {
    JsonStr(s).to_string()
}

/// `dst = 1` as one word's bits, as a result action writes its boolean (no
/// prerequisites: the result is stored whatever the packet).
fn result_bit(dst: FieldRef) -> Option<WordSet> {
    let sf = dst.resolve();
    WordSet::new(sf.field, sf.ofs, sf.n_bits, 1, Prereq::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp<'a>(dhcp: &'a OptionTable, nd: &'a OptionTable, ev: &'a OptionTable) -> ParseParams<'a> {
        ParseParams {
            dhcp_opts: dhcp,
            dhcpv6_opts: dhcp,
            nd_ra_opts: nd,
            event_opts: ev,
            pipeline: Pipeline::Ingress,
            table: 10,
            n_tables: LOG_PIPELINE_LEN,
        }
    }

    fn round_trip(s: &str) -> String {
        let mut dhcp = OptionTable::default();
        dhcp.add("offerip", 0, "ipv4");
        dhcp.add("router", 3, "ipv4");
        dhcp.add("lease_time", 51, "uint32");
        dhcp.add("domain_name", 15, "str");
        let (nd, ev) = (OptionTable::nd_ra(), OptionTable::lb_event());
        match parse(s, &pp(&dhcp, &nd, &ev)) {
            Ok(p) => Actions(&p.actions).to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn prints_as_ovn_does() {
        for s in [
            "output;",
            "next;",
            "next(12);",
            "next(pipeline=egress, table=3);",
            "eth.dst = 02:ac:10:ff:01:33; ip4.src = 172.16.255.129; outport = \"dmz-c51\";",
            "eth.dst <-> eth.src; reg0 = ip4.dst;",
            "ip.ttl--; flags.loopback = 1; reg8[0..15] = 0;",
            "reg0[15] = check_in_port_sec(); next;",
            "reg0[3] = put_dhcp_opts(offerip = 172.16.255.133, lease_time = 3600, router = 172.16.255.129);",
            "ct_next;",
            "ct_commit { ct_mark.blocked = 0; ct_label.label = 7; };",
            "ct_commit;",
            "ct_lb_mark(backends=10.0.0.2:80,10.0.0.3:80);",
            "ct_dnat(10.0.0.5);",
            "ct_snat(10.0.0.5,1000-2000);",
            "arp { eth.dst = ff:ff:ff:ff:ff:ff; arp.spa = reg1; arp.tpa = reg0; arp.op = 1; output; };",
            "icmp4 { eth.dst <-> eth.src; icmp4.type = 3; icmp4.code = 3; next(0); };",
            "reject { drop; };",
            "get_arp(outport, reg0); put_arp(inport, arp.spa, arp.sha);",
            "reg9[2] = lookup_arp(inport, arp.spa, arp.sha);",
            "log(name=\"acl1\", verdict=drop, severity=warning);",
            "reg8[0..15] = select(1=100, 2=50);",
            "push(reg0); pop(reg1);",
            "icmp4.frag_mtu = 1442;",
            "reg9[1] = check_pkt_larger(1514);",
            "ct_commit(ct_mark=0x2/0x2);",
            "trigger_event(event = \"empty_lb_backends\", vip = \"10.0.0.1:80\", protocol = \"tcp\", load_balancer = \"ce1b5db4-3de0-4a24-a6ff-b4ac1c3c9fa5\");",
            "commit_lb_aff(vip = \"10.0.0.1:80\", backend = \"10.0.0.2:8080\", proto = tcp, timeout = 30);",
        ] {
            assert_eq!(round_trip(s), s, "{s}");
        }
        assert_eq!(round_trip("drop;"), "drop;");
    }

    #[test]
    fn prerequisites() {
        let t = OptionTable::default();
        let (nd, ev) = (OptionTable::nd_ra(), OptionTable::lb_event());
        let p = parse(
            "ip4.src = 1.2.3.4; ip.ttl--; arp { arp.op = 1; output; };",
            &pp(&t, &nd, &ev),
        )
        .unwrap();
        assert_eq!(p.prereqs, vec!["ip4", "ip", "ip4"]);
    }

    #[test]
    fn errors() {
        assert!(round_trip("foo;").starts_with("error:"));
        assert!(round_trip("eth.type = 0x800;").contains("not modifiable"));
        assert!(round_trip("reg0[15] = put_dhcp_opts(router = 1.2.3.4);").contains("offerip"));
        assert!(round_trip("ct_mark = 1;").contains("not modifiable"));
        assert!(round_trip("outport = 5;").contains("not compatible"));
        assert!(round_trip("reg0 = eth.src;").contains("48-bit"));
        assert!(round_trip("next").contains("Syntax error"));
    }
}
