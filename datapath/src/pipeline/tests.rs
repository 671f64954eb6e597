//! Every step and drop reason of the pipeline on the seed lab: switch `dmz` (datapath 1),
//! VIFs vm1, vm2, vm5, containers c51/c52 behind vm5 with tags 51/52, router port lr0
//! (remote: ARP answers only).

use ovnest_common::{PortKey, XdpMeta, meta::XDP_META_MAGIC};

use super::*;
use crate::tables::{Attachment, LogicalPort};

const VM1_IF: u32 = 11;
const VM2_IF: u32 = 12;
const VM5_IF: u32 = 15;
const STRANGER_IF: u32 = 99;

const fn mac(last: u8) -> [u8; 6] {
    [0x02, 0xac, 0x10, 0xff, 0x01, last]
}
const ROUTER: [u8; 6] = mac(0x29);
const VM1: [u8; 6] = mac(0x30);
const VM2: [u8; 6] = mac(0x31);
const VM5: [u8; 6] = mac(0x32);
const C51: [u8; 6] = mac(0x33);
const C52: [u8; 6] = mac(0x34);

fn port(name: &str, key: u32, mac_last: u8, attachment: Attachment) -> LogicalPort {
    let m = mac(mac_last);
    LogicalPort {
        name: name.into(),
        key: PortKey {
            datapath: 1,
            port: key,
        },
        stats_slot: key,
        addresses: vec![(
            m,
            vec![[172, 16, 255, 100 + (mac_last >> 4) * 10 + (mac_last & 0xf)]],
        )],
        port_security: Some(vec![m]),
        unknown: false,
        attachment,
    }
}

fn lab_ports() -> Vec<LogicalPort> {
    let mut router = port("dmz-lr0", 1, 0x29, Attachment::Remote);
    router.port_security = None;
    vec![
        router,
        port("dmz-vm1", 2, 0x30, Attachment::Vif { ifindex: VM1_IF }),
        port("dmz-vm2", 3, 0x31, Attachment::Vif { ifindex: VM2_IF }),
        port("dmz-vm5", 4, 0x32, Attachment::Vif { ifindex: VM5_IF }),
        port(
            "dmz-c51",
            5,
            0x33,
            Attachment::Child {
                parent_ifindex: VM5_IF,
                tag: 51,
            },
        ),
        port(
            "dmz-c52",
            6,
            0x34,
            Attachment::Child {
                parent_ifindex: VM5_IF,
                tag: 52,
            },
        ),
    ]
}

fn lab() -> Snapshot {
    Snapshot::build(1, &lab_ports())
}

fn ip(last: u8) -> [u8; 4] {
    [172, 16, 255, last]
}

fn eth(dst: [u8; 6], src: [u8; 6], vid: Option<u16>, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(vid) = vid {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tpa);
    p
}

fn ipv4_payload() -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0];
    p.extend_from_slice(&ip(133));
    p.extend_from_slice(&ip(130));
    p.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    p
}

const FRAME: u32 = 2048;
const CHUNKS: u64 = 64;
const HEADROOM: usize = 256;

/// What one frame became.
#[derive(Debug)]
struct Outcome {
    verdict: Verdict,
    /// (egress ifindex, bytes), in device then queue order.
    out: Vec<(u32, Vec<u8>)>,
    counters: LocalCounters,
    flood: FloodStats,
}

