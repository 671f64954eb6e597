//! The XDP decision cache (`ovnest_datapath::cache`) against the logical pipeline whose
//! decisions it holds, through the real program with BPF_PROG_TEST_RUN:
//! - keys: for random frames, the key the program builds is the one userspace projects
//!   from the flow `flow::extract` gives (an entry written under the userspace key is the
//!   one the program finds), and ordinary frames of every kind get a key;
//! - equal: the seed lab's NB in real OVN (ovsdb-server, ovn-northd), its logical flows
//!   compiled as the agent compiles them; fixture frames (the fast path's fixture table,
//!   golden frames from real ovn-controller) and random ones go through XDP with a cold
//!   cache, up to the userspace pipeline exactly as XDP hands them (metadata included),
//!   which decides, delivers and installs; then through XDP again, from the cache:
//!   identical bytes and output port, or both drop.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    sync::Arc,
};

use ovnest_common::{
    CacheAction, CacheCounter, Counter, PortKey,
    cache::{ACTION_DROP, ACTION_OUTPUT},
};
use ovnest_datapath::{
    FastPath, LogicalPort, TableSet,
    cache::{CacheMaps, CacheStats, key},
    fastpath::Decisions,
    pipeline::{Desc, FramePool, NoServices, Pipeline, Snapshot, TxBatches, Umem, Verdict},
};
use ovnest_tests::{
    fixtures::{self, Iface, frames::hex, lab},
    hypervisor::Hypervisor,
    privilege::{require_root, require_tools},
    southbound,
};
use proptest::prelude::*;

const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;

/// The hypervisor's namespace and the program deciding from its cache, with the lab's
/// physical tables (`ports`) applied.
struct Bed {
    hv: Hypervisor,
    fast_path: FastPath,
    maps: CacheMaps,
    stats: Arc<CacheStats>,
    generation: u64,
}

impl Bed {
    /// The lab's ports on a fresh hypervisor; `keys` renames their tunnel keys (those real
    /// OVN gave), when given.
    fn new(keys: Option<&BTreeMap<String, PortKey>>) -> (Bed, Vec<LogicalPort>) {
        let hv = Hypervisor::alone();
        let mut ports = lab::logical_ports(&hv.wiring);
        if let Some(keys) = keys {
            for p in &mut ports {
                p.key = *keys
                    .get(&p.name)
                    .unwrap_or_else(|| panic!("{} not in the Southbound", p.name));
            }
        }
        let mut fast_path = FastPath::load_decisions(Decisions::Cached { entries: 4096 })
            .expect("load the XDP program with its decision cache");
        {
            let _inside = hv.ns.enter();
            let (tables, conflicts) = TableSet::build(&ports);
            assert!(conflicts.is_empty(), "{conflicts:?}");
            fast_path.apply(&tables).expect("apply lab tables");
        }
        let stats = Arc::new(CacheStats::default());
        let maps = fast_path.cache_maps(stats.clone()).expect("cache maps");
        let bed = Bed {
            hv,
            fast_path,
            maps,
            stats,
            generation: 0,
        };
        (bed, ports)
    }

    /// Starts a new generation: every entry written so far is stale.
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.fast_path
            .set_cache_generation(self.generation)
            .expect("set generation");
        self.generation
    }

    /// One BPF_PROG_TEST_RUN: (verdict, metadata length, bytes out (metadata included),
    /// what the cache lookup counted, verdict counters moved).
    fn run(&self, ingress: u32, frame: &[u8]) -> XdpRun {
        let _inside = self.hv.ns.enter();
        let before = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        let mut out = vec![0u8; frame.len() + 64];
        let (result, meta) = self
            .fast_path
            .test_run_with_meta(ingress, frame, &mut out)
            .expect("test_run");
        out.truncate(result.data_size_out as usize);
        let after = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        let lookup = CacheCounter::ALL
            .into_iter()
            .find(|c| after.0.get(*c) != before.0.get(*c));
        let moved = after.1.since(&before.1);
        XdpRun {
            action: result.return_value,
            meta,
            out,
            lookup,
            counters: moved
                .iter()
                .filter(|(_, n)| *n != 0)
                .map(|(c, _)| c)
                .collect(),
        }
    }
}

