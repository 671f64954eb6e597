//! The userspace datapath: per batch of received frames, the XDP fast path's semantics
//! (the XDP program in `ebpf/xdp` is the spec: same steps, same drop reasons, same
//! [`Counter`]s) plus what only userspace does: services and flooding.
//!
//! Per frame, in OVN's order:
//! 1. classify `(ingress interface, vid)` → logical port, or take the classification the
//!    XDP program left in [`XdpMeta`](ovnest_common::XdpMeta) (then the tag is already
//!    stripped and port security already applied);
//! 2. port security on the source MAC;
//! 3. ARP responder (ls_in_arp_rsp): reply in place, back out of the ingress interface;
//! 4. L2 lookup of known unicast to a local port: strip / push / rewrite the tag, send on
//!    the port's interface (hairpin when it is the ingress one);
//! 5. services ([`Service`]): DHCP and the like;
//! 6. flood: broadcast and multicast to every local port of the switch, unknown unicast to
//!    the ports with `unknown`, never back to the sender; one copy per port, each with its
//!    own tag (several copies onto one parent interface).
//!
//! With OVN's logical flows in the snapshot (`hybrid`, `afxdp`), steps 3 to 6 are the
//! logical pipeline's decision instead (`logical`); a frame the XDP decision cache keyed
//! and missed has its decision installed there after the batch ([`crate::cache`]).
//!
//! No step panics or allocates: frame reads are bounds-checked, descriptors go to fixed
//! capacity lists, flood copies come from a fixed [`FramePool`].

mod counters;
mod logical;
mod lookup;
mod service;
mod snapshot;
mod tunnel;
mod tx;
mod umem;

pub use counters::{
    FloodStats, LocalCounters, LogicalOutcome, NamedCounters, SharedCounters, SocketStats, Verdict,
};
pub use logical::{Controller, LogicalView, NoController, Scratch};
pub use lookup::FlatMap;
pub use service::{NoServices, Punt, PuntFrame, Service};
pub use snapshot::{
    ArpAnswer, Device, FloodGroup, FloodMember, NO_DEVICE, PortInfo, SLEEPING, Snapshot,
    SnapshotCell,
};
pub use tunnel::{TunnelPeer, TunnelTable};
pub use tx::TxBatches;
pub use umem::{Desc, FramePool, Umem, put_meta, take_meta};

use ovnest_common::Counter;

use crate::wire::{ArpPacket, EthernetFrame, ethertype};

/// Frames per RX batch the poll loop uses (and the benches measure).
pub const BATCH: usize = 64;

const ETH_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
const TAG_LEN: usize = 4;

/// The interface a batch arrived on, looked up once per batch.
#[derive(Clone, Copy, Debug)]
struct IngressDevice<'s> {
    index: u16,
    device: &'s Device,
}

/// A classified frame.
#[derive(Clone, Copy, Debug)]
struct Ingress<'s> {
    /// Port index in the snapshot.
    port: u32,
    info: &'s PortInfo,
    /// Device the frame arrived on.
    device: u16,
    /// VID of the tag the frame carries now (0: untagged; always 0 after XDP).
    vid: u16,
    /// XDP keyed the frame and missed in the decision cache: its decision may be
    /// installed.
    cacheable: bool,
}

/// Where a frame sits: `off..off + len` inside the chunk starting at `chunk`.
#[derive(Clone, Copy, Debug)]
struct Frame {
    chunk: u64,
    off: usize,
    len: usize,
}

impl Frame {
    fn desc(&self) -> Desc {
        Desc::new(self.chunk + self.off as u64, self.len as u32)
    }
}

/// The first 16 bytes of a frame as the hot loop reads them: two 8-byte loads give both
/// MACs (packed as [`snapshot::mac_bits`] packs them), the outer ethertype and the TCI.
#[derive(Clone, Copy, Debug)]
struct Header {
    dst: u64,
    src: u64,
    ethertype: u16,
    /// Bytes 14..16: the TCI of a tagged frame; meaningless otherwise (0 when short).
    tci: u16,
}

const MAC_MASK: u64 = (1 << 48) - 1;