fn run_with<S: Service>(
    snap: &Snapshot,
    ifindex: u32,
    frame: &[u8],
    meta: Option<XdpMeta>,
    offset: usize,
    services: S,
) -> Outcome {
    let mut area = vec![0u8; (FRAME as u64 * CHUNKS) as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let mut pool = FramePool::with_capacity(CHUNKS as usize, HEADROOM as u32);
    for c in 1..CHUNKS {
        pool.give(c * FRAME as u64);
    }
    let mut tx = TxBatches::new(256);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, services);
    {
        let (chunk, _) = p.umem.chunk_mut(0).unwrap();
        chunk[offset..offset + frame.len()].copy_from_slice(frame);
        if let Some(meta) = meta {
            put_meta(chunk, offset, &meta).unwrap();
        }
    }
    p.process_batch(
        snap,
        ifindex,
        &[Desc::new(offset as u64, frame.len() as u32)],
    );
    assert_eq!(p.counters.frames(), 1, "every frame counts exactly once");
    let verdict = Verdict::all().find(|v| p.counters.get(*v) == 1).unwrap();
    let mut descs = Vec::new();
    p.tx.drain_all(|device, desc| descs.push((snap.devices()[device as usize].ifindex, desc)));
    let mut out = Vec::new();
    let area = p.umem.as_mut_slice();
    for (ifindex, d) in &descs {
        out.push((
            *ifindex,
            area[d.addr as usize..d.addr as usize + d.len as usize].to_vec(),
        ));
    }
    // Buffer conservation: every chunk is either queued or free again.
    assert_eq!(
        descs.len() + p.pool.len(),
        CHUNKS as usize,
        "a chunk leaked or was duplicated"
    );
    Outcome {
        verdict,
        out,
        flood: p.counters.flood,
        counters: p.counters,
    }
}

fn run(snap: &Snapshot, ifindex: u32, frame: &[u8]) -> Outcome {
    run_with(snap, ifindex, frame, None, HEADROOM, NoServices)
}

fn assert_drop(ifindex: u32, frame: &[u8], counter: Counter) {
    let o = run(&lab(), ifindex, frame);
    assert_eq!(o.verdict, Verdict::Fast(counter), "frame {frame:02x?}");
    assert!(o.out.is_empty());
}

#[test]
fn tagged_container_to_vif_is_stripped_and_redirected() {
    let payload = ipv4_payload();
    let o = run(&lab(), VM5_IF, &eth(VM1, C51, Some(51), 0x0800, &payload));
    assert_eq!(o.verdict, Verdict::Fast(Counter::Redirected));
    assert_eq!(o.out, vec![(VM1_IF, eth(VM1, C51, None, 0x0800, &payload))]);
    let frame_len = 18 + payload.len() as u64;
    assert_eq!(o.counters.port_stats(5).rx_packets, 1);
    assert_eq!(o.counters.port_stats(5).rx_bytes, frame_len);
    assert_eq!(o.counters.port_stats(2).tx_bytes, frame_len - 4);
}

#[test]
fn vif_to_container_gets_its_tag_pushed() {
    let payload = ipv4_payload();
    let o = run(&lab(), VM1_IF, &eth(C51, VM1, None, 0x0800, &payload));
    assert_eq!(o.verdict, Verdict::Fast(Counter::Redirected));
    assert_eq!(
        o.out,
        vec![(VM5_IF, eth(C51, VM1, Some(51), 0x0800, &payload))]
    );
}

#[test]
fn push_without_headroom_uses_tailroom() {
    let payload = ipv4_payload();
    let o = run_with(
        &lab(),
        VM1_IF,
        &eth(C51, VM1, None, 0x0800, &payload),
        None,
        0,
        NoServices,
    );
    assert_eq!(
        o.out,
        vec![(VM5_IF, eth(C51, VM1, Some(51), 0x0800, &payload))]
    );
}

#[test]
fn push_without_any_room_is_a_rewrite_drop() {
    let mut frame = eth(C51, VM1, None, 0x0800, &ipv4_payload());
    frame.resize(FRAME as usize, 0);
    let o = run_with(&lab(), VM1_IF, &frame, None, 0, NoServices);
    assert_eq!(o.verdict, Verdict::Fast(Counter::DropRewrite));
}

#[test]
fn sibling_containers_hairpin_with_the_tag_rewritten() {
    let payload = ipv4_payload();
    let o = run(&lab(), VM5_IF, &eth(C52, C51, Some(51), 0x0800, &payload));
    assert_eq!(o.verdict, Verdict::Fast(Counter::Hairpinned));
    assert_eq!(
        o.out,
        vec![(VM5_IF, eth(C52, C51, Some(52), 0x0800, &payload))]
    );
}

