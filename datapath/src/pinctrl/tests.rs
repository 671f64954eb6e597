//! pinctrl on a small logical switch built from the seed lab's own flows: the DHCP
//! reply is compared byte for byte with the one real ovn-controller 23.03 sent
//! (tests/data/golden-dhcp-c51.txt); the other actions are checked field by field
//! against RFC layouts and pinctrl's choices, and malformed input against counters.

use ovnest_logical::db::{Database, Datapath, DhcpOption, LogicalFlow, Port, Uuid};
use ovnest_logical::execute::{ControllerOp, Decision};
use ovnest_logical::flow::Field;
use ovnest_logical::pipeline::{Pipeline, Residency};
use ovnest_logical::trace::NoTrace;
use ovnest_logical::{Interpreter, Semantics, TraceOptions};

use super::*;
use crate::flow::{csum, extract};

const C51_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];
const VM1_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
const LR_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
const C51_IP: [u8; 4] = [172, 16, 255, 133];
const VM1_IP: [u8; 4] = [172, 16, 255, 130];
const LR_IP: [u8; 4] = [172, 16, 255, 129];

const DHCP_MATCH: &str = "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33 && ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && udp.src == 68 && udp.dst == 67";
const DHCP_ACTION: &str = "reg0[3] = put_dhcp_opts(offerip = 172.16.255.133, lease_time = 3600, netmask = 255.255.255.192, router = 172.16.255.129, server_id = 172.16.255.129); next;";

/// (egress, table, priority, match, actions)
type F = (bool, u8, u16, &'static str, &'static str);

const FLOWS: &[F] = &[
    (false, 0, 100, DHCP_MATCH, DHCP_ACTION),
    (
        false,
        0,
        100,
        "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33 && ip4.src == 172.16.255.133 && ip4.dst == {172.16.255.129, 255.255.255.255} && udp.src == 68 && udp.dst == 67",
        DHCP_ACTION,
    ),
    (
        false,
        0,
        100,
        "inport == \"dmz-c51\" && ip6.dst == ff02::1:2 && udp.src == 546 && udp.dst == 547",
        "reg0[3] = put_dhcpv6_opts(ia_addr = fd00::133, server_id = 02:ac:10:ff:01:29, dns_server = {fd00::53}, domain_search = \"example.org\"); next;",
    ),
    (
        false,
        0,
        100,
        "inport == \"dmz-c51\" && ip6.dst == ff02::2 && icmp6.type == 133 && icmp6.code == 0",
        "reg0[5] = put_nd_ra_opts(addr_mode = \"slaac\", slla = 02:ac:10:ff:01:29, prefix = fd00::/64, mtu = 1442); next;",
    ),
    (
        false,
        0,
        90,
        "ip4 && ip.ttl == {0, 1}",
        "icmp4 {eth.dst <-> eth.src; icmp4.type = 11; /* Time exceeded */ icmp4.code = 0; ip4.dst = ip4.src; ip4.src = 172.16.255.129 ; ip.ttl = 254; outport = \"dmz-c51\"; flags.loopback = 1; output; };",
    ),
    (
        false,
        0,
        85,
        "ip4 && ip4.dst == 172.16.255.250",
        "icmp4_error { eth.dst <-> eth.src; ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 3; icmp4.code = 4; icmp4.frag_mtu = 1442; outport = inport; flags.loopback = 1; output; };",
    ),
    (
        false,
        0,
        80,
        "ip4 && ip4.dst == 172.16.255.129 && tcp",
        "tcp_reset {eth.dst <-> eth.src; ip4.dst <-> ip4.src; next; };",
    ),
    (
        false,
        0,
        80,
        "ip4 && ip4.dst == 172.16.255.129 && udp",
        "icmp4 {eth.dst <-> eth.src; ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 3; icmp4.code = 3; next; };",
    ),
    (
        false,
        0,
        70,
        "ip4.dst == 172.16.255.200",
        "reg0 = ip4.dst; reg1 = 172.16.255.129; arp { eth.dst = ff:ff:ff:ff:ff:ff; arp.spa = reg1; arp.tpa = reg0; arp.op = 1; outport = \"dmz-vm1\"; output; };",
    ),
    (
        false,
        0,
        60,
        "ip4.dst == 172.16.255.201 || ip4.dst == 172.16.255.202",
        "reject { outport = inport; flags.loopback = 1; output; };",
    ),
    (
        false,
        0,
        50,
        "arp.op == 2",
        "put_arp(inport, arp.spa, arp.sha); next;",
    ),
    (
        false,
        0,
        50,
        "nd_ns && nd.target == fe80::ac:10ff:feff:129",
        "nd_na_router { eth.src = 02:ac:10:ff:01:29; ip6.src = fe80::ac:10ff:feff:129; nd.target = fe80::ac:10ff:feff:129; nd.tll = 02:ac:10:ff:01:29; outport = inport; flags.loopback = 1; output; };",
    ),
    (
        false,
        0,
        40,
        "ip6 && ip6.dst == fd00::200",
        "xxreg0 = ip6.dst; nd_ns { nd.target = xxreg0; outport = \"dmz-vm1\"; output; };",
    ),
    (
        false,
        0,
        30,
        "eth.src == 02:ac:10:ff:01:30 && ip4",
        "put_fdb(inport, eth.src); next;",
    ),
    (
        false,
        1,
        100,
        "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33 && ip4 && udp.src == 68 && udp.dst == 67 && reg0[3]",
        "eth.dst = eth.src; eth.src = 02:ac:10:ff:01:29; ip4.src = 172.16.255.129; udp.src = 67; udp.dst = 68; outport = inport; flags.loopback = 1; output;",
    ),
    (
        false,
        1,
        100,
        "udp.src == 546 && udp.dst == 547 && reg0[3]",
        "eth.dst = eth.src; eth.src = 02:ac:10:ff:01:29; ip6.dst = ip6.src; ip6.src = fe80::ac:10ff:feff:129; udp.src = 547; udp.dst = 546; outport = inport; flags.loopback = 1; output;",
    ),
    (
        false,
        1,
        100,
        "ip6 && icmp6.type == 134 && reg0[5]",
        "eth.dst = eth.src; eth.src = 02:ac:10:ff:01:29; ip6.dst = ip6.src; ip6.src = fe80::ac:10ff:feff:129; outport = inport; flags.loopback = 1; output;",
    ),
    (false, 1, 0, "1", "next;"),
    (
        false,
        2,
        50,
        "eth.dst == 02:ac:10:ff:01:33",
        "outport = \"dmz-c51\"; flags.loopback = 1; output;",
    ),
    (
        false,
        2,
        50,
        "eth.dst == 02:ac:10:ff:01:30",
        "outport = \"dmz-vm1\"; flags.loopback = 1; output;",
    ),
    (false, 2, 1, "1", "outport = \"dmz-vm1\"; output;"),
    (true, 0, 0, "1", "output;"),
];

