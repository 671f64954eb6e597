//! Side by side: the seed lab run by ovnest (`--datapath hybrid`, the logical pipeline and
//! pinctrl in userspace) and by its peer, real ovn-controller 23.03 with a userspace OVS
//! br-int, is given the same input frames on the same interfaces; what arrives at the
//! machines must be the same bytes. The inputs are raw frames on packet sockets in the
//! machines' namespaces (a DHCPDISCOVER and a DHCPREQUEST with a fixed xid, ARP for the
//! router from a tagged container and from a VM, an echo to the gateway, an echo routed
//! to the other switch), so both labs see exactly the same bytes; the machines keep static
//! addresses so that no DHCP client of their own talks meanwhile.

use std::{
    ops::Range,
    path::PathBuf,
    time::{Duration, Instant},
};

use ovnest::agent::config::DatapathMode;
use ovnest_lab::{Addressing, AgentKind, Lab, LabArgs};
use ovnest_tests::{
    fixtures::{
        frames::{BROADCAST, Frame, Mac, checksum, hex, ipv4},
        golden,
    },
    netns,
    packet::{PacketSocket, Received},
    privilege::{require_root, require_tools},
};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-controller",
    "ovs-vswitchd",
    "ethtool",
];
/// How long a frame may take to come out (the first frame of a flow is an upcall in both).
const ARRIVAL: Duration = Duration::from_secs(5);

const C51_MAC: Mac = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];
const VM1_MAC: Mac = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
const LR0_DMZ_MAC: Mac = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
const C51: [u8; 4] = [172, 16, 255, 133];
const VM1: [u8; 4] = [172, 16, 255, 130];
const VM3: [u8; 4] = [172, 16, 255, 194];
const GATEWAY: [u8; 4] = [172, 16, 255, 129];
const XID: [u8; 4] = [0xa4, 0xbc, 0x72, 0xbc];
const ECHO_ID: u16 = 0x0551;

/// A lab torn down on drop, its agent's log printed if the test failed.
struct SideLab {
    lab: Lab,
    log: &'static str,
}

impl SideLab {
    fn up(short: &str, agent: AgentKind) -> SideLab {
        let prefix = format!("t{}{short}-", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
        Lab::down(&dir);
        let args = LabArgs {
            dir,
            prefix,
            ovnest: Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
            agent,
            datapath: DatapathMode::Hybrid,
            addressing: Addressing::Static,
            hypervisors: 1,
            hv2_agent: Default::default(),
            containers: Default::default(),
        };
        let log = match agent {
            AgentKind::OvnController => "ovn-controller.log",
            _ => "ovnest.log",
        };
        let lab = Lab::up(&args).unwrap_or_else(|e| panic!("{agent:?} lab up: {e:#}"));
        SideLab { lab, log }
    }
}

impl Drop for SideLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.lab.dir.join(self.log))
        {
            eprintln!("--- {} ---\n{log}", self.log);
        }
        Lab::down(&self.lab.dir);
    }
}

/// Where a frame is sent or captured: a machine's namespace and its NIC there.
type Nic = (&'static str, &'static str);
const AT_C51: Nic = ("c51", "eth0");
const AT_VM1: Nic = ("vm1", "eth0");
const AT_VM3: Nic = ("vm3", "eth0");

/// What one input frame must make arrive somewhere.
struct Expect {
    what: &'static str,
    at: Nic,
    matches: fn(&[u8]) -> bool,
    /// Bytes that legitimately differ between two runs, left out of the comparison (and
    /// shown in a failure message all the same).
    varies: &'static [(Range<usize>, &'static str)],
}

struct Exchange {
    name: &'static str,
    from: Nic,
    input: Vec<u8>,
    expect: Vec<Expect>,
}

