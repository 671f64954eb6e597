//! Conntrack through the userspace datapath, on real OVN's logical flows. Stateful ACLs: the seed
//! lab's switch `dmz` built with `ovn-nbctl`, a security group for container c51 (an
//! `allow-related` ACL for what it sends, a drop ACL for what it is sent), compiled by
//! real ovn-northd. TCP frames go through one datapath `Pipeline` (its connection table
//! lives across frames) as the physical layer hands them over:
//! - c51's SYN to vm1 passes (`ct.new`, committed in c51's zone), vm1's SYN-ACK passes
//!   back (`ct.est && ct.rpl` in c51's zone on egress), c51's ACK passes;
//! - a new connection from vm1 to c51 is dropped by the drop ACL;
//! - after the ACLs change (the allow ACL replaced by a drop), the established
//!   connection is blocked both ways (`ct_mark.blocked`, committed by northd's flows).

use std::sync::Arc;

use ovnest_common::{
    PortKey, XdpMeta,
    meta::{META_CACHEABLE, XDP_META_MAGIC},
};
use ovnest_datapath::{
    Attachment, FastPath, LogicalPort,
    cache::CacheStats,
    conntrack::{Shared, Zone},
    fastpath::Decisions,
    frames::{Frame, checksum, ipv4},
    pipeline::{
        Desc, FramePool, LogicalOutcome, NoServices, Pipeline, Snapshot, TxBatches, Umem, Verdict,
        put_meta,
    },
};
use ovnest_logical::{
    conntrack::{Conntrack, Request},
    flow::Field,
};
use ovnest_tests::{
    fixtures::lab::{self, Iface, Wiring},
    ovn::OvnCentral,
    privilege, southbound,
};

const TOOLS: &[&str] = &["ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl"];

const WIRING: Wiring = Wiring {
    vm1: 11,
    vm2: 12,
    vm5: 15,
    stray: 99,
};
const CHUNK: u32 = 2048;
const CHUNKS: usize = 64;
const HEADROOM: usize = 256;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The seed's dmz with its ports, northd-compiled.
fn seed(ovn: &OvnCentral) {
    ovn.seed_dmz_and_router();
    for port in lab::PORTS.iter().filter(|p| p.name != "dmz-lr0") {
        let ip = std::net::Ipv4Addr::from(port.ipv4);
        let addresses = format!("{} {ip}", mac(port.mac));
        match port.place {
            lab::Place::Child { tag, .. } => {
                ovn.nbctl(&["lsp-add", "dmz", port.name, "dmz-vm5", &tag.to_string()])
            }
            _ => ovn.nbctl(&["lsp-add", "dmz", port.name]),
        };
        ovn.nbctl(&["lsp-set-addresses", port.name, &addresses]);
        ovn.nbctl(&["lsp-set-port-security", port.name, &addresses]);
    }
}

/// The Southbound as the agent reads it: the pipeline and the lab's ports with the
/// tunnel keys northd gave.
fn compile(ovn: &OvnCentral, generation: u64) -> Snapshot {
    compile_with(ovn, generation, &[])
}

/// [`compile`], with more ports resident here: `ext1` (bound on the lab's spare
/// interface) or a chassisredirect port (a gateway port on this chassis).
fn compile_with(ovn: &OvnCentral, generation: u64, extra: &[&str]) -> Snapshot {
    let db = southbound::fetch(ovn);
    let keys = southbound::port_keys(&db);
    let pipeline = southbound::compile_lab(&db, extra);
    let mut ports: Vec<LogicalPort> = lab::logical_ports(&WIRING);
    // Ports deleted from the NB are gone from the chassis too.
    ports.retain(|p| keys.contains_key(&p.name));
    for p in &mut ports {
        p.key = keys[&p.name];
    }
    if extra.contains(&"ext1") {
        ports.push(LogicalPort {
            name: "ext1".into(),
            key: keys["ext1"],
            stats_slot: 50,
            addresses: vec![(EXT1_MAC, vec![EXT1_IP])],
            port_security: Some(vec![EXT1_MAC]),
            unknown: false,
            attachment: Attachment::Vif {
                ifindex: WIRING.ifindex(Iface::Stray),
            },
        });
    }
    Snapshot::build(generation, &ports).with_logical(pipeline)
}

/// An Ethernet/IPv4/TCP frame from lab port `from` to lab port `to`, tagged when `from`
/// is a container.
fn tcp(from: &str, to: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let b = lab::port(to);
    tcp_to(from, b.mac, b.ipv4, sport, dport, flags)
}

/// A TCP frame from lab port `from` to `dst` through the L2 next hop `dst_mac`.
fn tcp_to(
    from: &str,
    dst_mac: [u8; 6],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let a = host(from);
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let sum = checksum(&pseudo(a.ipv4, dst, &l4));
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut f = Frame::eth(dst_mac, a.mac);
    if let Some(tag) = a.tag {
        f = f.vlan(tag);
    }
    f.ethertype(0x0800, &ipv4(6, a.ipv4, dst, &l4)).build()
}

