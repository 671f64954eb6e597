//! The logical pipeline in the userspace datapath: a classified frame is read into a
//! flow, run through OVN's compiled logical flows (ingress, egress, patch ports into
//! routers and back) and the [`Decision`] is carried out: each delivery to a local port
//! gets the header changes the pipeline made and its port's tag, controller actions go
//! to the [`Controller`], and a frame whose decision needs something this datapath
//! cannot do is dropped and counted by the action's name. Nothing is forwarded that the
//! pipeline did not decide.

use std::sync::Arc;

use ovnest_logical::{
    Decision, Interpreter, Semantics, TraceOptions,
    execute::ControllerOp,
    flow::Flow,
    pipeline::{DpId, Pipeline as Logical, PortId},
    trace::NoTrace,
};
use rustc_hash::FxHashMap;

use super::{
    ETH_LEN, Frame, Ingress, Pipeline, Service, Snapshot, Verdict, counters::LogicalOutcome, retag,
};
use crate::flow::{self, Layers};

/// The logical pipeline and how its ports map onto this snapshot's ports.
#[derive(Debug)]
pub struct LogicalView {
    pub pipeline: Arc<Logical>,
    /// Snapshot port index → its datapath in the pipeline.
    ingress: Vec<Option<DpId>>,
    /// Pipeline port → snapshot port index, for the ports bound here.
    egress: FxHashMap<PortId, u32>,
    /// Pipeline port → the chassis it is bound on when that is another one (0: not).
    pub(super) remote: Vec<u16>,
}

impl LogicalView {
    /// The snapshot port index of pipeline port `port`, when it is bound here.
    pub fn port_index(&self, port: PortId) -> Option<u32> {
        self.egress.get(&port).copied()
    }

    pub fn new(pipeline: Arc<Logical>, snap: &Snapshot) -> LogicalView {
        let mut ingress = Vec::with_capacity(snap.ports().len());
        let mut egress = FxHashMap::default();
        for (i, p) in snap.ports().iter().enumerate() {
            let dp = pipeline.datapath_by_key(p.key.datapath);
            ingress.push(dp);
            if let Some(dp) = dp
                && let Some(id) = pipeline.port_id_by_key(dp, p.key.port)
            {
                egress.insert(id, i as u32);
            }
        }
        let mut remote = Vec::new();
        for (key, chassis) in snap.tunnels().map_or(&[][..], |t| &t.remote_ports) {
            if let Some(dp) = pipeline.datapath_by_key(key.datapath)
                && let Some(id) = pipeline.port_id_by_key(dp, key.port)
            {
                let id = id as usize;
                if remote.len() <= id {
                    remote.resize(id + 1, 0);
                }
                remote[id] = *chassis;
            }
        }
        LogicalView {
            pipeline,
            ingress,
            egress,
            remote,
        }
    }
}

/// Runs controller actions (pinctrl) for the userspace datapath: frames it produces are
/// pushed to `out` as (datapath, logical port, bytes) for the physical layer.
pub trait Controller {
    fn handle(
        &mut self,
        pipeline: &Logical,
        frame: &[u8],
        op: &ControllerOp,
        out: &mut Vec<(DpId, PortId, Vec<u8>)>,
    ) -> Result<(), &'static str>;

    /// The controller's timers (pinctrl's health-check probes): frames due at `now` go
    /// to `out`; returns when it next has something due, if ever.
    fn run_timers(
        &mut self,
        _pipeline: &Logical,
        _now: std::time::Instant,
        _out: &mut Vec<(DpId, PortId, Vec<u8>)>,
    ) -> Option<std::time::Instant> {
        None
    }
}

/// No controller: controller actions are counted and their frames dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoController;

impl Controller for NoController {
    fn handle(
        &mut self,
        _: &Logical,
        _: &[u8],
        _: &ControllerOp,
        _: &mut Vec<(DpId, PortId, Vec<u8>)>,
    ) -> Result<(), &'static str> {
        Err("no controller")
    }
}

/// Scratch space reused frame after frame, so the slow path does not allocate in the
/// common case.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) decision: Decision,
    generated: Vec<(DpId, PortId, Vec<u8>)>,
}

