//! The shared fixture table through the userspace pipeline: every case must end exactly as
//! it does in the XDP program (same counter, same bytes out, same port counters). Cases
//! XDP hands to userspace must be finished here: flooded to the switch's other local
//! ports, never back to the sender. No root needed: the pipeline runs on memory.

use ovnest_datapath::pipeline::{
    Desc, FramePool, NoServices, Pipeline, Snapshot, TxBatches, Umem, Verdict as PipelineVerdict,
};
use ovnest_tests::{
    failures::Failures,
    fixtures::{
        self, Iface, Verdict, Wiring,
        frames::hex,
        lab::{self, Place},
    },
};

const FRAME: u32 = 2048;
const CHUNKS: usize = 32;
const HEADROOM: usize = 256;

const WIRING: Wiring = Wiring {
    vm1: 11,
    vm2: 12,
    vm5: 15,
    stray: 99,
};

/// What one case did in the pipeline.
struct Run {
    verdict: PipelineVerdict,
    /// (egress ifindex, bytes).
    out: Vec<(u32, Vec<u8>)>,
    pipeline_counters: ovnest_datapath::pipeline::LocalCounters,
}

fn run(snap: &Snapshot, ingress: u32, input: &[u8]) -> Run {
    let mut area = vec![0u8; CHUNKS * FRAME as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
    for c in 1..CHUNKS {
        pool.give((c * FRAME as usize) as u64);
    }
    let mut tx = TxBatches::new(64);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, NoServices);
    p.umem.as_mut_slice()[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
    p.process_batch(
        snap,
        ingress,
        &[Desc::new(HEADROOM as u64, input.len() as u32)],
    );
    let verdict = PipelineVerdict::all()
        .find(|v| p.counters.get(*v) == 1)
        .expect("a verdict");
    assert_eq!(p.counters.frames(), 1);
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
    Run {
        verdict,
        out,
        pipeline_counters: p.counters,
    }
}

/// (interface, tag) a lab port's frames leave by.
fn egress_of(name: &str) -> Option<(u32, u16)> {
    match lab::port(name).place {
        Place::Vif(iface) => Some((WIRING.ifindex(iface), 0)),
        Place::Child { parent, tag } => Some((WIRING.ifindex(parent), tag)),
        Place::Remote => None,
    }
}

fn tag_of(frame: &[u8]) -> u16 {
    if frame.len() >= 16 && frame[12..14] == [0x81, 0x00] {
        u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff
    } else {
        0
    }
}

#[test]
fn fixture_table_through_the_userspace_pipeline() {
    let snap = Snapshot::build(1, &lab::logical_ports(&WIRING));
    assert!(snap.conflicts().is_empty(), "{:?}", snap.conflicts());
    let mut failures = Failures::new();
    for case in fixtures::cases() {
        let ingress = WIRING.ifindex(case.ingress);
        let run = run(&snap, ingress, &case.input);
        let mut problems = Vec::new();
        let expected_verdict = match &case.verdict {
            Verdict::Userspace => PipelineVerdict::Flooded,
            other => PipelineVerdict::Fast(other.counter()),
        };
        if run.verdict != expected_verdict {
            problems.push(format!(
                "verdict {:?} (want {expected_verdict:?})",
                run.verdict
            ));
        }
        match &case.verdict {
            Verdict::Redirect { via, .. } => {
                let want = vec![(
                    WIRING.ifindex(*via),
                    case.output.clone().unwrap_or_default(),
                )];
                if run.out != want {
                    problems.push(format!(
                        "out {:?}\n      want {:?}",
                        show(&run.out),
                        show(&want)
                    ));
                }
            }
            Verdict::Hairpin { .. } | Verdict::ArpReply { .. } => {
                let want = vec![(ingress, case.output.clone().unwrap_or_default())];
                if run.out != want {
                    problems.push(format!(
                        "out {:?}\n      want {:?}",
                        show(&run.out),
                        show(&want)
                    ));
                }
            }
            Verdict::Drop(_) => {
                if !run.out.is_empty() {
                    problems.push(format!("dropped frame went out: {:?}", show(&run.out)));
                }
            }
            Verdict::Userspace => {
                // Never back to the sender; each receiver once.
                if let Some(sender) = case.from.and_then(egress_of)
                    && run.out.iter().any(|(i, f)| (*i, tag_of(f)) == sender)
                {
                    problems.push("flooded back to its sender".into());
                }
                let mut seen: Vec<(u32, u16)> =
                    run.out.iter().map(|(i, f)| (*i, tag_of(f))).collect();
                seen.sort_unstable();
                let n = seen.len();
                seen.dedup();
                if seen.len() != n {
                    problems.push(format!("a port got two copies: {seen:?}"));
                }
            }
        }
        // Port counters move as in XDP: the sender's rx (and drops), the receiver's tx.
        if let Some(from) = case.from {
            let stats = run
                .pipeline_counters
                .port_stats(lab::port(from).stats_slot());
            let dropped = u64::from(matches!(case.verdict, Verdict::Drop(_)));
            if (stats.rx_packets, stats.drops) != (1, dropped) {
                problems.push(format!(
                    "{from}: (rx, drops) = ({}, {}) (want (1, {dropped}))",
                    stats.rx_packets, stats.drops
                ));
            }
        }
        if let Some(to) = case.verdict.delivered_to() {
            let stats = run.pipeline_counters.port_stats(lab::port(to).stats_slot());
            if stats.tx_packets != 1 {
                problems.push(format!("{to}: tx_packets {} (want 1)", stats.tx_packets));
            }
        }
        failures.check(&case, &problems);
    }
    failures.assert_none();
}

/// The flood the XDP cases leave to userspace, spelled out for the lab: a broadcast ARP
/// from c51 for an address nobody answers reaches vm1, vm2, vm5 (c51's parent, untagged),
/// c52 on tag 52 and the tag-range children once each, and never c51.
#[test]
fn broadcast_arp_from_c51_is_flooded_to_every_other_local_port() {
    let snap = Snapshot::build(1, &lab::logical_ports(&WIRING));
    let input = fixtures::Frame::eth(fixtures::frames::BROADCAST, lab::C51.mac)
        .arp_request(lab::C51.mac, lab::C51.ipv4, [172, 16, 255, 250])
        .vlan(51)
        .build();
    let run = run(&snap, WIRING.vm5, &input);
    assert_eq!(run.verdict, PipelineVerdict::Flooded);
    let mut got: Vec<(u32, u16)> = run.out.iter().map(|(i, f)| (*i, tag_of(f))).collect();
    got.sort_unstable();
    let mut want = vec![(11, 0), (12, 0), (15, 0), (15, 1), (15, 52), (15, 4094)];
    want.sort_unstable();
    assert_eq!(got, want);
    let untagged = fixtures::Frame::eth(fixtures::frames::BROADCAST, lab::C51.mac)
        .arp_request(lab::C51.mac, lab::C51.ipv4, [172, 16, 255, 250])
        .build();
    for (ifindex, frame) in &run.out {
        match tag_of(frame) {
            0 => assert_eq!(frame, &untagged, "copy to {ifindex}"),
            tag => assert_eq!(
                frame,
                &fixtures::Frame::eth(fixtures::frames::BROADCAST, lab::C51.mac)
                    .arp_request(lab::C51.mac, lab::C51.ipv4, [172, 16, 255, 250])
                    .vlan(tag)
                    .build()
            ),
        }
    }
    let _ = Iface::ALL;
}

fn show(out: &[(u32, Vec<u8>)]) -> Vec<(u32, String)> {
    out.iter().map(|(i, f)| (*i, hex(f))).collect()
}