fn dhcp_options() -> Vec<DhcpOption> {
    [
        ("offerip", 0, "ipv4"),
        ("netmask", 1, "ipv4"),
        ("router", 3, "ipv4"),
        ("dns_server", 6, "ipv4"),
        ("hostname", 12, "str"),
        ("ip_forward_enable", 19, "bool"),
        ("mtu", 26, "uint16"),
        ("lease_time", 51, "uint32"),
        ("server_id", 54, "ipv4"),
        ("T1", 58, "uint32"),
        ("tftp_server", 66, "host_id"),
        ("bootfile_name", 67, "str"),
        ("domain_search_list", 119, "domains"),
        ("classless_static_route", 121, "static_routes"),
        ("next_server", 253, "ipv4"),
        ("bootfile_name_alt", 254, "str"),
    ]
    .iter()
    .map(|(n, c, t)| DhcpOption {
        name: n.to_string(),
        code: *c,
        ty: t.to_string(),
    })
    .collect()
}

fn dhcpv6_options() -> Vec<DhcpOption> {
    [
        ("server_id", 2, "mac"),
        ("ia_addr", 5, "ipv6"),
        ("dns_server", 23, "ipv6"),
        ("domain_search", 24, "str"),
    ]
    .iter()
    .map(|(n, c, t)| DhcpOption {
        name: n.to_string(),
        code: *c,
        ty: t.to_string(),
    })
    .collect()
}

fn pipeline_with(flows: &[F]) -> Pipeline {
    let dp = Uuid(1);
    let port = |u: u128, name: &str, key: u32| Port {
        uuid: Uuid(u),
        name: name.into(),
        datapath: dp,
        tunnel_key: key,
        ..Default::default()
    };
    let db = Database {
        datapaths: vec![Datapath {
            uuid: dp,
            tunnel_key: 1,
            name: Some("dmz".into()),
            ..Default::default()
        }],
        ports: vec![port(2, "dmz-vm1", 2), port(3, "dmz-c51", 5)],
        flows: flows
            .iter()
            .enumerate()
            .map(|(i, (egress, table, prio, m, a))| LogicalFlow {
                uuid: Uuid((i as u128 + 16) << 96),
                datapaths: vec![dp],
                egress: *egress,
                table_id: *table,
                priority: *prio,
                match_: (*m).into(),
                actions: (*a).into(),
                ..Default::default()
            })
            .collect(),
        dhcp_options: dhcp_options(),
        dhcpv6_options: dhcpv6_options(),
        ..Default::default()
    };
    let p = Pipeline::compile(&db, &Residency::Everywhere);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p
}

fn pipeline() -> Pipeline {
    pipeline_with(FLOWS)
}

/// Runs `frame` from `inport` through the ingress pipeline as the datapath does.
fn decide(p: &Pipeline, inport: &str, frame: &[u8]) -> Decision {
    let (mut flow, _) = extract(frame).expect("frame");
    let port = p.port(p.port_id(inport).expect("port"));
    flow.set_reg(14, port.key);
    flow.set(Field::Metadata, u128::from(p.datapath(port.dp).key));
    let mut it = Interpreter::new(p, NoTrace, Semantics::Chassis, TraceOptions::default());
    it.run(port.dp, &mut flow);
    it.decision
}

/// The one controller op the frame meets, executed.
fn pinctrl_run(
    pc: &mut Pinctrl,
    p: &Pipeline,
    inport: &str,
    frame: &[u8],
) -> (ControllerOp, Result<Vec<Output>, Drop>) {
    let d = decide(p, inport, frame);
    assert_eq!(d.controller.len(), 1, "controller ops: {:?}", d.controller);
    let op = d.controller[0].clone();
    let r = pc.handle(p, frame, &op);
    (op, r)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// (sent untagged, received) from a golden capture: the pipeline sees frames with the
/// tag stripped by the physical layer, and the capture's received bytes have none.
fn golden(text: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let frames: Vec<(bool, Vec<u8>)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let dir = w.next()? == "sent";
            Some((dir, hex(w.nth(2)?)))
        })
        .collect();
    frames
        .chunks(2)
        .map(|pair| {
            let mut sent = pair[0].1.clone();
            if sent[12..14] == [0x81, 0x00] {
                sent.drain(12..16);
            }
            (sent, pair[1].1.clone())
        })
        .collect()
}