impl<S: Service> Pipeline<'_, S> {
    /// The logical path for a classified, untagged `frame`.
    pub(super) fn logical(
        &mut self,
        snap: &Snapshot,
        view: &LogicalView,
        ingress: &Ingress<'_>,
        mut frame: Frame,
    ) -> Verdict {
        let Some((bytes, _)) = self.umem.chunk_mut(frame.chunk) else {
            return Verdict::Logical(LogicalOutcome::Malformed);
        };
        if ingress.vid != 0 {
            match retag(bytes, frame.off, frame.len, ingress.vid, 0) {
                Some((off, len)) => (frame.off, frame.len) = (off, len),
                None => {
                    return self
                        .drop_frame(frame.chunk, Verdict::Logical(LogicalOutcome::Malformed));
                }
            }
        }
        let data = &bytes[frame.off..frame.off + frame.len];
        let Some(dp) = view.ingress.get(ingress.port as usize).copied().flatten() else {
            return self.drop_frame(frame.chunk, Verdict::Logical(LogicalOutcome::NoDatapath));
        };
        let Some((mut flow, layers)) = flow::ingress(data, ingress.info.key) else {
            return self.drop_frame(frame.chunk, Verdict::Logical(LogicalOutcome::Malformed));
        };
        let start = flow;
        let pipeline = &*view.pipeline;
        if self.ct_generation != Some(snap.generation()) {
            self.ct_generation = Some(snap.generation());
            flush_gone_zones(&self.conntrack, pipeline);
        }
        let shared = &*self.conntrack;
        if !shared.has_mirror()
            && let Some(mirror) = self.cache.as_mut().and_then(|c| c.ct_mirror())
        {
            shared.attach_mirror(Box::new(mirror));
        }
        let now = *self.ct_now.get_or_insert_with(|| shared.now());
        let related = quoted_by(&flow, data, &layers);
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
        it.run(dp, &mut flow);
        let mut decision = it.into_decision();
        if let (Some(cache), Some((len, stats))) = (self.cache.as_ref(), tracker.table_stats()) {
            cache.publish_conntrack(len, &stats);
        }
        let ct = tracker.finish();
        // A frame XDP keyed and missed: the entry its next frames will hit. A decision
        // that went through conntrack is cached with the established connections it
        // met, or holds for this frame only.
        if decision.conntrack
            && ct.is_none()
            && let Some(cache) = self.cache.as_ref()
            && ingress.cacheable
        {
            cache.count_conntrack();
        }
        let entry = match (&self.cache, ingress.cacheable) {
            (Some(_), true) => crate::cache::decide_tracked(
                snap,
                view,
                &decision,
                &start,
                snap.generation(),
                ct.as_ref().map(|(deps, n)| &deps[..*n]),
            )
            .zip(<crate::cache::Key as crate::cache::FromFlow>::from_flow(
                &start,
            )),
            _ => None,
        };

        let verdict = if let Some(refused) = self.refused(pipeline, &decision) {
            refused
        } else {
            if !decision.controller.is_empty() {
                self.controller_ops(snap, view, &decision, frame);
            }
            let tunnelled = if decision.tunnels.is_empty() {
                0
            } else {
                self.tunnel_out(snap, &decision.tunnels, frame, layers, &start)
            };
            match self.deliver(snap, view, &decision.deliveries, frame, layers, &start) {
                LogicalOutcome::Dropped | LogicalOutcome::NotLocal if tunnelled > 0 => {
                    LogicalOutcome::Tunnelled
                }
                outcome => outcome,
            }
        };
        decision.clear();
        self.scratch.decision = decision;
        if let (Some((action, key)), Some(cache)) = (entry, self.cache.as_mut())
            && if action.kind == ovnest_common::cache::ACTION_ENCAP {
                verdict == LogicalOutcome::Tunnelled
            } else {
                matches!(
                    verdict,
                    LogicalOutcome::Delivered
                        | LogicalOutcome::DeliveredTxFull
                        | LogicalOutcome::Dropped
                        | LogicalOutcome::NotLocal
                )
            }
        {
            cache.push_decision(snap, key, action);
        }
        // A delivered frame's buffer is queued (or was given back by a full queue).
        if !matches!(
            verdict,
            LogicalOutcome::Delivered | LogicalOutcome::DeliveredTxFull
        ) {
            self.pool.give(frame.chunk);
        }
        Verdict::Logical(verdict)
    }

    /// A decision this datapath will not carry out (fail closed): the walk was aborted,
    /// or it needs an unsupported action, counted by name and by the flow holding it.
    pub(super) fn refused(
        &mut self,
        pipeline: &Logical,
        decision: &Decision,
    ) -> Option<LogicalOutcome> {
        if decision.aborted {
            return Some(LogicalOutcome::Aborted);
        }
        let name = decision.unsupported.first()?;
        let flow = decision.unsupported_flow.map(|f| pipeline.flow(f).uuid.0);
        self.counters.unsupported(name, flow);
        Some(LogicalOutcome::Unsupported)
    }

    /// Hands controller actions to the controller and sends what it generates.
    pub(super) fn controller_ops(
        &mut self,
        snap: &Snapshot,
        view: &LogicalView,
        decision: &Decision,
        frame: Frame,
    ) {
        let Some((bytes, _)) = self.umem.chunk_mut(frame.chunk) else {
            return;
        };
        let data = bytes[frame.off..frame.off + frame.len].to_vec();
        let mut generated = std::mem::take(&mut self.scratch.generated);
        for op in &decision.controller {
            match self
                .controller
                .handle(&view.pipeline, &data, op, &mut generated)
            {
                Ok(()) => self.counters.logical(LogicalOutcome::ControllerHandled),
                Err(_) => self.counters.logical(LogicalOutcome::ControllerFailed),
            }
        }
        for (_, port, bytes) in generated.drain(..) {
            let Some(&idx) = view.egress.get(&port) else {
                self.counters.logical(LogicalOutcome::NotLocal);
                continue;
            };
            self.send_bytes(snap, idx, &bytes);
        }
        self.scratch.generated = generated;
    }

    /// Runs the controller's timers (health-check probes) and sends what they generate
    /// to local ports. Called by the poll thread at housekeeping, never per frame. Returns when the controller next has something due.
    pub fn controller_run(
        &mut self,
        snap: &Snapshot,
        now: std::time::Instant,
    ) -> Option<std::time::Instant> {
        let view = snap.logical()?;
        let mut generated = std::mem::take(&mut self.scratch.generated);
        let next = self
            .controller
            .run_timers(&view.pipeline, now, &mut generated);
        for (_, port, bytes) in generated.drain(..) {
            let Some(&idx) = view.egress.get(&port) else {
                self.counters.logical(LogicalOutcome::NotLocal);
                continue;
            };
            self.send_bytes(snap, idx, &bytes);
        }
        self.scratch.generated = generated;
        next
    }

    /// Queues `bytes` (an untagged frame) to the snapshot port `idx`.
    fn send_bytes(&mut self, snap: &Snapshot, idx: u32, bytes: &[u8]) {
        let Some(info) = snap.port(idx).filter(|p| p.is_local()) else {
            self.counters.logical(LogicalOutcome::NotLocal);
            return;
        };
        let Some(chunk) = self.pool.take() else {
            self.counters.flood.dropped += 1;
            return;
        };
        let headroom = self.pool.headroom() as usize;
        let Some((buf, _)) = self.umem.chunk_mut(chunk) else {
            return;
        };
        let Some(dst) = buf.get_mut(headroom..headroom + bytes.len()) else {
            self.pool.give(chunk);
            return;
        };
        dst.copy_from_slice(bytes);
        let copy = Frame {
            chunk,
            off: headroom,
            len: bytes.len(),
        };
        let _ = self.send(
            copy,
            0,
            info.tag,
            info.device,
            info.stats_slot,
            Verdict::Serviced,
        );
    }

    /// Sends one copy of `frame` per delivery, each with its header changes and tag; the
    /// last delivery takes the original buffer. Returns `Delivered` when the original
    /// buffer was queued, otherwise why not (the caller frees it).
    pub(super) fn deliver(
        &mut self,
        snap: &Snapshot,
        view: &LogicalView,
        deliveries: &[ovnest_logical::execute::Delivery],
        frame: Frame,
        layers: Layers,
        start: &Flow,
    ) -> LogicalOutcome {
        // The last local delivery takes the original buffer; the others get copies.
        let local = |d: &ovnest_logical::execute::Delivery| view.egress.get(&d.port).copied();
        let Some(last_pos) = deliveries.iter().rposition(|d| local(d).is_some()) else {
            return if deliveries.is_empty() {
                LogicalOutcome::Dropped
            } else {
                LogicalOutcome::NotLocal
            };
        };
        if deliveries.iter().any(|d| local(d).is_none()) {
            self.counters.logical(LogicalOutcome::NotLocal);
        }
        let rest = deliveries[..last_pos]
            .iter()
            .filter_map(|d| local(d).map(|i| (i, d)));
        let (last_idx, last) = (
            local(&deliveries[last_pos]).unwrap_or(u32::MAX),
            &deliveries[last_pos],
        );
        let headroom = self.pool.headroom() as usize;
        for (idx, d) in rest {
            let Some(info) = snap.port(idx).filter(|p| p.is_local()) else {
                continue;
            };
            let Some(copy) = self.pool.take() else {
                self.counters.flood.dropped += 1;
                continue;
            };
            let Some(len) = self.copy_frame(&frame, copy, headroom, 0) else {
                self.pool.give(copy);
                continue;
            };
            let copy = Frame {
                chunk: copy,
                off: headroom,
                len,
            };
            if !self.rewrite(copy, layers, start, &d.flow) {
                self.pool.give(copy.chunk);
                continue;
            }
            let _ = self.send(
                copy,
                0,
                info.tag,
                info.device,
                info.stats_slot,
                Verdict::Flooded,
            );
            self.counters.flood.copies += 1;
        }
        let Some(info) = snap.port(last_idx).filter(|p| p.is_local()) else {
            return LogicalOutcome::NotLocal;
        };
        if !self.rewrite(frame, layers, start, &last.flow) {
            return LogicalOutcome::Unwritable;
        }
        let (tag, device, slot) = (info.tag, info.device, info.stats_slot);
        match self.send(
            frame,
            0,
            tag,
            device,
            slot,
            Verdict::Logical(LogicalOutcome::Delivered),
        ) {
            Verdict::Logical(LogicalOutcome::Delivered) => LogicalOutcome::Delivered,
            // `send` already gave the chunk back.
            _ => LogicalOutcome::DeliveredTxFull,
        }
    }

    /// Applies the header changes from `start` to `to` to `frame`; false when they
    /// cannot be written (counted).
    pub(super) fn rewrite(
        &mut self,
        frame: Frame,
        layers: Layers,
        start: &Flow,
        to: &Flow,
    ) -> bool {
        let Some((bytes, _)) = self.umem.chunk_mut(frame.chunk) else {
            return false;
        };
        let Some(data) = bytes.get_mut(frame.off..frame.off + frame.len) else {
            return false;
        };
        if data.len() < ETH_LEN {
            return false;
        }
        match flow::commit(data, layers, start, to) {
            Ok(()) => true,
            Err(e) => {
                self.counters.unwritable(e.0);
                false
            }
        }
    }
}

