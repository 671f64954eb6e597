//! pinctrl: the controller actions of the logical pipeline, executed as
//! ovn-controller's `controller/pinctrl.c` executes them.
//!
//! The interpreter ([`ovnest_logical::Interpreter`] with `Semantics::Chassis`) stops at
//! the actions OVS hands to ovn-controller and lists them as [`ControllerOp`]s. The
//! datapath passes each one here with the frame that reached it; [`Pinctrl::handle`]
//! does what pinctrl does and returns the frames to deliver:
//!
//! - `put_dhcp_opts`, `put_dhcpv6_opts`, `put_nd_ra_opts` ([`dhcp`], [`dhcpv6`],
//!   [`nd_ra`]): the reply is built in place of the request, the result bit is set
//!   (0 when pinctrl would not answer) and the paused pipeline resumes
//!   ([`Interpreter::resume`]) — as OVS resumes a continuation.
//! - `arp {}`, `icmp4 {}`, `icmp4_error {}`, `icmp6 {}`, `icmp6_error {}`, `nd_na {}`,
//!   `nd_na_router {}`, `nd_ns {}`, `tcp_reset {}`, `sctp_abort {}`, `reject {}`
//!   ([`arp`], [`icmp`], [`nd`], [`tcp_reset`], [`sctp_abort`]): a new packet is built
//!   from the current one and the nested actions run on it
//!   ([`Interpreter::run_actions`]) with the current registers — as pinctrl's
//!   packet-out with `reload_metadata`.
//! - `put_arp`, `put_nd`, `put_fdb` ([`mac_binding`], [`fdb`]): buffered,
//!   de-duplicated and bounded as pinctrl does; [`Pinctrl::run`] hands the entries due
//!   to the agent, which writes the Southbound.
//! - `handle_svc_check(inport)` and the Service_Monitor health checks
//!   ([`svc_monitor`]): the agent hands over the rows of backends bound here
//!   ([`SbQueue::sync_svc_monitors`]); the poll threads' timer
//!   ([`Pinctrl::svc_monitors_run`], through
//!   [`Controller::run_timers`](crate::pipeline::Controller::run_timers) at each poll
//!   thread's housekeeping, which an idle thread reaches after every wake-up) sends the
//!   TCP SYN / UDP probes that are due straight to the backend's port (the physical
//!   layer tags a child's); the replies northd's flow sends up move each backend's state
//!   machine as pinctrl's, and a changed status is queued for the agent to write into
//!   the row (update only).
//!
//! This is the slow path: plain `Vec`s are fine, but no input panics. A frame pinctrl
//! ignores is a [`Drop`] with a reason; every outcome is counted ([`Counters`]), and
//! every decision runs in a `pinctrl` tracing span.

pub mod arp;
mod compose;
mod counters;
pub mod dhcp;
pub mod dhcpv6;
pub mod fdb;
pub mod icmp;
pub mod mac_binding;
pub mod nd;
pub mod nd_ra;
mod queue;
pub mod sctp_abort;
pub mod svc_monitor;
pub mod tcp_reset;

#[cfg(test)]
mod tests;

use std::time::Instant;

use ovnest_logical::actions::{Action, NestKind, OptsKind};
use ovnest_logical::execute::{ControllerOp, Decision};
use ovnest_logical::flow::{Field, Flow};
use ovnest_logical::pipeline::{DpId, FlowId, Pipeline, PortId};
use ovnest_logical::symtab::FieldRef;
use ovnest_logical::trace::NoTrace;
use ovnest_logical::{Interpreter, Semantics, TraceOptions};

use crate::flow::{Layers, commit, extract};

pub use counters::Counters;
pub use fdb::FdbUpsert;
pub use mac_binding::MacBindingUpsert;
pub use queue::SbQueue;
pub use svc_monitor::{SvcCounters, SvcMonitorSpec, SvcStatusUpdate};

/// Controller actions a frame may chain (a reply whose pipeline reaches another
/// controller action, ...) before pinctrl gives up.
const MAX_DEPTH: u32 = 4;

/// A frame for the physical layer to deliver to a logical port (the frame as the
/// logical pipeline sees it: the physical layer pushes a child's tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub dp: DpId,
    /// The datapath's tunnel key.
    pub dp_key: u32,
    pub port: PortId,
    /// The logical port's tunnel key.
    pub port_key: u32,
    pub frame: Vec<u8>,
}