const GOLDEN_DHCP: &str = include_str!("../../../tests/data/golden-dhcp-c51.txt");

#[test]
fn dhcp_offer_equals_ovn_controller_golden() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let (discover, offer) = golden(GOLDEN_DHCP).remove(0);
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &discover);
    assert_eq!(op.action.name(), "put_dhcp_opts");
    let out = out.expect("offer");
    assert_eq!(out.len(), 1);
    assert_eq!(p.port(out[0].port).name, "dmz-c51");
    assert_eq!(out[0].port_key, 5);
    assert_eq!(out[0].dp_key, 1);
    assert_eq!(
        out[0].frame,
        offer,
        "\nours:   {}\ngolden: {}",
        super::compose::mac_text(&out[0].frame),
        super::compose::mac_text(&offer)
    );
    assert_eq!(pc.counters().get("put_dhcp_opts", "offer"), 1);
}

/// A DHCP message from c51 (UDP 68 → 67) with `options` after the cookie.
fn dhcp_frame(
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ciaddr: [u8; 4],
    flags: u16,
    options: &[u8],
) -> Vec<u8> {
    let mut bootp = vec![0u8; 236];
    bootp[0] = 1;
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[4..8].copy_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    bootp[10..12].copy_from_slice(&flags.to_be_bytes());
    bootp[12..16].copy_from_slice(&ciaddr);
    bootp[28..34].copy_from_slice(&C51_MAC);
    bootp.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    bootp.extend_from_slice(options);
    udp4(C51_MAC, [0xff; 6], src_ip, dst_ip, 68, 67, &bootp, true)
}

#[allow(clippy::too_many_arguments)]
fn udp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
    with_csum: bool,
) -> Vec<u8> {
    let mut f = ip4(src_mac, dst_mac, src, dst, 17, 64, &{
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    });
    if with_csum {
        let c = super::compose::csum4(&f, 14, 17, &f[34..]);
        f[40..42].copy_from_slice(&c.to_be_bytes());
    }
    f
}

fn ip4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0, 0, ttl, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let c = csum::of(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(l4);
    f
}

/// The options of a DHCP reply frame: (code, data) in order, and the message type.
fn reply_options(frame: &[u8]) -> (u8, Vec<(u8, Vec<u8>)>) {
    let d = &frame[42..];
    assert_eq!(&d[236..240], &[0x63, 0x82, 0x53, 0x63]);
    let opts: Vec<(u8, Vec<u8>)> = crate::wire::dhcp::Options::new(&d[240..])
        .map(|o| (o.code, o.data.to_vec()))
        .collect();
    assert_eq!(opts[0].0, 53);
    (opts[0].1[0], opts[1..].to_vec())
}

#[test]
fn dhcp_request_ack_and_nak() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    // INIT-REBOOT style REQUEST for the offered address (option 50): ACK, unicast
    // flag clear so the IP destination is the offered address.
    let req = dhcp_frame(
        [0; 4],
        [255; 4],
        [0; 4],
        0,
        &[53, 1, 3, 50, 4, 172, 16, 255, 133, 255],
    );
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &req);
    let out = out.unwrap();
    let f = &out[0].frame;
    let (ty, opts) = reply_options(f);
    assert_eq!(ty, 5, "ACK");
    assert_eq!(&f[30..34], &C51_IP, "IP destination: the offered address");
    assert_eq!(&f[26..30], &LR_IP);
    assert_eq!(&f[42 + 16..42 + 20], &C51_IP, "yiaddr");
    assert_eq!(opts[0], (51, vec![0, 0, 0x0e, 0x10]));
    assert_eq!(csum::of(&f[14..34]), 0);

    // Renewing (ciaddr set, no option 50) for another address: NAK without options.
    let req = dhcp_frame(C51_IP, LR_IP, [172, 16, 255, 140], 0, &[53, 1, 3, 255]);
    let d = decide(&p, "dmz-c51", &req);
    assert_eq!(d.controller.len(), 1);
    let out = pc.handle(&p, &req, &d.controller[0]).unwrap();
    let f = &out[0].frame;
    let (ty, opts) = reply_options(f);
    assert_eq!(ty, 6, "NAK");
    assert!(opts.is_empty());
    assert_eq!(&f[42 + 16..42 + 20], &[0; 4], "yiaddr");
    assert_eq!(pc.counters().get("put_dhcp_opts", "nak"), 1);
    assert_eq!(pc.counters().get("put_dhcp_opts", "ack"), 1);
}

#[test]
fn dhcp_inform_release_decline() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let inform = dhcp_frame([0; 4], [255; 4], [0; 4], 0x8000, &[53, 1, 8, 255]);
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &inform);
    let out = out.unwrap();
    let (ty, opts) = reply_options(&out[0].frame);
    assert_eq!(ty, 5);
    // No netmask, lease time: router and server id only.
    let codes: Vec<u8> = opts.iter().map(|o| o.0).collect();
    assert_eq!(codes, vec![3, 54]);
    assert_eq!(&out[0].frame[42 + 16..42 + 20], &[0; 4], "yiaddr");
    // RELEASE and DECLINE: no reply; the pipeline resumes with reg0[3] = 0 and the
    // request goes where the pipeline sends it (here: dmz-vm1).
    for (ty, outcome) in [(7u8, "release"), (4, "decline")] {
        let f = dhcp_frame([0; 4], [255; 4], [0; 4], 0, &[53, 1, ty, 255]);
        let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &f);
        let out = out.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(p.port(out[0].port).name, "dmz-vm1");
        assert_eq!(out[0].frame, f, "the request, unchanged");
        assert_eq!(pc.counters().get("put_dhcp_opts", outcome), 1);
    }
}

