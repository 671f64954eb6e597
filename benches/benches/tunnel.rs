//! The userspace datapath's per-frame cost across chassis against the same frame kept on
//! one chassis, in the same run: c51 → vm1 delivered locally vs encapsulated to vm1 on
//! another chassis, and vm1 → c51 delivered locally vs arriving over Geneve (decapsulated,
//! egress pipeline only). The seed's logical flows as northd wrote them, no decision cache
//! (every frame runs the logical pipeline), one frame per batch.
//!
//! `cargo bench -p ovnest-benches --bench tunnel`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ovnest_datapath::{
    Attachment, LogicalPort,
    geneve::{self, Metadata, Underlay},
    pipeline::{
        Desc, FramePool, NoServices, Pipeline, Snapshot, TunnelPeer, TunnelTable, TxBatches, Umem,
    },
};
use ovnest_tests::fixtures::{
    frames::{Frame, ipv4},
    lab::{self, Wiring},
    lflows,
};

const WIRING: Wiring = Wiring {
    vm1: 11,
    vm2: 12,
    vm5: 15,
    stray: 99,
};
const UNDERLAY: u32 = 40;
const FRAME: u32 = 2048;
const CHUNKS: u64 = 64;
const HEADROOM: u32 = 256;
const HV1: [u8; 4] = [10, 99, 0, 1];
const HV2: [u8; 4] = [10, 99, 0, 2];

fn underlay(local: [u8; 4], remote: [u8; 4]) -> Underlay {
    Underlay {
        local_mac: [2, 0, 0, 0, 0, local[3]],
        next_hop_mac: [2, 0, 0, 0, 0, remote[3]],
        local_ip: local,
        remote_ip: remote,
        csum: true,
    }
}

/// The lab's ports with northd's keys; vm1 on another chassis when `remote`.
fn snapshot(remote: bool) -> Snapshot {
    let p = ovnest_logical::Pipeline::compile(
        &lflows::seed(),
        &ovnest_logical::pipeline::Residency::Everywhere,
    );
    let mut ports: Vec<LogicalPort> = lab::logical_ports(&WIRING);
    for port in &mut ports {
        if let Some(lp) = p.port_by_name(&port.name) {
            port.key.port = lp.key;
        }
        if remote && port.name == "dmz-vm1" {
            port.attachment = Attachment::Remote;
        }
    }
    let mut snap = Snapshot::build(1, &ports);
    if remote {
        let vm1 = ports.iter().find(|p| p.name == "dmz-vm1").unwrap().key;
        snap = snap.with_tunnels(TunnelTable {
            underlay_ifindex: UNDERLAY,
            peers: vec![TunnelPeer {
                chassis: "hv2".into(),
                underlay: underlay(HV1, HV2),
            }],
            remote_ports: vec![(vm1, 1)],
        });
    }
    snap.with_logical(Arc::new(p))
}

fn echo(src: &str, dst: &str, vid: Option<u16>) -> Vec<u8> {
    let (from, to) = (lab::port(src), lab::port(dst));
    let mut f = Frame::eth(to.mac, from.mac);
    if let Some(vid) = vid {
        f = f.vlan(vid);
    }
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1];
    icmp.resize(64, 0xa5);
    let sum = ovnest_tests::fixtures::frames::checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f.ethertype(0x0800, &ipv4(1, from.ipv4, to.ipv4, &icmp))
        .build()
}

/// `frame` arriving on `ifindex`, one per iteration; every chunk comes back.
fn bench_case(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    snap: &Snapshot,
    ifindex: u32,
    frame: &[u8],
    expect_out: u32,
) {
    let mut area = vec![0u8; (FRAME as u64 * CHUNKS) as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let mut pool = FramePool::with_capacity(CHUNKS as usize, HEADROOM);
    for c in 0..CHUNKS {
        pool.give(c * FRAME as u64);
    }
    let mut tx = TxBatches::new(64);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, NoServices);
    let mut sent = Vec::with_capacity(8);
    let mut step = |p: &mut Pipeline<'_>| {
        let chunk = p.pool.take().expect("a free chunk");
        let off = HEADROOM as usize;
        p.umem.chunk_mut(chunk).unwrap().0[off..off + frame.len()].copy_from_slice(frame);
        p.process_batch(
            snap,
            ifindex,
            &[Desc::new(chunk + off as u64, frame.len() as u32)],
        );
        sent.clear();
        p.tx.drain_all(|device, desc| sent.push((device, desc)));
        let n = sent.len() as u32;
        for (_, desc) in &sent {
            let start = p.umem.chunk_start(desc.addr);
            p.pool.give(start);
        }
        n
    };
    assert_eq!(step(&mut p), expect_out, "{name}: frames out");
    g.bench_function(name, |b| b.iter(|| step(&mut p)));
}

fn tunnel(c: &mut Criterion) {
    let local = snapshot(false);
    let remote = snapshot(true);
    let c51_to_vm1 = echo("dmz-c51", "dmz-vm1", Some(51));
    let vm1_to_c51 = echo("dmz-vm1", "dmz-c51", None);
    let key = |name: &str| {
        remote
            .logical()
            .unwrap()
            .pipeline
            .port_by_name(name)
            .unwrap()
            .key as u16
    };
    let mut from_tunnel = vec![0u8; geneve::OVERHEAD];
    from_tunnel.extend_from_slice(&vm1_to_c51);
    geneve::encapsulate(
        &mut from_tunnel,
        &underlay(HV2, HV1),
        &Metadata {
            vni: lab::DMZ,
            ingress: key("dmz-vm1"),
            egress: key("dmz-c51"),
        },
        50000,
    )
    .unwrap();

    let mut g = c.benchmark_group("tunnel");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(std::time::Duration::from_secs(4));
    bench_case(
        &mut g,
        "c51 -> vm1, local: delivered",
        &local,
        WIRING.vm5,
        &c51_to_vm1,
        1,
    );
    bench_case(
        &mut g,
        "c51 -> vm1, other chassis: encapsulated",
        &remote,
        WIRING.vm5,
        &c51_to_vm1,
        1,
    );
    bench_case(
        &mut g,
        "vm1 -> c51, local: delivered",
        &local,
        WIRING.vm1,
        &vm1_to_c51,
        1,
    );
    bench_case(
        &mut g,
        "vm1 -> c51, from the tunnel: decapsulated, egress only",
        &remote,
        UNDERLAY,
        &from_tunnel,
        1,
    );
    g.finish();

    let mut g = c.benchmark_group("geneve");
    g.throughput(Throughput::Elements(1));
    let mut buf = from_tunnel.clone();
    let meta = geneve::decapsulate(&from_tunnel).unwrap().meta;
    g.bench_function("encapsulate (checksum over 98 bytes)", |b| {
        b.iter(|| geneve::encapsulate(&mut buf, &underlay(HV2, HV1), &meta, 50000))
    });
    g.bench_function("decapsulate (checksum verified)", |b| {
        b.iter(|| geneve::decapsulate(std::hint::black_box(&from_tunnel)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, tunnel);
criterion_main!(benches);