/// Why pinctrl sent nothing for a controller action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Drop {
    /// The frame is shorter than an Ethernet header.
    #[error("frame shorter than an Ethernet header")]
    Unreadable,
    /// The pipeline changed a field of the frame that cannot be rewritten.
    #[error("cannot rewrite {0:?}")]
    Unwritable(Field),
    /// pinctrl ignores this packet for this action (e.g. `arp {}` on a non-IP packet).
    #[error("{0}")]
    Ignored(&'static str),
    /// An action pinctrl does not execute, or one the resumed or nested pipeline met
    /// that the datapath cannot carry out (fail closed).
    #[error("unsupported action {0}")]
    Unsupported(&'static str),
    /// A pausing action without a place to resume (not in a logical flow).
    #[error("no pipeline to resume")]
    NoResume,
    /// The interpreter stopped on a loop or depth limit.
    #[error("pipeline aborted")]
    Aborted,
    /// Controller actions chained deeper than pinctrl follows.
    #[error("controller actions nested too deep")]
    TooDeep,
}

impl Drop {
    /// The counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            Drop::Unreadable => "unreadable",
            Drop::Unwritable(_) => "unwritable",
            Drop::Ignored(r) => r,
            Drop::Unsupported(_) => "unsupported",
            Drop::NoResume => "no_resume",
            Drop::Aborted => "aborted",
            Drop::TooDeep => "too_deep",
        }
    }
}

/// A Southbound write pinctrl asks the agent for (ovn-controller's `pinctrl_run`
/// writes them from its main thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbRequest {
    MacBinding(MacBindingUpsert),
    Fdb(FdbUpsert),
    /// A backend's health changed: update its Service_Monitor row's `status`.
    ServiceMonitorStatus(SvcStatusUpdate),
}

/// pinctrl's state: counters and the buffered Southbound writes.
#[derive(Debug, Default)]
pub struct Pinctrl {
    counters: Counters,
    sb: SbQueue,
}

impl Pinctrl {
    pub fn new() -> Pinctrl {
        Pinctrl::default()
    }

    /// A pinctrl whose Southbound writes go to `sb` (the agent's writer holds a clone).
    pub fn with_queue(sb: SbQueue) -> Pinctrl {
        Pinctrl {
            counters: Counters::default(),
            sb,
        }
    }

    /// The buffered Southbound writes, for the agent's writer.
    pub fn sb_queue(&self) -> SbQueue {
        self.sb.clone()
    }

    /// Executes controller action `op`, which the interpreter met on `frame` (the
    /// frame as the pipeline received it: tag stripped by the physical layer; the
    /// header changes the pipeline made before the action are in `op.flow` and are
    /// applied here first, as OVS commits them before the controller action).
    /// Returns the frames the action and the pipeline after it deliver.
    pub fn handle(
        &mut self,
        pipeline: &Pipeline,
        frame: &[u8],
        op: &ControllerOp,
    ) -> Result<Vec<Output>, Drop> {
        self.handle_at(pipeline, frame, op, 0)
    }

    fn handle_at(
        &mut self,
        p: &Pipeline,
        frame: &[u8],
        op: &ControllerOp,
        depth: u32,
    ) -> Result<Vec<Output>, Drop> {
        let name = op.action.name();
        let span = tracing::debug_span!(
            "pinctrl",
            action = name,
            dp = p.datapath(op.dp).friendly.as_str(),
            inport = op.flow.reg(14),
            depth
        );
        let _enter = span.enter();
        let result = if depth >= MAX_DEPTH {
            Err(Drop::TooDeep)
        } else {
            self.execute(p, frame, op, depth)
        };
        match &result {
            Ok(outputs) => {
                tracing::debug!(outputs = outputs.len(), "done");
            }
            Err(drop) => {
                self.counters.add(name, drop.reason());
                tracing::debug!(reason = drop.reason(), %drop, "dropped");
            }
        }
        result
    }