#[test]
fn malformed_dhcp_is_counted_and_resumed_without_reply() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let good = dhcp_frame([0; 4], [255; 4], [0; 4], 0x8000, &[53, 1, 1, 255]);
    let mut bad_magic = good.clone();
    bad_magic[42 + 236] = 0;
    let no_type = dhcp_frame([0; 4], [255; 4], [0; 4], 0, &[55, 2, 1, 3, 255]);
    let type_too_long = dhcp_frame([0; 4], [255; 4], [0; 4], 0, &[53, 2, 1, 1, 255]);
    let runs_past_end = dhcp_frame([0; 4], [255; 4], [0; 4], 0, &[53, 9, 1]);
    let mut bad_op = good.clone();
    bad_op[42] = 2;
    let short = udp4(
        C51_MAC,
        [0xff; 6],
        [0; 4],
        [255; 4],
        68,
        67,
        &[1, 1, 6, 0],
        true,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad magic", bad_magic, "bad_magic"),
        ("no option 53", no_type, "no_msg_type"),
        ("option 53 of length 2", type_too_long, "no_msg_type"),
        ("option past the end", runs_past_end, "no_msg_type"),
        ("BOOTREPLY", bad_op, "bad_op"),
        ("4-byte BOOTP", short, "truncated"),
    ];
    for (what, frame, reason) in cases {
        let before = pc.counters().get("put_dhcp_opts", reason);
        let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
        let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
        // As pinctrl: no reply, the pipeline resumes with the result bit clear.
        assert!(
            out.iter()
                .all(|o| p.port(o.port).name == "dmz-vm1" && o.frame == frame),
            "{what}"
        );
        assert_eq!(
            pc.counters().get("put_dhcp_opts", reason),
            before + 1,
            "{what}"
        );
    }
}

/// Every truncation and a few thousand random corruptions of real requests: never a
/// panic, and every result is a reply, a resume or a counted drop.
#[test]
fn dhcp_never_panics() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let (discover, _) = golden(GOLDEN_DHCP).remove(0);
    let d = decide(&p, "dmz-c51", &discover);
    let op = d.controller[0].clone();
    for n in 0..discover.len() {
        let _ = pc.handle(&p, &discover[..n], &op);
        let _ = dhcp::parse(&discover[34.min(n)..n]);
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..4000 {
        let mut f = discover.clone();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() as usize) % f.len();
            f[i] = next() as u8;
        }
        let cut = (next() as usize) % (f.len() + 1);
        let f = &f[..cut.max(f.len() / 2)];
        let _ = pc.handle(&p, f, &op);
        let _ = dhcp::parse(f.get(34..).unwrap_or(&[]));
        let _ = dhcpv6::parse(f.get(34..).unwrap_or(&[]));
        let _ = arp::parse(f);
    }
}

fn opt(
    name: &str,
    code: u32,
    ty: &str,
    values: Vec<ovnest_logical::expr::Const>,
) -> ovnest_logical::actions::GenOption {
    ovnest_logical::actions::GenOption {
        def: ovnest_logical::actions::OptionDef {
            name: name.into(),
            code,
            ty: ty.into(),
        },
        value: ovnest_logical::expr::ConstSet {
            values,
            in_curlies: false,
        },
    }
}

fn int(v: u128, mask: Option<u128>) -> ovnest_logical::expr::Const {
    ovnest_logical::expr::Const::Int(ovnest_logical::lex::Constant {
        value: v,
        mask,
        format: ovnest_logical::value::Format::Decimal,
    })
}

fn s(v: &str) -> ovnest_logical::expr::Const {
    ovnest_logical::expr::Const::Str(v.into())
}

#[test]
fn dhcp_options_encode_by_sb_type() {
    let o = |name, code, ty, v| opt(name, code, ty, v);
    let options = vec![
        o("offerip", 0, "ipv4", vec![int(0x0a00_0005, None)]),
        o("router", 3, "ipv4", vec![int(0x0a00_0001, None)]),
        o(
            "dns_server",
            6,
            "ipv4",
            vec![int(0x0808_0808, None), int(0x0808_0404, None)],
        ),
        o("ip_forward_enable", 19, "bool", vec![int(1, None)]),
        o("mtu", 26, "uint16", vec![int(1442, None)]),
        o("hostname", 12, "str", vec![s("c51")]),
        o("tftp_server", 66, "host_id", vec![s("tftp.example")]),
        o(
            "classless_static_route",
            121,
            "static_routes",
            vec![
                int(0x0a00_0000, Some(0xff00_0000)),
                int(0x0a00_0001, None),
                int(0, Some(0)),
                int(0x0a00_0002, None),
                int(0xc0a8_0101, None),
            ],
        ),
        o("next_server", 253, "ipv4", vec![int(0x0a00_0009, None)]),
        o("bootfile_name", 67, "str", vec![s("pxe")]),
    ];
    let u = dhcp::encode(&options).unwrap();
    assert_eq!(u.offer_ip, 0x0a00_0005);
    let expect: Vec<u8> = [
        &[67, 3, b'p', b'x', b'e'][..],
        &[253, 4, 10, 0, 0, 9],
        &[3, 4, 10, 0, 0, 1],
        &[6, 8, 8, 8, 8, 8, 8, 8, 4, 4],
        &[19, 1, 1],
        &[26, 2, 0x05, 0xa2],
        &[12, 3, b'c', b'5', b'1'],
        &[66, 12],
        b"tftp.example",
        // RFC 3442: 8.10 via 10.0.0.1; default via 10.0.0.2; the odd value is dropped.
        &[121, 11, 8, 10, 10, 0, 0, 1, 0, 10, 0, 0, 2],
    ]
    .concat();
    assert_eq!(u.opts, expect);
}