/// The TCP pseudo-header and segment, what the TCP checksum covers.
fn pseudo(src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&[0, 6]);
    v.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    v.extend_from_slice(l4);
    v
}

/// A frame as it went out: interface, tag, and its IPv4/TCP header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    ifindex: u32,
    tag: u16,
    eth_dst: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    /// Both the IPv4 and the TCP checksum verify.
    checksums_ok: bool,
}

impl Out {
    fn read(ifindex: u32, bytes: &[u8]) -> Out {
        let (tag, l3) = if bytes[12..14] == [0x81, 0x00] {
            (u16::from_be_bytes([bytes[14], bytes[15]]) & 0xfff, 18)
        } else {
            (0, 14)
        };
        let ip = &bytes[l3..];
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let l4 = &ip[ihl..total];
        let src: [u8; 4] = ip[12..16].try_into().unwrap();
        let dst: [u8; 4] = ip[16..20].try_into().unwrap();
        Out {
            ifindex,
            tag,
            eth_dst: bytes[0..6].try_into().unwrap(),
            src,
            dst,
            sport: u16::from_be_bytes([l4[0], l4[1]]),
            dport: u16::from_be_bytes([l4[2], l4[3]]),
            checksums_ok: checksum(&ip[..ihl]) == 0 && checksum(&pseudo(src, dst, l4)) == 0,
        }
    }
}

/// A machine on a logical port: the lab's, or `ext1` on the NAT test's outside switch
/// (plugged into the interface the lab leaves unbound).
struct Host {
    mac: [u8; 6],
    ipv4: [u8; 4],
    /// The VLAN tag of a container.
    tag: Option<u16>,
    ifindex: u32,
}

const EXT1_MAC: [u8; 6] = [0x02, 0x0a, 0, 0, 0, 0x05];
const EXT1_IP: [u8; 4] = [10, 0, 0, 5];

fn host(name: &str) -> Host {
    if name == "ext1" {
        return Host {
            mac: EXT1_MAC,
            ipv4: EXT1_IP,
            tag: None,
            ifindex: WIRING.ifindex(Iface::Stray),
        };
    }
    let p = lab::port(name);
    let (ifindex, tag) = match p.place {
        lab::Place::Vif(i) => (WIRING.ifindex(i), None),
        lab::Place::Child { parent, tag } => (WIRING.ifindex(parent), Some(tag)),
        lab::Place::Remote => panic!("{name} is remote"),
    };
    Host {
        mac: p.mac,
        ipv4: p.ipv4,
        tag,
        ifindex,
    }
}

/// The interface a port's frames arrive on.
fn iface_of(name: &str) -> u32 {
    host(name).ifindex
}

/// One frame through `p`: its verdict and what went out, as (ifindex, VLAN tag).
fn send(
    p: &mut Pipeline<'_>,
    snap: &Snapshot,
    from: &str,
    frame: &[u8],
) -> (Verdict, Vec<(u32, u16)>) {
    let (verdict, out) = send_full(p, snap, from, frame);
    (verdict, out.iter().map(|o| (o.ifindex, o.tag)).collect())
}

/// One frame through `p`: its verdict and the frames that went out.
fn send_full(
    p: &mut Pipeline<'_>,
    snap: &Snapshot,
    from: &str,
    frame: &[u8],
) -> (Verdict, Vec<Out>) {
    send_meta(p, snap, from, frame, None)
}

/// [`send_full`], the frame handed over by XDP with `meta` in front of it.
fn send_meta(
    p: &mut Pipeline<'_>,
    snap: &Snapshot,
    from: &str,
    frame: &[u8],
    meta: Option<XdpMeta>,
) -> (Verdict, Vec<Out>) {
    let before: Vec<u64> = Verdict::all().map(|v| p.counters.get(v)).collect();
    let chunk = p.pool.take().expect("a free chunk");
    let at = chunk as usize + HEADROOM;
    p.umem.as_mut_slice()[at..at + frame.len()].copy_from_slice(frame);
    if let Some(meta) = meta {
        put_meta(p.umem.as_mut_slice(), at, &meta).expect("room for the metadata");
    }
    p.process_batch(
        snap,
        iface_of(from),
        &[Desc::new(at as u64, frame.len() as u32)],
    );
    let verdict = Verdict::all()
        .zip(before)
        .find(|(v, b)| p.counters.get(*v) != *b)
        .map(|(v, _)| v)
        .expect("a verdict");
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    p.tx.drain_all(|device, d| {
        let bytes = &p.umem.as_mut_slice()[d.addr as usize..(d.addr + d.len as u64) as usize];
        out.push(Out::read(snap.devices()[device as usize].ifindex, bytes));
        chunks.push(d.addr & !(u64::from(CHUNK) - 1));
    });
    for c in chunks {
        p.pool.give(c);
    }
    (verdict, out)
}