impl Header {
    /// `None` when shorter than an Ethernet header.
    #[inline(always)]
    fn read(data: &[u8]) -> Option<Header> {
        let words = match data.get(..16) {
            Some(bytes) => bytes,
            None if data.len() >= ETH_LEN => {
                let mut padded = [0u8; 16];
                padded[..data.len()].copy_from_slice(data);
                return Some(Header::from_words(&padded));
            }
            None => return None,
        };
        let words: &[u8; 16] = words.try_into().ok()?;
        Some(Header::from_words(words))
    }

    #[inline(always)]
    fn from_words(bytes: &[u8; 16]) -> Header {
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            b0,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
        ] = *bytes;
        let w0 = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
        let w1 = u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
        Header {
            dst: w0 & MAC_MASK,
            src: (w0 >> 48) | (w1 & 0xffff_ffff) << 16,
            ethertype: u16::from_be_bytes([b4, b5]),
            tci: u16::from_be_bytes([b6, b7]),
        }
    }
}

/// Group bit of the first octet of a packed MAC.
#[inline(always)]
fn is_group(mac: u64) -> bool {
    mac & 1 != 0
}

/// One poll thread's datapath state: its UMEM, free chunks, transmit lists, counters and
/// services. [`Pipeline::process_batch`] is the hot loop's body.
pub struct Pipeline<'u, S: Service = NoServices> {
    pub umem: Umem<'u>,
    pub pool: FramePool,
    pub tx: TxBatches,
    pub counters: LocalCounters,
    pub services: S,
    /// Runs controller actions of logical decisions (pinctrl).
    pub controller: Box<dyn Controller + Send>,
    /// Installs the logical pipeline's decisions into the XDP decision cache.
    pub cache: Option<crate::cache::CacheWriter>,
    /// The connection table, shared by the datapath's poll threads.
    pub conntrack: std::sync::Arc<crate::conntrack::Shared>,
    /// The table's clock for this batch, read at the batch's first frame that needs it.
    ct_now: Option<u64>,
    /// The snapshot generation whose ports the table's zones were last checked against.
    ct_generation: Option<u64>,
    scratch: Scratch,
}

impl<'u, S: Service> Pipeline<'u, S> {
    pub fn new(umem: Umem<'u>, pool: FramePool, tx: TxBatches, services: S) -> Self {
        Pipeline {
            umem,
            pool,
            tx,
            counters: LocalCounters::new(),
            services,
            controller: Box::new(NoController),
            cache: None,
            conntrack: Default::default(),
            ct_now: None,
            ct_generation: None,
            scratch: Scratch::new(),
        }
    }

    /// Housekeeping: expires up to `budget` connections of the shared table.
    pub fn conntrack_housekeeping(&mut self, budget: usize) -> usize {
        let now = self.conntrack.now();
        self.conntrack.lock(now).expire(budget)
    }

    /// Processes frames received on interface `ingress_ifindex`. Each descriptor either
    /// ends up in [`Pipeline::tx`] (maybe with several copies) or its chunk goes back to
    /// [`Pipeline::pool`]; each frame bumps exactly one [`Verdict`].
    pub fn process_batch(&mut self, snapshot: &Snapshot, ingress_ifindex: u32, rx: &[Desc]) {
        if snapshot
            .tunnels()
            .is_some_and(|t| t.underlay_ifindex == ingress_ifindex)
        {
            self.ct_now = None;
            for desc in rx {
                let verdict = self.tunnel_in(snapshot, *desc);
                self.counters.count(verdict);
            }
            if let Some(cache) = self.cache.as_mut()
                && cache.pending() > 0
            {
                cache.flush();
            }
            return;
        }
        let ingress = snapshot.device_of(ingress_ifindex).and_then(|index| {
            Some(IngressDevice {
                index,
                device: snapshot.device(index)?,
            })
        });
        self.ct_now = None;
        for desc in rx {
            let verdict = self.process(snapshot, ingress, *desc);
            self.counters.count(verdict);
        }
        if let Some(cache) = self.cache.as_mut()
            && cache.pending() > 0
        {
            cache.flush();
        }
    }

