//! ns/packet of the XDP fast path, measured by the kernel (BPF_PROG_TEST_RUN in
//! live-frames mode: every repetition runs on a fresh copy of the frame, redirects really
//! transmit, and the time includes the kernel's frame setup and the flush), against the baseline program (strip + redirect, nothing else) on the
//! same frames in the same run.
//!
//! Each measurement checks afterwards that every repetition took the path it names (the
//! path's counter moved by exactly the repetitions), so a broken path cannot report a
//! fast number. Needs root; prints why and does nothing otherwise.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ovnest_common::{
    CacheAction, Counter, PortKey,
    cache::{ACTION_ENCAP, ACTION_OUTPUT, FAMILY_IPV4, rewrite},
    ct::CtDep,
    tunnel::TunnelKey,
};
use ovnest_datapath::{
    FastPath, TableSet,
    cache::{CacheStats, Key, key},
    conntrack::Mirror as _,
    fastpath::{Decisions, bench::BenchKit},
    geneve::{self, Metadata, Underlay},
    pipeline::{Snapshot, TunnelPeer, TunnelTable},
};
use ovnest_tests::{
    fixtures::{Frame, frames::BROADCAST, lab},
    hypervisor::Hypervisor,
};

/// Repetitions per BPF_PROG_TEST_RUN call, equal to the live-frames batch (the kernel's
/// maximum). Each call makes a fresh page pool and recycled pages are not re-filled, so
/// with repeat <= batch every repetition starts from the original frame: a rewritten
/// frame is never run again.
const CHUNK: u32 = 256;
const BATCH: u32 = 256;

/// Which program runs the path: the baseline (the bench object), the fast path with its
/// hand-written semantics (`--datapath xdp`), or with the decision cache (`hybrid`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Baseline,
    VifIngress,
    Cached,
    /// The decision cache's underlay program (`underlay_ingress`), program-only.
    Underlay,
}

/// The fast path loaded as `--datapath hybrid` loads it, with the lab's tables and the
/// decision cache holding `entries` (the shape of what the pipeline decides for them:
/// `tests/tests/xdp_cache.rs` proves the entries it installs carry out its decisions).
fn cached_fast_path(
    hv: &Hypervisor,
    entries: &[(Vec<u8>, u16, lab::LabPort, CacheAction)],
) -> FastPath {
    let mut fast_path = FastPath::load_decisions(Decisions::Cached { entries: 4096 })
        .expect("load the XDP program");
    let (tables, _) = TableSet::build(&lab::logical_ports(&hv.wiring));
    fast_path.apply(&tables).expect("lab tables");
    fast_path.set_cache_generation(1).expect("generation");
    let maps = fast_path
        .cache_maps(std::sync::Arc::new(CacheStats::default()))
        .expect("cache maps");
    let mut writer = maps.writer().expect("writer");
    for (frame, vid, from, action) in entries {
        let untagged = if *vid == 0 {
            frame.clone()
        } else {
            [&frame[..12], &frame[16..]].concat()
        };
        let key = key::of_frame(&untagged, from.key()).expect("a key");
        writer.push(key, *action);
    }
    writer.flush();
    // Established connections in slots 0..4 (serial 1), for entries that depend on them.
    let mut mirror = writer.ct_mirror().expect("the CT array");
    for slot in 0..4 {
        assert!(mirror.set(slot, 1, 0), "CT slot {slot}");
    }
    fast_path
}

struct Path {
    name: &'static str,
    entry: Entry,
    ingress: u32,
    frame: Vec<u8>,
    counter: Option<Counter>,
}