/// A datapath pipeline on memory of its own (`area`), with its own connection table.
fn pipeline<'a>(area: &'a mut [u8], snap: &Snapshot) -> Pipeline<'a> {
    let umem = Umem::new(area, CHUNK).expect("umem");
    let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
    for c in 0..CHUNKS {
        pool.give((c * CHUNK as usize) as u64);
    }
    let mut tx = TxBatches::new(64);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    Pipeline::new(umem, pool, tx, NoServices)
}

const DELIVERED: Verdict = Verdict::Logical(LogicalOutcome::Delivered);
const DROPPED: Verdict = Verdict::Logical(LogicalOutcome::Dropped);

#[test]
fn allow_related_acl_passes_replies_and_drops_new_inbound() {
    if !privilege::require_tools("conntrack_acl", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    // c51's security group: everything it opens, nothing anyone opens to it.
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
        "allow-related",
    ]);
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "to-lport",
        "1001",
        "outport == \"dmz-c51\" && ip4",
        "drop",
    ]);
    // c52's: what it opens. It keeps the switch stateful when c51's group changes.
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c52\" && ip4",
        "allow-related",
    ]);
    let snap = compile(&ovn, 1);

    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    let (vm1, vm5) = (WIRING.ifindex(Iface::Vm1), WIRING.ifindex(Iface::Vm5));

    // Before anything is open, vm1 cannot reach c51.
    let probe = tcp("dmz-vm1", "dmz-c51", 80, 40000, SYN | ACK);
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &probe),
        (DROPPED, vec![]),
        "a SYN-ACK nobody asked for"
    );
    // c51 opens a connection to vm1: out, back, out.
    let syn = tcp("dmz-c51", "dmz-vm1", 40000, 80, SYN);
    assert_eq!(
        send(&mut p, &snap, "dmz-c51", &syn),
        (DELIVERED, vec![(vm1, 0)]),
        "c51's SYN"
    );
    let synack = tcp("dmz-vm1", "dmz-c51", 80, 40000, SYN | ACK);
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &synack),
        (DELIVERED, vec![(vm5, 51)]),
        "vm1's SYN-ACK, the reply"
    );
    let ack = tcp("dmz-c51", "dmz-vm1", 40000, 80, ACK);
    assert_eq!(
        send(&mut p, &snap, "dmz-c51", &ack),
        (DELIVERED, vec![(vm1, 0)]),
        "c51's ACK"
    );
    let data = tcp("dmz-vm1", "dmz-c51", 80, 40000, ACK);
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &data),
        (DELIVERED, vec![(vm5, 51)]),
        "vm1's data"
    );
    // vm1 opens one of its own: dropped, and the next try too.
    let inbound = tcp("dmz-vm1", "dmz-c51", 41000, 22, SYN);
    for _ in 0..2 {
        assert_eq!(
            send(&mut p, &snap, "dmz-vm1", &inbound),
            (DROPPED, vec![]),
            "vm1's new connection to c51"
        );
    }
    {
        let table = p.conntrack.lock(p.conntrack.now());
        // c51's connection is committed in c51's zone (its ingress) and in vm1's (its
        // egress: once a switch is stateful northd commits every new connection). vm1's
        // own attempt is committed in vm1's zone on its ingress, as ovn-controller's
        // flows do, and never reaches c51's zone: the drop ACL stops it first.
        let logical = &snap.logical().expect("logical flows").pipeline;
        let zone = |name: &str| {
            let port = logical.port_by_name(name).expect(name);
            Zone::Port {
                dp: logical.datapath(port.dp).key,
                port: port.key,
            }
        };
        assert_eq!(table.zone_len(zone("dmz-c51")), 1, "{:?}", table.stats);
        assert_eq!(table.zone_len(zone("dmz-vm1")), 2, "{:?}", table.stats);
        assert_eq!(table.len(), 3);
    }

    // Related traffic: vm1 refuses c51's datagram with port unreachable, quoting it; the
    // error reaches c51 (ct.rel). One quoting a datagram c51 never sent is dropped.
    let (c51, vm1_port) = (lab::port("dmz-c51"), lab::port("dmz-vm1"));
    let datagram = Frame::eth(vm1_port.mac, c51.mac)
        .vlan(51)
        .udp(c51.ipv4, vm1_port.ipv4, 5353, 53, 4)
        .build();
    assert_eq!(
        send(&mut p, &snap, "dmz-c51", &datagram),
        (DELIVERED, vec![(vm1, 0)]),
        "c51's datagram"
    );
    let unreachable = |quote: &[u8]| {
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(quote);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        Frame::eth(c51.mac, vm1_port.mac)
            .ethertype(0x0800, &ipv4(1, vm1_port.ipv4, c51.ipv4, &icmp))
            .build()
    };
    // The quote: the datagram's IP header and first 8 bytes of payload.
    let quote = datagram[18..18 + 28].to_vec();
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &unreachable(&quote)),
        (DELIVERED, vec![(vm5, 51)]),
        "port unreachable about c51's datagram"
    );
    let mut other = quote.clone();
    other[20..22].copy_from_slice(&5354u16.to_be_bytes());
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &unreachable(&other)),
        (DROPPED, vec![]),
        "port unreachable about a datagram never sent"
    );

    // The security group changes: c51 may no longer open anything. Northd's flows
    // mark the established connection blocked; it dies both ways.
    ovn.nbctl(&[
        "acl-del",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
    ]);
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
        "drop",
    ]);
    let snap = compile(&ovn, 2);
    // Until c51 sends again, vm1's replies still pass (est, rpl, not blocked)...
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &data),
        (DELIVERED, vec![(vm5, 51)]),
        "vm1's data before c51's next packet"
    );
    // ...c51's next packet meets the drop ACL as an established connection: dropped,
    // and the connection committed with ct_mark.blocked = 1...
    assert_eq!(
        send(&mut p, &snap, "dmz-c51", &ack),
        (DROPPED, vec![]),
        "c51's ACK after the change"
    );
    {
        let mut probe = ovnest_logical::flow::Flow::default();
        let c51 = lab::port("dmz-c51");
        let vm1 = lab::port("dmz-vm1");
        probe.set(Field::EthType, 0x0800);
        probe.set(Field::Ipv4Src, u128::from(u32::from_be_bytes(c51.ipv4)));
        probe.set(Field::Ipv4Dst, u128::from(u32::from_be_bytes(vm1.ipv4)));
        probe.set(Field::IpProto, 6);
        probe.set(Field::TcpSrc, 40000);
        probe.set(Field::TcpDst, 80);
        probe.set(Field::TcpFlags, u128::from(ACK));
        let logical = &snap.logical().expect("logical flows").pipeline;
        let port = logical.port_by_name("dmz-c51").expect("c51");
        let zone = Zone::Port {
            dp: logical.datapath(port.dp).key,
            port: port.key,
        };
        let mut table = p.conntrack.lock(p.conntrack.now());
        table
            .execute(zone, &mut probe, &Request::default())
            .expect("lookup");
        assert_eq!(probe.get(Field::CtMark) & 1, 1, "ct_mark.blocked");
    }
    // ...so vm1's replies die too.
    assert_eq!(
        send(&mut p, &snap, "dmz-vm1", &data),
        (DROPPED, vec![]),
        "vm1's data after the change"
    );

    // Fail closed: a table that cannot commit drops the frame and counts why.
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut full = pipeline(&mut area, &snap);
    full.conntrack = Arc::new(Shared::new(0));
    let other = tcp("dmz-c52", "dmz-vm1", 40000, 80, SYN);
    assert_eq!(
        send(&mut p, &snap, "dmz-c52", &other),
        (DELIVERED, vec![(vm1, 0)]),
        "c52's SYN with room in the table"
    );
    assert_eq!(
        send(&mut full, &snap, "dmz-c52", &other),
        (Verdict::Logical(LogicalOutcome::Unsupported), vec![]),
        "a SYN whose connection cannot be committed"
    );
    assert_eq!(
        full.counters.unsupported_counts(),
        vec![("ct_table_full", 1)],
        "counted by reason"
    );

    // c52 goes: its zone's connection goes with it, c51's (the TCP connection and the
    // datagram) stay.
    let zone_of = |snap: &Snapshot, name: &str| {
        let logical = &snap.logical().expect("logical flows").pipeline;
        let port = logical.port_by_name(name).expect(name);
        Zone::Port {
            dp: logical.datapath(port.dp).key,
            port: port.key,
        }
    };
    let (c52_zone, c51_zone) = (zone_of(&snap, "dmz-c52"), zone_of(&snap, "dmz-c51"));
    let count = |p: &Pipeline<'_>, zone| p.conntrack.lock(p.conntrack.now()).zone_len(zone);
    assert_eq!((count(&p, c52_zone), count(&p, c51_zone)), (1, 2));
    ovn.nbctl(&["lsp-del", "dmz-c52"]);
    let snap = compile(&ovn, 3);
    let probe = tcp("dmz-vm1", "dmz-c51", 80, 40000, ACK);
    send(&mut p, &snap, "dmz-vm1", &probe);
    assert_eq!(
        (count(&p, c52_zone), count(&p, c51_zone)),
        (0, 2),
        "c52's zone flushed"
    );
}

