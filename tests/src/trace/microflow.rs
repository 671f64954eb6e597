//! Microflows generated from a [`Topology`]: for every port, the traffic a VM or a
//! container sends in its life (ARP, DHCP, pings, unicast, broadcast, routed, spoofed,
//! TTL 1, IPv6 ND/RS/DHCPv6) and the traffic the topology's ACLs and load balancers
//! tell apart, under each connection state that matters.
//!
//! A microflow is ovn-trace's input (`[--ct STATE]... [--lb-dst IP:PORT] MICROFLOW`); the
//! same value drives `ovnest trace` in-process and `ovn-trace`, and can drive a bench.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::topology::{Service, Topology, Vif, shell_quote};

/// One input to ovn-trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microflow {
    /// What the packet is, for people (`dmz-c51: ARP for 172.16.255.129`).
    pub what: String,
    /// The match-language expression (`inport == "dmz-c51" && eth.src == ...`).
    pub expr: String,
    /// `--ct` states, one per connection-tracking action, in order.
    pub ct: Vec<String>,
    /// `--lb-dst IP[:PORT]`.
    pub lb_dst: Option<String>,
    /// `--select-id N`: the member `select` picks (ECMP routes).
    pub select_id: Option<u16>,
}

impl Microflow {
    /// ovn-trace's options for this microflow (not the output format).
    pub fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = self.ct.iter().map(|c| format!("--ct={c}")).collect();
        if let Some(d) = &self.lb_dst {
            o.push(format!("--lb-dst={d}"));
        }
        if let Some(id) = self.select_id {
            o.push(format!("--select-id={id}"));
        }
        o
    }
}

impl fmt::Display for Microflow {
    /// The command line that reproduces it: `ovn-trace --ct=new 'inport == ...'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "# {}\novn-trace", self.what)?;
        for o in self.options() {
            write!(f, " {o}")?;
        }
        write!(f, " {}", shell_quote(&self.expr))
    }
}

const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";
/// A MAC and addresses no port of any topology has.
const STRANGER_MAC: &str = "02:00:00:00:00:99";
const STRANGER_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 255, 150);
const SPOOF_MAC: &str = "02:00:00:00:00:66";
const SPOOF_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 255, 166);
/// An ephemeral source port for TCP/UDP.
const EPHEMERAL: u16 = 40000;
/// How many copies of a state `--ct` gets: more than the conntrack actions one packet
/// meets (switch ingress and egress, router, and again after each patch port), so none
/// falls back to ovn-trace's default.
const CT_DEPTH: usize = 8;

/// Builds one microflow expression term by term.
struct Packet(Vec<String>);

impl Packet {
    fn from(p: &Vif) -> Packet {
        Packet(vec![
            format!("inport == \"{}\"", p.name),
            format!("eth.src == {}", p.mac),
        ])
    }
    fn t(mut self, term: impl Into<String>) -> Packet {
        self.0.push(term.into());
        self
    }
    fn eth_dst(self, mac: &str) -> Packet {
        self.t(format!("eth.dst == {mac}"))
    }
    fn ip4(self, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Packet {
        self.t(format!("ip4.src == {src}"))
            .t(format!("ip4.dst == {dst}"))
            .t(format!("ip.ttl == {ttl}"))
    }
    fn ip6(self, src: Ipv6Addr, dst: Ipv6Addr, ttl: u8) -> Packet {
        self.t(format!("ip6.src == {src}"))
            .t(format!("ip6.dst == {dst}"))
            .t(format!("ip.ttl == {ttl}"))
    }
    fn echo4(self) -> Packet {
        self.t("icmp4.type == 8").t("icmp4.code == 0")
    }
    fn l4(self, s: Service) -> Packet {
        match s {
            Service::Tcp(port) => self
                .t(format!("tcp.src == {EPHEMERAL}"))
                .t(format!("tcp.dst == {port}")),
            Service::Udp(port) => self
                .t(format!("udp.src == {EPHEMERAL}"))
                .t(format!("udp.dst == {port}")),
            Service::Icmp => self.echo4(),
        }
    }
    /// [`Packet::l4`] over IPv6 (ICMPv6 echo for [`Service::Icmp`]).
    fn l4_6(self, s: Service) -> Packet {
        match s {
            Service::Icmp => self.t("icmp6.type == 128").t("icmp6.code == 0"),
            s => self.l4(s),
        }
    }
    fn done(self, what: String) -> Microflow {
        Microflow {
            what,
            expr: self.0.join(" && "),
            ct: Vec::new(),
            lb_dst: None,
            select_id: None,
        }
    }
}

fn service_name6(s: Service) -> String {
    match s {
        Service::Icmp => "icmp6 echo".into(),
        s => service_name(s),
    }
}

fn service_name(s: Service) -> String {
    match s {
        Service::Tcp(p) => format!("tcp/{p}"),
        Service::Udp(p) => format!("udp/{p}"),
        Service::Icmp => "icmp echo".into(),
    }
}

/// `fe80::` + modified EUI-64 of `mac`.
fn link_local(mac: &str) -> Ipv6Addr {
    let b: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).expect("mac"))
        .collect();
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        b[0] ^ 2,
        b[1],
        b[2],
        0xff,
        0xfe,
        b[3],
        b[4],
        b[5],
    ])
}

