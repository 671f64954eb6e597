//! Geneve in XDP (`ebpf/xdp/src/tunnel.rs`) against the userspace datapath's tunnel path
//! (`pipeline/tunnel.rs`), through the real program with BPF_PROG_TEST_RUN:
//! - golden: the frames real ovn-controller + OVS sent between two chassis
//!   (tests/data/geneve): their inner frames encapsulated by the program from a cached
//!   decision are the golden bytes, and the golden frames decapsulated by it are their
//!   inner frames;
//! - equal: the seed's logical flows with an egress ACL (as northd wrote them), vm1 bound
//!   on hv2 (`options:csum=true`) and vm2 on hv3 (no checksum). Fixture and random frames
//!   from the local ports (encapsulation: c51 → vm1, routed through the router, ...) and
//!   from the other chassis (decapsulation, odd outer headers included) go through XDP
//!   with a cold cache, up to the userspace pipeline exactly as XDP hands them
//!   (metadata included), which decides, sends and installs; then through XDP again,
//!   from the cache: identical bytes and egress interface, or both drop; and what the
//!   program does not take is counted by reason.

use std::{cell::RefCell, sync::Arc};

use ovnest_common::{
    CacheCounter, Counter, PortKey,
    cache::{ACTION_ENCAP, ACTION_OUTPUT, CacheAction},
    tunnel::TunnelCounter,
};
use ovnest_datapath::{
    Attachment, FastPath, LogicalPort, TableSet,
    cache::{CacheMaps, CacheStats, Key, key},
    fastpath::Decisions,
    geneve::{self, Metadata, Underlay},
    pipeline::{
        Desc, FramePool, LogicalOutcome, NoServices, Pipeline, Snapshot, TunnelPeer, TunnelTable,
        TxBatches, Umem, Verdict,
    },
};
use ovnest_tests::{
    fixtures::{self, Iface, frames::hex, lab, lflows},
    hypervisor::Hypervisor,
    privilege::require_root,
};
use proptest::prelude::*;

const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;

const HV1_MAC: [u8; 6] = [0x2a, 0xee, 0x99, 0x2d, 0xb6, 0x49];
const HV2_MAC: [u8; 6] = [0x86, 0xfa, 0x26, 0x32, 0x5c, 0x42];
const HV3_MAC: [u8; 6] = [0x86, 0xfa, 0x26, 0x32, 0x5c, 0x43];
const HV1: [u8; 4] = [10, 99, 0, 1];
const HV2: [u8; 4] = [10, 99, 0, 2];
const HV3: [u8; 4] = [10, 99, 0, 3];
const STRANGER: [u8; 4] = [10, 99, 0, 7];
/// `_MC_flood`'s tunnel key.
const MC_FLOOD: u16 = 32768;