#[test]
fn domain_search_list_compresses_as_ovn() {
    // The example in OVN's encoder: "abc.com,xyz.abc.com".
    assert_eq!(
        dhcp::encode_domains("abc.com,xyz.abc.com"),
        [
            &[3][..],
            b"abc",
            &[3],
            b"com",
            &[0, 3],
            b"xyz",
            &[0xc0, 0x00]
        ]
        .concat()
    );
    assert_eq!(dhcp::encode_domains(""), Vec::<u8>::new());
    assert_eq!(dhcp::encode_domains(&"a".repeat(256)), Vec::<u8>::new());
}

#[test]
fn bootfile_alt_replaces_bootfile_unless_ipxe() {
    let p = pipeline_with(&[
        (
            false,
            0,
            100,
            "udp.dst == 67",
            "reg0[3] = put_dhcp_opts(offerip = 172.16.255.133, bootfile_name = \"a.efi\", bootfile_name_alt = \"b.ipxe\"); next;",
        ),
        (
            false,
            1,
            0,
            "1",
            "outport = inport; flags.loopback = 1; output;",
        ),
        (true, 0, 0, "1", "output;"),
    ]);
    let mut pc = Pinctrl::new();
    let plain = dhcp_frame([0; 4], [255; 4], [0; 4], 0x8000, &[53, 1, 1, 255]);
    let ipxe = dhcp_frame(
        [0; 4],
        [255; 4],
        [0; 4],
        0x8000,
        &[53, 1, 1, 175, 1, 1, 255],
    );
    for (frame, file) in [(plain, "b.ipxe"), (ipxe, "a.efi")] {
        let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
        let (_, opts) = reply_options(&out.unwrap()[0].frame);
        assert_eq!(opts, vec![(67, file.as_bytes().to_vec())]);
    }
}

fn ip_header_ok(f: &[u8], l3: usize) {
    assert_eq!(csum::of(&f[l3..l3 + 20]), 0, "IPv4 header checksum");
}

#[test]
fn icmp4_time_exceeded() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let pkt = udp4(
        C51_MAC, VM1_MAC, C51_IP, VM1_IP, 40000, 5001, b"ttl one", true,
    );
    let mut pkt = pkt;
    pkt[22] = 1;
    let c = csum::of(&{
        let mut h = pkt[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    pkt[24..26].copy_from_slice(&c.to_be_bytes());
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &pkt);
    assert_eq!(op.action.name(), "icmp4");
    let out = out.unwrap();
    assert_eq!(out.len(), 1);
    let f = &out[0].frame;
    assert_eq!(p.port(out[0].port).name, "dmz-c51");
    assert_eq!(&f[0..6], &C51_MAC, "eth.dst <-> eth.src");
    assert_eq!(&f[6..12], &VM1_MAC);
    // pinctrl_compose_ipv4: TOS 0, ID 0, DF; the nested actions set TTL and addresses.
    assert_eq!(&f[14..16], &[0x45, 0]);
    assert_eq!(
        u16::from_be_bytes([f[16], f[17]]) as usize,
        20 + 8 + pkt.len() - 14
    );
    assert_eq!(&f[18..22], &[0, 0, 0x40, 0]);
    assert_eq!(f[22], 254);
    assert_eq!(f[23], 1);
    assert_eq!(&f[26..30], &LR_IP);
    assert_eq!(&f[30..34], &C51_IP);
    ip_header_ok(f, 14);
    assert_eq!(&f[34..36], &[11, 0], "time exceeded in transit");
    assert_eq!(csum::of(&f[34..]), 0, "ICMP checksum");
    assert_eq!(&f[34 + 4..34 + 8], &[0; 4]);
    assert_eq!(&f[42..], &pkt[14..], "the whole offending datagram");
}

#[test]
fn icmp4_port_unreachable_and_frag_mtu() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let pkt = udp4(
        C51_MAC,
        LR_MAC,
        C51_IP,
        LR_IP,
        40000,
        33434,
        &[0u8; 700],
        true,
    );
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &pkt);
    let f = out.unwrap().remove(0).frame;
    assert_eq!(&f[34..36], &[3, 3]);
    assert_eq!(&f[26..30], &LR_IP);
    assert_eq!(&f[30..34], &C51_IP);
    assert_eq!(f[22], 255);
    // RFC 1122: at most 576 bytes counting Ethernet, as pinctrl.
    assert_eq!(f.len(), 576);
    assert_eq!(&f[42..], &pkt[14..14 + 534]);
    assert_eq!(csum::of(&f[34..]), 0);
    ip_header_ok(&f, 14);

    let pkt = udp4(
        C51_MAC,
        LR_MAC,
        C51_IP,
        [172, 16, 255, 250],
        1,
        2,
        &[0u8; 1400],
        true,
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &pkt);
    assert_eq!(op.action.name(), "icmp4_error");
    let f = out.unwrap().remove(0).frame;
    assert_eq!(&f[34..36], &[3, 4], "fragmentation needed");
    assert_eq!(&f[38..42], &[0, 0, 0x05, 0xa2], "next-hop MTU 1442");
    assert_eq!(csum::of(&f[34..]), 0);
}