/// The solicited-node multicast address of `ip` and its Ethernet address.
fn solicited_node(ip: Ipv6Addr) -> (Ipv6Addr, String) {
    let o = ip.octets();
    let sn = Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ]);
    let mac = format!("33:33:ff:{:02x}:{:02x}:{:02x}", o[13], o[14], o[15]);
    (sn, mac)
}

/// `states` each given to every conntrack action of the packet.
fn ct_variants(base: &Microflow, states: &[&str]) -> Vec<Microflow> {
    states
        .iter()
        .map(|s| Microflow {
            what: format!("{} [ct {s}]", base.what),
            ct: vec![s.to_string(); CT_DEPTH],
            ..base.clone()
        })
        .collect()
}

/// Every microflow of `t`.
pub fn microflows(t: &Topology) -> Vec<Microflow> {
    let mut out = Vec::new();
    for p in &t.vifs {
        basics(t, p, &mut out);
        ecmp(t, p, &mut out);
        ipv6(t, p, &mut out);
        acl_traffic(t, p, &mut out);
        vip_traffic(t, p, &mut out);
    }
    out
}

/// To a destination behind each ECMP route of the router, once per path
/// (`--select-id`: without it ovn-trace picks one at random).
fn ecmp(t: &Topology, p: &Vif, out: &mut Vec<Microflow>) {
    let (Some(ip), Some(g)) = (p.ip4, t.gateway(&p.switch)) else {
        return;
    };
    for (router, dst, paths) in &t.ecmp {
        if *router != g.router {
            continue;
        }
        for id in 1..=*paths {
            out.push(Microflow {
                select_id: Some(id),
                ..Packet::from(p)
                    .eth_dst(&g.mac)
                    .ip4(ip, *dst, 64)
                    .l4(Service::Tcp(443))
                    .done(format!("{}: tcp/443 to {dst} over ECMP path {id}", p.name))
            });
        }
    }
}

/// Where `p` can send IPv4 unicast and with which destination MAC: its switch's ports
/// directly, the other switches' ports through the router.
fn destinations<'t>(t: &'t Topology, p: &Vif) -> Vec<(&'t Vif, String, bool)> {
    let gw = t.gateway(&p.switch);
    t.vifs
        .iter()
        .filter(|q| q.name != p.name && q.ip4.is_some())
        .filter_map(|q| {
            if q.switch == p.switch {
                Some((q, q.mac.clone(), false))
            } else {
                let gw = gw?;
                t.gateway(&q.switch)
                    .filter(|g| g.router == gw.router)
                    .map(|_| (q, gw.mac.clone(), true))
            }
        })
        .collect()
}