#[test]
fn container_to_its_parent_hairpins_untagged() {
    let payload = ipv4_payload();
    let o = run(&lab(), VM5_IF, &eth(VM5, C51, Some(51), 0x0800, &payload));
    assert_eq!(o.verdict, Verdict::Fast(Counter::Hairpinned));
    assert_eq!(o.out, vec![(VM5_IF, eth(VM5, C51, None, 0x0800, &payload))]);
}

/// The golden frames real ovn-controller exchanged with c51 (shared/reference
/// golden-arp-c51.txt): request for the router address, reply tagged 51.
#[test]
fn arp_for_the_router_is_answered_as_ovn_does() {
    let request = hex(
        "ffffffffffff02ac10ff0133810000330806000108000604000102ac10ff0133ac10ff85000000000000ac10ff81",
    );
    // Golden reply as captured untagged (len=42, vid=51 on the wire).
    let reply =
        hex("02ac10ff013302ac10ff01290806000108000604000202ac10ff0129ac10ff8102ac10ff0133ac10ff85");
    let mut ports = lab_ports();
    ports[4].addresses = vec![(C51, vec![ip(133)])];
    ports[0].addresses = vec![(ROUTER, vec![ip(129)])];
    let o = run(&Snapshot::build(1, &ports), VM5_IF, &request);
    assert_eq!(o.verdict, Verdict::Fast(Counter::ArpReplied));
    let mut expected = reply[..12].to_vec();
    expected.extend_from_slice(&[0x81, 0x00, 0x00, 0x33]);
    expected.extend_from_slice(&reply[12..]);
    assert_eq!(o.out, vec![(VM5_IF, expected)]);
}

#[test]
fn arp_reply_keeps_the_arriving_tag_bytes() {
    // PCP 5 on the request: XDP replies in place, so the reply keeps it.
    let mut frame = eth(
        wire::BROADCAST,
        C51,
        Some(51),
        0x0806,
        &arp_request(C51, ip(133), ip(130)),
    );
    frame[14] |= 0xa0;
    let o = run(&lab(), VM5_IF, &frame);
    assert_eq!(o.verdict, Verdict::Fast(Counter::ArpReplied));
    assert_eq!(&o.out[0].1[12..16], &[0x81, 0x00, 0xa0, 0x33]);
}

#[test]
fn arp_for_own_address_is_flooded_not_answered() {
    let frame = eth(
        wire::BROADCAST,
        C51,
        Some(51),
        0x0806,
        &arp_request(C51, ip(133), ip(133)),
    );
    assert_eq!(run(&lab(), VM5_IF, &frame).verdict, Verdict::Flooded);
}

#[test]
fn truncated_arp_is_not_answered() {
    let mut frame = eth(
        wire::BROADCAST,
        VM1,
        None,
        0x0806,
        &arp_request(VM1, ip(130), ip(133)),
    );
    frame.truncate(14 + 27);
    assert_eq!(run(&lab(), VM1_IF, &frame).verdict, Verdict::Flooded);
}

#[test]
fn broadcast_from_c51_reaches_every_other_port_once() {
    let frame = eth(
        wire::BROADCAST,
        C51,
        Some(51),
        0x0806,
        &arp_request(C51, ip(133), ip(200)),
    );
    let o = run(&lab(), VM5_IF, &frame);
    assert_eq!(o.verdict, Verdict::Flooded);
    let untagged = eth(
        wire::BROADCAST,
        C51,
        None,
        0x0806,
        &arp_request(C51, ip(133), ip(200)),
    );
    let tagged52 = eth(
        wire::BROADCAST,
        C51,
        Some(52),
        0x0806,
        &arp_request(C51, ip(133), ip(200)),
    );
    let mut out = o.out.clone();
    out.sort();
    let mut expected = vec![
        (VM1_IF, untagged.clone()),
        (VM2_IF, untagged.clone()),
        (VM5_IF, untagged),
        (VM5_IF, tagged52),
    ];
    expected.sort();
    assert_eq!(
        out, expected,
        "vm1, vm2, vm5 untagged and c52 tagged 52, once each; never c51"
    );
    assert_eq!(
        o.flood,
        FloodStats {
            copies: 4,
            dropped: 0
        }
    );
    assert!(
        o.out
            .iter()
            .all(|(_, f)| f.len() < 14 + 4 || f[14..16] != [0, 51])
    );
}