fn tcp4(flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&22u16.to_be_bytes());
    t[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    let mut f = ip4(C51_MAC, LR_MAC, C51_IP, LR_IP, 6, 64, &t);
    let c = super::compose::csum4(&f, 14, 6, &f[34..]);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn tcp_reset_to_router() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let syn = tcp4(0x02);
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &syn);
    assert_eq!(op.action.name(), "tcp_reset");
    let out = out.unwrap();
    assert_eq!(out.len(), 1);
    let f = &out[0].frame;
    assert_eq!(p.port(out[0].port).name, "dmz-c51");
    assert_eq!(f.len(), 54);
    assert_eq!(&f[0..6], &C51_MAC);
    assert_eq!(&f[26..30], &LR_IP);
    assert_eq!(&f[30..34], &C51_IP);
    assert_eq!(f[22], 63, "pinctrl's TTL for resets");
    ip_header_ok(f, 14);
    assert_eq!(u16::from_be_bytes([f[34], f[35]]), 22);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 40000);
    assert_eq!(&f[38..42], &[0; 4], "seq 0");
    assert_eq!(
        u32::from_be_bytes([f[42], f[43], f[44], f[45]]),
        0x1000_0001,
        "ack = seq + 1"
    );
    assert_eq!(&f[46..48], &[0x50, 0x14], "RST|ACK");
    assert_eq!(
        super::compose::csum4(f, 14, 6, &f[34..]),
        0,
        "TCP checksum over the pseudo-header"
    );
}

#[test]
fn reject_answers_tcp_udp_and_never_an_error_with_an_error() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let dst = [172, 16, 255, 201];
    let udp = udp4(C51_MAC, LR_MAC, C51_IP, dst, 5, 53, b"q", true);
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &udp);
    assert_eq!(op.action.name(), "reject");
    let f = out.unwrap().remove(0).frame;
    // Addressed back to the sender by pinctrl itself.
    assert_eq!(&f[0..6], &C51_MAC);
    assert_eq!(&f[6..12], &LR_MAC);
    assert_eq!(&f[26..30], &dst);
    assert_eq!(&f[30..34], &C51_IP);
    assert_eq!(&f[34..36], &[3, 3], "port unreachable");
    assert_eq!(f[22], 255);

    // An ICMP unreachable is not answered.
    let unreach = ip4(
        C51_MAC,
        LR_MAC,
        C51_IP,
        dst,
        1,
        64,
        &[3, 1, 0xfc, 0xfe, 0, 0, 0, 0],
    );
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &unreach);
    assert_eq!(out, Err(Drop::Ignored("icmp_unreachable")));
    assert_eq!(pc.counters().get("reject", "icmp_unreachable"), 1);

    // TCP: a reset; a reset is not answered.
    let mut syn = tcp4(0x02);
    syn[30..34].copy_from_slice(&[172, 16, 255, 202]);
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &syn);
    let f = out.unwrap().remove(0).frame;
    assert_eq!(&f[46..48], &[0x50, 0x14]);
    assert_eq!(&f[26..30], &[172, 16, 255, 202]);
    let mut rst = tcp4(0x04);
    rst[30..34].copy_from_slice(&[172, 16, 255, 202]);
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &rst);
    assert_eq!(out, Err(Drop::Ignored("tcp_rst")));
}

#[test]
fn arp_request_for_unresolved_next_hop() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let pkt = udp4(
        C51_MAC,
        LR_MAC,
        C51_IP,
        [172, 16, 255, 200],
        1,
        2,
        b"x",
        true,
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &pkt);
    assert_eq!(op.action.name(), "arp");
    let out = out.unwrap();
    assert_eq!(p.port(out[0].port).name, "dmz-vm1");
    let f = &out[0].frame;
    let expect: Vec<u8> = [
        &[0xff; 6][..],
        &C51_MAC,
        &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1],
        &C51_MAC,
        &LR_IP,
        &[0; 6],
        &[172, 16, 255, 200],
    ]
    .concat();
    assert_eq!(f, &expect);
    assert_eq!(
        arp::parse(f),
        Some(arp::ArpFields {
            op: 1,
            sha: C51_MAC,
            spa: LR_IP,
            tha: [0; 6],
            tpa: [172, 16, 255, 200]
        })
    );
}

fn ip6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: u128,
    dst: u128,
    proto: u8,
    hlim: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = super::compose::ipv6(src_mac, dst_mac, src, dst, proto, hlim, l4.len());
    f[54..].copy_from_slice(l4);
    let c = super::compose::csum6(&f, 14, proto, &f[54..]);
    let at = if proto == 17 { 54 + 6 } else { 54 + 2 };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

const C51_LLA: u128 = 0xfe80_0000_0000_0000_00ac_10ff_feff_0133;
const LR_LLA: u128 = 0xfe80_0000_0000_0000_00ac_10ff_feff_0129;

#[test]
fn nd_na_router_answers_a_solicitation() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&LR_LLA.to_be_bytes());
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&C51_MAC);
    let sn = 0xff02_0000_0000_0000_0000_0001_ffff_0129u128;
    let frame = ip6_frame(
        C51_MAC,
        [0x33, 0x33, 0xff, 0xff, 0x01, 0x29],
        C51_LLA,
        sn,
        58,
        255,
        &ns,
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
    assert_eq!(op.action.name(), "nd_na_router");
    let f = out.unwrap().remove(0).frame;
    assert_eq!(f.len(), 14 + 40 + 32);
    assert_eq!(&f[0..6], &C51_MAC);
    assert_eq!(&f[6..12], &LR_MAC);
    assert_eq!(&f[22..38], &LR_LLA.to_be_bytes());
    assert_eq!(&f[38..54], &C51_LLA.to_be_bytes());
    assert_eq!(f[21], 255);
    assert_eq!(f[54], 136);
    assert_eq!(&f[58..62], &[0xe0, 0, 0, 0], "router, solicited, override");
    assert_eq!(&f[62..78], &LR_LLA.to_be_bytes());
    assert_eq!(&f[78..80], &[2, 1]);
    assert_eq!(&f[80..86], &LR_MAC, "target link-layer address");
    assert_eq!(super::compose::csum6(&f, 14, 58, &f[54..]), 0);
}

