//! The userspace datapath's hot loop on in-memory frames, as AF_XDP delivers them: 64-byte
//! frames in 2 KiB chunks of one UMEM buffer, descriptors (addr, len) in batches of 64.
//!
//! Tables are production-sized: about 20,000 logical ports, 4094 containers on one parent
//! (every valid tag; 4095 is reserved). Each iteration re-seeds the bytes the pipeline
//! rewrote in place (the first 68 bytes of each frame), runs one batch, and empties the
//! transmit batch back to the pool as a completion ring would. `reseed_only` measures the
//! re-seeding alone, so its cost can be subtracted; `baseline_copy` is the naive loop that
//! only copies descriptors through, as the same-run reference.
//!
//! Every benchmark first runs one batch and asserts the verdict it names, so a broken
//! path cannot produce a fast number.
//!
//! Run: `cargo bench -p ovnest-benches --bench hot_loop`

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ovnest_common::{Counter, PortKey};
use ovnest_datapath::{
    pipeline::{BATCH, Desc, FramePool, NoServices, Pipeline, Snapshot, TxBatches, Umem, Verdict},
    tables::{Attachment, LogicalPort},
};

const FRAME_SIZE: u32 = 2048;
const HEADROOM: usize = 256;
/// RX chunks (one batch) plus free chunks for flood copies.
const CHUNKS: usize = BATCH + 4096;
/// Bytes re-seeded per frame: the header the pipeline may move by a tag, plus the tag.
const RESEED: usize = 64 + 4;

const VM1_IF: u32 = 11;
const VM2_IF: u32 = 12;
const VM5_IF: u32 = 15;
/// Flood test switches: a sender VIF and N containers behind a parent.
const FLOOD_SIZES: [u16; 3] = [1, 8, 64];

fn mac(a: u8, b: u16, c: u8) -> [u8; 6] {
    let [hi, lo] = b.to_be_bytes();
    [0x02, a, hi, lo, 0, c]
}

fn port(
    datapath: u32,
    key: u32,
    slot: u32,
    m: [u8; 6],
    ip: [u8; 4],
    attachment: Attachment,
) -> LogicalPort {
    LogicalPort {
        name: format!("p{datapath}-{key}"),
        key: PortKey {
            datapath,
            port: key,
        },
        stats_slot: slot,
        addresses: vec![(m, vec![ip])],
        port_security: Some(vec![m]),
        unknown: false,
        attachment,
    }
}

/// The seed lab's switch grown to production size, plus flood switches.
fn production_ports() -> Vec<LogicalPort> {
    let mut ports = Vec::new();
    let mut slot = 0;
    let mut next_slot = || {
        slot += 1;
        slot
    };
    // dmz (datapath 1): vm1, vm2, vm5 and 4094 containers on vm5 (c51 and c52 among them).
    ports.push(port(
        1,
        2,
        next_slot(),
        mac(1, 0, 0x30),
        [172, 16, 255, 130],
        Attachment::Vif { ifindex: VM1_IF },
    ));
    ports.push(port(
        1,
        3,
        next_slot(),
        mac(1, 0, 0x31),
        [172, 16, 255, 131],
        Attachment::Vif { ifindex: VM2_IF },
    ));
    ports.push(port(
        1,
        4,
        next_slot(),
        mac(1, 0, 0x32),
        [172, 16, 255, 132],
        Attachment::Vif { ifindex: VM5_IF },
    ));
    for tag in 1..=4094u16 {
        let ip = [10, 1, (tag >> 8) as u8, tag as u8];
        let attachment = Attachment::Child {
            parent_ifindex: VM5_IF,
            tag,
        };
        ports.push(port(
            1,
            100 + tag as u32,
            next_slot(),
            mac(1, tag, 0x55),
            ip,
            attachment,
        ));
    }
    // 3,180 other VMs with 4 containers each over 100 switches: 15,900 ports.
    for vm in 0..3180u32 {
        let datapath = 10 + vm % 100;
        let ifindex = 1000 + vm;
        let base = 1000 + vm * 5;
        let ip = |i: u32| [10, 100 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        ports.push(port(
            datapath,
            base,
            next_slot(),
            mac(2, vm as u16, 0),
            ip(base),
            Attachment::Vif { ifindex },
        ));
        for tag in 1..=4u16 {
            let key = base + tag as u32;
            let attachment = Attachment::Child {
                parent_ifindex: ifindex,
                tag,
            };
            ports.push(port(
                datapath,
                key,
                next_slot(),
                mac(2, vm as u16, tag as u8),
                ip(key),
                attachment,
            ));
        }
    }
    // Flood switches (datapath 500 + n): sender VIF 5000 + n, n containers on parent 6000 + n.
    for n in FLOOD_SIZES {
        let datapath = 500 + n as u32;
        let sender = Attachment::Vif {
            ifindex: 5000 + n as u32,
        };
        ports.push(port(
            datapath,
            1,
            next_slot(),
            mac(5, n, 1),
            [10, 200, n as u8, 1],
            sender,
        ));
        for tag in 1..=n {
            let attachment = Attachment::Child {
                parent_ifindex: 6000 + n as u32,
                tag,
            };
            ports.push(port(
                datapath,
                1 + tag as u32,
                next_slot(),
                mac(6, n, tag as u8),
                [10, 201, n as u8, tag as u8],
                attachment,
            ));
        }
    }
    ports
}

fn frame(dst: [u8; 6], src: [u8; 6], vid: Option<u16>, ethertype: u16, payload: &[u8]) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    let mut at = 12;
    if let Some(vid) = vid {
        f[12..16].copy_from_slice(&[0x81, 0x00, (vid >> 8) as u8, vid as u8]);
        at = 16;
    }
    f[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
    f[at + 2..at + 2 + payload.len()].copy_from_slice(payload);
    f
}

fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p[8..14].copy_from_slice(&sha);
    p[14..18].copy_from_slice(&spa);
    p[24..28].copy_from_slice(&tpa);
    p
}

