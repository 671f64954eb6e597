//! Traces as ovn-trace builds and prints them (OVN's utilities/ovn-trace.c): a tree of
//! nodes — pipelines, tables, actions, modifications, transformations, outputs, errors
//! — printed `--detailed`, `--summary` or `--minimal`, and the microflow's first line
//! in OVS's `flow_format` syntax.

use crate::flow::{ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_RARP, Field, Flow, cs, frag};
use crate::value;

/// A node's kind (ovn-trace's `enum ovntrace_node_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Output,
    Modify,
    Action,
    Error,
    Pipeline,
    Table,
    Transformation,
}

impl NodeKind {
    /// ovn-trace's `ovntrace_node_type_is_terminal` (true for the kinds printed at the
    /// deeper indentation).
    fn is_terminal(self) -> bool {
        matches!(
            self,
            NodeKind::Output | NodeKind::Modify | NodeKind::Action | NodeKind::Error
        )
    }
}

/// Where trace nodes go. The interpreter is generic over it: a [`Tree`] records them,
/// [`NoTrace`] compiles them away.
pub trait Sink {
    /// Whether nodes are recorded (so callers can skip building their text).
    const ON: bool;
    /// Appends a node under `parent` and returns its id.
    fn add(&mut self, parent: usize, kind: NodeKind, text: impl FnOnce() -> String) -> usize;
    fn set_always_indent(&mut self, id: usize);
}

/// Records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Sink for NoTrace {
    const ON: bool = false;
    #[inline(always)]
    fn add(&mut self, _: usize, _: NodeKind, _: impl FnOnce() -> String) -> usize {
        0
    }
    #[inline(always)]
    fn set_always_indent(&mut self, _: usize) {}
}

#[derive(Debug, Clone)]
struct TNode {
    kind: NodeKind,
    text: String,
    always_indent: bool,
    subs: Vec<usize>,
}

/// A trace tree. Node 0 is the root list.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<TNode>,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree {
            nodes: vec![TNode {
                kind: NodeKind::Pipeline,
                text: String::new(),
                always_indent: false,
                subs: Vec::new(),
            }],
        }
    }
}

impl Sink for Tree {
    const ON: bool = true;
    fn add(&mut self, parent: usize, kind: NodeKind, text: impl FnOnce() -> String) -> usize {
        let id = self.nodes.len();
        self.nodes.push(TNode {
            kind,
            text: text(),
            always_indent: false,
            subs: Vec::new(),
        });
        self.nodes[parent].subs.push(id);
        id
    }

    fn set_always_indent(&mut self, id: usize) {
        self.nodes[id].always_indent = true;
    }
}

/// A node with its children, detached from the arena for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub text: String,
    pub always_indent: bool,
    pub subs: Vec<Node>,
}

impl Tree {
    /// The top-level nodes as an owned tree.
    pub fn roots(&self) -> Vec<Node> {
        self.nodes[0].subs.iter().map(|&i| self.node(i)).collect()
    }

    fn node(&self, i: usize) -> Node {
        let n = &self.nodes[i];
        Node {
            kind: n.kind,
            text: n.text.clone(),
            always_indent: n.always_indent,
            subs: n.subs.iter().map(|&c| self.node(c)).collect(),
        }
    }
}

/// `--detailed`: the table-by-table backtrace.
pub fn print_details(nodes: &[Node], level: usize, out: &mut String) {
    for (i, sub) in nodes.iter().enumerate() {
        if sub.kind == NodeKind::Modify {
            continue;
        }
        let more = usize::from(i + 1 != nodes.len() || sub.always_indent || sub.kind.is_terminal());
        let title = matches!(sub.kind, NodeKind::Pipeline | NodeKind::Transformation);
        if title {
            out.push('\n');
        }
        let indent = " ".repeat((level + more) * 4);
        out.push_str(&indent);
        out.push_str(&sub.text);
        out.push('\n');
        if title {
            out.push_str(&indent);
            out.push_str(&"-".repeat(sub.text.len()));
            out.push('\n');
        }
        print_details(&sub.subs, level + more + more, out);
    }
}