fn exchanges() -> Vec<Exchange> {
    vec![
        Exchange {
            name: "DHCPDISCOVER from c51 (tag 51 behind vm5)",
            from: AT_C51,
            input: discover(),
            expect: vec![Expect {
                what: "DHCPOFFER at c51",
                at: AT_C51,
                matches: |f| dhcp_reply(f, 2),
                varies: &[],
            }],
        },
        Exchange {
            name: "DHCPREQUEST from c51",
            from: AT_C51,
            input: request(),
            expect: vec![Expect {
                what: "DHCPACK at c51",
                at: AT_C51,
                matches: |f| dhcp_reply(f, 5),
                varies: &[],
            }],
        },
        Exchange {
            name: "ARP for the router from c51",
            from: AT_C51,
            input: Frame::eth(BROADCAST, C51_MAC)
                .arp_request(C51_MAC, C51, GATEWAY)
                .build(),
            expect: vec![Expect {
                what: "ARP reply at c51",
                at: AT_C51,
                matches: |f| arp_reply(f, GATEWAY, C51),
                varies: &[],
            }],
        },
        Exchange {
            name: "ARP for the router from vm1",
            from: AT_VM1,
            input: Frame::eth(BROADCAST, VM1_MAC)
                .arp_request(VM1_MAC, VM1, GATEWAY)
                .build(),
            expect: vec![Expect {
                what: "ARP reply at vm1",
                at: AT_VM1,
                matches: |f| arp_reply(f, GATEWAY, VM1),
                varies: &[],
            }],
        },
        Exchange {
            name: "echo from c51 to its gateway",
            from: AT_C51,
            input: echo(C51, GATEWAY, 1),
            expect: vec![Expect {
                what: "echo reply from lr0 at c51",
                at: AT_C51,
                matches: |f| icmp(f, 0, GATEWAY, C51),
                varies: &[],
            }],
        },
        Exchange {
            name: "echo from c51 to vm3, routed dmz -> inside",
            from: AT_C51,
            input: echo(C51, VM3, 2),
            expect: vec![
                Expect {
                    what: "the routed echo at vm3",
                    at: AT_VM3,
                    matches: |f| icmp(f, 8, C51, VM3),
                    varies: &[],
                },
                Expect {
                    what: "vm3's reply routed back, at c51",
                    at: AT_C51,
                    matches: |f| icmp(f, 0, VM3, C51),
                    // vm3's kernel picks the IP id of its reply (a per-namespace hash),
                    // and with it the header checksum: not the agents' doing.
                    varies: &[(18..20, "IP id"), (24..26, "IP header checksum")],
                },
            ],
        },
    ]
}

/// c51's DHCPDISCOVER as real ovn-controller was sent it in the reference capture
/// (tests/data, udhcpc's fixed xid), without the tag vm5's bridge added on its way.
fn discover() -> Vec<u8> {
    let sent = golden::load("golden-dhcp-c51.txt")
        .into_iter()
        .find(|c| c.sent)
        .expect("the captured DHCPDISCOVER");
    let wire = sent.on_wire();
    let mut frame = wire[..12].to_vec();
    frame.extend_from_slice(&wire[16..]);
    assert_eq!(frame[46..50], XID, "the capture's xid");
    frame
}