#[test]
fn unknown_unicast_reaches_only_ports_with_unknown() {
    let mut ports = lab_ports();
    ports[2].unknown = true; // vm2
    ports[5].unknown = true; // c52
    let frame = eth(mac(0x99), VM1, None, 0x0800, &ipv4_payload());
    let o = run(&Snapshot::build(1, &ports), VM1_IF, &frame);
    assert_eq!(o.verdict, Verdict::Flooded);
    let mut out = o.out.clone();
    out.sort();
    assert_eq!(
        out,
        vec![
            (VM2_IF, eth(mac(0x99), VM1, None, 0x0800, &ipv4_payload())),
            (
                VM5_IF,
                eth(mac(0x99), VM1, Some(52), 0x0800, &ipv4_payload())
            ),
        ]
    );
    // Without `unknown` ports, unknown unicast goes nowhere.
    let o = run(&lab(), VM1_IF, &frame);
    assert_eq!((o.verdict, o.out.len()), (Verdict::Flooded, 0));
}

#[test]
fn unknown_unicast_never_returns_to_its_sender() {
    let mut ports = lab_ports();
    ports[1].unknown = true; // vm1 itself
    let o = run(
        &Snapshot::build(1, &ports),
        VM1_IF,
        &eth(mac(0x99), VM1, None, 0x0800, &ipv4_payload()),
    );
    assert_eq!((o.verdict, o.out.len()), (Verdict::Flooded, 0));
}

#[test]
fn flood_copies_stop_when_the_pool_is_empty() {
    let frame = eth(wire::BROADCAST, VM1, None, 0x0800, &ipv4_payload());
    let snap = lab();
    let mut area = vec![0u8; 2 * FRAME as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let mut tx = TxBatches::new(16);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, FramePool::with_capacity(2, 256), tx, NoServices);
    p.pool.give(FRAME as u64);
    p.umem.as_mut_slice()[256..256 + frame.len()].copy_from_slice(&frame);
    p.process_batch(&snap, VM1_IF, &[Desc::new(256, frame.len() as u32)]);
    // 4 receivers (vm2, vm5, c51, c52): one pooled copy plus the original buffer.
    assert_eq!(p.counters.get(Verdict::Flooded), 1);
    assert_eq!(
        p.counters.flood,
        FloodStats {
            copies: 2,
            dropped: 2
        }
    );
    assert_eq!(p.tx.len(), 2);
}

#[test]
fn xdp_metadata_skips_classification() {
    // XDP stripped c51's tag and left its port key: the frame arrives untagged.
    let frame = eth(
        wire::BROADCAST,
        C51,
        None,
        0x0806,
        &arp_request(C51, ip(133), ip(200)),
    );
    let meta = XdpMeta {
        magic: XDP_META_MAGIC,
        ingress: PortKey {
            datapath: 1,
            port: 5,
        },
        vid: 51,
        flags: 0,
    };
    let o = run_with(&lab(), VM5_IF, &frame, Some(meta), HEADROOM, NoServices);
    assert_eq!(o.verdict, Verdict::Flooded);
    assert_eq!(o.out.len(), 4);
    assert!(
        !o.out.iter().any(|(_, f)| f.get(14..16) == Some(&[0, 51])),
        "never back to c51"
    );
    assert_eq!(
        o.counters.port_stats(5).rx_packets,
        0,
        "XDP already counted the receive"
    );
}