fn basics(t: &Topology, p: &Vif, out: &mut Vec<Microflow>) {
    let n = &p.name;
    let gw = t.gateway(&p.switch);
    if let Some(ip) = p.ip4 {
        // ARP for every address on the switch, the router's included.
        let targets = t
            .vifs
            .iter()
            .filter(|q| q.switch == p.switch && q.name != p.name)
            .filter_map(|q| q.ip4)
            .chain(gw.and_then(|g| g.ip4))
            .chain(gw.into_iter().flat_map(|g| g.nat_ips.iter().copied()))
            .chain([STRANGER_IP]);
        for tpa in targets {
            out.push(
                Packet::from(p)
                    .eth_dst(BROADCAST)
                    .t("arp.op == 1")
                    .t(format!("arp.sha == {}", p.mac))
                    .t(format!("arp.spa == {ip}"))
                    .t("arp.tha == 00:00:00:00:00:00")
                    .t(format!("arp.tpa == {tpa}"))
                    .done(format!("{n}: ARP request for {tpa}")),
            );
        }
        // A gratuitous ARP reply, broadcast.
        out.push(
            Packet::from(p)
                .eth_dst(BROADCAST)
                .t("arp.op == 2")
                .t(format!("arp.sha == {}", p.mac))
                .t(format!("arp.spa == {ip}"))
                .t(format!("arp.tha == {BROADCAST}"))
                .t(format!("arp.tpa == {ip}"))
                .done(format!("{n}: gratuitous ARP")),
        );
    }
    if let Some((server, server_mac)) = &p.dhcp4 {
        let dhcp = |pk: Packet| pk.t("udp.src == 68").t("udp.dst == 67");
        out.push(
            dhcp(Packet::from(p).eth_dst(BROADCAST).ip4(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                64,
            ))
            .done(format!("{n}: DHCPDISCOVER/REQUEST, broadcast")),
        );
        if let Some(ip) = p.ip4 {
            out.push(
                dhcp(Packet::from(p).eth_dst(server_mac).ip4(ip, *server, 64))
                    .done(format!("{n}: DHCPREQUEST renewing, unicast to the server")),
            );
        }
    }
    let Some(ip) = p.ip4 else { return };
    if let Some(g) = gw
        && let Some(gip) = g.ip4
    {
        for ttl in [64, 1] {
            out.push(
                Packet::from(p)
                    .eth_dst(&g.mac)
                    .ip4(ip, gip, ttl)
                    .echo4()
                    .done(format!("{n}: ping the router {gip}, ttl {ttl}")),
            );
        }
        for &nat in &g.nat_ips {
            out.push(
                Packet::from(p)
                    .eth_dst(&g.mac)
                    .ip4(ip, nat, 64)
                    .echo4()
                    .done(format!("{n}: ping the router's NAT address {nat}")),
            );
        }
        // A UDP datagram to the router itself (port unreachable).
        out.push(
            Packet::from(p)
                .eth_dst(&g.mac)
                .ip4(ip, gip, 64)
                .l4(Service::Udp(9))
                .done(format!("{n}: udp/9 to the router {gip}")),
        );
        // Off every subnet: no route.
        let nowhere = Ipv4Addr::new(198, 51, 100, 1);
        out.push(
            Packet::from(p)
                .eth_dst(&g.mac)
                .ip4(ip, nowhere, 64)
                .echo4()
                .done(format!("{n}: ping {nowhere} (no route)")),
        );
    }
    let mut ttl1 = false;
    for (q, mac, routed) in destinations(t, p) {
        let qip = q.ip4.expect("destination has IPv4");
        out.push(
            Packet::from(p)
                .eth_dst(&mac)
                .ip4(ip, qip, 64)
                .echo4()
                .done(format!(
                    "{n}: ping {} {qip}{}",
                    q.name,
                    if routed { ", routed" } else { "" }
                )),
        );
        if routed && !ttl1 {
            ttl1 = true;
            out.push(
                Packet::from(p)
                    .eth_dst(&mac)
                    .ip4(ip, qip, 1)
                    .echo4()
                    .done(format!("{n}: ping {} {qip}, routed, ttl 1", q.name)),
            );
        }
    }
    out.push(
        Packet::from(p)
            .eth_dst(BROADCAST)
            .t("eth.type == 0x88b5")
            .done(format!("{n}: L2 broadcast")),
    );
    out.push(
        Packet::from(p)
            .eth_dst(BROADCAST)
            .ip4(ip, Ipv4Addr::BROADCAST, 64)
            .l4(Service::Udp(9))
            .done(format!("{n}: IPv4 broadcast")),
    );
    out.push(
        Packet::from(p)
            .eth_dst(STRANGER_MAC)
            .ip4(ip, STRANGER_IP, 64)
            .echo4()
            .done(format!("{n}: unknown unicast")),
    );
    out.push(
        Packet::from(p)
            .eth_dst("01:00:5e:00:00:fb")
            .ip4(ip, Ipv4Addr::new(224, 0, 0, 251), 255)
            .l4(Service::Udp(5353))
            .done(format!("{n}: IPv4 multicast")),
    );
    // Spoofed sources: port security must stop both.
    if let Some((q, mac, _)) = destinations(t, p).into_iter().next() {
        let qip = q.ip4.expect("destination has IPv4");
        let mut spoof = Packet::from(p);
        spoof.0[1] = format!("eth.src == {SPOOF_MAC}");
        out.push(
            spoof
                .eth_dst(&mac)
                .ip4(ip, qip, 64)
                .echo4()
                .done(format!("{n}: spoofed source MAC {SPOOF_MAC}")),
        );
        out.push(
            Packet::from(p)
                .eth_dst(&mac)
                .ip4(SPOOF_IP, qip, 64)
                .echo4()
                .done(format!("{n}: spoofed source IP {SPOOF_IP}")),
        );
        // A frame still carrying a VLAN tag (the physical layer strips a child's tag).
        out.push(
            Packet::from(p)
                .eth_dst(&mac)
                .t("vlan.tci == 0x1033")
                .ip4(ip, qip, 64)
                .echo4()
                .done(format!("{n}: VLAN-tagged frame")),
        );
    }
}

