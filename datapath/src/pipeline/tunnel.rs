//! Tunnels in the userspace datapath, as ovn-controller's physical layer does them:
//! the ingress pipeline's output to a port on another chassis (or a multicast group with
//! members there) leaves as a Geneve frame on the underlay interface, one per chassis
//! ([`TunnelOut`]); a Geneve frame received on the underlay from a known chassis runs
//! only the egress pipeline of the local ports it is for, then the physical layer (tags).
//!
//! The controller says which chassis exist and how to reach them ([`TunnelTable`]); the
//! snapshot holds it, and the logical view turns its remote ports into the interpreter's
//! per-port chassis numbers.

use ovnest_common::PortKey;
use ovnest_logical::{
    Interpreter, Semantics, TraceOptions, execute::TunnelOut, flow::Flow, trace::NoTrace,
};

use super::{
    Desc, Frame, Pipeline, Service, Snapshot, Verdict, counters::LogicalOutcome, take_meta,
};
use crate::{
    flow::Layers,
    geneve::{self, Metadata, NotDecapsulated, Underlay},
};

/// Another chassis this one tunnels to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPeer {
    /// Its Chassis name (for status and logs).
    pub chassis: String,
    /// Addresses and options of the tunnel to it.
    pub underlay: Underlay,
}

/// Everything the datapath needs to tunnel: the underlay interface, the other chassis,
/// and which ports are bound on which of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelTable {
    /// The interface holding this chassis's Encap.ip.
    pub underlay_ifindex: u32,
    /// Chassis number n (≥ 1) is `peers[n - 1]`.
    pub peers: Vec<TunnelPeer>,
    /// Ports bound on another chassis: (datapath key, port key) → its chassis number.
    pub remote_ports: Vec<(PortKey, u16)>,
}

impl TunnelTable {
    pub fn peer(&self, chassis: u16) -> Option<&TunnelPeer> {
        self.peers.get(usize::from(chassis).checked_sub(1)?)
    }

    /// The outer UDP source port of every copy of a frame that started the ingress
    /// pipeline as `start` (the decision cache's encapsulations hold it per entry: the
    /// key fixes `start`).
    pub fn source_port(start: &Flow) -> u16 {
        geneve::source_port(flow_hash(start))
    }

    /// Whether `ip` is the Encap.ip of a chassis this one tunnels with: frames from
    /// anyone else are not taken (OVS matches tunnel ports on remote_ip too).
    pub fn knows(&self, ip: [u8; 4]) -> bool {
        self.peers.iter().any(|p| p.underlay.remote_ip == ip)
    }
}