#[test]
fn xdp_metadata_for_an_unknown_port_is_dropped() {
    let frame = eth(wire::BROADCAST, C51, None, 0x0800, &ipv4_payload());
    for (port, vid, counter) in [
        (77, 51, Counter::DropUnknownTag),
        (77, 0, Counter::DropUnknownVif),
        (2, 0, Counter::DropUnknownVif),
    ] {
        // Port 2 (vm1) exists but is not on vm5's interface.
        let meta = XdpMeta {
            magic: XDP_META_MAGIC,
            ingress: PortKey { datapath: 1, port },
            vid,
            flags: 0,
        };
        let o = run_with(&lab(), VM5_IF, &frame, Some(meta), HEADROOM, NoServices);
        assert_eq!(o.verdict, Verdict::Fast(counter));
    }
}

#[test]
fn stale_metadata_magic_is_cleared_after_use() {
    let mut chunk = vec![0u8; 512];
    let meta = XdpMeta {
        magic: XDP_META_MAGIC,
        ingress: PortKey {
            datapath: 1,
            port: 5,
        },
        vid: 51,
        flags: 0,
    };
    put_meta(&mut chunk, 256, &meta).unwrap();
    assert_eq!(take_meta(&mut chunk, 256), Some(meta));
    assert_eq!(take_meta(&mut chunk, 256), None);
    assert_eq!(take_meta(&mut chunk, 8), None, "no room for metadata");
}

#[test]
fn drop_reasons_match_xdp() {
    let p = ipv4_payload();
    assert_drop(VM1_IF, &[0u8; 13], Counter::DropTruncated);
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(51), 0x0800, &[])[..17],
        Counter::DropTruncated,
    );
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(0), 0x0800, &p),
        Counter::DropVid0,
    );
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(0xfff), 0x0800, &p),
        Counter::DropVid4095,
    );
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(51), 0x8100, &p),
        Counter::DropDoubleTag,
    );
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(51), 0x88a8, &p),
        Counter::DropDoubleTag,
    );
    assert_drop(VM5_IF, &eth(VM1, C51, None, 0x88a8, &p), Counter::DropQinQ);
    assert_drop(
        VM5_IF,
        &eth(VM1, C51, Some(53), 0x0800, &p),
        Counter::DropUnknownTag,
    );
    assert_drop(
        VM1_IF,
        &eth(VM1, C51, Some(51), 0x0800, &p),
        Counter::DropUnknownTag,
    );
    assert_drop(
        STRANGER_IF,
        &eth(VM1, C51, None, 0x0800, &p),
        Counter::DropUnknownVif,
    );
    assert_drop(
        STRANGER_IF,
        &eth(VM1, C51, Some(51), 0x0800, &p),
        Counter::DropUnknownTag,
    );
    assert_drop(
        VM1_IF,
        &eth(VM2, wire::BROADCAST, None, 0x0800, &p),
        Counter::DropBadSource,
    );
    assert_drop(
        VM5_IF,
        &eth(VM2, C52, Some(51), 0x0800, &p),
        Counter::DropPortSecurity,
    );
    assert_drop(VM1_IF, &eth(VM1, VM1, None, 0x0800, &p), Counter::DropLoop);
}

#[test]
fn parent_only_interface_drops_untagged_as_unknown_vif() {
    // Containers behind an interface with no VIF bound: untagged frames have no port.
    let mut ports = lab_ports();
    ports.remove(3); // vm5
    assert_eq!(
        run(
            &Snapshot::build(1, &ports),
            VM5_IF,
            &eth(VM1, VM5, None, 0x0800, &ipv4_payload())
        )
        .verdict,
        Verdict::Fast(Counter::DropUnknownVif)
    );
}

#[test]
fn port_drops_are_counted_on_the_port() {
    let o = run(
        &lab(),
        VM5_IF,
        &eth(VM2, C52, Some(51), 0x0800, &ipv4_payload()),
    );
    assert_eq!(o.counters.port_stats(5).drops, 1);
    assert_eq!(
        o.counters.port_stats(5).rx_packets,
        1,
        "received, then dropped, as in XDP"
    );
}