/// For an ICMP error frame, the tuple of the packet it quotes (conntrack's `rel`).
pub(super) fn quoted_by(
    flow: &Flow,
    data: &[u8],
    layers: &Layers,
) -> Option<crate::conntrack::Tuple> {
    use ovnest_logical::flow::{ETH_TYPE_IP, ETH_TYPE_IPV6};
    let v6 = match (flow.dl_type(), flow.nw_proto()) {
        (ETH_TYPE_IP, 1) => false,
        (ETH_TYPE_IPV6, 58) => true,
        _ => return None,
    };
    crate::conntrack::quoted(data.get(layers.l4?..)?, v6)
}

/// Drops the connections of zones whose logical port or router the pipeline no longer
/// has (ovn-controller flushes a port's zone when the port goes).
fn flush_gone_zones(shared: &crate::conntrack::Shared, pipeline: &Logical) {
    use crate::conntrack::Zone;
    let mut table = shared.lock(shared.now());
    if table.is_empty() {
        return;
    }
    table.retain_zones(|zone| match zone {
        Zone::Port { dp, port } => pipeline
            .datapath_by_key(dp)
            .is_some_and(|d| pipeline.port_id_by_key(d, port).is_some()),
        Zone::Dnat(dp) | Zone::Snat(dp) => pipeline
            .datapath_by_key(dp)
            .is_some_and(|d| pipeline.datapath(d).is_router),
    });
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }
}