fn bench(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xdp_fast_path: needs root (BPF, namespaces); nothing measured");
        return;
    }
    let (hv, _vms) = Hypervisor::with_vms();
    let _inside = hv.ns.enter();
    let wiring = hv.wiring;
    let fast_path = hv.fast_path();
    let mut kit = BenchKit::load().expect("the bench object");
    kit.set_baseline_egress(wiring.vm1)
        .expect("baseline egress");

    let c51_to_vm1 =
        Frame::eth(lab::VM1.mac, lab::C51.mac).udp(lab::C51.ipv4, lab::VM1.ipv4, 4000, 5001, 18);
    let vm2_to_vm1 = Frame::eth(lab::VM1.mac, lab::VM2.mac)
        .udp(lab::VM2.ipv4, lab::VM1.ipv4, 4000, 5001, 18)
        .build();
    // c51 -> vm2 through the router: to lr0's MAC, leaves with lr0's MAC as source, vm2's
    // as destination, TTL 63 (header checksum + 1).
    let routed = Frame::eth(lab::LR0.mac, lab::C51.mac)
        .udp(lab::C51.ipv4, lab::VM2.ipv4, 4000, 5001, 18)
        .vlan(51)
        .build();
    let output = |out: &lab::LabPort| CacheAction {
        generation: 1,
        kind: ACTION_OUTPUT,
        out_ifindex: wiring.vm1,
        out_stats_slot: out.stats_slot(),
        ..CacheAction::default()
    };
    let to_vm2 = CacheAction {
        out_ifindex: wiring.vm2,
        family: FAMILY_IPV4,
        rewrite: rewrite::ETH_DST | rewrite::ETH_SRC | rewrite::TTL | rewrite::IP4_CSUM,
        eth_dst: lab::VM2.mac,
        eth_src: lab::LR0.mac,
        ttl: 63,
        ip_csum_delta: 0xfeff,
        ..output(&lab::VM2)
    };
    // The same flow on a connection through c51's security group: its decision depends
    // on the connection in c51's zone and in vm1's (a switch's two port zones).
    let c51_to_vm1_est = Frame::eth(lab::VM1.mac, lab::C51.mac)
        .udp(lab::C51.ipv4, lab::VM1.ipv4, 4001, 5001, 18)
        .vlan(51)
        .build();
    let est = CacheAction {
        ct_n: 2,
        ct: [
            CtDep { slot: 0, serial: 1 },
            CtDep { slot: 1, serial: 1 },
            CtDep::default(),
            CtDep::default(),
        ],
        ..output(&lab::VM1)
    };
    let mut cached = cached_fast_path(
        &hv,
        &[
            (
                c51_to_vm1.clone().vlan(51).build(),
                51,
                lab::C51,
                output(&lab::VM1),
            ),
            (vm2_to_vm1.clone(), 0, lab::VM2, output(&lab::VM1)),
            (routed.clone(), 51, lab::C51, to_vm2),
            (c51_to_vm1_est.clone(), 51, lab::C51, est),
        ],
    );
    // Geneve (`ebpf/xdp/src/tunnel.rs`): c51 -> vm1 with vm1 on hv2 (Encap csum=true, as
    // OVN's lab sets it), encapsulated from the cache; and the same flow received from hv2
    // with vm1 here, decapsulated from the cache. 64 B and 512 B as sent by c51 (tagged);
    // the Geneve frame carries it untagged, 58 bytes more.
    let (hv1_ip, hv2_ip) = ([10, 99, 0, 1], [10, 99, 0, 2]);
    let (hv1_mac, hv2_mac) = (
        [0x2a, 0xee, 0x99, 0x2d, 0xb6, 0x49],
        [0x86, 0xfa, 0x26, 0x32, 0x5c, 0x42],
    );
    let to_hv2 = Underlay {
        local_mac: hv1_mac,
        next_hop_mac: hv2_mac,
        local_ip: hv1_ip,
        remote_ip: hv2_ip,
        csum: true,
    };
    let from_hv2 = Underlay {
        local_mac: hv2_mac,
        next_hop_mac: hv1_mac,
        local_ip: hv2_ip,
        remote_ip: hv1_ip,
        csum: true,
    };
    cached
        .add_underlay_device(wiring.stray)
        .expect("the underlay as a redirect target");
    let ports = lab::logical_ports(&wiring);
    let snap = Snapshot::build(1, &ports).with_tunnels(TunnelTable {
        underlay_ifindex: wiring.stray,
        peers: vec![
            TunnelPeer {
                chassis: "hv2".into(),
                underlay: to_hv2,
            },
            // The same without checksums: what the checksum costs.
            TunnelPeer {
                chassis: "hv3".into(),
                underlay: Underlay {
                    remote_ip: [10, 99, 0, 3],
                    csum: false,
                    ..to_hv2
                },
            },
        ],
        remote_ports: vec![],
    });
    let meta = Metadata {
        vni: lab::DMZ,
        ingress: lab::C51.tunnel_key as u16,
        egress: lab::VM1.tunnel_key as u16,
    };
    // (payload, sport): 64 B and 512 B tagged frames, a flow of their own each.
    let sized = |payload: usize, sport: u16| {
        Frame::eth(lab::VM1.mac, lab::C51.mac)
            .udp(lab::C51.ipv4, lab::VM1.ipv4, sport, 5001, payload)
            .vlan(51)
            .build()
    };
    let (encap_64, encap_512) = (sized(18, 4010), sized(466, 4011));
    let local_512 = sized(466, 4000);
    let (plain_64, plain_512) = (sized(18, 4020), sized(466, 4021));
    assert_eq!(
        (encap_64.len(), encap_512.len(), local_512.len()),
        (64, 512, 512)
    );
    let geneve_of = |tagged: &[u8]| -> Vec<u8> {
        let mut f = vec![0u8; geneve::OVERHEAD];
        f.extend_from_slice(&tagged[..12]);
        f.extend_from_slice(&tagged[16..]);
        geneve::encapsulate(&mut f, &from_hv2, &meta, 50000).expect("encapsulate");
        f
    };
    let (decap_64, decap_512) = (geneve_of(&encap_64), geneve_of(&encap_512));
    // The same frames without the outer checksum (the decapsulation skips it).
    let no_csum = |mut f: Vec<u8>| {
        f[40..42].fill(0);
        f
    };
    let (plain_decap_64, plain_decap_512) = (no_csum(decap_64.clone()), no_csum(decap_512.clone()));
    // c51's tagged frame's key, and the cached decision that encapsulates it to `peer`.
    let encap_decision = |tagged: &[u8], peer, remote| {
        let untagged = [&tagged[..12], &tagged[16..]].concat();
        let key = key::of_frame(&untagged, lab::C51.key()).expect("a key");
        let encap = CacheAction {
            generation: 1,
            kind: ACTION_ENCAP,
            out_ifindex: wiring.stray,
            tunnel_peer: peer,
            tunnel_vni: meta.vni,
            tunnel_option: meta.option_data(),
            tunnel_remote: remote,
            tunnel_sport: 50000u16.to_be_bytes(),
            ..CacheAction::default()
        };
        (key, encap)
    };
    {
        let maps = cached
            .cache_maps(std::sync::Arc::new(CacheStats::default()))
            .expect("cache maps");
        let mut writer = maps.writer().expect("writer");
        for (tagged, outer) in [(&encap_64, &decap_64), (&encap_512, &decap_512)] {
            let (key, encap) = encap_decision(tagged, 1, hv2_ip);
            writer.push_decision(&snap, key, encap);
            let d = geneve::decapsulate(outer).expect("our Geneve");
            let inner = &outer[d.inner.clone()];
            let Some(Key::V4(base)) = key::of_frame(
                inner,
                PortKey {
                    datapath: meta.vni,
                    port: u32::from(meta.ingress),
                },
            ) else {
                panic!("no key for the inner frame");
            };
            let tkey = TunnelKey {
                base,
                egress: u32::from(meta.egress),
                remote_ip: d.remote_ip,
            };
            writer.push(Key::Tunnel(tkey), output(&lab::VM1));
        }
        for frame in [&plain_64, &plain_512] {
            let (key, encap) = encap_decision(frame, 2, [10, 99, 0, 3]);
            writer.push_decision(&snap, key, encap);
        }
        writer.flush();
    }
    let paths = [
        Path {
            name: "baseline: strip + redirect",
            entry: Entry::Baseline,
            ingress: wiring.vm5,
            frame: c51_to_vm1.clone().vlan(51).build(),
            counter: None,
        },
        Path {
            name: "tagged c51 -> vm1: strip + redirect",
            entry: Entry::VifIngress,
            ingress: wiring.vm5,
            frame: c51_to_vm1.clone().vlan(51).build(),
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "untagged vm2 -> vm1: redirect",
            entry: Entry::VifIngress,
            ingress: wiring.vm2,
            frame: Frame::eth(lab::VM1.mac, lab::VM2.mac)
                .udp(lab::VM2.ipv4, lab::VM1.ipv4, 4000, 5001, 18)
                .build(),
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "ARP c51 -> router: reply",
            entry: Entry::VifIngress,
            ingress: wiring.vm5,
            frame: Frame::eth(BROADCAST, lab::C51.mac)
                .arp_request(lab::C51.mac, lab::C51.ipv4, lab::LR0.ipv4)
                .vlan(51)
                .build(),
            counter: Some(Counter::ArpReplied),
        },
        Path {
            name: "unknown tag 99: drop",
            entry: Entry::VifIngress,
            ingress: wiring.vm5,
            frame: c51_to_vm1.clone().vlan(99).build(),
            counter: Some(Counter::DropUnknownTag),
        },
        Path {
            name: "cache hit tagged c51 -> vm1: key, lookup, strip + redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: c51_to_vm1.clone().vlan(51).build(),
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit established c51 -> vm1: key, lookup, 2 CT slots, strip + redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: c51_to_vm1_est,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit untagged vm2 -> vm1: key, lookup, redirect",
            entry: Entry::Cached,
            ingress: wiring.vm2,
            frame: vm2_to_vm1,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit routed c51 -> vm2: MACs, TTL, checksum, strip + redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: routed,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit tagged c51 -> vm1, 512 B: key, lookup, strip + redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: local_512,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit c51 -> vm1 on hv2, 64 B: key, lookup, strip, Geneve + UDP checksum, redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: encap_64,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit c51 -> vm1 on hv2, 512 B: key, lookup, strip, Geneve + UDP checksum, redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: encap_512,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit c51 -> hv3 (csum=false), 64 B: key, lookup, strip, Geneve, redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: plain_64,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "cache hit c51 -> hv3 (csum=false), 512 B: key, lookup, strip, Geneve, redirect",
            entry: Entry::Cached,
            ingress: wiring.vm5,
            frame: plain_512,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "underlay: Geneve c51 -> vm1 from hv2, 64 B inner: UDP checksum, key, lookup, decap + redirect",
            entry: Entry::Underlay,
            ingress: wiring.stray,
            frame: decap_64,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "underlay: Geneve c51 -> vm1 from hv2, 512 B inner: UDP checksum, key, lookup, decap + redirect",
            entry: Entry::Underlay,
            ingress: wiring.stray,
            frame: decap_512,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "underlay: Geneve c51 -> vm1 from hv2 without checksum, 64 B inner: key, lookup, decap + redirect",
            entry: Entry::Underlay,
            ingress: wiring.stray,
            frame: plain_decap_64,
            counter: Some(Counter::Redirected),
        },
        Path {
            name: "underlay: Geneve c51 -> vm1 from hv2 without checksum, 512 B inner: key, lookup, decap + redirect",
            entry: Entry::Underlay,
            ingress: wiring.stray,
            frame: plain_decap_512,
            counter: Some(Counter::Redirected),
        },
    ];

    let mut group = c.benchmark_group("xdp_fast_path");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    // The underlay program has no live-frames runner: program-only below.
    for path in paths.iter().filter(|p| p.entry != Entry::Underlay) {
        group.bench_function(path.name, |b| {
            b.iter_custom(|iters| {
                let program = if path.entry == Entry::Cached {
                    &cached
                } else {
                    &fast_path
                };
                let before = program.counters().expect("counters");
                let mut left = iters;
                let mut kernel_time = Duration::ZERO;
                while left > 0 {
                    let n = left.min(u64::from(CHUNK)) as u32;
                    let result = match path.entry {
                        Entry::Baseline => {
                            kit.test_run_baseline_live(path.ingress, &path.frame, n, BATCH)
                        }
                        Entry::VifIngress | Entry::Cached => {
                            program.test_run_live(path.ingress, &path.frame, n, BATCH)
                        }
                        Entry::Underlay => unreachable!("filtered out"),
                    }
                    .expect("test_run");
                    // The kernel reports the mean time of one repetition.
                    kernel_time += result.duration * n;
                    left -= u64::from(n);
                }
                if let Some(counter) = path.counter {
                    let moved = program
                        .counters()
                        .expect("counters")
                        .since(&before)
                        .get(counter);
                    assert_eq!(
                        moved, iters,
                        "{}: {} of {iters} repetitions took the path",
                        path.name, moved
                    );
                }
                kernel_time
            })
        });
    }
    group.finish();

    // The program alone: one repetition per call (a rewritten frame must not run twice),
    // timed by the kernel around the program; nothing is transmitted.
    let mut group = c.benchmark_group("xdp_program_only");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for path in &paths {
        group.bench_function(path.name, |b| {
            b.iter_custom(|iters| {
                let counters = |cached: &FastPath| {
                    if path.entry == Entry::VifIngress {
                        &fast_path
                    } else {
                        cached
                    }
                    .counters()
                    .expect("counters")
                };
                let before = counters(&cached);
                let mut kernel_time = Duration::ZERO;
                for _ in 0..iters {
                    kernel_time += match path.entry {
                        Entry::Baseline => kit.test_run_baseline(path.ingress, &path.frame),
                        Entry::VifIngress => fast_path.test_run_timed(path.ingress, &path.frame),
                        Entry::Cached => cached.test_run_timed(path.ingress, &path.frame),
                        Entry::Underlay => {
                            cached.underlay_test_run_timed(path.ingress, &path.frame)
                        }
                    }
                    .expect("test_run")
                    .duration;
                }
                if let Some(counter) = path.counter {
                    assert_eq!(
                        counters(&cached).since(&before).get(counter),
                        iters,
                        "{}",
                        path.name
                    );
                }
                kernel_time
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