/// An IPv4 header's worth of payload; its content is never read.
const IPV4: [u8; 20] = [
    0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
];

struct Case {
    name: &'static str,
    ingress: u32,
    frame: [u8; 64],
    verdict: Verdict,
    /// Descriptors the transmit batch must hold after one batch.
    tx_per_batch: usize,
}

fn cases() -> Vec<Case> {
    let c51 = mac(1, 51, 0x55);
    let c52 = mac(1, 52, 0x55);
    let vm1 = mac(1, 0, 0x30);
    let vm2 = mac(1, 0, 0x31);
    // Different parents: dmz's c51 cannot reach another switch, so the container on
    // another parent is made part of dmz below (see `main_ports`).
    let remote_child = mac(7, 1, 0x77);
    let mut cases = vec![
        Case {
            name: "tagged_to_container",
            ingress: VM5_IF,
            frame: frame(remote_child, c51, Some(51), 0x0800, &IPV4),
            verdict: Verdict::Fast(Counter::Redirected),
            tx_per_batch: BATCH,
        },
        Case {
            name: "tagged_to_vif",
            ingress: VM5_IF,
            frame: frame(vm1, c51, Some(51), 0x0800, &IPV4),
            verdict: Verdict::Fast(Counter::Redirected),
            tx_per_batch: BATCH,
        },
        Case {
            name: "untagged_vif",
            ingress: VM1_IF,
            frame: frame(vm2, vm1, None, 0x0800, &IPV4),
            verdict: Verdict::Fast(Counter::Redirected),
            tx_per_batch: BATCH,
        },
        Case {
            name: "hairpin_sibling",
            ingress: VM5_IF,
            frame: frame(c52, c51, Some(51), 0x0800, &IPV4),
            verdict: Verdict::Fast(Counter::Hairpinned),
            tx_per_batch: BATCH,
        },
        Case {
            name: "arp_reply",
            ingress: VM5_IF,
            frame: frame(
                [0xff; 6],
                c51,
                Some(51),
                0x0806,
                &arp_request(c51, [10, 1, 0, 51], [172, 16, 255, 130]),
            ),
            verdict: Verdict::Fast(Counter::ArpReplied),
            tx_per_batch: BATCH,
        },
    ];
    for n in FLOOD_SIZES {
        let sender = mac(5, n, 1);
        let name: &'static str = Box::leak(format!("flood_{n}").into_boxed_str());
        cases.push(Case {
            name,
            ingress: 5000 + n as u32,
            frame: frame([0xff; 6], sender, None, 0x0800, &IPV4),
            verdict: Verdict::Flooded,
            tx_per_batch: BATCH * n as usize,
        });
    }
    cases
}

/// Production ports plus one dmz container on another parent (ifindex 7000, tag 1), the
/// target of `tagged_to_container`.
fn main_ports() -> Vec<LogicalPort> {
    let mut ports = production_ports();
    let attachment = Attachment::Child {
        parent_ifindex: 7000,
        tag: 1,
    };
    ports.push(port(
        1,
        90_000,
        65_000,
        mac(7, 1, 0x77),
        [172, 16, 254, 1],
        attachment,
    ));
    ports
}

/// One poll thread's state over a heap UMEM, with the RX batch seeded.
struct Bench {
    area: Vec<u8>,
    template: [u8; 64],
    rx: Vec<Desc>,
}