#[test]
fn egress_without_a_socket_is_no_egress() {
    let snap = lab();
    let frame = eth(VM1, C51, Some(51), 0x0800, &ipv4_payload());
    let mut area = vec![0u8; 4 * FRAME as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let vm1 = snap.device_of(VM1_IF).unwrap();
    let mut tx = TxBatches::new(16);
    tx.prepare(snap.devices().len(), |d| d != vm1, |_| {});
    let mut p = Pipeline::new(umem, FramePool::with_capacity(4, 256), tx, NoServices);
    p.umem.as_mut_slice()[256..256 + frame.len()].copy_from_slice(&frame);
    p.process_batch(&snap, VM5_IF, &[Desc::new(256, frame.len() as u32)]);
    assert_eq!(p.counters.get(Verdict::Fast(Counter::DropNoEgress)), 1);
    assert_eq!(p.pool.len(), 1);
}

#[test]
fn bad_descriptors_are_truncated_drops() {
    let snap = lab();
    let mut area = vec![0u8; 2 * FRAME as usize];
    let umem = Umem::new(&mut area, FRAME).unwrap();
    let mut tx = TxBatches::new(16);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, FramePool::with_capacity(4, 256), tx, NoServices);
    p.process_batch(
        &snap,
        VM1_IF,
        &[Desc::new(2000, 100), Desc::new(1 << 40, 60)],
    );
    assert_eq!(p.counters.get(Verdict::Fast(Counter::DropTruncated)), 2);
}

/// A DHCP-like service: answers every broadcast IPv4 frame with a 60-byte reply.
struct Echo;
impl Service for Echo {
    fn handle(&mut self, frame: &mut PuntFrame<'_>) -> Punt {
        if frame.buffer.get(12..14) != Some(&[0x08, 0x00]) {
            return Punt::Pass;
        }
        let src: [u8; 6] = frame.buffer[6..12].try_into().unwrap();
        frame.buffer[..6].copy_from_slice(&src);
        frame.buffer[6..12].copy_from_slice(&ROUTER);
        frame.buffer[frame.len..60].fill(0xee);
        Punt::Reply { len: 60 }
    }
}

#[test]
fn services_answer_before_flooding_with_the_port_tag() {
    let frame = eth(wire::BROADCAST, C51, Some(51), 0x0800, &ipv4_payload());
    let o = run_with(&lab(), VM5_IF, &frame, None, HEADROOM, (NoServices, Echo));
    assert_eq!(o.verdict, Verdict::Serviced);
    assert_eq!(o.out.len(), 1);
    let (ifindex, reply) = &o.out[0];
    assert_eq!((*ifindex, reply.len()), (VM5_IF, 64));
    assert_eq!(
        &reply[..16],
        &[&C51[..], &ROUTER[..], &[0x81, 0, 0, 51]].concat()[..]
    );
    // ARP is not the service's: still flooded.
    let arp = eth(
        wire::BROADCAST,
        C51,
        Some(51),
        0x0806,
        &arp_request(C51, ip(133), ip(200)),
    );
    assert_eq!(
        run_with(&lab(), VM5_IF, &arp, None, HEADROOM, Echo).verdict,
        Verdict::Flooded
    );
}

#[test]
fn counters_fold_into_the_shared_view() {
    let shared = SharedCounters::new();
    let mut o = run(
        &lab(),
        VM5_IF,
        &eth(VM1, C51, Some(51), 0x0800, &ipv4_payload()),
    );
    o.counters.fold_into(&shared);
    o.counters.fold_into(&shared);
    assert_eq!(shared.get(Verdict::Fast(Counter::Redirected)), 1);
    assert_eq!(shared.port_stats(5).rx_packets, 1);
    assert_eq!(shared.port_stats(2).tx_packets, 1);
    assert_eq!(o.counters.frames(), 0);
}

#[test]
fn snapshot_cell_swaps() {
    let cell = SnapshotCell::default();
    assert_eq!(cell.load().generation(), 0);
    cell.publish(lab());
    assert_eq!(cell.load().generation(), 1);
    assert_eq!(cell.load().flood_group(0).map(|g| g.all.len()), Some(5));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

use crate::wire;