/// Replaces each node of a kind in `drop` by its children (ovn-trace's pruning).
fn prune(nodes: Vec<Node>, drop: &[NodeKind]) -> Vec<Node> {
    let mut out = Vec::new();
    for mut n in nodes {
        n.subs = prune(std::mem::take(&mut n.subs), drop);
        if drop.contains(&n.kind) {
            out.extend(n.subs);
        } else {
            out.push(n);
        }
    }
    out
}

/// `--summary` and `--minimal` printing.
pub fn print_summary(nodes: &[Node], level: usize, out: &mut String) {
    for sub in nodes {
        if sub.kind == NodeKind::Action && sub.text.starts_with("next(") {
            continue;
        }
        let indent = " ".repeat(level * 4);
        out.push_str(&indent);
        out.push_str(&sub.text);
        if !sub.subs.is_empty() {
            out.push_str(" {\n");
            print_summary(&sub.subs, level + 1, out);
            out.push_str(&indent);
            out.push('}');
        }
        if sub.kind != NodeKind::Action {
            out.push(';');
        }
        out.push('\n');
    }
}

/// Output formats, as ovn-trace's `--detailed`, `--summary`, `--minimal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Formats {
    pub detailed: bool,
    pub summary: bool,
    pub minimal: bool,
}

/// Renders a trace as ovn-trace does: the microflow line, then each format asked.
pub fn render(flow: &Flow, tree: &Tree, formats: Formats) -> String {
    let mut f = formats;
    if !f.detailed && !f.summary && !f.minimal {
        f.detailed = true;
    }
    let multiple = u8::from(f.detailed) + u8::from(f.summary) + u8::from(f.minimal) > 1;
    let mut out = format!("# {}\n", flow_format(flow));
    let roots = tree.roots();
    if f.detailed {
        if multiple {
            out.push_str("# Detailed trace.\n");
        }
        print_details(&roots, 0, &mut out);
    }
    if f.summary {
        if multiple {
            out.push_str("# Summary trace.\n");
        }
        let pruned = prune(roots.clone(), &[NodeKind::Modify, NodeKind::Table]);
        print_summary(&pruned, 0, &mut out);
    }
    if f.minimal {
        if multiple {
            out.push_str("# Minimal trace.\n");
        }
        let pruned = prune(
            roots,
            &[
                NodeKind::Action,
                NodeKind::Pipeline,
                NodeKind::Table,
                NodeKind::Output,
            ],
        );
        print_summary(&pruned, 0, &mut out);
    }
    out
}