/// The seed's lr0 port on dmz: the containers' and VMs' gateway.
const ROUTER_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
const VIP: [u8; 4] = [172, 16, 255, 140];
/// Connections opened to the VIP.
const CONNECTIONS: u16 = 1000;

#[test]
fn load_balancer_spreads_connections_sticks_and_reverses_nat() {
    if !privilege::require_tools("conntrack_lb", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    lb0_on_dmz(&ovn, &[]);
    let snap = compile(&ovn, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    let (vm1, vm5) = (WIRING.ifindex(Iface::Vm1), WIRING.ifindex(Iface::Vm5));
    let backend = |tag: u16| match tag {
        51 => "dmz-c51",
        52 => "dmz-c52",
        t => panic!("delivered on tag {t}"),
    };

    // vm1 opens CONNECTIONS connections to the VIP through its gateway.
    let mut chosen = Vec::new();
    for i in 0..CONNECTIONS {
        let sport = 40000 + i;
        let syn = tcp_to("dmz-vm1", ROUTER_MAC, VIP, sport, 80, SYN);
        let (verdict, out) = send_full(&mut p, &snap, "dmz-vm1", &syn);
        assert_eq!(verdict, DELIVERED, "SYN from port {sport}");
        let [o] = out.as_slice() else {
            panic!("SYN from port {sport}: {out:?}")
        };
        let b = lab::port(backend(o.tag));
        assert_eq!(
            (o.ifindex, o.eth_dst, o.dst, o.dport, o.src, o.sport),
            (vm5, b.mac, b.ipv4, 8080, lab::port("dmz-vm1").ipv4, sport),
            "SYN from port {sport} as delivered"
        );
        assert!(o.checksums_ok, "checksums of {o:?}");
        chosen.push(o.tag);
    }
    // Spread, not merely both used: a binomial 1,000 × ½ stays within 400–600 but for
    // a 6-sigma fluke, and the hash is deterministic (a poor mix fails it every run).
    let on_c51 = chosen.iter().filter(|t| **t == 51).count();
    assert!(
        (400..=600).contains(&on_c51),
        "connections spread over both backends: {on_c51} of {} on c51",
        chosen.len()
    );
    // Each connection sticks to its backend: a retransmitted SYN, then the handshake.
    for (i, tag) in chosen.iter().enumerate().take(50) {
        let sport = 40000 + i as u16;
        let again = tcp_to("dmz-vm1", ROUTER_MAC, VIP, sport, 80, SYN);
        let (_, out) = send_full(&mut p, &snap, "dmz-vm1", &again);
        assert_eq!(
            out.iter().map(|o| o.tag).collect::<Vec<_>>(),
            vec![*tag],
            "retransmitted SYN from port {sport}"
        );
        // The backend answers from its own address; vm1 sees the VIP.
        let b = backend(*tag);
        let synack = tcp_to(
            b,
            ROUTER_MAC,
            lab::port("dmz-vm1").ipv4,
            8080,
            sport,
            SYN | ACK,
        );
        let (verdict, out) = send_full(&mut p, &snap, b, &synack);
        assert_eq!(verdict, DELIVERED, "{b}'s SYN-ACK to port {sport}");
        let [o] = out.as_slice() else {
            panic!("{b}'s SYN-ACK: {out:?}")
        };
        assert_eq!(
            (o.ifindex, o.tag, o.src, o.sport, o.dport),
            (vm1, 0, VIP, 80, sport),
            "{b}'s SYN-ACK as vm1 receives it"
        );
        assert!(o.checksums_ok, "checksums of {o:?}");
        let ack = tcp_to("dmz-vm1", ROUTER_MAC, VIP, sport, 80, ACK);
        let (_, out) = send_full(&mut p, &snap, "dmz-vm1", &ack);
        assert_eq!(
            out.iter().map(|o| (o.tag, o.dport)).collect::<Vec<_>>(),
            vec![(*tag, 8080)],
            "vm1's ACK from port {sport}"
        );
    }
}

/// A backend reaching its own VIP (OVN's load-balancer hairpin): northd's
/// `chk_lb_hairpin()` / `ct_snat_to_vip` / `chk_lb_hairpin_reply()` flows, carried out
/// as ovn-controller's hairpin tables do. The backend sees its connection come from the
/// VIP and its replies go back to itself from the VIP; a client elsewhere still sees
/// plain load balancing (its own address kept).
#[test]
fn a_backend_reaching_its_own_vip_talks_to_the_vip_both_ways() {
    if !privilege::require_tools("conntrack_lb_hairpin", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    let c51 = lab::port("dmz-c51");
    let backend = format!("{}:8080", std::net::Ipv4Addr::from(c51.ipv4));
    ovn.nbctl(&["lb-add", "lb0", "172.16.255.140:80", &backend, "tcp"]);
    ovn.nbctl(&["ls-lb-add", "dmz", "lb0"]);
    let snap = compile(&ovn, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    let (vm1, vm5) = (WIRING.ifindex(Iface::Vm1), WIRING.ifindex(Iface::Vm5));

    for sport in [33000, 33001] {
        // c51 -> VIP:80 comes back to c51 on its tag, from the VIP, to its port 8080.
        let syn = tcp_to("dmz-c51", ROUTER_MAC, VIP, sport, 80, SYN);
        let (verdict, out) = send_full(&mut p, &snap, "dmz-c51", &syn);
        assert_eq!(verdict, DELIVERED, "c51's SYN from port {sport}");
        let [o] = out.as_slice() else {
            panic!("c51's SYN from port {sport}: {out:?}")
        };
        assert_eq!(
            (o.ifindex, o.tag, o.eth_dst, o.src, o.sport, o.dst, o.dport),
            (vm5, 51, c51.mac, VIP, sport, c51.ipv4, 8080),
            "c51's SYN from port {sport} as c51 receives it"
        );
        assert!(o.checksums_ok, "checksums of {o:?}");
        // c51 answers the VIP; it receives its answer from VIP:80.
        let synack = tcp_to("dmz-c51", ROUTER_MAC, VIP, 8080, sport, SYN | ACK);
        let (verdict, out) = send_full(&mut p, &snap, "dmz-c51", &synack);
        assert_eq!(verdict, DELIVERED, "c51's SYN-ACK to port {sport}");
        let [o] = out.as_slice() else {
            panic!("c51's SYN-ACK to port {sport}: {out:?}")
        };
        assert_eq!(
            (o.ifindex, o.tag, o.eth_dst, o.src, o.sport, o.dst, o.dport),
            (vm5, 51, c51.mac, VIP, 80, c51.ipv4, sport),
            "c51's SYN-ACK to port {sport} as c51 receives it"
        );
        assert!(o.checksums_ok, "checksums of {o:?}");
        let ack = tcp_to("dmz-c51", ROUTER_MAC, VIP, sport, 80, ACK);
        let (_, out) = send_full(&mut p, &snap, "dmz-c51", &ack);
        assert_eq!(
            out.iter()
                .map(|o| (o.tag, o.src, o.sport, o.dport))
                .collect::<Vec<_>>(),
            vec![(51, VIP, sport, 8080)],
            "c51's ACK from port {sport}"
        );
    }

    // Not a hairpin: vm1's connection reaches c51 from vm1's own address.
    let vm1_ip = lab::port("dmz-vm1").ipv4;
    let syn = tcp_to("dmz-vm1", ROUTER_MAC, VIP, 40000, 80, SYN);
    let (_, out) = send_full(&mut p, &snap, "dmz-vm1", &syn);
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.tag, o.src, o.dst, o.dport))
            .collect::<Vec<_>>(),
        vec![(vm5, 51, vm1_ip, c51.ipv4, 8080)],
        "vm1's SYN to the VIP"
    );
    let synack = tcp_to("dmz-c51", ROUTER_MAC, vm1_ip, 8080, 40000, SYN | ACK);
    let (_, out) = send_full(&mut p, &snap, "dmz-c51", &synack);
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.tag, o.src, o.sport))
            .collect::<Vec<_>>(),
        vec![(vm1, 0, VIP, 80)],
        "c51's SYN-ACK to vm1"
    );
}