    fn execute(
        &mut self,
        p: &Pipeline,
        frame: &[u8],
        op: &ControllerOp,
        depth: u32,
    ) -> Result<Vec<Output>, Drop> {
        let (pkt, layers) = current_frame(frame, &op.flow)?;
        let name = op.action.name();
        match &op.action {
            Action::PutOpts { kind, dst, options } => {
                let (fid, index) = op.resume.ok_or(Drop::NoResume)?;
                let answer = match kind {
                    OptsKind::DhcpV4 => dhcp::reply(&pkt, layers, options),
                    OptsKind::DhcpV6 => dhcpv6::reply(&pkt, layers, options),
                    OptsKind::NdRa => nd_ra::reply(&pkt, layers, &op.flow, options),
                };
                // pinctrl resumes either way: with the reply and the result bit set, or
                // with the request and the bit clear.
                let (out, ok) = match answer {
                    Ok((reply, outcome)) => {
                        self.counters.add(name, outcome);
                        (reply, true)
                    }
                    Err(no) => {
                        self.counters.add(name, no.reason());
                        tracing::debug!(reason = no.reason(), "no reply");
                        (pkt, false)
                    }
                };
                let mut flow = refresh(&out, &op.flow, true)?;
                flow.set(Field::Metadata, u128::from(p.datapath(op.dp).key));
                write_bit(&mut flow, *dst, ok);
                self.resume(p, out, flow, op, fid, index, depth)
            }
            Action::Nested { kind, actions } => {
                let built = match kind {
                    NestKind::Arp => arp::build(&pkt, layers, &op.flow),
                    NestKind::Icmp4 | NestKind::Icmp6 => {
                        icmp::build(&pkt, layers, &op.flow, icmp::Mode::Icmp)
                    }
                    NestKind::Icmp4Error | NestKind::Icmp6Error => {
                        icmp::build(&pkt, layers, &op.flow, icmp::Mode::Error)
                    }
                    NestKind::TcpReset => tcp_reset::build(&pkt, layers, &op.flow, false),
                    NestKind::SctpAbort => sctp_abort::build(&pkt, layers, &op.flow, false),
                    NestKind::Reject => reject(&pkt, layers, &op.flow),
                    NestKind::NdNa => nd::build_na(&op.flow, false),
                    NestKind::NdNaRouter => nd::build_na(&op.flow, true),
                    NestKind::NdNs => nd::build_ns(&op.flow),
                    NestKind::Clone => Err(Drop::Unsupported("clone")),
                }?;
                // icmp4.frag_mtu / icmp6.frag_mtu: pinctrl writes the MTU into the
                // ICMP header (its own controller action); no logical field reads it, so
                // it is written before the other nested actions run.
                let (mut built, actions) = (built, actions.to_vec());
                let mut rest = Vec::with_capacity(actions.len());
                for a in actions {
                    match a {
                        Action::OvnFieldLoad { field, value } => {
                            icmp::put_frag_mtu(&mut built, field, value)?;
                        }
                        a => rest.push(a),
                    }
                }
                self.counters.add(name, "sent");
                let mut flow = refresh(&built, &op.flow, false)?;
                flow.set(Field::Metadata, u128::from(p.datapath(op.dp).key));
                let mut it =
                    Interpreter::new(p, NoTrace, Semantics::Chassis, TraceOptions::default());
                let mut run = flow;
                it.run_actions(op.dp, op.egress, op.table, &rest, &mut run);
                self.finish(p, &built, &flow, it.decision, depth)
            }
            Action::PutMacBind { nd, port, ip, mac } => {
                let outcome = self.sb.lock().mac_bindings.put(
                    p,
                    op.dp,
                    &op.flow,
                    *nd,
                    *port,
                    *ip,
                    *mac,
                    Instant::now(),
                );
                self.sb.notify();
                self.counters.add(name, outcome);
                Ok(Vec::new())
            }
            Action::PutFdb { port, mac } => {
                let dp_key = p.datapath(op.dp).key;
                let outcome = self.sb.lock().fdbs.put(dp_key, &op.flow, *port, *mac);
                self.sb.notify();
                self.counters.add(name, outcome);
                Ok(Vec::new())
            }
            Action::HandleSvcCheck { port } => {
                let sf = port.resolve();
                let port_key = op.flow.get_bits(sf.field, sf.ofs, sf.n_bits) as u32;
                let dp_key = p.datapath(op.dp).key;
                let handled =
                    self.sb
                        .lock()
                        .svc
                        .handle(dp_key, port_key, &pkt, layers, Instant::now());
                let (outcome, reset) = handled.map_err(Drop::Ignored)?;
                self.counters.add(name, outcome);
                self.sb.notify();
                Ok(reset.and_then(|r| probe_output(p, r)).into_iter().collect())
            }
            _ => Err(Drop::Unsupported(name)),
        }
    }