/// A flow hash for the outer UDP source port: the same for every frame of a flow, so
/// the underlay keeps a flow on one path and the receiver on one queue.
fn flow_hash(flow: &Flow) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in flow.w.iter() {
        h = (h ^ *w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

impl<S: Service> Pipeline<'_, S> {
    /// Sends one encapsulated copy of `frame` per tunnel copy of the decision, each with
    /// its header changes. Returns how many left.
    pub(super) fn tunnel_out(
        &mut self,
        snap: &Snapshot,
        tunnels: &[TunnelOut],
        frame: Frame,
        layers: Layers,
        start: &Flow,
    ) -> u32 {
        let (Some(table), Some(device), Some(view)) =
            (snap.tunnels(), snap.underlay_device(), snap.logical())
        else {
            self.counters.logical(LogicalOutcome::TunnelNoPeer);
            return 0;
        };
        let headroom = self.pool.headroom() as usize;
        let src_port = TunnelTable::source_port(start);
        let mut sent = 0;
        for t in tunnels {
            let Some(peer) = table.peer(t.chassis) else {
                self.counters.logical(LogicalOutcome::TunnelNoPeer);
                continue;
            };
            let underlay = peer.underlay;
            let meta = Metadata {
                vni: view.pipeline.datapath(t.dp).key,
                ingress: t.flow.reg(14) as u16,
                egress: t.outport_key as u16,
            };
            let Some(copy) = self.pool.take() else {
                self.counters.flood.dropped += 1;
                continue;
            };
            let inner_at = headroom + geneve::OVERHEAD;
            let Some(len) = self.copy_frame(&frame, copy, inner_at, 0) else {
                self.pool.give(copy);
                continue;
            };
            let inner = Frame {
                chunk: copy,
                off: inner_at,
                len,
            };
            if !self.rewrite(inner, layers, start, &t.flow) {
                self.pool.give(copy);
                continue;
            }
            let encapsulated = self
                .umem
                .chunk_mut(copy)
                .and_then(|(bytes, _)| bytes.get_mut(headroom..inner_at + len))
                .is_some_and(|outer| {
                    geneve::encapsulate(outer, &underlay, &meta, src_port).is_ok()
                });
            if !encapsulated {
                self.pool.give(copy);
                self.counters.logical(LogicalOutcome::TunnelNoPeer);
                continue;
            }
            let out = Frame {
                chunk: copy,
                off: headroom,
                len: geneve::OVERHEAD + len,
            };
            let verdict = Verdict::Logical(LogicalOutcome::TunnelCopy);
            if self.send(out, 0, 0, device, u32::MAX, verdict) == verdict {
                self.counters.logical(LogicalOutcome::TunnelCopy);
                sent += 1;
            }
        }
        sent
    }

    /// A frame received on the underlay interface: decapsulated, run through the egress
    /// pipeline of the local ports it is for, delivered with their tags.
    pub(super) fn tunnel_in(&mut self, snap: &Snapshot, desc: Desc) -> Verdict {
        let chunk = self.umem.chunk_start(desc.addr);
        let Some((bytes, off)) = self.umem.chunk_mut(desc.addr) else {
            return Verdict::Logical(LogicalOutcome::Malformed);
        };
        let len = desc.len as usize;
        if off + len > bytes.len() {
            return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::Malformed));
        }
        let cacheable = take_meta(bytes, off)
            .is_some_and(|m| m.flags & ovnest_common::meta::META_CACHEABLE != 0);
        let decap = match geneve::decapsulate(&bytes[off..off + len]) {
            Ok(d) => d,
            Err(NotDecapsulated::NotGeneve) => {
                return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::TunnelNotGeneve));
            }
            Err(NotDecapsulated::Malformed(_)) => {
                return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::TunnelMalformed));
            }
        };
        let (Some(table), Some(view)) = (snap.tunnels(), snap.logical()) else {
            return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::TunnelUnknownPeer));
        };
        if !table.knows(decap.remote_ip) {
            return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::TunnelUnknownPeer));
        }
        let Some(dp) = view.pipeline.datapath_by_key(decap.meta.vni) else {
            return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::NoDatapath));
        };
        let frame = Frame {
            chunk,
            off: off + decap.inner.start,
            len: decap.inner.len(),
        };
        let port = PortKey {
            datapath: decap.meta.vni,
            port: u32::from(decap.meta.ingress),
        };
        let Some((mut flow, layers)) =
            crate::flow::ingress(&bytes[frame.off..frame.off + frame.len], port)
        else {
            return self.drop_frame(chunk, Verdict::Logical(LogicalOutcome::Malformed));
        };
        flow.set_reg(15, u32::from(decap.meta.egress));
        let start = flow;
        let pipeline = &*view.pipeline;
        // The egress pipeline's ct() runs in the local outport's zone.
        let shared = &*self.conntrack;
        let now = *self.ct_now.get_or_insert_with(|| shared.now());
        let related =
            super::logical::quoted_by(&flow, &bytes[frame.off..frame.off + frame.len], &layers);
        let mut tracker = shared.tracker(now, related);
        let decision = std::mem::take(&mut self.scratch.decision);
        let mut it = Interpreter::with_decision(
            pipeline,
            NoTrace,
            Semantics::Chassis,
            TraceOptions::default(),
            decision,
        )
        .with_remote_ports(&view.remote)
        .with_conntrack(&mut tracker);
        it.run_from_tunnel(dp, &mut flow);
        let mut decision = it.into_decision();
        let ct = tracker.finish();
        // A frame XDP keyed and missed: the entry its next frames will hit, as the VIF
        // path's (the key adds the option's egress port and the sender).
        let entry = match (&self.cache, cacheable) {
            (Some(_), true) => crate::cache::decide_tracked(
                snap,
                view,
                &decision,
                &start,
                snap.generation(),
                ct.as_ref().map(|(deps, n)| &deps[..*n]),
            )
            .filter(|a| a.kind != ovnest_common::cache::ACTION_ENCAP)
            .zip(crate::cache::key::of_tunnel(
                &start,
                u32::from(decap.meta.egress),
                decap.remote_ip,
            )),
            _ => None,
        };
        let outcome = if let Some(refused) = self.refused(pipeline, &decision) {
            refused
        } else {
            if !decision.controller.is_empty() {
                self.controller_ops(snap, view, &decision, frame);
            }
            self.deliver(snap, view, &decision.deliveries, frame, layers, &start)
        };
        decision.clear();
        self.scratch.decision = decision;
        if let (Some((action, key)), Some(cache)) = (entry, self.cache.as_mut())
            && matches!(
                outcome,
                LogicalOutcome::Delivered
                    | LogicalOutcome::DeliveredTxFull
                    | LogicalOutcome::Dropped
                    | LogicalOutcome::NotLocal
            )
        {
            cache.push(crate::cache::Key::Tunnel(key), action);
        }
        if !matches!(
            outcome,
            LogicalOutcome::Delivered | LogicalOutcome::DeliveredTxFull
        ) {
            self.pool.give(chunk);
        }
        Verdict::Logical(outcome)
    }
}