/// A load balancer with `affinity_timeout`: northd's `chk_lb_aff()` /
/// `commit_lb_aff()` flows. northd 23.03's learn flow ends the packet that learns
/// (`commit_lb_aff(...); /* drop */`, no `next;`): the client's first SYN is dropped
/// once its session is learned, and from then on every new connection from that
/// client goes to the learned backend (without affinity they spread: the test above).
#[test]
fn load_balancer_affinity_keeps_a_client_on_its_backend() {
    if !privilege::require_tools("conntrack_lb_affinity", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    lb0_on_dmz(&ovn, &["options:affinity_timeout=60"]);
    let snap = compile(&ovn, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    for client in ["dmz-vm1", "dmz-vm2"] {
        let first = tcp_to(client, ROUTER_MAC, VIP, 40999, 80, SYN);
        let (verdict, out) = send_full(&mut p, &snap, client, &first);
        assert_eq!(
            (verdict, out.len()),
            (DROPPED, 0),
            "{client}'s first SYN ends in the learn flow"
        );
        let tags = backends_reached(&mut p, &snap, client, 41000..41050);
        assert_one_backend(client, &tags);
    }
}

/// A load balancer with `selection_fields=ip_src`: northd's `ct_lb_mark(...;
/// hash_fields="ip_src")`, OVS's `selection_method=hash,fields(ip_src)`. Connections
/// from one client all reach one backend, whatever their ports.
#[test]
fn load_balancer_selection_fields_pick_the_backend_by_client() {
    if !privilege::require_tools("conntrack_lb_selection", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    lb0_on_dmz(&ovn, &["selection_fields=ip_src"]);
    let snap = compile(&ovn, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    for client in ["dmz-vm1", "dmz-vm2"] {
        let tags = backends_reached(&mut p, &snap, client, 42000..42050);
        assert_one_backend(client, &tags);
    }
}

/// lb0 on `dmz`: VIP 172.16.255.140:80 over c51 and c52 (port 8080), with `settings`
/// (`ovn-nbctl set load_balancer lb0 SETTING`) made before it joins the switch.
fn lb0_on_dmz(ovn: &OvnCentral, settings: &[&str]) {
    ovn.nbctl(&[
        "lb-add",
        "lb0",
        "172.16.255.140:80",
        "172.16.255.133:8080,172.16.255.134:8080",
        "tcp",
    ]);
    for setting in settings {
        ovn.nbctl(&["set", "load_balancer", "lb0", setting]);
    }
    ovn.nbctl(&["ls-lb-add", "dmz", "lb0"]);
}

/// The backend (its tag) each new connection of `client` from `sports` to the VIP
/// reaches; each must be delivered, from the client's own address.
fn backends_reached(
    p: &mut Pipeline<'_>,
    snap: &Snapshot,
    client: &str,
    sports: std::ops::Range<u16>,
) -> Vec<u16> {
    sports
        .map(|sport| {
            let syn = tcp_to(client, ROUTER_MAC, VIP, sport, 80, SYN);
            let (verdict, out) = send_full(p, snap, client, &syn);
            assert_eq!(
                verdict,
                DELIVERED,
                "{client}'s SYN from port {sport} (unsupported: {:?})",
                p.counters.unsupported_counts()
            );
            let [o] = out.as_slice() else {
                panic!("{client}'s SYN from port {sport}: {out:?}")
            };
            assert_eq!(
                (o.src, o.sport, o.dport),
                (lab::port(client).ipv4, sport, 8080),
                "{client}'s SYN from port {sport} as delivered"
            );
            o.tag
        })
        .collect()
}

fn assert_one_backend(client: &str, tags: &[u16]) {
    assert!(
        tags.iter().all(|t| *t == tags[0]) && [51, 52].contains(&tags[0]),
        "{client}'s connections all on one backend: {tags:?}"
    );
}

/// lr0's port on the outside network, a distributed gateway port on this chassis.
const OUTSIDE_MAC: [u8; 6] = [0x02, 0x0a, 0, 0, 0, 0x01];
const FIP: [u8; 4] = [10, 0, 0, 100];

#[test]
fn floating_ip_reaches_c51_and_c51_leaves_from_it() {
    if !privilege::require_tools("conntrack_nat", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    // An outside network behind lr0's gateway port on this chassis, ext1 on it, and a
    // floating IP for c51.
    ovn.nbctl(&["ls-add", "outside"]);
    ovn.nbctl(&[
        "lrp-add",
        "lr0",
        "lr0-outside",
        "02:0a:00:00:00:01",
        "10.0.0.1/24",
    ]);
    ovn.nbctl(&[
        "lsp-add",
        "outside",
        "outside-lr0",
        "--",
        "lsp-set-type",
        "outside-lr0",
        "router",
        "--",
        "lsp-set-addresses",
        "outside-lr0",
        "router",
        "--",
        "lsp-set-options",
        "outside-lr0",
        "router-port=lr0-outside",
    ]);
    ovn.nbctl(&["lsp-add", "outside", "ext1"]);
    ovn.nbctl(&["lsp-set-addresses", "ext1", "02:0a:00:00:00:05 10.0.0.5"]);
    ovn.nbctl(&[
        "lsp-set-port-security",
        "ext1",
        "02:0a:00:00:00:05 10.0.0.5",
    ]);
    ovn.nbctl(&["lrp-set-gateway-chassis", "lr0-outside", "hv1", "20"]);
    ovn.nbctl(&[
        "lr-nat-add",
        "lr0",
        "dnat_and_snat",
        "10.0.0.100",
        "172.16.255.133",
    ]);
    let snap = compile_with(&ovn, 1, &["ext1", "cr-lr0-outside"]);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap);
    let (vm5, ext) = (WIRING.ifindex(Iface::Vm5), WIRING.ifindex(Iface::Stray));
    let c51 = lab::port("dmz-c51");

    // ext1 connects to the floating IP: DNAT to c51.
    let syn = tcp_to("ext1", OUTSIDE_MAC, FIP, 33000, 22, SYN);
    let (verdict, out) = send_full(&mut p, &snap, "ext1", &syn);
    assert_eq!(verdict, DELIVERED, "ext1's SYN to the floating IP: {out:?}");
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.tag, o.eth_dst, o.src, o.dst, o.sport, o.dport))
            .collect::<Vec<_>>(),
        vec![(vm5, 51, c51.mac, EXT1_IP, c51.ipv4, 33000, 22)],
        "ext1's SYN as c51 receives it"
    );
    assert!(out[0].checksums_ok, "{out:?}");
    // c51 answers from its own address; ext1 sees the floating IP.
    let synack = tcp_to("dmz-c51", ROUTER_MAC, EXT1_IP, 22, 33000, SYN | ACK);
    let (verdict, out) = send_full(&mut p, &snap, "dmz-c51", &synack);
    assert_eq!(verdict, DELIVERED, "c51's SYN-ACK: {out:?}");
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.tag, o.eth_dst, o.src, o.dst, o.sport, o.dport))
            .collect::<Vec<_>>(),
        vec![(ext, 0, EXT1_MAC, FIP, EXT1_IP, 22, 33000)],
        "c51's SYN-ACK as ext1 receives it"
    );
    assert!(out[0].checksums_ok, "{out:?}");

    // c51 opens a connection outside: it leaves from the floating IP (SNAT)...
    let syn = tcp_to("dmz-c51", ROUTER_MAC, EXT1_IP, 50000, 80, SYN);
    let (verdict, out) = send_full(&mut p, &snap, "dmz-c51", &syn);
    assert_eq!(verdict, DELIVERED, "c51's SYN outside: {out:?}");
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.src, o.dst, o.dport))
            .collect::<Vec<_>>(),
        vec![(ext, FIP, EXT1_IP, 80)],
        "c51's SYN as ext1 receives it"
    );
    let sport = out[0].sport;
    // ...and ext1's answer comes back to c51.
    let synack = tcp_to("ext1", OUTSIDE_MAC, FIP, 80, sport, SYN | ACK);
    let (verdict, out) = send_full(&mut p, &snap, "ext1", &synack);
    assert_eq!(verdict, DELIVERED, "ext1's SYN-ACK: {out:?}");
    assert_eq!(
        out.iter()
            .map(|o| (o.ifindex, o.tag, o.dst, o.dport, o.src))
            .collect::<Vec<_>>(),
        vec![(vm5, 51, c51.ipv4, 50000, EXT1_IP)],
        "ext1's SYN-ACK as c51 receives it"
    );
    assert!(out[0].checksums_ok, "{out:?}");
}