#[derive(Debug)]
struct XdpRun {
    action: u32,
    /// Length of the XDP metadata in front of the frame in `out` (0: none).
    meta: usize,
    out: Vec<u8>,
    lookup: Option<CacheCounter>,
    counters: Vec<Counter>,
}

impl XdpRun {
    /// The frame as it left XDP (after the metadata).
    fn frame(&self) -> &[u8] {
        &self.out[self.meta.min(self.out.len())..]
    }
}

/// (ingress interface, VID, logical port) a frame may come from, with its MAC.
const SENDERS: [(Iface, u16, &lab::LabPort); 5] = [
    (Iface::Vm1, 0, &lab::VM1),
    (Iface::Vm2, 0, &lab::VM2),
    (Iface::Vm5, 0, &lab::VM5),
    (Iface::Vm5, 51, &lab::C51),
    (Iface::Vm5, 52, &lab::C52),
];

/// Destination addresses worth hitting: the lab's, the router's, broadcast, any.
fn mac_strategy() -> impl Strategy<Value = [u8; 6]> {
    let known: Vec<[u8; 6]> = lab::PORTS.iter().map(|p| p.mac).collect();
    prop_oneof![
        3 => proptest::sample::select(known),
        1 => Just([0xff; 6]),
        1 => any::<[u8; 6]>(),
    ]
}

fn ipv4_strategy() -> impl Strategy<Value = [u8; 4]> {
    let known: Vec<[u8; 4]> = lab::PORTS.iter().map(|p| p.ipv4).collect();
    prop_oneof![
        3 => proptest::sample::select(known),
        1 => any::<[u8; 4]>(),
    ]
}

/// A transport header and payload for `proto`, well-formed more often than not.
fn l4_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        prop_oneof![
            Just(17u8),
            Just(6u8),
            Just(1u8),
            Just(58u8),
            Just(132u8),
            Just(2u8),
            any::<u8>()
        ],
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<u16>(),
        any::<u16>(),
        prop_oneof![
            Just(8u8),
            Just(0u8),
            Just(128u8),
            Just(135u8),
            Just(136u8),
            any::<u8>()
        ],
        prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
    )
        .prop_map(|(proto, mut body, sport, dport, ty, code)| {
            match proto {
                6 | 17 | 132 => {
                    body.resize(body.len().max(20), 0);
                    body[..2].copy_from_slice(&sport.to_be_bytes());
                    body[2..4].copy_from_slice(&dport.to_be_bytes());
                }
                1 | 58 => {
                    body.resize(body.len().max(8), 0);
                    body[0] = ty;
                    body[1] = code;
                }
                _ => {}
            }
            (proto, body)
        })
}