impl Bench {
    fn new(template: [u8; 64]) -> Self {
        let area = vec![0u8; CHUNKS * FRAME_SIZE as usize];
        let rx = (0..BATCH)
            .map(|i| Desc::new((i * FRAME_SIZE as usize + HEADROOM) as u64, 64))
            .collect();
        let mut bench = Bench { area, template, rx };
        let mut umem = Umem::new(&mut bench.area, FRAME_SIZE).expect("frame size");
        reseed(&mut umem, &bench.rx, &template);
        bench
    }
}

/// Restores the bytes a batch may have changed: the pipeline moves the 12 MAC bytes by
/// one tag (4 bytes) either way and rewrites the tag or the ARP payload, all within
/// `HEADROOM - 4 .. HEADROOM + 64`.
#[inline(always)]
fn reseed(umem: &mut Umem<'_>, rx: &[Desc], template: &[u8; 64]) {
    let area = umem.as_mut_slice();
    for d in rx {
        let at = d.addr as usize;
        if let Some(bytes) = area.get_mut(at - 4..at - 4 + RESEED) {
            bytes[..4].fill(0);
            bytes[4..].copy_from_slice(template);
        }
    }
}

fn pipeline<'u>(umem: Umem<'u>, snap: &Snapshot) -> Pipeline<'u, NoServices> {
    let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
    for c in BATCH..CHUNKS {
        pool.give((c * FRAME_SIZE as usize) as u64);
    }
    let mut tx = TxBatches::new(BATCH * 65);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    Pipeline::new(umem, pool, tx, NoServices)
}

/// Returns flood copies to the pool, as the completion ring would; RX chunks go back to
/// the RX batch (they are re-used as is).
#[inline(always)]
fn complete(p: &mut Pipeline<'_, NoServices>) {
    let rx_end = (BATCH * FRAME_SIZE as usize) as u64;
    let Pipeline { tx, pool, .. } = p;
    tx.drain_all(|_, d| {
        if d.addr >= rx_end {
            pool.give(d.addr & !(FRAME_SIZE as u64 - 1));
        }
    });
}

fn hot_loop(c: &mut Criterion) {
    let snap = Snapshot::build(1, &main_ports());
    assert!(snap.conflicts().is_empty(), "{:?}", &snap.conflicts()[..1]);
    assert!(snap.ports().len() >= 20_000, "{} ports", snap.ports().len());

    let mut group = c.benchmark_group("hot_loop");
    group.throughput(Throughput::Elements(BATCH as u64));

    for case in cases() {
        let mut bench = Bench::new(case.frame);
        let umem = Umem::new(&mut bench.area, FRAME_SIZE).expect("frame size");
        let mut p = pipeline(umem, &snap);
        // The path must do what its name says before it is timed.
        p.process_batch(&snap, case.ingress, &bench.rx);
        assert_eq!(
            p.counters.get(case.verdict),
            BATCH as u64,
            "{}: {:?}",
            case.name,
            p.counters
        );
        assert_eq!(p.counters.frames(), BATCH as u64, "{}", case.name);
        assert_eq!(
            p.tx.len(),
            case.tx_per_batch,
            "{}: transmit batch",
            case.name
        );
        complete(&mut p);
        let rx = bench.rx.clone();
        group.bench_function(BenchmarkId::new("pipeline", case.name), |b| {
            b.iter(|| {
                reseed(&mut p.umem, &rx, &bench.template);
                p.process_batch(black_box(&snap), case.ingress, black_box(&rx));
                complete(&mut p);
            })
        });
        assert_eq!(
            p.counters.get(case.verdict),
            p.counters.frames(),
            "{}: every timed frame took the path",
            case.name
        );
    }

    // Same-run references: re-seeding alone, and a loop that only passes descriptors from
    // RX to TX (what any AF_XDP forwarder pays at least).
    let cases = cases();
    let mut bench = Bench::new(cases[0].frame);
    let mut umem = Umem::new(&mut bench.area, FRAME_SIZE).expect("frame size");
    let rx = bench.rx.clone();
    group.bench_function(BenchmarkId::new("reference", "reseed_only"), |b| {
        b.iter(|| reseed(&mut umem, black_box(&rx), &bench.template))
    });
    let mut p = pipeline(umem, &snap);
    group.bench_function(BenchmarkId::new("reference", "baseline_copy"), |b| {
        b.iter(|| {
            for d in black_box(&rx) {
                let _ = p.tx.push(0, *d);
            }
            complete(&mut p);
        })
    });
    group.finish();
}

criterion_group!(benches, hot_loop);
criterion_main!(benches);