    /// pinctrl's timers: sends the health-check probes due at `now` (pinctrl's
    /// `svc_monitors_run`). Returns the frames and when to run again.
    pub fn svc_monitors_run(
        &mut self,
        p: &Pipeline,
        now: Instant,
    ) -> (Vec<Output>, Option<Instant>) {
        let mut q = self.sb.lock();
        let probes = q.svc.run(now);
        let next = q.svc.next_run();
        let writes = q.svc.has_writes();
        drop(q);
        if writes {
            self.sb.notify();
        }
        let mut out = Vec::with_capacity(probes.len());
        for probe in probes {
            match probe_output(p, probe) {
                Some(o) => out.push(o),
                None => self.counters.add("svc_monitor", "unknown_port"),
            }
        }
        (out, next)
    }

    #[allow(clippy::too_many_arguments)]
    fn resume(
        &mut self,
        p: &Pipeline,
        frame: Vec<u8>,
        flow: Flow,
        op: &ControllerOp,
        fid: FlowId,
        index: usize,
        depth: u32,
    ) -> Result<Vec<Output>, Drop> {
        let mut it = Interpreter::new(p, NoTrace, Semantics::Chassis, TraceOptions::default());
        let mut run = flow;
        it.resume(op.dp, op.egress, op.table, fid, index, &mut run);
        self.finish(p, &frame, &flow, it.decision, depth)
    }

    /// Writes each delivery's header changes into a copy of `frame` (whose headers are
    /// `base`), and follows controller actions the pipeline met on the way.
    fn finish(
        &mut self,
        p: &Pipeline,
        frame: &[u8],
        base: &Flow,
        decision: Decision,
        depth: u32,
    ) -> Result<Vec<Output>, Drop> {
        if let Some(name) = decision.unsupported.first() {
            return Err(Drop::Unsupported(name));
        }
        if decision.aborted {
            return Err(Drop::Aborted);
        }
        let mut outputs = Vec::with_capacity(decision.deliveries.len());
        for d in &decision.deliveries {
            let bytes = rewrite(frame, base, &d.flow)?;
            let port = p.port(d.port);
            outputs.push(Output {
                dp: d.dp,
                dp_key: p.datapath(d.dp).key,
                port: d.port,
                port_key: port.key,
                frame: bytes,
            });
        }
        for op in &decision.controller {
            // A later controller action sees the frame as the pipeline left it.
            // Counted by handle_at on failure; the other outputs still go (as in OVS,
            // where each controller action is its own packet-in).
            if let Ok(more) = self.handle_at(p, frame, op, depth + 1) {
                outputs.extend(more);
            }
        }
        Ok(outputs)
    }

    /// Takes the buffered Southbound writes due at `now` (as [`SbQueue::take_due`]),
    /// for a caller that writes them itself.
    pub fn run(&mut self, now: Instant) -> Vec<SbRequest> {
        self.sb.take_due(now)
    }