/// Network layers after the Ethernet header: (ethertype, bytes).
fn payload_strategy() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let ipv4 = (
        ipv4_strategy(),
        ipv4_strategy(),
        l4_strategy(),
        any::<u8>(),
        prop_oneof![Just(64u8), Just(1u8), Just(0u8), any::<u8>()],
        prop_oneof![6 => Just(0x4000u16), 2 => Just(0u16), 1 => Just(0x2000u16), 1 => any::<u16>()],
        prop_oneof![8 => Just(5u8), 1 => 0u8..16],
        prop_oneof![8 => Just(0i32), 1 => -30i32..30],
    )
        .prop_map(|(src, dst, (proto, l4), tos, ttl, frag, ihl, len_fix)| {
            let mut h = fixtures::frames::ipv4(proto, src, dst, &l4);
            h[1] = tos;
            h[8] = ttl;
            h[6..8].copy_from_slice(&frag.to_be_bytes());
            if ihl != 5 {
                h[0] = 0x40 | ihl;
                h.splice(
                    20..20,
                    std::iter::repeat_n(1u8, usize::from(ihl.saturating_sub(5)) * 4),
                );
            }
            let total = (h.len() as i32 + len_fix).clamp(0, 0xffff) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[10..12].fill(0);
            let sum = fixtures::frames::checksum(&h[..20]);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            (0x0800, h)
        });
    let ipv6 = (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        l4_strategy(),
        prop_oneof![4 => Just(None), 1 => proptest::sample::select(vec![0u8, 43, 44, 60, 59]).prop_map(Some)],
        any::<u32>(),
        any::<u8>(),
        prop_oneof![8 => Just(0i32), 1 => -20i32..20],
    )
        .prop_map(|(src, dst, (proto, l4), ext, vtcfl, hop, len_fix)| {
            let mut h = Vec::new();
            h.extend_from_slice(&((6 << 28) | (vtcfl & 0x0fff_ffff)).to_be_bytes());
            let mut rest = Vec::new();
            let next = match ext {
                Some(ext) => {
                    rest.extend_from_slice(&[proto, 0, 0, 0, 0, 0, 0, 0]);
                    ext
                }
                None => proto,
            };
            rest.extend_from_slice(&l4);
            let len = (rest.len() as i32 + len_fix).clamp(0, 0xffff) as u16;
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[next, hop]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            h.extend_from_slice(&rest);
            (0x86dd, h)
        });
    let arp = (
        prop_oneof![6 => Just([0u8, 1, 8, 0, 6, 4]), 1 => any::<[u8; 6]>()],
        prop_oneof![Just(1u16), Just(2u16), any::<u16>()],
        any::<[u8; 6]>(),
        ipv4_strategy(),
        any::<[u8; 6]>(),
        ipv4_strategy(),
        prop_oneof![Just(0x0806u16), Just(0x8035u16)],
    )
        .prop_map(|(head, op, sha, spa, tha, tpa, ty)| {
            let mut p = head.to_vec();
            p.extend_from_slice(&op.to_be_bytes());
            p.extend_from_slice(&sha);
            p.extend_from_slice(&spa);
            p.extend_from_slice(&tha);
            p.extend_from_slice(&tpa);
            (ty, p)
        });
    let other = (
        prop_oneof![
            Just(0x88ccu16),
            Just(0x0100u16),
            Just(0x05ffu16),
            any::<u16>()
        ],
        proptest::collection::vec(any::<u8>(), 0..64),
    );
    prop_oneof![4 => ipv4, 2 => ipv6, 2 => arp, 1 => other]
}

/// A frame from one of the lab's senders: (sender index, bytes as sent): half of them
/// anything, half of them what a VM or container would send (its own addresses, to a
/// lab port or through the router), so that every kind of decision comes up.
fn frame_strategy() -> impl Strategy<Value = (usize, Vec<u8>)> {
    prop_oneof![any_frame_strategy(), flow_strategy()]
}

/// IPv4 traffic a lab port sends: its own MAC and address, to a lab port or the router
/// (routed back into `dmz`, or answered by it), TTLs around the router's limits, UDP
/// with and without a checksum, TCP, ICMP echo.
fn flow_strategy() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let router = lab::LR0;
    (
        0..SENDERS.len(),
        proptest::sample::select(lab::PORTS.to_vec()),
        prop_oneof![2 => Just(false), 1 => Just(true)],
        prop_oneof![Just(17u8), Just(6u8), Just(1u8)],
        prop_oneof![Just(64u8), Just(1u8), Just(2u8), Just(255u8), any::<u8>()],
        any::<u8>(),
        any::<(u16, u16, u16)>(),
        prop_oneof![1 => Just(true), 2 => Just(false)],
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            move |(sender, to, routed, proto, ttl, tos, (sport, dport, csum), zero, data)| {
                let (_, vid, port) = SENDERS[sender];
                // Routed: to the router's MAC, addressed to the port (or the router itself).
                let dst_mac = if routed { router.mac } else { to.mac };
                let mut l4 = match proto {
                    17 => {
                        let mut u = Vec::new();
                        u.extend_from_slice(&sport.to_be_bytes());
                        u.extend_from_slice(&dport.to_be_bytes());
                        u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                        u.extend_from_slice(&if zero { 0 } else { csum | 1 }.to_be_bytes());
                        u
                    }
                    6 => {
                        let mut t = vec![0u8; 20];
                        t[..2].copy_from_slice(&sport.to_be_bytes());
                        t[2..4].copy_from_slice(&dport.to_be_bytes());
                        t[12] = 0x50;
                        t[13] = (csum & 0x3f) as u8;
                        t[16..18].copy_from_slice(&csum.to_be_bytes());
                        t
                    }
                    _ => {
                        let mut i = vec![8, 0, 0, 0];
                        i.extend_from_slice(&sport.to_be_bytes());
                        i.extend_from_slice(&dport.to_be_bytes());
                        i
                    }
                };
                l4.extend_from_slice(&data);
                if proto == 1 {
                    let sum = fixtures::frames::checksum(&l4);
                    l4[2..4].copy_from_slice(&sum.to_be_bytes());
                }
                let mut ip = fixtures::frames::ipv4(proto, port.ipv4, to.ipv4, &l4);
                ip[1] = tos;
                ip[8] = ttl;
                ip[10..12].fill(0);
                let sum = fixtures::frames::checksum(&ip[..20]);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                let mut f = fixtures::Frame::eth(dst_mac, port.mac).ethertype(0x0800, &ip);
                if vid != 0 {
                    f = f.vlan(vid);
                }
                (sender, f.build())
            },
        )
}

