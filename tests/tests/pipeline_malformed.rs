//! The userspace pipeline on hostile input: frames of every length 0..64 and random bytes,
//! with and without a plausible Ethernet/802.1Q header, through every ingress interface.
//! It must never panic, count every frame exactly once, and neither leak nor duplicate a
//! UMEM chunk.

use ovnest_common::{PortKey, XdpMeta, meta::XDP_META_MAGIC};
use ovnest_datapath::{
    pipeline::{Desc, FramePool, NoServices, Pipeline, Snapshot, TxBatches, Umem, put_meta},
    tables::{Attachment, LogicalPort},
};
use proptest::prelude::*;

const FRAME: u32 = 2048;
const CHUNKS: usize = 256;
const BATCH: usize = 32;

fn port(key: u32, last: u8, attachment: Attachment, unknown: bool) -> LogicalPort {
    let mac = [2, 0xac, 0x10, 0xff, 1, last];
    LogicalPort {
        name: format!("p{key}"),
        key: PortKey {
            datapath: 1,
            port: key,
        },
        stats_slot: key,
        addresses: vec![(mac, vec![[172, 16, 255, last]])],
        port_security: Some(vec![mac]),
        unknown,
        attachment,
    }
}

fn snapshot() -> Snapshot {
    Snapshot::build(
        1,
        &[
            port(1, 0x29, Attachment::Remote, false),
            port(2, 0x30, Attachment::Vif { ifindex: 11 }, true),
            port(3, 0x31, Attachment::Vif { ifindex: 12 }, false),
            port(4, 0x32, Attachment::Vif { ifindex: 15 }, true),
            port(
                5,
                0x33,
                Attachment::Child {
                    parent_ifindex: 15,
                    tag: 51,
                },
                true,
            ),
            port(
                6,
                0x34,
                Attachment::Child {
                    parent_ifindex: 15,
                    tag: 52,
                },
                false,
            ),
        ],
    )
}

/// A frame: random bytes, optionally over a header the pipeline would accept, so random
/// input also reaches the later stages (ARP, L2, flood).
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        Just(Vec::new()),
        Just(vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0xac, 0x10, 0xff, 1, 0x33, 0x81, 0x00, 0x00,
            0x33, 0x08, 0x06
        ]),
        Just(vec![
            2, 0xac, 0x10, 0xff, 1, 0x34, 2, 0xac, 0x10, 0xff, 1, 0x33, 0x81, 0x00, 0x00, 0x33
        ]),
        Just(vec![
            2, 0xac, 0x10, 0xff, 1, 0x99, 2, 0xac, 0x10, 0xff, 1, 0x30, 0x08, 0x00
        ]),
        Just(vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0xac, 0x10, 0xff, 1, 0x30, 0x08, 0x06, 0, 1, 8,
            0, 6, 4, 0, 1
        ]),
    ];
    (
        header,
        0usize..64,
        proptest::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(mut h, len, tail)| {
            h.extend_from_slice(&tail);
            h.truncate(len);
            h
        })
}

/// Where a frame sits in its chunk, plus maybe XDP metadata before it.
fn placement() -> impl Strategy<Value = (usize, Option<(u32, u16)>)> {
    (
        prop_oneof![
            Just(0usize),
            Just(2),
            Just(16),
            Just(256),
            Just(FRAME as usize - 64)
        ],
        proptest::option::of((0u32..8, 0u16..60)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_counts_every_frame_once(
        frames in proptest::collection::vec((frame(), placement()), 1..BATCH),
        ingress in prop_oneof![Just(11u32), Just(12), Just(15), Just(99)],
        bogus_len in any::<bool>(),
    ) {
        let snap = snapshot();
        let mut area = vec![0u8; CHUNKS * FRAME as usize];
        let umem = Umem::new(&mut area, FRAME).unwrap();
        let mut pool = FramePool::with_capacity(CHUNKS, 256);
        for c in BATCH..CHUNKS {
            pool.give((c * FRAME as usize) as u64);
        }
        let mut tx = TxBatches::new(CHUNKS);
        tx.prepare(snap.devices().len(), |_| true, |_| {});
        let mut p = Pipeline::new(umem, pool, tx, NoServices);

        let mut rx = Vec::new();
        for (i, (bytes, (offset, meta))) in frames.iter().enumerate() {
            let base = i * FRAME as usize;
            let (chunk, _) = p.umem.chunk_mut(base as u64).unwrap();
            chunk[*offset..*offset + bytes.len()].copy_from_slice(bytes);
            if let Some((port, vid)) = meta {
                let meta = XdpMeta { magic: XDP_META_MAGIC, ingress: PortKey { datapath: 1, port: *port }, vid: *vid, flags: 0 };
                let _ = put_meta(chunk, *offset, &meta);
            }
            // Sometimes a length running past the chunk, as a broken ring would deliver.
            let len = if bogus_len && i == 0 { FRAME } else { bytes.len() as u32 };
            rx.push(Desc::new((base + offset) as u64, len));
        }
        p.process_batch(&snap, ingress, &rx);

        prop_assert_eq!(p.counters.frames(), rx.len() as u64, "{:?}", p.counters);
        let queued = p.tx.len();
        let mut chunks: Vec<u64> = p.tx.entries().iter().map(|e| e.desc.addr & !(FRAME as u64 - 1)).collect();
        let free = p.pool.len();
        let mut pool = p.pool;
        while let Some(c) = pool.take() {
            chunks.push(c);
        }
        chunks.sort_unstable();
        chunks.dedup();
        prop_assert_eq!(queued + free, CHUNKS - BATCH + rx.len(), "chunk leaked");
        prop_assert_eq!(chunks.len(), queued + free, "chunk used twice");
    }
}

#[test]
fn every_length_from_0_to_63_on_every_interface() {
    let snap = snapshot();
    for ingress in [11, 12, 15, 99] {
        for len in 0..64usize {
            for fill in [0x00u8, 0xff, 0x81, 0x88] {
                let mut area = vec![0u8; 4 * FRAME as usize];
                let umem = Umem::new(&mut area, FRAME).unwrap();
                let mut pool = FramePool::with_capacity(4, 256);
                for c in 1..4 {
                    pool.give(c * FRAME as u64);
                }
                let mut tx = TxBatches::new(16);
                tx.prepare(snap.devices().len(), |_| true, |_| {});
                let mut p = Pipeline::new(umem, pool, tx, NoServices);
                p.umem.as_mut_slice()[256..256 + len].fill(fill);
                p.process_batch(&snap, ingress, &[Desc::new(256, len as u32)]);
                assert_eq!(
                    p.counters.frames(),
                    1,
                    "len {len} fill {fill:#x} on {ingress}"
                );
                assert_eq!(
                    p.tx.len() + p.pool.len(),
                    4,
                    "len {len} fill {fill:#x} on {ingress}"
                );
            }
        }
    }
}