fn ipv6(t: &Topology, p: &Vif, out: &mut Vec<Microflow>) {
    let n = &p.name;
    let lla = link_local(&p.mac);
    let gw = t.gateway(&p.switch);
    if p.dhcp6 {
        out.push(
            Packet::from(p)
                .eth_dst("33:33:00:01:00:02")
                .ip6(lla, "ff02::1:2".parse().expect("ip6"), 1)
                .t("udp.src == 546")
                .t("udp.dst == 547")
                .done(format!("{n}: DHCPv6 SOLICIT")),
        );
    }
    if gw.is_some_and(|g| g.ra) {
        out.push(
            Packet::from(p)
                .eth_dst("33:33:00:00:00:02")
                .ip6(lla, "ff02::2".parse().expect("ip6"), 255)
                .t("icmp6.type == 133")
                .t("icmp6.code == 0")
                .done(format!("{n}: router solicitation")),
        );
    }
    let Some(ip) = p.ip6 else { return };
    let targets = t
        .vifs
        .iter()
        .filter(|q| q.switch == p.switch && q.name != p.name)
        .filter_map(|q| q.ip6)
        .chain(gw.and_then(|g| g.ip6));
    for target in targets {
        let (sn, sn_mac) = solicited_node(target);
        out.push(
            Packet::from(p)
                .eth_dst(&sn_mac)
                .ip6(ip, sn, 255)
                .t("icmp6.type == 135")
                .t("icmp6.code == 0")
                .t(format!("nd.target == {target}"))
                .t(format!("nd.sll == {}", p.mac))
                .done(format!("{n}: neighbor solicitation for {target}")),
        );
    }
    if let Some(g) = gw
        && let Some(gip) = g.ip6
    {
        for (src, what) in [(ip, "global"), (lla, "link-local")] {
            out.push(
                Packet::from(p)
                    .eth_dst(&g.mac)
                    .ip6(src, gip, 64)
                    .t("icmp6.type == 128")
                    .t("icmp6.code == 0")
                    .done(format!(
                        "{n}: ping6 the router {gip} from its {what} address"
                    )),
            );
        }
    }
    // Routed: to the IPv6 ports of the router's other networks, and once with hop limit 1.
    if let Some(g) = gw {
        let routed = t.vifs.iter().filter(|q| {
            q.switch != p.switch
                && t.gateway(&q.switch)
                    .is_some_and(|qg| qg.router == g.router && qg.ip6.is_some())
        });
        for (k, q) in routed.enumerate() {
            let Some(qip) = q.ip6 else { continue };
            let hops: &[u8] = if k == 0 { &[64, 1] } else { &[64] };
            for &hl in hops {
                out.push(
                    Packet::from(p)
                        .eth_dst(&g.mac)
                        .ip6(ip, qip, hl)
                        .t("icmp6.type == 128")
                        .t("icmp6.code == 0")
                        .done(format!(
                            "{n}: ping6 {} {qip}, routed, hop limit {hl}",
                            q.name
                        )),
                );
            }
        }
    }
    for q in t
        .vifs
        .iter()
        .filter(|q| q.switch == p.switch && q.name != p.name)
    {
        if let Some(qip) = q.ip6 {
            out.push(
                Packet::from(p)
                    .eth_dst(&q.mac)
                    .ip6(ip, qip, 64)
                    .t("icmp6.type == 128")
                    .t("icmp6.code == 0")
                    .done(format!("{n}: ping6 {} {qip}", q.name)),
            );
        }
    }
}

