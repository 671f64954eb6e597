//! Golden frames real ovn-controller + userspace OVS sent between two chassis
//! (tests/data/geneve, from shared/reference): decapsulating them gives OVN's metadata,
//! and encapsulating their inner frames gives back the same bytes.

use super::*;

const ICMP: &[u8] = include_bytes!("../../../tests/data/geneve/geneve-icmp.pcap");
const BCAST: &[u8] = include_bytes!("../../../tests/data/geneve/geneve-bcast.pcap");

const HV1_MAC: [u8; 6] = [0x2a, 0xee, 0x99, 0x2d, 0xb6, 0x49];
const HV2_MAC: [u8; 6] = [0x86, 0xfa, 0x26, 0x32, 0x5c, 0x42];
const HV1: [u8; 4] = [10, 99, 0, 1];
const HV2: [u8; 4] = [10, 99, 0, 2];

/// The frames of a classic pcap file (little-endian, microseconds).
fn pcap_frames(pcap: &[u8]) -> Vec<&[u8]> {
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(&pcap[at + 16..at + 16 + len]);
        at += 16 + len;
    }
    frames
}

fn golden() -> Vec<&'static [u8]> {
    let mut all = pcap_frames(ICMP);
    all.extend(pcap_frames(BCAST));
    all
}

/// The underlay a golden frame was sent on, read off its outer headers.
fn underlay_of(frame: &[u8]) -> Underlay {
    let (local_ip, remote_ip) = if frame[26..30] == HV1 {
        (HV1, HV2)
    } else {
        (HV2, HV1)
    };
    let (local_mac, next_hop_mac) = if local_ip == HV1 {
        (HV1_MAC, HV2_MAC)
    } else {
        (HV2_MAC, HV1_MAC)
    };
    Underlay {
        local_mac,
        next_hop_mac,
        local_ip,
        remote_ip,
        csum: true,
    }
}

#[test]
fn golden_frames_decapsulate_to_ovn_metadata() {
    let icmp = pcap_frames(ICMP);
    assert!(icmp.len() >= 2);
    // p1 (key 1) → p2 (key 2) on sw (VNI 1), and the reply.
    let d = decapsulate(icmp[0]).unwrap();
    assert_eq!(
        d.meta,
        Metadata {
            vni: 1,
            ingress: 1,
            egress: 2
        }
    );
    assert_eq!(d.remote_ip, HV1);
    assert_eq!(d.src_port, 60361);
    assert_eq!(d.inner, OVERHEAD..icmp[0].len());
    assert_eq!(
        &icmp[0][d.inner.start..d.inner.start + 6],
        &[2, 0, 0, 0, 0, 2]
    );
    let r = decapsulate(icmp[1]).unwrap();
    assert_eq!((r.meta.ingress, r.meta.egress, r.remote_ip), (2, 1, HV2));
    // Broadcast: the egress key is _MC_flood.
    let b = decapsulate(pcap_frames(BCAST)[0]).unwrap();
    assert_eq!(b.meta.egress, 32768);
    assert!(b.meta.egress_is_multicast());
    assert!(!d.meta.egress_is_multicast());
}