#[test]
fn decisions_through_conntrack_are_never_cached() {
    if !privilege::require_tools("conntrack_cache", TOOLS)
        || !privilege::require_root("conntrack_cache")
    {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    let fast_path = FastPath::load_decisions(Decisions::Cached { entries: 4096 })
        .expect("load the XDP program with its decision cache");
    let stats = Arc::new(CacheStats::default());
    let maps = fast_path.cache_maps(stats.clone()).expect("cache maps");
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let snap = compile(&ovn, 1);
    let mut p = pipeline(&mut area, &snap);
    p.cache = Some(maps.writer().expect("cache writer"));
    // c51's SYN as XDP hands it over after a cache miss: tag stripped, metadata in front.
    let from_xdp = |snap: &Snapshot, sport: u16| {
        let mut frame = tcp("dmz-c51", "dmz-vm1", sport, 80, SYN);
        frame.drain(12..16);
        let logical = &snap.logical().expect("logical flows").pipeline;
        let port = logical.port_by_name("dmz-c51").expect("c51");
        let meta = XdpMeta {
            magic: XDP_META_MAGIC,
            ingress: PortKey {
                datapath: logical.datapath(port.dp).key,
                port: port.key,
            },
            vid: 51,
            flags: META_CACHEABLE,
        };
        (frame, meta)
    };
    let vm1 = WIRING.ifindex(Iface::Vm1);

    // A stateless switch: the decision is installed.
    let (frame, meta) = from_xdp(&snap, 40000);
    let (verdict, out) = send_meta(&mut p, &snap, "dmz-c51", &frame, Some(meta));
    assert_eq!((verdict, out.len()), (DELIVERED, 1));
    assert_eq!(out[0].ifindex, vm1);
    let stateless = stats.read();
    assert_eq!((stateless.installs, stateless.conntrack), (1, 0));

    // The same switch made stateful: delivered, not installed, counted.
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
        "allow-related",
    ]);
    let snap = compile(&ovn, 2);
    for sport in [40001, 40002] {
        let (frame, meta) = from_xdp(&snap, sport);
        let (verdict, out) = send_meta(&mut p, &snap, "dmz-c51", &frame, Some(meta));
        assert_eq!((verdict, out.len()), (DELIVERED, 1), "port {sport}");
    }
    let stateful = stats.read();
    assert_eq!(
        (stateful.installs, stateful.replaced, stateful.conntrack),
        (1, 0, 2),
        "nothing installed, both counted"
    );
}