/// Each service the ACLs tell apart, to every destination, under ovn-trace's default
/// connection state (`trk,est`) and the topology's first state (a new connection); the
/// other states take turns over the (destination, service) pairs, so each meets every
/// service and several destinations without multiplying the count.
fn acl_traffic(t: &Topology, p: &Vif, out: &mut Vec<Microflow>) {
    let Some(ip) = p.ip4 else { return };
    let me = t.vifs.iter().position(|v| v.name == p.name).unwrap_or(0);
    let mut turn = me * 7;
    for (q, mac, routed) in destinations(t, p) {
        let qip = q.ip4.expect("destination has IPv4");
        for &s in &t.services {
            let base = Packet::from(p)
                .eth_dst(&mac)
                .ip4(ip, qip, 64)
                .l4(s)
                .done(format!(
                    "{}: {} to {} {qip}{}",
                    p.name,
                    service_name(s),
                    q.name,
                    if routed { ", routed" } else { "" }
                ));
            if let Some((first, rest)) = t.ct_states.split_first() {
                let mut states = vec![*first];
                if !rest.is_empty() {
                    states.push(rest[turn % rest.len()]);
                }
                turn += 1;
                out.extend(ct_variants(&base, &states));
            }
            // An echo request under the default state is already among the basics.
            if s != Service::Icmp {
                out.push(base);
            }
        }
    }
    // The same over IPv6, to the ports with an IPv6 address on the same switch.
    if let Some(ip6) = p.ip6 {
        for q in t
            .vifs
            .iter()
            .filter(|q| q.switch == p.switch && q.name != p.name)
        {
            let Some(qip) = q.ip6 else { continue };
            for &s in &t.services {
                let base = Packet::from(p)
                    .eth_dst(&q.mac)
                    .ip6(ip6, qip, 64)
                    .l4_6(s)
                    .done(format!(
                        "{}: {} to {} {qip}",
                        p.name,
                        service_name6(s),
                        q.name
                    ));
                if let Some((first, rest)) = t.ct_states.split_first() {
                    let mut states = vec![*first];
                    if !rest.is_empty() {
                        states.push(rest[turn % rest.len()]);
                    }
                    turn += 1;
                    out.extend(ct_variants(&base, &states));
                }
                if s != Service::Icmp {
                    out.push(base);
                }
            }
        }
    }
    // To the router's NAT addresses (a floating IP, the SNAT address) from their network.
    if let Some(g) = t.gateway(&p.switch) {
        for &nat in &g.nat_ips {
            for &s in &t.services {
                let base = Packet::from(p)
                    .eth_dst(&g.mac)
                    .ip4(ip, nat, 64)
                    .l4(s)
                    .done(format!(
                        "{}: {} to NAT address {nat}",
                        p.name,
                        service_name(s)
                    ));
                out.extend(ct_variants(&base, &t.ct_states));
                if s != Service::Icmp {
                    out.push(base);
                }
            }
        }
    }
    // Connections blocked by a later ACL change (ct_mark.blocked) and their replies.
    if !t.ct_states.is_empty()
        && let Some((q, mac, _)) = destinations(t, p).into_iter().next()
    {
        let qip = q.ip4.expect("destination has IPv4");
        for &s in &t.services {
            let base = Packet::from(p)
                .eth_dst(&mac)
                .ip4(ip, qip, 64)
                .l4(s)
                .t("ct_mark.blocked == 1")
                .done(format!(
                    "{}: {} to {} {qip}, connection blocked",
                    p.name,
                    service_name(s),
                    q.name
                ));
            out.extend(ct_variants(&base, &["est", "est,rpl"]));
        }
    }
}