    #[inline(always)]
    fn drop_frame(&mut self, chunk: u64, verdict: Verdict) -> Verdict {
        self.pool.give(chunk);
        verdict
    }

    /// Steps 1 to 4 inline (the paths that carry most traffic); ARP, services and
    /// flooding out of line.
    #[inline(always)]
    fn process(
        &mut self,
        snap: &Snapshot,
        ingress_device: Option<IngressDevice<'_>>,
        desc: Desc,
    ) -> Verdict {
        let chunk = self.umem.chunk_start(desc.addr);
        let Some((bytes, off)) = self.umem.chunk_mut(desc.addr) else {
            // Not a chunk of ours: nothing to give back.
            return Verdict::Fast(Counter::DropTruncated);
        };
        let len = desc.len as usize;
        if off + len > bytes.len() {
            self.pool.give(chunk);
            return Verdict::Fast(Counter::DropTruncated);
        }
        let meta = take_meta(bytes, off);
        let data = &mut bytes[off..off + len];
        let Some(header) = Header::read(data) else {
            self.pool.give(chunk);
            return Verdict::Fast(Counter::DropTruncated);
        };
        let classified = match meta {
            Some(meta) => from_meta(snap, ingress_device, &meta),
            None => classify(snap, ingress_device, &header, data, &mut self.counters),
        };
        let ingress = match classified {
            Ok(ingress) => ingress,
            Err(counter) => {
                self.pool.give(chunk);
                return Verdict::Fast(counter);
            }
        };
        let frame = Frame { chunk, off, len };
        // With logical flows, the pipeline decides everything.
        if let Some(view) = snap.logical() {
            return self.logical(snap, view, &ingress, frame);
        }
        let inner_type = if ingress.vid != 0 {
            u16::from_be_bytes([data[16], data[17]])
        } else {
            header.ethertype
        };

        // Step 3: ARP responder, before the L2 lookup (unicast requests included).
        if inner_type == ethertype::ARP
            && let Some((from, to)) = arp_reply_in_place(snap, &ingress, data)
        {
            let (device, slot) = (ingress.device, ingress.info.stats_slot);
            let verdict = Verdict::Fast(Counter::ArpReplied);
            return emit(
                bytes,
                frame,
                (from, to),
                device,
                slot,
                verdict,
                &mut self.tx,
                &mut self.counters,
                &mut self.pool,
            );
        }

        // Step 4: known unicast to a local port.
        if !is_group(header.dst)
            && let Some(out_index) = snap.lookup_mac(ingress.info.datapath, header.dst)
        {
            if out_index == ingress.port {
                self.counters.port_drop(ingress.info.stats_slot);
                return self.drop_frame(chunk, Verdict::Fast(Counter::DropLoop));
            }
            if let Some(out) = snap.port(out_index).filter(|p| p.is_local()) {
                let verdict = if out.device == ingress.device {
                    Counter::Hairpinned
                } else {
                    Counter::Redirected
                };
                let retag = (ingress.vid, out.tag);
                let (tx, counters, pool) = (&mut self.tx, &mut self.counters, &mut self.pool);
                return emit(
                    bytes,
                    frame,
                    retag,
                    out.device,
                    out.stats_slot,
                    Verdict::Fast(verdict),
                    tx,
                    counters,
                    pool,
                );
            }
        }
        self.unfinished(snap, &ingress, frame, is_group(header.dst))
    }