/// OVS's `flow_format` for a microflow: the fields a packet of its type has, context
/// fields only when nonzero.
pub fn flow_format(f: &Flow) -> String {
    let mut s = String::new();
    let get = |x: Field| f.get(x);
    let dl_type = f.dl_type();
    let is_ip = dl_type == ETH_TYPE_IP;
    let is_ip6 = dl_type == ETH_TYPE_IPV6;
    let is_arp = dl_type == ETH_TYPE_ARP || dl_type == ETH_TYPE_RARP;
    let nw_proto = f.nw_proto();

    let pkt_mark = get(Field::PktMark);
    if pkt_mark != 0 {
        s.push_str(&format!("pkt_mark={pkt_mark:#x},"));
    }
    let ct_state = get(Field::CtState) as u32;
    if ct_state != 0 {
        s.push_str(&format!("ct_state={},", cs::format(ct_state)));
    }
    let ct_mark = get(Field::CtMark);
    if ct_mark != 0 {
        s.push_str(&format!("ct_mark={ct_mark:#x},"));
    }
    let ct_label = get(Field::CtLabel);
    if ct_label != 0 {
        s.push_str(&format!("ct_label={ct_label:#x},"));
    }
    let mut skip_proto = false;
    let mut skip_type = true;
    let proto_name = |v6: bool| match nw_proto {
        1 if !v6 => Some("icmp"),
        58 if v6 => Some("icmp6"),
        6 => Some(if v6 { "tcp6" } else { "tcp" }),
        17 => Some(if v6 { "udp6" } else { "udp" }),
        132 => Some(if v6 { "sctp6" } else { "sctp" }),
        _ => None,
    };
    if is_ip || is_ip6 {
        match proto_name(is_ip6) {
            Some(n) => {
                skip_proto = true;
                s.push_str(n);
            }
            None => s.push_str(if is_ip6 { "ipv6" } else { "ip" }),
        }
        s.push(',');
    } else if dl_type == ETH_TYPE_ARP {
        s.push_str("arp,");
    } else if dl_type == ETH_TYPE_RARP {
        s.push_str("rarp,");
    } else if dl_type == 0x8847 {
        s.push_str("mpls,");
    } else if dl_type == 0x8848 {
        s.push_str("mplsm,");
    } else {
        skip_type = false;
    }
    for i in 0..16u8 {
        let r = f.reg(i);
        if r != 0 {
            s.push_str(&format!("reg{i}={r:#x},"));
        }
    }
    let meta = get(Field::Metadata);
    if meta != 0 {
        s.push_str(&format!("metadata={meta:#x},"));
    }
    let tci = get(Field::VlanTci) as u16;
    if tci & 0x1000 != 0 {
        s.push_str(&format!(
            "dl_vlan={},dl_vlan_pcp={},",
            tci & 0xfff,
            tci >> 13
        ));
        s.push_str("vlan_tci1=0x0000,");
    } else {
        s.push_str(&format!("vlan_tci={tci:#06x},"));
    }
    s.push_str(&format!(
        "dl_src={},",
        value::mac_string(get(Field::EthSrc) as u64)
    ));
    s.push_str(&format!(
        "dl_dst={},",
        value::mac_string(get(Field::EthDst) as u64)
    ));
    if !skip_type {
        s.push_str(&format!("dl_type={dl_type:#06x},"));
    }
    if is_ip6 {
        s.push_str(&format!(
            "ipv6_src={},",
            value::ipv6_string(get(Field::Ipv6Src))
        ));
        s.push_str(&format!(
            "ipv6_dst={},",
            value::ipv6_string(get(Field::Ipv6Dst))
        ));
        s.push_str(&format!("ipv6_label={:#07x},", get(Field::Ipv6Label)));
    } else if is_arp {
        s.push_str(&format!(
            "arp_spa={},",
            crate::lex::ipv4(get(Field::ArpSpa) as u32)
        ));
        s.push_str(&format!(
            "arp_tpa={},",
            crate::lex::ipv4(get(Field::ArpTpa) as u32)
        ));
    } else if is_ip {
        s.push_str(&format!(
            "nw_src={},",
            crate::lex::ipv4(get(Field::Ipv4Src) as u32)
        ));
        s.push_str(&format!(
            "nw_dst={},",
            crate::lex::ipv4(get(Field::Ipv4Dst) as u32)
        ));
    }
    if !skip_proto {
        if is_arp {
            s.push_str(&format!("arp_op={nw_proto},"));
        } else if is_ip || is_ip6 {
            s.push_str(&format!("nw_proto={nw_proto},"));
        }
    }
    if is_arp {
        s.push_str(&format!(
            "arp_sha={},",
            value::mac_string(get(Field::ArpSha) as u64)
        ));
        s.push_str(&format!(
            "arp_tha={},",
            value::mac_string(get(Field::ArpTha) as u64)
        ));
        return chomp(s);
    }
    if !(is_ip || is_ip6) {
        return chomp(s);
    }
    let tos = (get(Field::IpDscp) << 2) | get(Field::IpEcn);
    s.push_str(&format!("nw_tos={},nw_ecn={},", tos & 0xfc, tos & 3));
    s.push_str(&format!("nw_ttl={},", get(Field::IpTtl)));
    let fr = f.nw_frag();
    s.push_str(&format!(
        "nw_frag={},",
        if fr & frag::ANY != 0 {
            if fr & frag::LATER != 0 {
                "later"
            } else {
                "first"
            }
        } else if fr & frag::LATER != 0 {
            "<error>"
        } else {
            "no"
        }
    ));
    let later = fr & frag::LATER != 0;
    let has_l4 = !later && matches!(nw_proto, 1 | 58 | 6 | 17 | 132 | 2);
    if !has_l4 {
        return chomp(s);
    }
    if is_ip && nw_proto == 1 {
        s.push_str(&format!(
            "icmp_type={},icmp_code={},",
            f.tp_src(),
            f.tp_dst()
        ));
    } else if is_ip6 && nw_proto == 58 {
        s.push_str(&format!(
            "icmp_type={},icmp_code={},",
            f.tp_src(),
            f.tp_dst()
        ));
        let nd = f.tp_dst() == 0 && matches!(f.tp_src(), 135 | 136);
        if nd {
            s.push_str(&format!(
                "nd_target={},",
                value::ipv6_string(get(Field::NdTarget))
            ));
            s.push_str(&format!(
                "nd_sll={},",
                value::mac_string(get(Field::NdSll) as u64)
            ));
            s.push_str(&format!(
                "nd_tll={},",
                value::mac_string(get(Field::NdTll) as u64)
            ));
        }
    } else {
        s.push_str(&format!("tp_src={},tp_dst={},", f.tp_src(), f.tp_dst()));
    }
    if nw_proto == 6 {
        s.push_str(&format!(
            "tcp_flags={},",
            tcp_flags(get(Field::TcpFlags) as u16)
        ));
    }
    chomp(s)
}