#[test]
fn nd_ns_for_unresolved_ipv6_next_hop() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let dst = 0xfd00_0000_0000_0000_0000_0000_0000_0200u128;
    let frame = ip6_frame(
        C51_MAC,
        LR_MAC,
        C51_LLA,
        dst,
        17,
        64,
        &[0, 1, 0, 2, 0, 9, 0, 0, 7],
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
    assert_eq!(op.action.name(), "nd_ns");
    let out = out.unwrap();
    assert_eq!(p.port(out[0].port).name, "dmz-vm1");
    let f = &out[0].frame;
    assert_eq!(
        &f[0..6],
        &[0x33, 0x33, 0xff, 0, 0x02, 0x00],
        "solicited-node group MAC"
    );
    assert_eq!(
        &f[22..38],
        &C51_LLA.to_be_bytes(),
        "from the source MAC's link-local"
    );
    assert_eq!(
        &f[38..54],
        &0xff02_0000_0000_0000_0000_0001_ff00_0200u128.to_be_bytes()
    );
    assert_eq!(f[54], 135);
    assert_eq!(&f[62..78], &dst.to_be_bytes(), "nd.target = xxreg0");
    assert_eq!(&f[78..80], &[1, 1]);
    assert_eq!(&f[80..86], &C51_MAC);
    assert_eq!(super::compose::csum6(f, 14, 58, &f[54..]), 0);
}

#[test]
fn dhcpv6_solicit_gets_advertise() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let mut msg = vec![1, 0xab, 0xcd, 0xef];
    let client_id = [0, 1, 0, 10, 0, 3, 0, 1, 2, 0xac, 0x10, 0xff, 1, 0x33];
    msg.extend_from_slice(&client_id);
    msg.extend_from_slice(&[0, 3, 0, 12, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&[0, 6, 0, 2, 0, 23]);
    let mut udp = vec![0x02, 0x22, 0x02, 0x23];
    udp.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&msg);
    let all_dhcp = 0xff02_0000_0000_0000_0000_0000_0001_0002u128;
    let frame = ip6_frame(
        C51_MAC,
        [0x33, 0x33, 0, 1, 0, 2],
        C51_LLA,
        all_dhcp,
        17,
        1,
        &udp,
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
    assert_eq!(op.action.name(), "put_dhcpv6_opts");
    let f = out.unwrap().remove(0).frame;
    assert_eq!(&f[0..6], &C51_MAC);
    assert_eq!(&f[6..12], &LR_MAC);
    assert_eq!(&f[22..38], &LR_LLA.to_be_bytes());
    assert_eq!(&f[38..54], &C51_LLA.to_be_bytes());
    assert_eq!(&f[54..58], &[0x02, 0x23, 0x02, 0x22], "547 → 546");
    let d = &f[62..];
    assert_eq!(
        &d[..4],
        &[2, 0xab, 0xcd, 0xef],
        "ADVERTISE, same transaction"
    );
    assert_eq!(&d[4..18], &client_id, "the client's identifier, copied");
    // The action's options in its order: ia_addr (in an IA_NA with the client's IAID,
    // infinite lifetimes), server_id (DUID-LL), dns_server, domain_search.
    let ia = &d[18..];
    assert_eq!(
        &ia[..16],
        &[
            0, 3, 0, 40, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        ]
    );
    assert_eq!(&ia[16..20], &[0, 5, 0, 24]);
    assert_eq!(
        &ia[20..36],
        &0xfd00_0000_0000_0000_0000_0000_0000_0133u128.to_be_bytes()
    );
    assert_eq!(&ia[36..44], &[0xff; 8]);
    let sid = &ia[44..];
    assert_eq!(
        &sid[..14],
        &[0, 2, 0, 10, 0, 3, 0, 1, 2, 0xac, 0x10, 0xff, 1, 0x29]
    );
    let dns = &sid[14..];
    assert_eq!(&dns[..4], &[0, 23, 0, 16]);
    let ds = &dns[20..];
    assert_eq!(&ds[..4], &[0, 24, 0, 13]);
    assert_eq!(
        &ds[4..],
        [&[11][..], b"example.org", &[0]].concat().as_slice()
    );
    assert_eq!(
        super::compose::csum6(&f, 14, 17, &f[54..]),
        0,
        "UDP checksum"
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([f[18], f[19]])),
        f.len() - 54
    );
}