/// Traffic to each VIP the port can reach, once per backend (`--lb-dst`), under each of
/// the topology's connection states; and the backends' replies.
fn vip_traffic(t: &Topology, p: &Vif, out: &mut Vec<Microflow>) {
    let Some(ip) = p.ip4 else { return };
    let gw = t.gateway(&p.switch);
    for vip in &t.vips {
        let mac = if vip.switches.contains(&p.switch) {
            // A switch load balancer: the client sends to the VIP as to any off-link
            // host, through its gateway.
            match gw {
                Some(g) => g.mac.clone(),
                None => continue,
            }
        } else if let (Some(r), Some(g)) = (&vip.router, gw) {
            if &g.router != r {
                continue;
            }
            g.mac.clone()
        } else {
            continue;
        };
        for s in [vip.service, Service::Icmp] {
            let base = Packet::from(p)
                .eth_dst(&mac)
                .ip4(ip, vip.ip, 64)
                .l4(s)
                .done(format!(
                    "{}: {} to VIP {} of {}",
                    p.name,
                    service_name(s),
                    vip.ip,
                    vip.lb
                ));
            if s == Service::Icmp {
                out.push(base);
                continue;
            }
            for (bip, bport) in &vip.backends {
                let one = Microflow {
                    what: format!("{} via backend {bip}:{bport}", base.what),
                    lb_dst: Some(format!("{bip}:{bport}")),
                    ..base.clone()
                };
                out.extend(ct_variants(&one, &["new", "est"]));
                out.push(one);
            }
        }
        // The reply of a backend on the client's switch, as conntrack sees it.
        for (bip, bport) in &vip.backends {
            let Some(b) = t.vifs.iter().find(|v| v.ip4 == Some(*bip)) else {
                continue;
            };
            if b.name == p.name || b.switch != p.switch {
                continue;
            }
            let reply = match vip.service {
                Service::Tcp(_) => Packet::from(b)
                    .eth_dst(&p.mac)
                    .ip4(*bip, ip, 64)
                    .t(format!("tcp.src == {bport}"))
                    .t(format!("tcp.dst == {EPHEMERAL}")),
                Service::Udp(_) => Packet::from(b)
                    .eth_dst(&p.mac)
                    .ip4(*bip, ip, 64)
                    .t(format!("udp.src == {bport}"))
                    .t(format!("udp.dst == {EPHEMERAL}")),
                Service::Icmp => continue,
            }
            .done(format!(
                "{}: reply from backend {bip}:{bport} of {} to {}",
                b.name, vip.lb, p.name
            ));
            out.extend(ct_variants(&reply, &["est,rpl", "est,rpl,dnat"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::topology;

    #[test]
    fn link_local_and_solicited_node_addresses() {
        assert_eq!(
            link_local("02:ac:10:ff:01:30").to_string(),
            "fe80::ac:10ff:feff:130"
        );
        let (sn, mac) = solicited_node("fd00:ac10:ff01::1".parse().expect("ip6"));
        assert_eq!(
            (sn.to_string(), mac),
            ("ff02::1:ff00:1".into(), "33:33:ff:00:00:01".into())
        );
    }

    /// Every microflow is a different question, and the count stays in the hundreds.
    #[test]
    fn microflows_are_distinct_and_bounded() {
        for t in topology::all() {
            let flows = microflows(&t);
            assert!(
                (100..1000).contains(&flows.len()),
                "{}: {} microflows",
                t.name,
                flows.len()
            );
            let mut seen = std::collections::HashSet::new();
            for mf in &flows {
                assert!(
                    seen.insert((&mf.expr, &mf.ct, &mf.lb_dst, mf.select_id)),
                    "{}: twice: {mf}",
                    t.name
                );
            }
        }
    }

    /// Each kind of traffic the brief names is generated where the topology has it.
    #[test]
    fn every_kind_of_traffic_is_there() {
        let kinds = |t: &Topology| -> String {
            microflows(t)
                .iter()
                .map(|m| m.what.clone() + "\n")
                .collect()
        };
        let seed = kinds(&topology::seed());
        for k in [
            "ARP request for 172.16.255.129",
            "DHCPDISCOVER",
            "DHCPREQUEST renewing",
            "ping the router 172.16.255.129, ttl 64",
            "ping the router 172.16.255.129, ttl 1",
            "routed",
            "routed, ttl 1",
            "L2 broadcast",
            "unknown unicast",
            "spoofed source MAC",
            "spoofed source IP",
        ] {
            assert!(seed.contains(k), "seed lacks {k}");
        }
        let v6 = kinds(&topology::ipv6());
        for k in [
            "DHCPv6 SOLICIT",
            "router solicitation",
            "neighbor solicitation for fd00:ac10:ff01::1\n",
        ] {
            assert!(v6.contains(k), "ipv6 lacks {k}");
        }
        let acl = kinds(&topology::acl_stateful());
        for k in [
            "[ct new]",
            "[ct est]",
            "[ct est,rpl]",
            "[ct rel]",
            "[ct inv]",
        ] {
            assert!(acl.contains(k), "acl-stateful lacks {k}");
        }
        let lb = kinds(&topology::load_balancers());
        assert!(lb.contains("to VIP 10.0.0.80 of lb-web via backend 172.16.255.131:8080"));
        assert!(lb.contains("to VIP 10.0.0.53 of lb-dns via backend"));
    }
}