    /// When buffered writes next become due, if any are waiting.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.sb.next_due()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// A frame pinctrl sends to a port by tunnel keys, as a delivery to that port.
fn probe_output(p: &Pipeline, probe: svc_monitor::Probe) -> Option<Output> {
    let dp = p.datapath_by_key(probe.dp_key)?;
    let port = p.port_id_by_key(dp, probe.port_key)?;
    (!probe.frame.is_empty()).then_some(Output {
        dp,
        dp_key: probe.dp_key,
        port,
        port_key: probe.port_key,
        frame: probe.frame,
    })
}

/// `reject {}`: pinctrl's `pinctrl_handle_reject` — TCP reset, SCTP abort or ICMP
/// unreachable, addressed back to the sender; nothing for a TCP RST or an ICMP
/// unreachable (no error about an error).
fn reject(pkt: &[u8], layers: Layers, flow: &Flow) -> Result<Vec<u8>, Drop> {
    match flow.nw_proto() {
        6 => tcp_reset::build(pkt, layers, flow, true),
        132 => sctp_abort::build(pkt, layers, flow, true),
        _ => icmp::build(pkt, layers, flow, icmp::Mode::Reject),
    }
}

/// `frame` with the header changes `flow` holds applied (OVS commits pending
/// set-field actions before a controller action).
fn current_frame(frame: &[u8], flow: &Flow) -> Result<(Vec<u8>, Layers), Drop> {
    let (read, layers) = extract(frame).ok_or(Drop::Unreadable)?;
    let mut bytes = frame.to_vec();
    let mut to = read;
    copy_packet_fields(&mut to, flow);
    nd::rewrite(&mut bytes, layers, &read, &to)?;
    let mut read = read;
    nd::copy_fields(&mut read, &to);
    commit(&mut bytes, layers, &read, &to).map_err(|e| Drop::Unwritable(e.0))?;
    Ok((bytes, layers))
}

/// Packet fields of `src` into `dst` (metadata left alone).
fn copy_packet_fields(dst: &mut Flow, src: &Flow) {
    let meta = *dst;
    *dst = *src;
    copy_metadata(dst, &meta, true);
}

/// The flow of a frame pinctrl built or rewrote: its headers read from the bytes, the
/// pipeline's registers and metadata from `md`. `all` keeps the whole pipeline state
/// (a resumed continuation); otherwise only the registers and the datapath, as
/// pinctrl's `reload_metadata` sets them on a packet-out.
fn refresh(frame: &[u8], md: &Flow, all: bool) -> Result<Flow, Drop> {
    let (mut f, _) = extract(frame).ok_or(Drop::Unreadable)?;
    copy_metadata(&mut f, md, all);
    Ok(f)
}

fn copy_metadata(dst: &mut Flow, src: &Flow, all: bool) {
    dst.set(Field::Metadata, src.get(Field::Metadata));
    for i in 0..4 {
        dst.set(Field::Xxreg(i), src.get(Field::Xxreg(i)));
    }
    if all {
        for f in [
            Field::CtState,
            Field::CtMark,
            Field::CtLabel,
            Field::PktMark,
        ] {
            dst.set(f, src.get(f));
        }
        dst.ct_nw_src = src.ct_nw_src;
        dst.ct_nw_dst = src.ct_nw_dst;
        dst.ct_ipv6_src = src.ct_ipv6_src;
        dst.ct_ipv6_dst = src.ct_ipv6_dst;
        dst.ct_nw_proto = src.ct_nw_proto;
        dst.ct_tp_src = src.ct_tp_src;
        dst.ct_tp_dst = src.ct_tp_dst;
    }
}

/// `frame` (headers `base`) with `to`'s header changes written in.
fn rewrite(frame: &[u8], base: &Flow, to: &Flow) -> Result<Vec<u8>, Drop> {
    let (_, layers) = extract(frame).ok_or(Drop::Unreadable)?;
    let mut bytes = frame.to_vec();
    nd::rewrite(&mut bytes, layers, base, to)?;
    let mut from = *base;
    nd::copy_fields(&mut from, to);
    commit(&mut bytes, layers, &from, to).map_err(|e| Drop::Unwritable(e.0))?;
    Ok(bytes)
}

fn write_bit(flow: &mut Flow, dst: FieldRef, v: bool) {
    let sf = dst.resolve();
    flow.set_bits(sf.field, sf.ofs, sf.n_bits, u128::from(v));
}

/// pinctrl as the userspace datapath's controller: its frames go to the physical layer
/// as (datapath, logical port, bytes); a refusal is reported by its counter reason.
impl crate::pipeline::Controller for Pinctrl {
    fn handle(
        &mut self,
        pipeline: &Pipeline,
        frame: &[u8],
        op: &ControllerOp,
        out: &mut Vec<(DpId, PortId, Vec<u8>)>,
    ) -> Result<(), &'static str> {
        let outputs = Pinctrl::handle(self, pipeline, frame, op).map_err(|d| d.reason())?;
        out.extend(outputs.into_iter().map(|o| (o.dp, o.port, o.frame)));
        Ok(())
    }

    fn run_timers(
        &mut self,
        pipeline: &Pipeline,
        now: Instant,
        out: &mut Vec<(DpId, PortId, Vec<u8>)>,
    ) -> Option<Instant> {
        let (outputs, next) = self.svc_monitors_run(pipeline, now);
        out.extend(outputs.into_iter().map(|o| (o.dp, o.port, o.frame)));
        next
    }
}