    /// Steps 5 and 6 for frames the forwarding stages did not finish.
    #[inline(never)]
    fn unfinished(
        &mut self,
        snap: &Snapshot,
        ingress: &Ingress<'_>,
        mut frame: Frame,
        group: bool,
    ) -> Verdict {
        let Some((bytes, _)) = self.umem.chunk_mut(frame.chunk) else {
            return Verdict::Fast(Counter::DropTruncated);
        };
        // Services and flooding work on the untagged frame.
        if ingress.vid != 0 {
            match retag(bytes, frame.off, frame.len, ingress.vid, 0) {
                Some((off, len)) => (frame.off, frame.len) = (off, len),
                None => return self.drop_frame(frame.chunk, Verdict::Fast(Counter::DropRewrite)),
            }
        }

        // Step 5: services.
        let mut punt = PuntFrame {
            ingress: ingress.info,
            buffer: &mut bytes[frame.off..],
            len: frame.len,
        };
        match self.services.handle(&mut punt) {
            Punt::Pass => {}
            Punt::Consumed => return self.drop_frame(frame.chunk, Verdict::Serviced),
            Punt::Reply { len } => {
                if len < ETH_LEN || len > punt.buffer.len() {
                    return self.drop_frame(frame.chunk, Verdict::Fast(Counter::DropRewrite));
                }
                frame.len = len;
                return self.send(
                    frame,
                    0,
                    ingress.info.tag,
                    ingress.device,
                    ingress.info.stats_slot,
                    Verdict::Serviced,
                );
            }
        }

        // Step 6: flood.
        self.flood(snap, ingress, frame, group)
    }

    /// Retags `frame` from `from_vid` to `to_vid` and queues it on `device`.
    #[inline(always)]
    fn send(
        &mut self,
        mut frame: Frame,
        from_vid: u16,
        to_vid: u16,
        device: u16,
        stats_slot: u32,
        verdict: Verdict,
    ) -> Verdict {
        let Some((bytes, _)) = self.umem.chunk_mut(frame.chunk) else {
            return Verdict::Fast(Counter::DropTruncated);
        };
        match retag(bytes, frame.off, frame.len, from_vid, to_vid) {
            Some((off, len)) => (frame.off, frame.len) = (off, len),
            None => return self.drop_frame(frame.chunk, Verdict::Fast(Counter::DropRewrite)),
        }
        match self.tx.push(device, frame.desc()) {
            Ok(()) => {
                self.counters.port_tx(stats_slot, frame.len as u32);
                verdict
            }
            Err(drop) => self.drop_frame(frame.chunk, drop),
        }
    }

    /// Step 6 for an untagged frame: a copy per member of the flood group but the sender.
    /// The last receiver gets the original buffer.
    fn flood(
        &mut self,
        snap: &Snapshot,
        ingress: &Ingress<'_>,
        frame: Frame,
        group: bool,
    ) -> Verdict {
        let Some(flood) = snap.flood_group(ingress.info.datapath) else {
            return self.drop_frame(frame.chunk, Verdict::Flooded);
        };
        let members = if group { &flood.all } else { &flood.unknown };
        let Some(last) = members.iter().rposition(|m| m.port != ingress.port) else {
            return self.drop_frame(frame.chunk, Verdict::Flooded);
        };
        let headroom = self.pool.headroom() as usize;
        for member in &members[..last] {
            if member.port == ingress.port {
                continue;
            }
            let Some(copy) = self.pool.take() else {
                self.counters.flood.dropped += 1;
                continue;
            };
            let Some(len) = self.copy_frame(&frame, copy, headroom, member.tag) else {
                self.pool.give(copy);
                self.counters.flood.dropped += 1;
                continue;
            };
            match self
                .tx
                .push(member.device, Desc::new(copy + headroom as u64, len as u32))
            {
                Ok(()) => {
                    self.counters.port_tx(member.stats_slot, len as u32);
                    self.counters.flood.copies += 1;
                }
                Err(_) => {
                    self.pool.give(copy);
                    self.counters.flood.dropped += 1;
                }
            }
        }
        let member = members[last];
        let sent = self.send(
            frame,
            0,
            member.tag,
            member.device,
            member.stats_slot,
            Verdict::Flooded,
        );
        if sent == Verdict::Flooded {
            self.counters.flood.copies += 1;
        } else {
            self.counters.flood.dropped += 1;
        }
        // The frame was flooded even when its last copy could not be sent.
        Verdict::Flooded
    }

