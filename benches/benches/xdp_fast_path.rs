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
    CacheAction, Counter,
    cache::{ACTION_OUTPUT, FAMILY_IPV4, rewrite},
    ct::CtDep,
};
use ovnest_datapath::{
    FastPath, TableSet,
    cache::{CacheStats, key},
    conntrack::Mirror as _,
    fastpath::{Decisions, bench::BenchKit},
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
    let cached = cached_fast_path(
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
    ];

    let mut group = c.benchmark_group("xdp_fast_path");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for path in &paths {
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
                let program = if path.entry == Entry::Cached {
                    &cached
                } else {
                    &fast_path
                };
                let before = program.counters().expect("counters");
                let mut kernel_time = Duration::ZERO;
                for _ in 0..iters {
                    kernel_time += match path.entry {
                        Entry::Baseline => kit.test_run_baseline(path.ingress, &path.frame),
                        Entry::VifIngress | Entry::Cached => {
                            program.test_run_timed(path.ingress, &path.frame)
                        }
                    }
                    .expect("test_run")
                    .duration;
                }
                if let Some(counter) = path.counter {
                    assert_eq!(
                        program
                            .counters()
                            .expect("counters")
                            .since(&before)
                            .get(counter),
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