fn chomp(mut s: String) -> String {
    if s.ends_with(',') {
        s.pop();
    }
    s
}

/// OVS's `packet_tcp_flag_to_string` joined with `|`.
fn tcp_flags(v: u16) -> String {
    const NAMES: [&str; 12] = [
        "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
    ];
    let names: Vec<&str> = (0..12)
        .filter(|i| v & (1 << i) != 0)
        .map(|i| NAMES[i])
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_lines_as_ovs_prints_them() {
        let mut f = Flow::default();
        f.set_reg(14, 4);
        f.set(Field::EthSrc, 0x02ac_10ff_0133);
        f.set(Field::EthDst, 0xffff_ffff_ffff);
        f.set(Field::EthType, 0x800);
        f.set(Field::IpProto, 17);
        f.set(Field::Ipv4Dst, 0xffff_ffff);
        f.set(Field::IpTtl, 64);
        f.set(Field::UdpSrc, 68);
        f.set(Field::UdpDst, 67);
        assert_eq!(
            flow_format(&f),
            "udp,reg14=0x4,vlan_tci=0x0000,dl_src=02:ac:10:ff:01:33,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=68,tp_dst=67"
        );
        let mut a = Flow::default();
        a.set_reg(14, 4);
        a.set(Field::EthType, 0x806);
        a.set(Field::ArpOp, 1);
        assert_eq!(
            flow_format(&a),
            "arp,reg14=0x4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=1,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00"
        );
    }

    #[test]
    fn minimal_prunes_to_modifications() {
        let mut t = Tree::default();
        let p = t.add(0, NodeKind::Pipeline, || {
            "ingress(dp=\"dmz\", inport=\"a\")".into()
        });
        let tb = t.add(p, NodeKind::Table, || " 0. x: 1, priority 0, uuid 0".into());
        t.add(tb, NodeKind::Action, || {
            "eth.dst = 00:00:00:00:00:01;".into()
        });
        t.add(tb, NodeKind::Modify, || {
            "eth.dst = 00:00:00:00:00:01".into()
        });
        let tr = t.add(tb, NodeKind::Transformation, || "clone".into());
        t.add(tr, NodeKind::Modify, || "output(\"b\")".into());
        let mut out = String::new();
        let pruned = prune(
            t.roots(),
            &[
                NodeKind::Action,
                NodeKind::Pipeline,
                NodeKind::Table,
                NodeKind::Output,
            ],
        );
        print_summary(&pruned, 0, &mut out);
        assert_eq!(
            out,
            "eth.dst = 00:00:00:00:00:01;\nclone {\n    output(\"b\");\n};\n"
        );
    }
}