    /// Writes the untagged `frame` into chunk `copy` at `headroom`, tagged `tag` (0: none).
    /// Returns the copy's length.
    #[inline(always)]
    fn copy_frame(&mut self, frame: &Frame, copy: u64, headroom: usize, tag: u16) -> Option<usize> {
        let (src, dst) = self.umem.chunk_pair_mut(frame.chunk, copy)?;
        let src = src.get(frame.off..frame.off + frame.len)?;
        if tag == 0 {
            dst.get_mut(headroom..headroom + src.len())?
                .copy_from_slice(src);
            return Some(src.len());
        }
        let len = src.len() + TAG_LEN;
        let dst = dst.get_mut(headroom..headroom + len)?;
        dst[..12].copy_from_slice(src.get(..12)?);
        dst[12..16].copy_from_slice(&tag_bytes(tag));
        dst[16..].copy_from_slice(src.get(12..)?);
        Some(len)
    }
}

/// Step 3: OVN's ls_in_arp_rsp. Rewrites `data` into the reply in place and returns the
/// retag it needs (from, to) to go back out of the ingress interface; `None` (frame
/// untouched) when it is not a request the switch answers.
#[inline(never)]
fn arp_reply_in_place(
    snap: &Snapshot,
    ingress: &Ingress<'_>,
    data: &mut [u8],
) -> Option<(u16, u16)> {
    let l3 = if ingress.vid != 0 {
        ETH_LEN + TAG_LEN
    } else {
        ETH_LEN
    };
    let tpa = ArpPacket::new_checked(data.get(l3..)?)
        .ok()?
        .request_target()?;
    let answer = *snap.lookup_arp(ingress.info.datapath, tpa)?;
    // A port asking for its own address (duplicate address detection) is not answered.
    if answer.owner == ingress.port {
        return None;
    }
    let mut eth = EthernetFrame::new_checked(&mut *data).ok()?;
    let src = eth.src();
    eth.set_dst(src);
    eth.set_src(answer.mac);
    ArpPacket::new_checked(data.get_mut(l3..)?)
        .ok()?
        .make_reply(answer.mac, tpa);
    // XDP replies in place: an arriving tag stays byte for byte (PCP, DEI). Only a frame
    // XDP already stripped (metadata) needs its port's tag back.
    Some(if ingress.vid == ingress.info.tag {
        (0, 0)
    } else {
        (ingress.vid, ingress.info.tag)
    })
}

/// Retags the frame in `chunk` (`retag` = (from, to) VIDs) and queues it on `device`;
/// on failure its chunk goes back to `pool` and the drop is the verdict.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn emit(
    chunk: &mut [u8],
    frame: Frame,
    (from, to): (u16, u16),
    device: u16,
    stats_slot: u32,
    verdict: Verdict,
    tx: &mut TxBatches,
    counters: &mut LocalCounters,
    pool: &mut FramePool,
) -> Verdict {
    let Some((off, len)) = retag(chunk, frame.off, frame.len, from, to) else {
        pool.give(frame.chunk);
        return Verdict::Fast(Counter::DropRewrite);
    };
    match tx.push(device, Desc::new(frame.chunk + off as u64, len as u32)) {
        Ok(()) => {
            counters.port_tx(stats_slot, len as u32);
            verdict
        }
        Err(drop) => {
            pool.give(frame.chunk);
            drop
        }
    }
}

/// TPID and TCI of the tag OVN pushes: PCP and DEI 0.
#[inline(always)]
fn tag_bytes(vid: u16) -> [u8; 4] {
    let [tpid0, tpid1] = ethertype::VLAN.to_be_bytes();
    let [tci0, tci1] = vid.to_be_bytes();
    [tpid0, tpid1, tci0, tci1]
}

/// Step 1 from XDP metadata: the program already classified the frame, stripped its tag
/// and applied port security (and counted its receive). Trusted only for a port of this
/// snapshot reached through the interface the frame arrived on; otherwise dropped as
/// unknown, as the frame's tag is gone and it cannot be classified again.
#[inline(always)]
fn from_meta<'s>(
    snap: &'s Snapshot,
    ingress_device: Option<IngressDevice<'_>>,
    meta: &ovnest_common::XdpMeta,
) -> Result<Ingress<'s>, Counter> {
    let unknown = if meta.vid != 0 {
        Counter::DropUnknownTag
    } else {
        Counter::DropUnknownVif
    };
    let device = ingress_device.ok_or(unknown)?.index;
    let port = snap.port_index(meta.ingress).ok_or(unknown)?;
    let info = snap
        .port(port)
        .filter(|p| p.device == device)
        .ok_or(unknown)?;
    Ok(Ingress {
        port,
        info,
        device,
        vid: 0,
        cacheable: meta.flags & ovnest_common::meta::META_CACHEABLE != 0,
    })
}