/// Anything from a lab sender: every header kind, malformed ones included.
fn any_frame_strategy() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (
        0..SENDERS.len(),
        mac_strategy(),
        payload_strategy(),
        prop_oneof![8 => Just(None), 1 => any::<u8>().prop_map(Some)],
    )
        .prop_map(|(sender, dst, (ty, payload), cut)| {
            let (_, vid, port) = SENDERS[sender];
            let mut f = fixtures::Frame::eth(dst, port.mac).ethertype(ty, &payload);
            if vid != 0 {
                f = f.vlan(vid);
            }
            let mut bytes = f.build();
            if let Some(cut) = cut {
                let min = if vid != 0 { 18 } else { 14 };
                bytes.truncate(min + usize::from(cut) % (bytes.len() + 1 - min).max(1));
            }
            (sender, bytes)
        })
}

/// The frame as the pipeline sees it: its tag (if any) taken off.
fn untagged(frame: &[u8], vid: u16) -> Vec<u8> {
    if vid == 0 {
        return frame.to_vec();
    }
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&frame[16..]);
    f
}

/// For one frame: a cold lookup, then (when the program built a key) an entry written
/// under the key userspace projects from the frame's flow, which the program must find.
fn check_key(bed: &mut Bed, sender: usize, frame: &[u8]) -> Result<bool, String> {
    let (iface, vid, port) = SENDERS[sender];
    let ingress = bed.hv.wiring.ifindex(iface);
    let generation = bed.next_generation();
    let cold = bed.run(ingress, frame);
    match cold.lookup {
        Some(CacheCounter::Uncacheable) => return Ok(false),
        // Stale: an earlier frame had the same key, in an older generation.
        Some(CacheCounter::Miss | CacheCounter::Stale) => {}
        other => return Err(format!("cold lookup counted {other:?}: {cold:?}")),
    }
    let key = key::of_frame(&untagged(frame, vid), port.key())
        .ok_or_else(|| "XDP keyed a frame userspace cannot key".to_string())?;
    let entry = CacheAction {
        generation,
        kind: ACTION_DROP,
        drop_reason: Counter::DropLogical as u32,
        ..CacheAction::default()
    };
    let mut writer = bed.maps.writer().expect("writer");
    writer.push(key, entry);
    writer.flush();
    let warm = bed.run(ingress, frame);
    if warm.lookup != Some(CacheCounter::Hit)
        || warm.action != XDP_DROP
        || warm.counters != [Counter::DropLogical]
    {
        return Err(format!(
            "userspace key {key:?} not found by XDP: {warm:?}\nframe {}",
            hex(frame)
        ));
    }
    Ok(true)
}