/// The frames of a classic pcap file.
fn pcap_frames(pcap: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(pcap[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    frames
}

/// The hypervisor's namespace and the program deciding from its cache, with `ports`'
/// physical tables applied and the underlay (the `stray` interface) entered as the
/// encapsulations' way out.
struct Bed {
    hv: Hypervisor,
    fast_path: FastPath,
    maps: CacheMaps,
    stats: Arc<CacheStats>,
    generation: u64,
    underlay: u32,
}

impl Bed {
    fn new(ports: impl FnOnce(&Hypervisor) -> Vec<LogicalPort>) -> (Bed, Vec<LogicalPort>) {
        let hv = Hypervisor::alone();
        let ports = ports(&hv);
        let mut fast_path = FastPath::load_decisions(Decisions::Cached { entries: 4096 })
            .expect("load the XDP program with its decision cache");
        let underlay = hv.wiring.stray;
        {
            let _inside = hv.ns.enter();
            let (tables, conflicts) = TableSet::build(&ports);
            assert!(conflicts.is_empty(), "{conflicts:?}");
            fast_path.apply(&tables).expect("apply tables");
            fast_path
                .add_underlay_device(underlay)
                .expect("the underlay as a redirect target");
        }
        let stats = Arc::new(CacheStats::default());
        let maps = fast_path.cache_maps(stats.clone()).expect("cache maps");
        let bed = Bed {
            hv,
            fast_path,
            maps,
            stats,
            generation: 0,
            underlay,
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

    /// One BPF_PROG_TEST_RUN of the VIF program (`underlay: false`) or the underlay's.
    fn run(&mut self, underlay: bool, ingress: u32, frame: &[u8]) -> XdpRun {
        let _inside = self.hv.ns.enter();
        let before = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.tunnel_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        let mut out = vec![0u8; frame.len() + 128];
        let (result, meta) = if underlay {
            self.fast_path
                .underlay_test_run_with_meta(ingress, frame, &mut out)
                .expect("test_run")
        } else {
            self.fast_path
                .test_run_with_meta(ingress, frame, &mut out)
                .expect("test_run")
        };
        out.truncate(result.data_size_out as usize);
        let after = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.tunnel_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        XdpRun {
            action: result.return_value,
            meta,
            out,
            lookup: CacheCounter::ALL
                .into_iter()
                .find(|c| after.0.get(*c) != before.0.get(*c)),
            tunnel: TunnelCounter::ALL
                .into_iter()
                .filter(|c| after.1[*c as usize] != before.1[*c as usize])
                .collect(),
            counters: after
                .2
                .since(&before.2)
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
    tunnel: Vec<TunnelCounter>,
    counters: Vec<Counter>,
}

impl XdpRun {
    /// The frame as it left XDP (after the metadata).
    fn frame(&self) -> &[u8] {
        &self.out[self.meta.min(self.out.len())..]
    }

    fn upcalled(&self) -> bool {
        self.counters == [Counter::DropNoUserspace]
    }
}

/// What the userspace pipeline did with one frame.
#[derive(Debug)]
struct UserspaceRun {
    verdict: Verdict,
    /// (egress ifindex, bytes).
    out: Vec<(u32, Vec<u8>)>,
    /// It queued an entry for the cache (written when the batch ended).
    installed: bool,
}

/// 4 KiB: room for the frames longer than XDP checksums (`checksum_spans`).
const CHUNK: u32 = 4096;
const CHUNKS: usize = 32;
const HEADROOM: usize = 256;

/// `input` through the userspace pipeline as XDP handed it over: `meta` bytes of XDP
/// metadata in front of the frame (0: none, the frame as sent).
fn userspace(snap: &Snapshot, ingress: u32, input: &[u8], meta: usize, bed: &Bed) -> UserspaceRun {
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
        installed: after.installs + after.replaced != before.installs + before.replaced,
    }
}

// Golden frames.

/// p1 (key 1) and p2 (key 2) on `sw` (VNI 1), as in the golden capture: `local` is bound
/// here on vm1's interface, the other on chassis 1.
fn golden_ports(
    hv: &Hypervisor,
    local: (u32, [u8; 6]),
    remote: (u32, [u8; 6]),
) -> Vec<LogicalPort> {
    let port = |(key, mac): (u32, [u8; 6]), attachment| LogicalPort {
        name: format!("p{key}"),
        key: PortKey {
            datapath: 1,
            port: key,
        },
        stats_slot: key,
        addresses: vec![(mac, vec![])],
        port_security: None,
        unknown: false,
        attachment,
    };
    vec![
        port(
            local,
            Attachment::Vif {
                ifindex: hv.wiring.vm1,
            },
        ),
        port(remote, Attachment::Remote),
    ]
}

/// The underlay a golden frame was sent on, read off its outer headers.
fn golden_underlay(frame: &[u8]) -> Underlay {
    let sent_by_hv1 = frame[26..30] == HV1;
    let (local_ip, remote_ip) = if sent_by_hv1 { (HV1, HV2) } else { (HV2, HV1) };
    let (local_mac, next_hop_mac) = if sent_by_hv1 {
        (HV1_MAC, HV2_MAC)
    } else {
        (HV2_MAC, HV1_MAC)
    };
    Underlay {
        local_mac,
        next_hop_mac,
        local_ip,
        remote_ip,
        csum: frame[40..42] != [0, 0],
    }
}

#[test]
fn golden_frames_are_encapsulated_and_decapsulated_to_the_same_bytes() {
    if !require_root("golden_frames_are_encapsulated_and_decapsulated_to_the_same_bytes") {
        return;
    }
    let golden = pcap_frames(include_bytes!("../data/geneve/geneve-icmp.pcap"));
    assert!(golden.len() >= 2);
    for (i, frame) in golden.iter().enumerate() {
        let d = geneve::decapsulate(frame).expect("golden Geneve");
        let inner = frame[d.inner.clone()].to_vec();
        let underlay = golden_underlay(frame);
        let mac = |at: usize| -> [u8; 6] { inner[at..at + 6].try_into().unwrap() };
        let sender = (u32::from(d.meta.ingress), mac(6));
        let receiver = (u32::from(d.meta.egress), mac(0));

        // Encapsulation: the sender is here, the receiver on the chassis the frame went
        // to; a cached decision for the inner frame's key.
        let (mut bed, ports) = Bed::new(|hv| golden_ports(hv, sender, receiver));
        let generation = bed.next_generation();
        let table = TunnelTable {
            underlay_ifindex: bed.underlay,
            peers: vec![TunnelPeer {
                chassis: "other".into(),
                underlay,
            }],
            remote_ports: vec![(ports[1].key, 1)],
        };
        let snap = Snapshot::build(generation, &ports).with_tunnels(table);
        let Some(Key::V4(k)) = key::of_frame(&inner, ports[0].key) else {
            panic!("golden frame {i}: no key");
        };
        let entry = CacheAction {
            generation,
            kind: ACTION_ENCAP,
            out_ifindex: bed.underlay,
            tunnel_peer: 1,
            tunnel_vni: d.meta.vni,
            tunnel_option: d.meta.option_data(),
            tunnel_remote: underlay.remote_ip,
            tunnel_sport: d.src_port.to_be_bytes(),
            ..CacheAction::default()
        };
        let mut writer = bed.maps.writer().unwrap();
        writer.push_decision(&snap, Key::V4(k), entry);
        writer.flush();
        let vm1 = bed.hv.wiring.vm1;
        let run = bed.run(false, vm1, &inner);
        assert_eq!(
            run.lookup,
            Some(CacheCounter::Hit),
            "golden frame {i}: {run:?}"
        );
        assert_eq!(run.tunnel, [TunnelCounter::EncapHit], "golden frame {i}");
        assert_eq!(run.action, XDP_REDIRECT, "golden frame {i}");
        assert_eq!(
            run.frame(),
            &frame[..],
            "golden frame {i}:\nexpected {}\nXDP      {}",
            hex(frame),
            hex(run.frame())
        );

        // Decapsulation: the receiver is here, a cached delivery to it.
        let (mut bed, ports) = Bed::new(|hv| golden_ports(hv, receiver, sender));
        let generation = bed.next_generation();
        let Some(Key::V4(base)) = key::of_frame(
            &inner,
            PortKey {
                datapath: d.meta.vni,
                port: u32::from(d.meta.ingress),
            },
        ) else {
            panic!("golden frame {i}: no key");
        };
        let tkey = ovnest_common::tunnel::TunnelKey {
            base,
            egress: u32::from(d.meta.egress),
            remote_ip: d.remote_ip,
        };
        let vm1 = bed.hv.wiring.vm1;
        let entry = CacheAction {
            generation,
            kind: ACTION_OUTPUT,
            out_ifindex: vm1,
            out_stats_slot: ports[0].stats_slot,
            ..CacheAction::default()
        };
        let mut writer = bed.maps.writer().unwrap();
        writer.push(Key::Tunnel(tkey), entry);
        writer.flush();
        let underlay_if = bed.underlay;
        let run = bed.run(true, underlay_if, frame);
        assert_eq!(
            run.tunnel,
            [TunnelCounter::DecapHit],
            "golden frame {i}: {run:?}"
        );
        assert_eq!(run.action, XDP_REDIRECT);
        assert_eq!(run.frame(), &inner[..], "golden frame {i}");
        assert_eq!(
            bed.fast_path
                .port_stats(ports[0].stats_slot)
                .unwrap()
                .tx_packets,
            1
        );
        // A bit flipped in the inner frame: the checksum no longer holds, up to
        // userspace (which drops it).
        let mut bad = frame.clone();
        bad[100] ^= 1;
        let run = bed.run(true, underlay_if, &bad);
        assert_eq!(run.tunnel, [TunnelCounter::DecapChecksum], "{run:?}");
        assert!(run.upcalled());
    }
}

// The pipeline's decisions.

/// The seed's flows with an egress ACL (`to-lport ip4.src == 172.16.255.131 drop`);
/// vm1 on hv2 (checksums on), vm2 on hv3 (off); the rest here.
struct Lab {
    pipeline: Arc<ovnest_logical::Pipeline>,
    ports: Vec<LogicalPort>,
}

fn hv2() -> Underlay {
    Underlay {
        local_mac: HV1_MAC,
        next_hop_mac: HV2_MAC,
        local_ip: HV1,
        remote_ip: HV2,
        csum: true,
    }
}

fn hv3() -> Underlay {
    Underlay {
        local_mac: HV1_MAC,
        next_hop_mac: HV3_MAC,
        local_ip: HV1,
        remote_ip: HV3,
        csum: false,
    }
}

fn lab_bed() -> (Bed, Lab) {
    let pipeline = Arc::new(ovnest_logical::Pipeline::compile(
        &lflows::seed_acl(),
        &ovnest_logical::pipeline::Residency::Everywhere,
    ));
    assert!(pipeline.errors.is_empty(), "{:?}", pipeline.errors);
    let (bed, ports) = Bed::new(|hv| {
        let mut ports = lab::logical_ports(&hv.wiring);
        for port in &mut ports {
            if let Some(lp) = pipeline.port_by_name(&port.name) {
                port.key.port = lp.key;
            }
            if port.name == "dmz-vm1" || port.name == "dmz-vm2" {
                port.attachment = Attachment::Remote;
            }
        }
        ports
    });
    (bed, Lab { pipeline, ports })
}

impl Lab {
    fn key(&self, name: &str) -> PortKey {
        self.ports.iter().find(|p| p.name == name).unwrap().key
    }

    fn snapshot(&self, generation: u64, underlay: u32) -> Snapshot {
        let table = TunnelTable {
            underlay_ifindex: underlay,
            peers: vec![
                TunnelPeer {
                    chassis: "hv2".into(),
                    underlay: hv2(),
                },
                TunnelPeer {
                    chassis: "hv3".into(),
                    underlay: hv3(),
                },
            ],
            remote_ports: vec![(self.key("dmz-vm1"), 1), (self.key("dmz-vm2"), 2)],
        };
        Snapshot::build(generation, &self.ports)
            .with_tunnels(table)
            .with_logical(self.pipeline.clone())
    }
}

/// Counts of what the differential runs saw, so the test can require coverage.
#[derive(Debug, Default)]
struct Seen {
    encaps: u32,
    encaps_csum: u32,
    encap_rewrites: u32,
    local: u32,
    drops: u32,
    decaps: u32,
    decap_drops: u32,
    not_cached: u32,
    not_taken: u32,
}

/// One frame on `ingress` (the underlay or a VIF): cold XDP → userspace (decides, sends,
/// installs) → warm XDP; compares.
fn differential(
    bed: &mut Bed,
    lab: &Lab,
    underlay: bool,
    ingress: u32,
    frame: &[u8],
    seen: &mut Seen,
) -> Result<(), String> {
    let generation = bed.next_generation();
    let snap = lab.snapshot(generation, bed.underlay);
    let context = || format!("frame {} on ifindex {ingress}", hex(frame));
    let cold = bed.run(underlay, ingress, frame);
    let us = if cold.upcalled() {
        userspace(&snap, ingress, &cold.out, cold.meta, bed)
    } else {
        userspace(&snap, ingress, frame, 0, bed)
    };
    let keyed = if underlay {
        match cold.tunnel.as_slice() {
            [TunnelCounter::DecapMiss | TunnelCounter::DecapStale] => true,
            [_] => false,
            other => return Err(format!("cold decap counted {other:?}; {}", context())),
        }
    } else {
        matches!(cold.lookup, Some(CacheCounter::Miss | CacheCounter::Stale))
    };
    if !keyed {
        // Not taken by the program: it went up as it came (or was dropped before the
        // cache, as userspace's classification does), and is never installed.
        seen.not_taken += 1;
        if us.installed || (underlay && cold.upcalled() && cold.frame() != frame) {
            return Err(format!(
                "not keyed: XDP {cold:?}, userspace {us:?}; {}",
                context()
            ));
        }
        return Ok(());
    }
    if cold.meta == 0 || !cold.upcalled() {
        return Err(format!("a miss went up without metadata: {cold:?}"));
    }
    let warm = bed.run(underlay, ingress, frame);
    let hit = if underlay {
        warm.tunnel == [TunnelCounter::DecapHit]
    } else {
        warm.lookup == Some(CacheCounter::Hit)
    };
    if !us.installed {
        seen.not_cached += 1;
        return if hit || !warm.upcalled() {
            Err(format!(
                "not installed, yet XDP did {warm:?}; userspace {us:?}; {}",
                context()
            ))
        } else {
            Ok(())
        };
    }
    if !hit {
        return Err(format!(
            "installed, yet XDP missed: {warm:?}; userspace {us:?}; {}",
            context()
        ));
    }
    match us.out.as_slice() {
        [] => {
            if underlay {
                seen.decap_drops += 1;
            } else {
                seen.drops += 1;
            }
            let want = match us.verdict {
                Verdict::Logical(LogicalOutcome::Dropped) => Counter::DropLogical,
                Verdict::Logical(LogicalOutcome::NotLocal) => Counter::DropNotLocal,
                other => {
                    return Err(format!(
                        "userspace dropped as {other:?} and installed; {}",
                        context()
                    ));
                }
            };
            if warm.action != XDP_DROP || warm.counters != [want] {
                return Err(format!(
                    "userspace {us:?}, XDP from the cache {warm:?}; {}",
                    context()
                ));
            }
        }
        [(ifindex, bytes)] => {
            let entry = if underlay {
                let d = geneve::decapsulate(frame).map_err(|e| format!("{e:?}"))?;
                let start = ovnest_datapath::flow::ingress(
                    &frame[d.inner.clone()],
                    PortKey {
                        datapath: d.meta.vni,
                        port: u32::from(d.meta.ingress),
                    },
                )
                .ok_or("no flow")?
                .0;
                let k = key::of_tunnel(&start, u32::from(d.meta.egress), d.remote_ip)
                    .ok_or("no tunnel key")?;
                bed.fast_path.cache_entry(&Key::Tunnel(k)).unwrap()
            } else {
                None
            };
            let to_underlay = *ifindex == bed.underlay;
            if underlay {
                seen.decaps += 1;
            } else if to_underlay {
                seen.encaps += 1;
                if bytes[40..42] != [0, 0] {
                    seen.encaps_csum += 1;
                }
                let inner = &bytes[geneve::OVERHEAD..];
                if inner[..12] != frame[..12] {
                    seen.encap_rewrites += 1;
                }
            } else {
                seen.local += 1;
            }
            let counted = if underlay {
                warm.tunnel == [TunnelCounter::DecapHit]
            } else if to_underlay {
                warm.tunnel == [TunnelCounter::EncapHit]
            } else {
                warm.tunnel.is_empty()
            };
            if warm.action != XDP_REDIRECT
                || warm.frame() != bytes.as_slice()
                || !counted
                || entry.is_some_and(|e| e.out_ifindex != *ifindex)
            {
                return Err(format!(
                    "userspace sent to ifindex {ifindex}\n  {}\nXDP from the cache: {warm:?}\n  {}\n{}",
                    hex(bytes),
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

/// (interface, VID, port) of the local senders.
const SENDERS: [(Iface, u16, &lab::LabPort); 3] = [
    (Iface::Vm5, 0, &lab::VM5),
    (Iface::Vm5, 51, &lab::C51),
    (Iface::Vm5, 52, &lab::C52),
];

/// IPv4 a local port sends: to a lab port (the remote ones most), directly or through
/// the router, TTLs around its limits, UDP with and without checksum, TCP, ICMP.
fn local_strategy() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (
        0..SENDERS.len(),
        prop_oneof![
            3 => Just(lab::VM1),
            3 => Just(lab::VM2),
            1 => proptest::sample::select(lab::PORTS.to_vec()),
        ],
        prop_oneof![2 => Just(false), 1 => Just(true)],
        l4_strategy(),
        prop_oneof![Just(64u8), Just(1u8), Just(2u8), any::<u8>()],
        any::<u8>(),
    )
        .prop_map(|(sender, to, routed, (proto, l4), ttl, tos)| {
            let (_, vid, port) = SENDERS[sender];
            let dst_mac = if routed { lab::LR0.mac } else { to.mac };
            let f = ipv4_frame(dst_mac, port.mac, port.ipv4, to.ipv4, proto, &l4, ttl, tos);
            let f = if vid != 0 { f.vlan(vid) } else { f };
            (sender, f.build())
        })
}

#[allow(clippy::too_many_arguments)]
fn ipv4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    l4: &[u8],
    ttl: u8,
    tos: u8,
) -> fixtures::Frame {
    let mut ip = fixtures::frames::ipv4(proto, src, dst, l4);
    ip[1] = tos;
    ip[8] = ttl;
    ip[10..12].fill(0);
    let sum = fixtures::frames::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    fixtures::Frame::eth(dst_mac, src_mac).ethertype(0x0800, &ip)
}

/// (protocol, transport header and payload): UDP (checksum or none), TCP, ICMP echo.
fn l4_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        prop_oneof![Just(17u8), Just(6u8), Just(1u8)],
        any::<(u16, u16, u16)>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(proto, (sport, dport, csum), zero, data)| {
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
            (proto, l4)
        })
}

/// How a frame from another chassis is spoiled (or not).
#[derive(Clone, Copy, Debug)]
enum Outer {
    Plain,
    /// A bit of the inner frame flipped after the checksum was made.
    BadChecksum,
    /// The outer IPv4 a first fragment (MF).
    Fragment,
    /// A second, non-critical option after OVN's.
    ExtraOption,
    /// Ethernet padding after the datagram.
    Padded,
}

/// A Geneve frame from hv2 or hv3 (or a stranger): an inner frame from a remote port
/// (or anyone) to a local port (or a group, or anyone), with OVN's option.
fn remote_strategy(lab_keys: Vec<(String, u16)>) -> impl Strategy<Value = Vec<u8>> {
    let keys: Vec<u16> = lab_keys.iter().map(|(_, k)| *k).collect();
    let key_of = move |name: &str| -> u16 {
        lab_keys
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| *k)
            .unwrap()
    };
    let vm1 = key_of("dmz-vm1");
    let vm2 = key_of("dmz-vm2");
    (
        prop_oneof![Just(lab::VM1), Just(lab::VM2)],
        prop_oneof![
            3 => proptest::sample::select(vec![lab::VM5, lab::C51, lab::C52]),
            1 => proptest::sample::select(lab::PORTS.to_vec()),
        ],
        prop_oneof![4 => Just(None), 1 => proptest::sample::select(keys.clone()).prop_map(Some), 1 => Just(Some(MC_FLOOD))],
        l4_strategy(),
        prop_oneof![Just(64u8), Just(1u8), any::<u8>()],
        prop_oneof![8 => Just(None), 1 => Just(Some(STRANGER)), 1 => Just(Some(HV3))],
        prop_oneof![
            8 => Just(Outer::Plain),
            1 => Just(Outer::BadChecksum),
            1 => Just(Outer::Fragment),
            1 => Just(Outer::ExtraOption),
            1 => Just(Outer::Padded),
        ],
        any::<bool>(),
        any::<u16>(),
    )
        .prop_map(
            move |(from, to, egress, (proto, l4), ttl, sender, outer, csum, sport)| {
                let inner = ipv4_frame(to.mac, from.mac, from.ipv4, to.ipv4, proto, &l4, ttl, 0)
                    .build();
                let (ingress, remote) = if from.name == "dmz-vm1" {
                    (vm1, HV2)
                } else {
                    (vm2, HV3)
                };
                let egress = egress.unwrap_or_else(|| key_of(to.name));
                geneve_frame(
                    &inner,
                    ingress,
                    egress,
                    sender.unwrap_or(remote),
                    csum,
                    sport,
                    outer,
                )
            },
        )
}

/// `inner` encapsulated as `from` sends it to hv1 (this chassis), spoiled as `outer`.
fn geneve_frame(
    inner: &[u8],
    ingress: u16,
    egress: u16,
    from: [u8; 4],
    csum: bool,
    sport: u16,
    outer: Outer,
) -> Vec<u8> {
    let underlay = Underlay {
        local_mac: HV2_MAC,
        next_hop_mac: HV1_MAC,
        local_ip: from,
        remote_ip: HV1,
        csum,
    };
    let meta = Metadata {
        vni: lab::DMZ,
        ingress,
        egress,
    };
    let mut f = vec![0u8; geneve::OVERHEAD];
    f.extend_from_slice(inner);
    if let Outer::ExtraOption = outer {
        // Room for a 4-byte option (class 0xffff, type 0x01, no data) after OVN's.
        f.splice(geneve::OVERHEAD..geneve::OVERHEAD, [0xff, 0xff, 0x01, 0x00]);
    }
    if let Outer::ExtraOption = outer {
        let mut plain = vec![0u8; geneve::OVERHEAD];
        plain.extend_from_slice(&f[geneve::OVERHEAD + 4..]);
        geneve::encapsulate(&mut plain, &underlay, &meta, sport).unwrap();
        // Move the headers in front of the new option and fix the lengths.
        let mut g = plain[..geneve::OVERHEAD].to_vec();
        g.extend_from_slice(&[0xff, 0xff, 0x01, 0x00]);
        g.extend_from_slice(&plain[geneve::OVERHEAD..]);
        g[42] = 0x03;
        let ip_len = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&ip_len.to_be_bytes());
        g[24..26].fill(0);
        let sum = fixtures::frames::checksum(&g[14..34]);
        g[24..26].copy_from_slice(&sum.to_be_bytes());
        g[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
        g[40..42].fill(0);
        return g;
    }
    geneve::encapsulate(&mut f, &underlay, &meta, sport).unwrap();
    match outer {
        Outer::BadChecksum => {
            let last = f.len() - 1;
            f[last] ^= 0x10;
            if f[40..42] == [0, 0] {
                f[40..42].copy_from_slice(&[0x12, 0x34]);
            }
        }
        Outer::Fragment => {
            f[20] |= 0x20;
            f[24..26].fill(0);
            let sum = fixtures::frames::checksum(&f[14..34]);
            f[24..26].copy_from_slice(&sum.to_be_bytes());
        }
        Outer::Padded => f.extend_from_slice(&[0; 6]),
        _ => {}
    }
    f
}

#[test]
fn tunnelled_decisions_from_the_cache_equal_the_pipelines() {
    if !require_root("tunnelled_decisions_from_the_cache_equal_the_pipelines") {
        return;
    }
    let (bed, lab) = lab_bed();
    let bed = RefCell::new(bed);
    let seen = RefCell::new(Seen::default());
    let mut failures = Vec::new();
    let wiring = [Iface::Vm5].map(|i| (i, bed.borrow().hv.wiring.ifindex(i)));
    let ifindex = |iface: Iface| wiring.iter().find(|(i, _)| *i == iface).unwrap().1;
    let underlay = bed.borrow().underlay;
    let key = |name: &str| lab.key(name).port as u16;

    // Fixtures: c51 → vm1 (hv2, checksums) and → vm2 (hv3, none), the echo through the
    // router, and back from the tunnel to c51 (with its tag), vm2 → c51 (dropped by the
    // egress ACL), and a flood from the tunnel (several local copies: not cached).
    let (c51, vm1, vm2) = (lab::C51, lab::VM1, lab::VM2);
    let icmp = [8u8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let local: Vec<(&str, Iface, Vec<u8>)> = vec![
        (
            "c51 → vm1",
            Iface::Vm5,
            ipv4_frame(vm1.mac, c51.mac, c51.ipv4, vm1.ipv4, 1, &icmp, 64, 0)
                .vlan(51)
                .build(),
        ),
        (
            "c51 → vm2",
            Iface::Vm5,
            ipv4_frame(vm2.mac, c51.mac, c51.ipv4, vm2.ipv4, 1, &icmp, 64, 0)
                .vlan(51)
                .build(),
        ),
        (
            "c51 → router → vm1",
            Iface::Vm5,
            ipv4_frame(lab::LR0.mac, c51.mac, c51.ipv4, vm1.ipv4, 1, &icmp, 64, 0)
                .vlan(51)
                .build(),
        ),
        (
            "c51 broadcast",
            Iface::Vm5,
            ipv4_frame(
                [0xff; 6],
                c51.mac,
                c51.ipv4,
                [172, 16, 255, 191],
                1,
                &icmp,
                64,
                0,
            )
            .vlan(51)
            .build(),
        ),
    ];
    let reply = ipv4_frame(c51.mac, vm1.mac, vm1.ipv4, c51.ipv4, 1, &icmp, 64, 0).build();
    let from_vm2 = ipv4_frame(c51.mac, vm2.mac, vm2.ipv4, c51.ipv4, 1, &icmp, 64, 0).build();
    let bcast = ipv4_frame(
        [0xff; 6],
        vm1.mac,
        vm1.ipv4,
        [172, 16, 255, 191],
        1,
        &icmp,
        64,
        0,
    )
    .build();
    let remote: Vec<(&str, Vec<u8>)> = vec![
        (
            "vm1 → c51",
            geneve_frame(
                &reply,
                key("dmz-vm1"),
                key("dmz-c51"),
                HV2,
                true,
                50000,
                Outer::Plain,
            ),
        ),
        (
            "vm1 → c51 without checksum",
            geneve_frame(
                &reply,
                key("dmz-vm1"),
                key("dmz-c51"),
                HV2,
                false,
                50001,
                Outer::Plain,
            ),
        ),
        (
            "vm2 → c51 (egress ACL)",
            geneve_frame(
                &from_vm2,
                key("dmz-vm2"),
                key("dmz-c51"),
                HV3,
                false,
                50002,
                Outer::Plain,
            ),
        ),
        (
            "vm1 flood",
            geneve_frame(
                &bcast,
                key("dmz-vm1"),
                MC_FLOOD,
                HV2,
                true,
                50003,
                Outer::Plain,
            ),
        ),
        (
            "from a stranger",
            geneve_frame(
                &reply,
                key("dmz-vm1"),
                key("dmz-c51"),
                STRANGER,
                true,
                50004,
                Outer::Plain,
            ),
        ),
    ];
    for (name, iface, frame) in &local {
        if let Err(e) = differential(
            &mut bed.borrow_mut(),
            &lab,
            false,
            ifindex(*iface),
            frame,
            &mut seen.borrow_mut(),
        ) {
            failures.push(format!("{name}: {e}"));
        }
    }
    for (name, frame) in &remote {
        if let Err(e) = differential(
            &mut bed.borrow_mut(),
            &lab,
            true,
            underlay,
            frame,
            &mut seen.borrow_mut(),
        ) {
            failures.push(format!("{name}: {e}"));
        }
    }
    let fixed = std::mem::take(&mut *seen.borrow_mut());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // c51 → vm1, → vm2, routed: encapsulated from the cache, with and without checksum;
    // vm1 → c51 twice from the cache, vm2 → c51 a cached drop; the flood and the
    // stranger's frame not cached.
    assert_eq!(
        (fixed.encaps, fixed.encaps_csum, fixed.encap_rewrites),
        (3, 2, 1),
        "{fixed:?}"
    );
    assert_eq!((fixed.decaps, fixed.decap_drops), (2, 1), "{fixed:?}");
    assert_eq!(fixed.not_cached, 3, "{fixed:?}");

    checksum_boundaries(&mut bed.borrow_mut(), &lab, ifindex(Iface::Vm5), &key);

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&local_strategy(), |(sender, frame)| {
        let (iface, _, _) = SENDERS[sender];
        differential(
            &mut bed.borrow_mut(),
            &lab,
            false,
            ifindex(iface),
            &frame,
            &mut seen.borrow_mut(),
        )
        .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        failures.push(format!("random local frame: {e}"));
    }
    let keys: Vec<(String, u16)> = lab
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.key.port as u16))
        .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 800,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&remote_strategy(keys), |frame| {
        differential(
            &mut bed.borrow_mut(),
            &lab,
            true,
            underlay,
            &frame,
            &mut seen.borrow_mut(),
        )
        .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        failures.push(format!("random frame from the tunnel: {e}"));
    }
    let seen = seen.into_inner();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n{seen:?}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{seen:?}");
    assert!(
        seen.encaps > 100 && seen.encaps_csum > 50 && seen.encap_rewrites > 20,
        "{seen:?}"
    );
    assert!(seen.decaps > 100 && seen.decap_drops > 10, "{seen:?}");
    assert!(seen.not_cached > 0 && seen.not_taken > 20, "{seen:?}");
    // Every reason a Geneve frame is not taken came up and was counted.
    let counters = bed.borrow().fast_path.tunnel_counters().unwrap();
    for c in [
        TunnelCounter::DecapFragment,
        TunnelCounter::DecapOptions,
        TunnelCounter::DecapChecksum,
        TunnelCounter::DecapHeaders,
    ] {
        assert!(counters[c as usize] > 0, "{} never counted", c.name());
    }
}

/// Lengths of the span XDP checksums (outer UDP header to the frame's end) around each
/// size it hands the kernel's checksum helper (512 bytes while they fit, then 256, ...,
/// 4 once each, then 0..3 bytes) and around its bound (2,048 bytes).
fn checksum_spans() -> Vec<usize> {
    let mut spans: Vec<usize> = (66..=84).collect();
    for n in [128, 256, 512, 1024, 1536, 2044, 2048] {
        spans.extend(n - 3..=n + 3);
    }
    // 2,044 = 1,536 + 256 + 128 + 64 + 32 + 16 + 8 + 4: every chunk once.
    spans.extend([1791, 1792, 2100]);
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// c51 → vm1 (encapsulated with a checksum for hv2) and vm1 → c51 (from hv2, checksum
/// good and bad) at every `checksum_spans` length: within the bound, XDP's bytes and
/// verdicts equal userspace's (`differential`); beyond it, XDP sends the frame up
/// untouched (`EncapUpcall`, `DecapChecksum`) for userspace to checksum.
fn checksum_boundaries(bed: &mut Bed, lab: &Lab, vm5: u32, key: &dyn Fn(&str) -> u16) {
    let (c51, vm1) = (lab::C51, lab::VM1);
    let bound = 2048;
    let mut seen = Seen::default();
    let mut failures = Vec::new();
    let spans = checksum_spans();
    // span = 8 (UDP) + 16 (Geneve, option) + 14 + 20 + 8 + payload.
    let frames = |span: usize| {
        let payload: Vec<u8> = (0..span - 66).map(|i| (i * 7 + span) as u8).collect();
        let mut l4 = Vec::new();
        l4.extend_from_slice(&4789u16.to_be_bytes());
        l4.extend_from_slice(&5001u16.to_be_bytes());
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend_from_slice(&payload);
        let out = ipv4_frame(vm1.mac, c51.mac, c51.ipv4, vm1.ipv4, 17, &l4, 64, 0)
            .vlan(51)
            .build();
        let back = ipv4_frame(c51.mac, vm1.mac, vm1.ipv4, c51.ipv4, 17, &l4, 64, 0).build();
        let tunnelled = |outer| {
            geneve_frame(
                &back,
                key("dmz-vm1"),
                key("dmz-c51"),
                HV2,
                true,
                50000,
                outer,
            )
        };
        (out, tunnelled(Outer::Plain), tunnelled(Outer::BadChecksum))
    };
    let (short_out, short_good, _) = frames(66);
    for &span in &spans {
        let (out, good, bad) = frames(span);
        assert_eq!(good.len() - 34, span);
        if span <= bound {
            for (what, underlay, ingress, frame) in [
                ("encap", false, vm5, &out),
                ("decap", true, bed.underlay, &good),
                ("decap, bad checksum", true, bed.underlay, &bad),
            ] {
                if let Err(e) = differential(bed, lab, underlay, ingress, frame, &mut seen) {
                    failures.push(format!("{what}, span {span}: {e}"));
                }
            }
        } else {
            // The entry is a short frame's of the same flow, installed just before (in
            // the current generation).
            let mut ignored = Seen::default();
            differential(bed, lab, false, vm5, &short_out, &mut ignored).unwrap();
            let encap = bed.run(false, vm5, &out);
            // Up untagged, the port in the metadata (`to_userspace`).
            let mut untagged = out.clone();
            untagged.drain(12..16);
            if encap.lookup != Some(CacheCounter::Hit)
                || encap.tunnel != [TunnelCounter::EncapUpcall]
                || !encap.upcalled()
                || encap.frame() != untagged.as_slice()
            {
                failures.push(format!(
                    "encap, span {span}: {:?} {:?} {:?}",
                    encap.lookup, encap.tunnel, encap.counters
                ));
            }
            differential(bed, lab, true, bed.underlay, &short_good, &mut ignored).unwrap();
            let decap = bed.run(true, bed.underlay, &good);
            if decap.tunnel != [TunnelCounter::DecapChecksum]
                || !decap.upcalled()
                || decap.frame() != good.as_slice()
            {
                failures.push(format!(
                    "decap, span {span}: {:?} {:?}, {} bytes up",
                    decap.tunnel,
                    decap.counters,
                    decap.frame().len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let within = spans.iter().filter(|s| **s <= bound).count() as u32;
    assert!(within > 60 && within < spans.len() as u32);
    // Every good frame within the bound was taken from the cache both ways; every bad
    // checksum went up (not taken).
    assert_eq!(
        (seen.encaps, seen.encaps_csum, seen.decaps, seen.not_taken),
        (within, within, within, within),
        "{seen:?}"
    );
}