/// Steps 1 and 2: the XDP program's `classify`, same checks in the same order.
#[inline(always)]
fn classify<'s>(
    snap: &'s Snapshot,
    ingress_device: Option<IngressDevice<'_>>,
    header: &Header,
    data: &[u8],
    counters: &mut LocalCounters,
) -> Result<Ingress<'s>, Counter> {
    let device = ingress_device.map(|d| d.device);
    let (port, vid) = match header.ethertype {
        ethertype::VLAN => {
            let Some(&[i0, i1]) = data.get(16..18).and_then(|b| <&[u8; 2]>::try_from(b).ok())
            else {
                return Err(Counter::DropTruncated);
            };
            let vid = header.tci & 0x0fff;
            if vid == 0 {
                return Err(Counter::DropVid0);
            }
            if vid == 0x0fff {
                return Err(Counter::DropVid4095);
            }
            // A second tag would be reinterpreted by whoever strips the first one.
            let inner = u16::from_be_bytes([i0, i1]);
            if inner == ethertype::VLAN || inner == ethertype::QINQ {
                return Err(Counter::DropDoubleTag);
            }
            (
                device
                    .and_then(|d| d.child(vid))
                    .ok_or(Counter::DropUnknownTag)?,
                vid,
            )
        }
        ethertype::QINQ => return Err(Counter::DropQinQ),
        _ => (
            device
                .and_then(|d| d.vif())
                .ok_or(Counter::DropUnknownVif)?,
            0,
        ),
    };
    let unknown = if vid != 0 {
        Counter::DropUnknownTag
    } else {
        Counter::DropUnknownVif
    };
    let info = snap.port(port).ok_or(unknown)?;
    // As XDP: the receive is counted on the classified port, then port security.
    counters.port_rx(info.stats_slot, data.len() as u32);
    if is_group(header.src) {
        counters.port_drop(info.stats_slot);
        return Err(Counter::DropBadSource);
    }
    if !info.allows_source(header.src) {
        counters.port_drop(info.stats_slot);
        return Err(Counter::DropPortSecurity);
    }
    let device = ingress_device.ok_or(unknown)?.index;
    Ok(Ingress {
        port,
        info,
        device,
        vid,
        cacheable: false,
    })
}

/// Makes the frame at `off..off + len` in `chunk`, carrying a tag `from` (0: none), carry
/// `to` instead (0: none). Returns its new place. `None` when a push finds no room before
/// or after the frame. Never panics: every range is checked.
#[inline(always)]
fn retag(chunk: &mut [u8], off: usize, len: usize, from: u16, to: u16) -> Option<(usize, usize)> {
    match (from, to) {
        (0, 0) => Some((off, len)),
        (_, 0) => {
            if len < ETH_LEN + TAG_LEN || off + len > chunk.len() {
                return None;
            }
            chunk.copy_within(off..off + 12, off + TAG_LEN);
            Some((off + TAG_LEN, len - TAG_LEN))
        }
        (0, vid) => {
            if len < 12 || off + len > chunk.len() {
                return None;
            }
            if off >= TAG_LEN {
                chunk.copy_within(off..off + 12, off - TAG_LEN);
                chunk[off + 8..off + 12].copy_from_slice(&tag_bytes(vid));
                Some((off - TAG_LEN, len + TAG_LEN))
            } else if off + len + TAG_LEN <= chunk.len() {
                chunk.copy_within(off + 12..off + len, off + 12 + TAG_LEN);
                chunk[off + 12..off + 16].copy_from_slice(&tag_bytes(vid));
                Some((off, len + TAG_LEN))
            } else {
                None
            }
        }
        (_, vid) => {
            let tci = chunk.get_mut(off + 14..off + 16)?;
            tci.copy_from_slice(&vid.to_be_bytes());
            Some((off, len))
        }
    }
}

#[cfg(test)]
mod tests;
