//! Frames through the userspace pipeline (`pipeline::Pipeline::process_batch`) on the
//! lab's ports, a batch at a time, each frame placed in its UMEM chunk where the input
//! says, with or without XDP metadata. It must not panic, must count every frame once,
//! and must neither leak nor duplicate a chunk (what `tests/pipeline_malformed.rs` checks
//! with proptest, here driven by coverage).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ovnest_common::{PortKey, XdpMeta, meta::XDP_META_MAGIC};
use ovnest_datapath::{
    pipeline::{Desc, FramePool, NoServices, Pipeline, Snapshot, TxBatches, Umem, put_meta},
    tables::{Attachment, LogicalPort},
};

const FRAME: u32 = 2048;
const CHUNKS: usize = 64;
const BATCH: usize = 8;

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

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let child = |tag| Attachment::Child {
            parent_ifindex: 15,
            tag,
        };
        Snapshot::build(
            1,
            &[
                port(1, 0x29, Attachment::Remote, false),
                port(2, 0x30, Attachment::Vif { ifindex: 11 }, true),
                port(3, 0x31, Attachment::Vif { ifindex: 12 }, false),
                port(4, 0x32, Attachment::Vif { ifindex: 15 }, true),
                port(5, 0x33, child(51), true),
                port(6, 0x34, child(52), false),
            ],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let ingress = [11, 12, 15, 99][usize::from(control & 3)];
    let snap = snapshot();
    let mut area = vec![0u8; CHUNKS * FRAME as usize];
    let umem = Umem::new(&mut area, FRAME).expect("umem");
    let mut pool = FramePool::with_capacity(CHUNKS, 256);
    for c in BATCH..CHUNKS {
        pool.give((c * FRAME as usize) as u64);
    }
    let mut tx = TxBatches::new(CHUNKS);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, NoServices);

    // Each frame: a length byte, a placement byte, then that many bytes.
    let mut rx = Vec::new();
    while rx.len() < BATCH {
        let [len, place, ref tail @ ..] = *rest else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        let offset = [0usize, 2, 16, 256][usize::from(place & 3)];
        let base = rx.len() * FRAME as usize;
        let (chunk, _) = p.umem.chunk_mut(base as u64).expect("chunk");
        chunk[offset..offset + bytes.len()].copy_from_slice(bytes);
        if place & 4 != 0 {
            let meta = XdpMeta {
                magic: XDP_META_MAGIC,
                ingress: PortKey {
                    datapath: 1,
                    port: u32::from(place >> 5),
                },
                vid: u16::from(place >> 3 & 3) * 26,
                // The length byte's top bit: whether XDP found the frame cacheable.
                flags: u16::from(len & 0x80 != 0),
            };
            let _ = put_meta(chunk, offset, &meta);
        }
        // A length running past the chunk, as a broken ring would deliver it.
        let len = if control & 0x80 != 0 && rx.is_empty() {
            FRAME
        } else {
            bytes.len() as u32
        };
        rx.push(Desc::new((base + offset) as u64, len));
    }
    if rx.is_empty() {
        return;
    }
    p.process_batch(snap, ingress, &rx);

    assert_eq!(
        p.counters.frames(),
        rx.len() as u64,
        "every frame counted once"
    );
    let queued = p.tx.len();
    let mut chunks: Vec<u64> =
        p.tx.entries()
            .iter()
            .map(|e| e.desc.addr & !(u64::from(FRAME) - 1))
            .collect();
    let free = p.pool.len();
    let mut pool = p.pool;
    while let Some(c) = pool.take() {
        chunks.push(c);
    }
    chunks.sort_unstable();
    chunks.dedup();
    assert_eq!(queued + free, CHUNKS - BATCH + rx.len(), "chunk leaked");
    assert_eq!(chunks.len(), queued + free, "chunk used twice");
});