#[test]
fn router_solicitation_gets_advertisement() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let mut rs = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    rs.extend_from_slice(&C51_MAC);
    let all_routers = 0xff02_0000_0000_0000_0000_0000_0000_0002u128;
    let frame = ip6_frame(
        C51_MAC,
        [0x33, 0x33, 0, 0, 0, 2],
        C51_LLA,
        all_routers,
        58,
        255,
        &rs,
    );
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-c51", &frame);
    assert_eq!(op.action.name(), "put_nd_ra_opts");
    let f = out.unwrap().remove(0).frame;
    let ra = &f[54..];
    assert_eq!(&ra[..2], &[134, 0]);
    assert_eq!(&ra[4..16], &[255, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&ra[16..24], &[1, 1, 2, 0xac, 0x10, 0xff, 1, 0x29], "SLLA");
    assert_eq!(
        &ra[24..32],
        &[3, 4, 64, 0xc0, 0xff, 0xff, 0xff, 0xff],
        "prefix, L and A"
    );
    assert_eq!(
        &ra[40..56],
        &0xfd00_0000_0000_0000_0000_0000_0000_0000u128.to_be_bytes()
    );
    assert_eq!(&ra[56..64], &[5, 1, 0, 0, 0, 0, 0x05, 0xa2], "MTU");
    assert_eq!(ra.len(), 64);
    assert_eq!(&f[38..54], &C51_LLA.to_be_bytes());
    assert_eq!(super::compose::csum6(&f, 14, 58, &f[54..]), 0);
}

#[test]
fn put_arp_buffers_then_hands_over_mac_bindings() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let reply = |dst: [u8; 6], mac_last: u8| {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        let mut src = VM1_MAC;
        src[5] = mac_last;
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&VM1_IP);
        f.extend_from_slice(&LR_MAC);
        f.extend_from_slice(&LR_IP);
        f
    };
    let start = std::time::Instant::now();
    // Unicast: due at once; the same (port, IP) again only updates the MAC.
    for last in [0x30, 0x3f] {
        let (op, out) = pinctrl_run(&mut pc, &p, "dmz-vm1", &reply(LR_MAC, last));
        assert_eq!(op.action.name(), "put_arp");
        assert_eq!(out, Ok(Vec::new()));
    }
    assert_eq!(pc.counters().get("put_arp", "queued"), 1);
    assert_eq!(pc.counters().get("put_arp", "updated"), 1);
    let due = pc.run(std::time::Instant::now());
    assert_eq!(
        due,
        vec![SbRequest::MacBinding(MacBindingUpsert {
            logical_port: "dmz-vm1".into(),
            datapath: Uuid(1),
            dp_key: 1,
            port_key: 2,
            ip: "172.16.255.130".into(),
            mac: "02:ac:10:ff:01:3f".into(),
            nd: false,
        })]
    );
    assert!(pc.run(std::time::Instant::now()).is_empty());
    // Broadcast (a gratuitous ARP): delayed 1-50 ms, as pinctrl.
    let (_, _) = pinctrl_run(&mut pc, &p, "dmz-vm1", &reply([0xff; 6], 0x30));
    assert!(pc.run(start).is_empty());
    let at = pc.next_wakeup().expect("pending");
    assert!(at > start && at <= std::time::Instant::now() + std::time::Duration::from_millis(51));
    assert_eq!(pc.run(at).len(), 1);
}

#[test]
fn put_arp_is_bounded() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let mut n_full = 0;
    for i in 0..(mac_binding::MAX_PENDING + 5) as u32 {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&VM1_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&VM1_MAC);
        f.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
        f.extend_from_slice(&LR_MAC);
        f.extend_from_slice(&LR_IP);
        let d = decide(&p, "dmz-vm1", &f);
        let _ = pc.handle(&p, &f, &d.controller[0]);
        n_full = pc.counters().get("put_arp", "dropped_full");
    }
    assert_eq!(n_full, 5);
    let later = std::time::Instant::now() + std::time::Duration::from_secs(1);
    assert_eq!(pc.run(later).len(), mac_binding::MAX_PENDING);
}

#[test]
fn put_fdb_hands_over_entries() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let pkt = udp4(VM1_MAC, C51_MAC, VM1_IP, C51_IP, 1, 2, b"x", true);
    let (op, out) = pinctrl_run(&mut pc, &p, "dmz-vm1", &pkt);
    assert_eq!(op.action.name(), "put_fdb");
    assert_eq!(out, Ok(Vec::new()));
    assert!(pc.next_wakeup().is_some());
    assert_eq!(
        pc.run(std::time::Instant::now()),
        vec![SbRequest::Fdb(FdbUpsert {
            dp_key: 1,
            mac: "02:ac:10:ff:01:30".into(),
            port_key: 2,
        })]
    );
}

#[test]
fn counters_render_as_prometheus() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let (discover, _) = golden(GOLDEN_DHCP).remove(0);
    let _ = pinctrl_run(&mut pc, &p, "dmz-c51", &discover);
    let text = pc.counters().prometheus();
    assert!(text.contains("# TYPE ovnest_pinctrl_packets_total counter"));
    assert!(
        text.contains("ovnest_pinctrl_packets_total{action=\"put_dhcp_opts\",outcome=\"offer\"} 1")
    );
}

#[test]
fn sb_queue_wakes_the_agents_writer() {
    let p = pipeline();
    let mut pc = Pinctrl::new();
    let q = pc.sb_queue();
    let writer = std::thread::spawn(move || q.wait_due(std::time::Duration::from_secs(20)));
    let mut f = Vec::new();
    f.extend_from_slice(&LR_MAC);
    f.extend_from_slice(&VM1_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&VM1_MAC);
    f.extend_from_slice(&VM1_IP);
    f.extend_from_slice(&LR_MAC);
    f.extend_from_slice(&LR_IP);
    let (_, out) = pinctrl_run(&mut pc, &p, "dmz-vm1", &f);
    assert_eq!(out, Ok(Vec::new()));
    let got = writer.join().expect("writer");
    assert_eq!(got.len(), 1, "the unicast binding, handed over at once");
    assert!(pc.next_wakeup().is_none());
}