#[test]
fn xdp_keys_equal_the_keys_userspace_projects_from_the_flow() {
    if !require_root("xdp_keys_equal_the_keys_userspace_projects_from_the_flow") {
        return;
    }
    let (bed, _) = Bed::new(None);
    let bed = RefCell::new(bed);
    let keyed = Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&frame_strategy(), |(sender, frame)| {
        match check_key(&mut bed.borrow_mut(), sender, &frame) {
            Ok(k) => {
                keyed.set(keyed.get() + u32::from(k));
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(e)),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The strategy leans to well-formed frames: most of them must be keyed.
    let keyed = keyed.get();
    assert!(keyed > 1000, "only {keyed} of 2000 random frames got a key");
    // Every keyed frame's entry was written: new, or over an earlier frame's of the
    // same key.
    let installed = bed.borrow().stats.read();
    assert_eq!(installed.installs + installed.replaced, u64::from(keyed));
}

/// Ordinary frames of every kind the key describes get one (none is left to userspace
/// for good by mistake); the kinds it does not describe get none.
#[test]
fn ordinary_frames_are_keyed_and_odd_ones_are_not() {
    if !require_root("ordinary_frames_are_keyed_and_odd_ones_are_not") {
        return;
    }
    let (mut bed, _) = Bed::new(None);
    let (c51, vm1) = (lab::C51, lab::VM1);
    let udp = fixtures::Frame::eth(vm1.mac, c51.mac).udp(c51.ipv4, vm1.ipv4, 1000, 53, 10);
    let ip = |proto: u8, l4: &[u8]| {
        fixtures::Frame::eth(vm1.mac, c51.mac).ethertype(
            0x0800,
            &fixtures::frames::ipv4(proto, c51.ipv4, vm1.ipv4, l4),
        )
    };
    let ip6 = |next: u8, l4: &[u8]| {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(l4);
        fixtures::Frame::eth(vm1.mac, c51.mac).ethertype(0x86dd, &h)
    };
    let mut tcp = vec![0u8; 20];
    tcp[12] = 0x50;
    tcp[13] = 0x02;
    let mut options = fixtures::frames::ipv4(17, c51.ipv4, vm1.ipv4, &[0; 8]);
    options[0] = 0x46;
    options.splice(20..20, [1, 1, 1, 1]);
    let keyed = [
        ("udp", udp.clone()),
        ("tcp syn", ip(6, &tcp)),
        ("icmp echo", ip(1, &[8, 0, 0, 0, 0, 1, 0, 1])),
        ("gre", ip(47, &[0; 8])),
        (
            "arp request",
            fixtures::Frame::eth([0xff; 6], c51.mac).arp_request(c51.mac, c51.ipv4, vm1.ipv4),
        ),
        ("ipv6 udp", ip6(17, &[0, 1, 0, 2, 0, 8, 0, 0])),
        ("icmpv6 echo", ip6(58, &[128, 0, 0, 0, 0, 1, 0, 1])),
        (
            "lldp",
            fixtures::Frame::eth([1, 0x80, 0xc2, 0, 0, 0xe], c51.mac).ethertype(0x88cc, &[0; 30]),
        ),
    ];
    let not_keyed = [
        (
            "ipv4 options",
            fixtures::Frame::eth(vm1.mac, c51.mac).ethertype(0x0800, &options),
        ),
        ("ipv4 fragment", {
            let mut f = fixtures::frames::ipv4(17, c51.ipv4, vm1.ipv4, &[0; 8]);
            f[6] = 0x20;
            fixtures::Frame::eth(vm1.mac, c51.mac).ethertype(0x0800, &f)
        }),
        ("udp cut short", ip(17, &[0, 1, 0, 2])),
        ("ipv6 hop-by-hop", ip6(0, &[17, 0, 0, 0, 0, 0, 0, 0])),
        (
            "neighbour solicitation",
            ip6(58, &[135, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("igmp", ip(2, &[0x11, 0, 0, 0, 0, 0, 0, 0])),
    ];
    let c51_sender = 3;
    for (name, frame) in keyed {
        let frame = frame.vlan(51).build();
        assert_eq!(check_key(&mut bed, c51_sender, &frame), Ok(true), "{name}");
    }
    for (name, frame) in not_keyed {
        let frame = frame.vlan(51).build();
        assert_eq!(check_key(&mut bed, c51_sender, &frame), Ok(false), "{name}");
    }
}

/// The seed lab's NB in real OVN, plus the fixture table's other ports (children on tags
/// 1 and 4094, a VM bound elsewhere), compiled for this chassis.
struct Seed {
    _ovn: ovnest_tests::ovn::OvnCentral,
    /// Port name → (datapath, port) tunnel keys northd gave.
    keys: BTreeMap<String, PortKey>,
    pipeline: Arc<ovnest_logical::Pipeline>,
}

fn seed() -> Seed {
    let ovn = ovnest_tests::ovn::OvnCentral::start();
    ovn.seed_dmz_and_router();
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let ip = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
    let dhcp = ovn.nbctl(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.128/26",
        "options=\"lease_time\"=\"3600\" \"router\"=\"172.16.255.129\" \"server_id\"=\"172.16.255.129\" \"server_mac\"=\"02:ac:10:ff:01:29\"",
    ]);
    for port in lab::PORTS.iter().filter(|p| p.name != "dmz-lr0") {
        let addresses = format!("{} {}", mac(port.mac), ip(port.ipv4));
        match port.place {
            lab::Place::Child { tag, .. } => {
                ovn.nbctl(&["lsp-add", "dmz", port.name, "dmz-vm5", &tag.to_string()])
            }
            _ => ovn.nbctl(&["lsp-add", "dmz", port.name]),
        };
        ovn.nbctl(&["lsp-set-addresses", port.name, &addresses]);
        ovn.nbctl(&["lsp-set-port-security", port.name, &addresses]);
        ovn.nbctl(&["lsp-set-dhcpv4-options", port.name, dhcp.trim()]);
    }
    let db = southbound::fetch(&ovn);
    let keys = southbound::port_keys(&db);
    let pipeline = southbound::compile_lab(&db, &[]);
    Seed {
        _ovn: ovn,
        keys,
        pipeline,
    }
}

/// What the userspace pipeline did with one frame.
#[derive(Debug)]
struct UserspaceRun {
    verdict: Verdict,
    /// (egress ifindex, bytes).
    out: Vec<(u32, Vec<u8>)>,
    /// Stats slots of the ports it sent to.
    tx_slots: Vec<u32>,
    /// It queued an entry for the cache (written when the batch ended).
    installed: bool,
}

const CHUNK: u32 = 2048;
const CHUNKS: usize = 32;
const HEADROOM: usize = 256;

/// `input` through the userspace pipeline as XDP handed it over: `meta` bytes of XDP
/// metadata in front of the frame (0: none, the frame as sent).
fn userspace(
    snap: &Snapshot,
    ports: &[LogicalPort],
    ingress: u32,
    input: &[u8],
    meta: usize,
    bed: &Bed,
) -> UserspaceRun {
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let umem = Umem::new(&mut area, CHUNK).unwrap();
    let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
    for c in 1..CHUNKS {
        pool.give((c * CHUNK as usize) as u64);
    }
    let mut tx = TxBatches::new(64);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, NoServices);
    p.cache = Some(bed.maps.writer().expect("cache writer"));
    let frame_len = input.len() - meta;
    p.umem.as_mut_slice()[HEADROOM - meta..HEADROOM + frame_len].copy_from_slice(input);
    let before = bed.stats.read();
    p.process_batch(
        snap,
        ingress,
        &[Desc::new(HEADROOM as u64, frame_len as u32)],
    );
    let after = bed.stats.read();
    let verdict = Verdict::all()
        .find(|v| p.counters.get(*v) == 1)
        .expect("a verdict");
    let mut descs = Vec::new();
    p.tx.drain_all(|device, d| descs.push((snap.devices()[device as usize].ifindex, d)));
    let tx_slots = ports
        .iter()
        .map(|l| l.stats_slot)
        .filter(|s| p.counters.port_stats(*s).tx_packets > 0)
        .collect();
    let area = p.umem.as_mut_slice();
    let out = descs
        .iter()
        .map(|(i, d)| {
            (
                *i,
                area[d.addr as usize..(d.addr + d.len as u64) as usize].to_vec(),
            )
        })
        .collect();
    UserspaceRun {
        verdict,
        out,
        tx_slots,
        installed: after != before,
    }
}

/// Port stats slots whose transmit counter XDP moved during `f`.
fn xdp_tx_slots(
    bed: &Bed,
    ports: &[LogicalPort],
    f: impl FnOnce() -> XdpRun,
) -> (XdpRun, Vec<u32>) {
    let tx = |slot| bed.fast_path.port_stats(slot).unwrap().tx_packets;
    let before: Vec<u64> = ports.iter().map(|p| tx(p.stats_slot)).collect();
    let run = f();
    let slots = ports
        .iter()
        .zip(before)
        .filter(|(p, b)| tx(p.stats_slot) != *b)
        .map(|(p, _)| p.stats_slot)
        .collect();
    (run, slots)
}

/// Counts of what the differential run saw, so the test can require coverage.
#[derive(Debug, Default)]
struct Seen {
    outputs: u32,
    rewrites: u32,
    drops: u32,
    not_cached: u32,
    uncacheable: u32,
    dropped_before_cache: u32,
}

/// One frame: cold XDP → userspace (decides, installs) → warm XDP; compares.
#[allow(clippy::too_many_arguments)]
fn differential(
    bed: &mut Bed,
    seed: &Seed,
    ports: &[LogicalPort],
    iface: Iface,
    vid: u16,
    from: Option<PortKey>,
    frame: &[u8],
    seen: &mut Seen,
) -> Result<(), String> {
    let ingress = bed.hv.wiring.ifindex(iface);
    let generation = bed.next_generation();
    let snap = Snapshot::build(generation, ports).with_logical(seed.pipeline.clone());
    let cold = bed.run(ingress, frame);
    let upcalled = cold.counters == [Counter::DropNoUserspace];
    let context = || format!("frame {} on {iface:?}", hex(frame));
    let us = if upcalled {
        userspace(&snap, ports, ingress, &cold.out, cold.meta, bed)
    } else {
        userspace(&snap, ports, ingress, frame, 0, bed)
    };
    match cold.lookup {
        None => {
            // Dropped by classification or port security before the cache: userspace
            // drops it too (its classification is XDP's, step for step).
            seen.dropped_before_cache += 1;
            if cold.action != XDP_DROP || !us.out.is_empty() || us.installed {
                return Err(format!(
                    "XDP dropped before the cache ({cold:?}), userspace {us:?}; {}",
                    context()
                ));
            }
            return Ok(());
        }
        Some(CacheCounter::Uncacheable) => {
            seen.uncacheable += 1;
            if us.installed {
                return Err(format!(
                    "an uncacheable frame was installed: {us:?}; {}",
                    context()
                ));
            }
            return Ok(());
        }
        // Stale: an earlier frame had the same key, in an older generation.
        Some(CacheCounter::Miss | CacheCounter::Stale) => {}
        other => return Err(format!("cold cache counted {other:?}; {}", context())),
    }
    if cold.meta == 0 {
        return Err(format!("a miss went up without metadata: {cold:?}"));
    }
    let (warm, xdp_slots) = xdp_tx_slots(bed, ports, || bed.run(ingress, frame));
    if !us.installed {
        seen.not_cached += 1;
        return match warm.lookup {
            Some(CacheCounter::Miss) => Ok(()),
            _ => Err(format!(
                "not installed, yet XDP found {warm:?}; userspace {us:?}; {}",
                context()
            )),
        };
    }
    if warm.lookup != Some(CacheCounter::Hit) {
        return Err(format!(
            "installed, yet XDP missed: {warm:?}; userspace {us:?}; {}",
            context()
        ));
    }
    let from = from.ok_or("a frame from no port reached the cache")?;
    let key = key::of_frame(&untagged(frame, vid), from).ok_or("no userspace key")?;
    let entry = bed
        .fast_path
        .cache_entry(&key)
        .unwrap()
        .ok_or("no entry under the userspace key")?;
    match us.out.as_slice() {
        [] => {
            seen.drops += 1;
            let want = match us.verdict {
                Verdict::Logical(ovnest_datapath::pipeline::LogicalOutcome::Dropped) => {
                    Counter::DropLogical
                }
                Verdict::Logical(ovnest_datapath::pipeline::LogicalOutcome::NotLocal) => {
                    Counter::DropNotLocal
                }
                other => {
                    return Err(format!(
                        "userspace dropped as {other:?} and installed; {}",
                        context()
                    ));
                }
            };
            if warm.action != XDP_DROP || warm.counters != [want] || entry.kind != ACTION_DROP {
                return Err(format!(
                    "userspace {us:?}, XDP from the cache {warm:?}; {}",
                    context()
                ));
            }
        }
        [(ifindex, bytes)] => {
            seen.outputs += 1;
            if entry.rewrite != 0 {
                seen.rewrites += 1;
            }
            if warm.action != XDP_REDIRECT
                || entry.kind != ACTION_OUTPUT
                || warm.frame() != bytes.as_slice()
                || entry.out_ifindex != *ifindex
                || xdp_slots != us.tx_slots
            {
                return Err(format!(
                    "userspace sent to ifindex {ifindex} (slots {:?})\n  {}\nXDP from the cache: action {} to ifindex {} (slots {xdp_slots:?})\n  {}\n{}",
                    us.tx_slots,
                    hex(bytes),
                    warm.action,
                    entry.out_ifindex,
                    hex(warm.frame()),
                    context()
                ));
            }
        }
        more => {
            return Err(format!(
                "{} copies installed as one entry; {}",
                more.len(),
                context()
            ));
        }
    }
    Ok(())
}

#[test]
fn cached_decisions_equal_the_pipelines() {
    let tools = ["ovsdb-server", "ovn-northd", "ovn-nbctl"];
    if !require_root("cached_decisions_equal_the_pipelines")
        || !require_tools("cached_decisions_equal_the_pipelines", &tools)
    {
        return;
    }
    let seed = seed();
    let (bed, ports) = Bed::new(Some(&seed.keys));
    let bed = RefCell::new(bed);
    let seen = RefCell::new(Seen::default());
    let mut failures = Vec::new();

    // The fixture table and golden frames real ovn-controller saw from c51.
    let key = |name: &str| seed.keys.get(name).copied();
    // (case, ingress interface, VLAN, expected logical port, frame)
    type Case = (String, Iface, u16, Option<PortKey>, Vec<u8>);
    let mut fixed: Vec<Case> = fixtures::cases()
        .into_iter()
        .filter(|c| c.input.len() >= 14)
        .map(|c| {
            let vid = if c.input.len() >= 16 && c.input[12..14] == [0x81, 0] {
                u16::from_be_bytes([c.input[14], c.input[15]]) & 0xfff
            } else {
                0
            };
            (
                c.name.to_string(),
                c.ingress,
                vid,
                c.from.and_then(key),
                c.input,
            )
        })
        .collect();
    for file in [
        "golden-arp-c51.txt",
        "golden-dhcp-c51.txt",
        "golden-icmp-c51.txt",
    ] {
        for (i, f) in fixtures::golden::load(file)
            .into_iter()
            .filter(|f| f.sent)
            .enumerate()
        {
            fixed.push((
                format!("{file} #{i}"),
                Iface::Vm5,
                f.vid,
                key("dmz-c51"),
                f.on_wire(),
            ));
        }
    }
    for (name, iface, vid, from, frame) in &fixed {
        if let Err(e) = differential(
            &mut bed.borrow_mut(),
            &seed,
            &ports,
            *iface,
            *vid,
            *from,
            frame,
            &mut seen.borrow_mut(),
        ) {
            failures.push(format!("{name}: {e}"));
        }
    }

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&frame_strategy(), |(sender, frame)| {
        let (iface, vid, port) = SENDERS[sender];
        differential(
            &mut bed.borrow_mut(),
            &seed,
            &ports,
            iface,
            vid,
            key(port.name),
            &frame,
            &mut seen.borrow_mut(),
        )
        .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        failures.push(format!("random frame: {e}"));
    }
    let seen = seen.into_inner();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n{seen:?}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{seen:?}");
    // The runs covered every kind of cached decision, and some that are not cached.
    assert!(
        seen.outputs > 100 && seen.rewrites > 10 && seen.drops > 50,
        "{seen:?}"
    );
    assert!(
        seen.not_cached > 0 && seen.uncacheable > 0 && seen.dropped_before_cache > 0,
        "{seen:?}"
    );
}