#[test]
fn encapsulating_the_inner_frames_gives_the_golden_bytes() {
    for (i, golden) in golden().into_iter().enumerate() {
        let d = decapsulate(golden).unwrap();
        let mut frame = vec![0xaa; OVERHEAD];
        frame.extend_from_slice(&golden[d.inner.clone()]);
        encapsulate(&mut frame, &underlay_of(golden), &d.meta, d.src_port).unwrap();
        assert_eq!(
            frame,
            golden,
            "frame {i}:\nexpected {}\nactual   {}",
            hex(golden),
            hex(&frame)
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn without_csum_the_udp_checksum_is_zero_and_still_accepted() {
    let golden = pcap_frames(ICMP)[0];
    let d = decapsulate(golden).unwrap();
    let mut frame = golden.to_vec();
    let underlay = Underlay {
        csum: false,
        ..underlay_of(golden)
    };
    encapsulate(&mut frame, &underlay, &d.meta, d.src_port).unwrap();
    assert_eq!(&frame[40..42], &[0, 0]);
    assert_eq!(decapsulate(&frame).unwrap(), d);
}

#[test]
fn ingress_key_is_15_bits_and_vni_24() {
    let m = Metadata {
        vni: 0x1ff_ffff,
        ingress: 0xffff,
        egress: 0x8001,
    };
    assert_eq!(m.option_data(), [0x7f, 0xff, 0x80, 0x01]);
    let golden = pcap_frames(ICMP)[0];
    let mut frame = golden.to_vec();
    encapsulate(&mut frame, &underlay_of(golden), &m, 40000).unwrap();
    let d = decapsulate(&frame).unwrap();
    assert_eq!(
        d.meta,
        Metadata {
            vni: 0xff_ffff,
            ingress: 0x7fff,
            egress: 0x8001
        }
    );
}

#[test]
fn source_ports_stay_in_ovs_range() {
    for hash in [0, 1, 0x8000_0000, u32::MAX, 0x1234_5678] {
        let p = source_port(hash);
        assert!((32768..61000).contains(&p), "{hash:#x} → {p}");
    }
    assert_ne!(source_port(0x1000_0000), source_port(0x9000_0000));
}

#[test]
fn too_short_buffers_are_refused() {
    let mut b = [0u8; OVERHEAD + 13];
    let meta = Metadata {
        vni: 1,
        ingress: 1,
        egress: 2,
    };
    assert_eq!(
        encapsulate(&mut b, &underlay_of(&[0; 64]), &meta, 1),
        Err(TooLong)
    );
    let mut huge = vec![0u8; 70_000];
    assert_eq!(
        encapsulate(&mut huge, &underlay_of(&[0; 64]), &meta, 1),
        Err(TooLong)
    );
}

#[test]
fn every_prefix_of_a_golden_frame_is_refused_without_panic() {
    let golden = pcap_frames(ICMP)[0];
    for n in 0..golden.len() {
        assert!(decapsulate(&golden[..n]).is_err(), "prefix {n}");
    }
}

/// A description, the expected verdict, and the edit of a golden frame.
type Case = (&'static str, Malformed, fn(&mut Vec<u8>));

fn with_geneve(golden: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = golden.to_vec();
    edit(&mut f);
    // Zero checksum: the edits are judged, not the checksum.
    f[40..42].copy_from_slice(&[0, 0]);
    f
}

#[test]
fn malformed_geneve_is_told_apart() {
    use Malformed::*;
    let golden = pcap_frames(ICMP)[0];
    let bad = |f: &[u8]| decapsulate(f).err();
    let mut corrupt = golden.to_vec();
    corrupt[100] ^= 1;
    assert_eq!(bad(&corrupt), Some(NotDecapsulated::Malformed(Checksum)));
    let cases: [Case; 6] = [
        ("version 1", Version, |f| f[42] |= 0x40),
        ("OAM", Oam, |f| f[43] |= 0x80),
        ("IPv4 payload", Protocol, |f| {
            f[44..46].copy_from_slice(&[0x08, 0x00])
        }),
        ("other class", NoOvnOption, |f| {
            f[50..52].copy_from_slice(&[0x01, 0x03]);
            f[52] = 0x01;
        }),
        ("critical unknown", UnknownCritical, |f| f[52] = 0x81),
        ("fragment", Fragment, |f| f[20] |= 0x20),
    ];
    for (what, expected, edit) in cases {
        let f = with_geneve(golden, edit);
        assert_eq!(
            bad(&f),
            Some(NotDecapsulated::Malformed(expected)),
            "{what}"
        );
    }
    // An option length running past the header.
    let f = with_geneve(golden, |f| f[53] = 0x1f);
    assert_eq!(bad(&f), Some(NotDecapsulated::Malformed(Truncated)));
    // Another UDP port, another protocol, ARP: not Geneve at all.
    for edit in [
        (|f: &mut Vec<u8>| f[36..38].copy_from_slice(&[0x12, 0xb5])) as fn(&mut Vec<u8>),
        |f| f[23] = 6,
        |f| f[12..14].copy_from_slice(&[0x08, 0x06]),
    ] {
        assert_eq!(
            bad(&with_geneve(golden, edit)),
            Some(NotDecapsulated::NotGeneve)
        );
    }
}