/// The DHCPREQUEST that follows the OFFER for .133 from server .129 (RFC 2131 §4.3.2:
/// SELECTING, ciaddr 0, requested address and server identifier as options).
fn request() -> Vec<u8> {
    let mut bootp = vec![0u8; 236];
    bootp[..4].copy_from_slice(&[1, 1, 6, 0]);
    bootp[4..8].copy_from_slice(&XID);
    bootp[10..12].copy_from_slice(&[0x80, 0]); // broadcast reply, as udhcpc asks
    bootp[28..34].copy_from_slice(&C51_MAC);
    bootp.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    bootp.extend_from_slice(&[53, 1, 3]);
    bootp.extend_from_slice(&[50, 4]);
    bootp.extend_from_slice(&C51);
    bootp.extend_from_slice(&[54, 4]);
    bootp.extend_from_slice(&GATEWAY);
    bootp.extend_from_slice(&[55, 4, 1, 3, 6, 51, 255]);
    let mut udp = Vec::new();
    udp.extend_from_slice(&68u16.to_be_bytes());
    udp.extend_from_slice(&67u16.to_be_bytes());
    udp.extend_from_slice(&((8 + bootp.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&bootp);
    Frame::eth(BROADCAST, C51_MAC)
        .ethertype(0x0800, &ipv4(17, [0; 4], [255; 4], &udp))
        .build()
}

/// An ICMP echo request from c51 to the router's MAC (the next hop for both targets).
fn echo(src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    let mut l4 = vec![8, 0, 0, 0];
    l4.extend_from_slice(&ECHO_ID.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend((0..48u8).map(|i| i.wrapping_mul(7)));
    let sum = checksum(&l4);
    l4[2..4].copy_from_slice(&sum.to_be_bytes());
    Frame::eth(LR0_DMZ_MAC, C51_MAC)
        .ethertype(0x0800, &ipv4(1, src, dst, &l4))
        .build()
}

fn ipv4_proto(f: &[u8], proto: u8) -> bool {
    f.len() >= 34 && f[12..14] == [8, 0] && f[23] == proto
}

fn dhcp_reply(f: &[u8], message_type: u8) -> bool {
    ipv4_proto(f, 17)
        && f.len() > 285
        && f[36..38] == 68u16.to_be_bytes()
        && f[46..50] == XID
        && f[282..285] == [53, 1, message_type]
}

fn arp_reply(f: &[u8], sender: [u8; 4], target: [u8; 4]) -> bool {
    f.len() >= 42 && f[12..14] == [8, 6] && f[21] == 2 && f[28..32] == sender && f[38..42] == target
}

fn icmp(f: &[u8], icmp_type: u8, src: [u8; 4], dst: [u8; 4]) -> bool {
    ipv4_proto(f, 1)
        && f.len() >= 42
        && f[26..30] == src
        && f[30..34] == dst
        && f[34] == icmp_type
        && f[38..40] == ECHO_ID.to_be_bytes()
}

/// Opens a packet socket on a lab machine's NIC.
fn socket(lab: &Lab, (ns, dev): Nic) -> PacketSocket {
    let _inside = netns::enter(&lab.ns(ns));
    PacketSocket::open(dev).unwrap_or_else(|e| panic!("packet socket on {ns}/{dev}: {e}"))
}

/// Sends every exchange's input into `lab` and returns what arrived for each expectation
/// (in `exchanges()` order), `None` where nothing matching came within [`ARRIVAL`].
fn run(lab: &Lab) -> Vec<Option<Received>> {
    let mut arrived = Vec::new();
    for exchange in exchanges() {
        let captures: Vec<PacketSocket> =
            exchange.expect.iter().map(|e| socket(lab, e.at)).collect();
        socket(lab, exchange.from)
            .send(&exchange.input)
            .unwrap_or_else(|e| panic!("{}: send: {e}", exchange.name));
        let deadline = Instant::now() + ARRIVAL;
        for (expect, capture) in exchange.expect.iter().zip(&captures) {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = capture
                .recv_matching(left, |f| (expect.matches)(&f.bytes))
                .unwrap_or_else(|e| panic!("{}: receive: {e}", expect.what));
            arrived.push(got);
        }
    }
    arrived
}

/// `frame` with the bytes in `varies` zeroed.
fn masked(frame: &[u8], varies: &[(Range<usize>, &str)]) -> Vec<u8> {
    let mut out = frame.to_vec();
    for (range, _) in varies {
        if let Some(bytes) = out.get_mut(range.clone()) {
            bytes.fill(0);
        }
    }
    out
}

/// Where two frames differ, byte by byte (for failure messages).
fn differences(a: &[u8], b: &[u8]) -> String {
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            out.push(format!(
                "[{i}] {} vs {}",
                x.map_or("--".into(), |v| format!("{v:02x}")),
                y.map_or("--".into(), |v| format!("{v:02x}"))
            ));
        }
    }
    out.join(", ")
}

#[test]
fn same_frames_in_the_ovnest_lab_and_the_ovn_controller_lab() {
    if !require_root("side_by_side") || !require_tools("side_by_side", TOOLS) {
        return;
    }
    // Both labs come up at once: they share nothing but the kernel.
    let (ovnest, peer) = std::thread::scope(|s| {
        let ovnest = s.spawn(|| SideLab::up("sbo", AgentKind::Ovnest));
        let peer = s.spawn(|| SideLab::up("sbp", AgentKind::OvnController));
        (ovnest.join(), peer.join())
    });
    let (ovnest, peer) = match (ovnest, peer) {
        (Ok(o), Ok(p)) => (o, p),
        (o, p) => panic!(
            "a lab did not come up: ovnest {}, ovn-controller {}",
            o.is_ok(),
            p.is_ok()
        ),
    };
    let from_peer = run(&peer.lab);
    let from_ovnest = run(&ovnest.lab);

    let expectations: Vec<(&'static str, Expect)> = exchanges()
        .into_iter()
        .flat_map(|x| x.expect.into_iter().map(move |e| (x.name, e)))
        .collect();
    // The peer in this lab answers as it did in the reference capture (tests/data): the
    // oracle is the real thing.
    let golden_offer = golden::load("golden-dhcp-c51.txt")
        .into_iter()
        .find(|c| !c.sent)
        .expect("the captured DHCPOFFER");
    let offer = expectations
        .iter()
        .position(|(_, e)| e.what == "DHCPOFFER at c51")
        .expect("an OFFER expected");
    let peer_offer = from_peer[offer].as_ref().map(|f| hex(&f.on_wire()));
    assert_eq!(
        peer_offer,
        Some(hex(&golden_offer.bytes)),
        "ovn-controller's OFFER in this lab against the reference capture"
    );
    let mut failures = Vec::new();
    for (((name, expect), peer), ours) in expectations.iter().zip(&from_peer).zip(&from_ovnest) {
        let (peer, ours) = match (peer, ours) {
            (Some(p), Some(o)) => (p.on_wire(), o.on_wire()),
            (None, _) => {
                // The reference must answer, or the comparison says nothing.
                failures.push(format!(
                    "{name}: ovn-controller's lab sent no {}",
                    expect.what
                ));
                continue;
            }
            (Some(_), None) => {
                failures.push(format!("{name}: ovnest sent no {}", expect.what));
                continue;
            }
        };
        if masked(&peer, expect.varies) != masked(&ours, expect.varies) {
            failures.push(format!(
                "{name}: {} differs\n  ovn-controller {}\n  ovnest         {}\n  bytes (ovn-controller vs ovnest): {}",
                expect.what,
                hex(&peer),
                hex(&ours),
                differences(&peer, &ours)
            ));
        } else if peer != ours {
            let why: Vec<&str> = expect.varies.iter().map(|(_, why)| *why).collect();
            eprintln!(
                "{name}: {} equal but for {} ({})",
                expect.what,
                why.join(", "),
                differences(&peer, &ours)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "the two labs answered differently:\n{}",
        failures.join("\n")
    );
}
