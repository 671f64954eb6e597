//! The interpreter: runs a microflow through the compiled pipeline — ingress, output
//! to egress (multicast groups expanded), patch ports into the peer datapath — and
//! executes each action with OVN's semantics.
//!
//! One interpreter serves two callers. `ovnest trace` runs it with
//! [`Semantics::Trace`] and a [`Tree`](crate::trace::Tree) sink, reproducing
//! ovn-trace node for node. The datapath runs it with [`Semantics::Chassis`] (what
//! ovn-controller's OpenFlow does: registers cleared between pipelines, conntrack
//! state from the caller) and [`NoTrace`](crate::trace::NoTrace), collecting a
//! [`Decision`]: the packets delivered, the controller actions to run, and what it
//! could not execute.

use crate::actions::{
    Action, Addr, L4Proto, LbBackend, LbFlag, NatKind, NestKind, OptsKind, ResultKind,
};
use crate::conntrack::{Affinity, Conntrack, HairpinReply, Nat, Request, Zone};
use crate::db::link_local;
use crate::flow::{ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, Field, Flow, WORDS, WordSet, cs, mlf};
use crate::pipeline::{DpId, FlowId, LbVip, NO_CLASS, Pipeline, PortId, Stages, v4_mapped};
use crate::symtab::{FieldRef, Subfield};
use crate::trace::{NodeKind, Sink};
use crate::value;

/// Where a walk goes after a flow's actions ([`Interpreter::stage_actions`]).
enum Then {
    /// Nowhere: it ends.
    Stop,
    /// On to this table of the same pipeline.
    Table(u8),
    /// Into a pipeline (its datapath, direction and table), under this trace node.
    Pipeline {
        dp: DpId,
        egress: bool,
        table: u8,
        sup: usize,
    },
}

/// Whose semantics the interpreter follows where ovn-trace and the real datapath
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// ovn-trace: registers other than inport/outport cleared on output to egress,
    /// none cleared across patch ports, `ct_next` states from `--ct`.
    Trace,
    /// ovn-controller + OVS: logical registers 0-9 cleared before egress; registers,
    /// flags and conntrack state cleared across patch ports.
    Chassis,
}

/// ovn-trace's `--ct`, `--lb-dst` and `--select-id`.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Connection states for successive `ct_next` (and NAT/LB) actions.
    pub ct_states: Vec<u32>,
    pub lb_dst: Option<(Addr, u16)>,
    pub select_id: Option<u16>,
}

/// Why a frame was dropped, or the action that stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forwarded,
    Dropped,
}

/// A packet the pipeline delivered to a logical port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub dp: DpId,
    pub port: PortId,
    /// The packet's headers as delivered.
    pub flow: Flow,
}

/// A packet the ingress pipeline sent to a port bound on another chassis (or to a
/// multicast group with members there): the physical layer encapsulates it to that
/// chassis with the datapath's key, `flow`'s inport (reg14) and `outport_key`, and the
/// other chassis runs the egress pipeline (ovn-controller's table 37, remote output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelOut {
    pub dp: DpId,
    /// The chassis, as numbered by [`Interpreter::with_remote_ports`] (≥ 1).
    pub chassis: u16,
    /// The egress port's key, or the multicast group's.
    pub outport_key: u32,
    /// The packet's headers as they leave the ingress pipeline.
    pub flow: Flow,
}

/// A controller action reached while deciding a frame (pinctrl's work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerOp {
    pub dp: DpId,
    pub egress: bool,
    pub table: u8,
    /// The flow that reached it and the action, with its nested actions.
    pub flow: Flow,
    pub action: Action,
    /// For `put_dhcp_opts`-style actions that pause the pipeline: the logical flow
    /// and the index of the next action to resume at.
    pub resume: Option<(FlowId, usize)>,
}

/// The result of running a frame in [`Semantics::Chassis`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub deliveries: Vec<Delivery>,
    /// Copies for other chassis (empty unless remote ports were given).
    pub tunnels: Vec<TunnelOut>,
    pub controller: Vec<ControllerOp>,
    /// Actions the interpreter met and cannot carry out (fail closed: a frame whose
    /// decision holds one is dropped and counted by the caller).
    pub unsupported: Vec<&'static str>,
    /// The flow whose action was the first of `unsupported` (for `ovnest status`).
    pub unsupported_flow: Option<FlowId>,
    /// Set when a loop or a depth limit stopped the walk.
    pub aborted: bool,
    /// Logical flows matched, in order, when the interpreter was asked to record them
    /// ([`Interpreter::recording_flows`]; without a trace, a stage its packet class
    /// passes over because every flow it could meet there says only `next;` adds none).
    pub flows: Vec<FlowId>,
    /// Set when the decision consulted or changed connection tracking: it holds for
    /// this frame only (the next frame of the flow may see another `ct_state`), so no
    /// cache may replay it.
    pub conntrack: bool,
}

impl Decision {
    /// Empties the decision, keeping its buffers.
    pub fn clear(&mut self) {
        self.deliveries.clear();
        self.tunnels.clear();
        self.controller.clear();
        self.unsupported.clear();
        self.unsupported_flow = None;
        self.aborted = false;
        self.flows.clear();
        self.conntrack = false;
    }
}

/// Pipelines one frame may walk before the interpreter gives up (OVS stops at 64
/// resubmit levels; OVN's own pipelines nest about six deep).
const MAX_DEPTH: u32 = 256;
const MAX_STEPS: u32 = 4096;

/// The interpreter over one compiled pipeline.
pub struct Interpreter<'p, S: Sink> {
    p: &'p Pipeline,
    pub sink: S,
    sem: Semantics,
    opts: TraceOptions,
    ct_idx: usize,
    lb_dst_used: bool,
    depth: u32,
    steps: u32,
    pub decision: Decision,
    /// Megaflow wildcards: the flow bits every lookup consulted.
    pub wc: Option<[u64; WORDS]>,
    /// Per port (by [`PortId`]): the chassis it is bound on when that is another one
    /// reachable by tunnel (≥ 1), else 0. Empty: every port is treated as here.
    remote: &'p [u16],
    /// The frame came from a tunnel: nothing goes back into one.
    from_tunnel: bool,
    /// The connection tracker ([`Semantics::Chassis`]); without one, `ct` actions
    /// are unsupported (fail closed).
    ct: Option<&'p mut dyn Conntrack>,
    /// The logical flow matched last (the one an unsupported action belongs to).
    last_flow: Option<FlowId>,
    /// Every flow matched goes into [`Decision::flows`].
    record_flows: bool,
}

impl<'p, S: Sink> Interpreter<'p, S> {
    pub fn new(p: &'p Pipeline, sink: S, sem: Semantics, opts: TraceOptions) -> Self {
        Self::with_cleared(p, sink, sem, opts, Decision::default())
    }

    /// Built in place around `decision` (a frame's traversal starts here: no default
    /// decision made and dropped, no second move of the interpreter).
    #[inline]
    fn with_cleared(
        p: &'p Pipeline,
        sink: S,
        sem: Semantics,
        opts: TraceOptions,
        decision: Decision,
    ) -> Self {
        Interpreter {
            p,
            sink,
            sem,
            opts,
            ct_idx: 0,
            lb_dst_used: false,
            depth: 0,
            steps: 0,
            decision,
            wc: None,
            remote: &[],
            from_tunnel: false,
            ct: None,
            last_flow: None,
            record_flows: false,
        }
    }

    /// Ports bound on other chassis (`remote[port]` = the chassis, ≥ 1; 0 = not remote):
    /// output to them ends the ingress pipeline with a [`TunnelOut`] instead of running
    /// their egress pipeline here, as ovn-controller's remote output does.
    pub fn with_remote_ports(mut self, remote: &'p [u16]) -> Self {
        self.remote = remote;
        self
    }

    fn remote_chassis(&self, port: PortId) -> Option<u16> {
        self.remote.get(port as usize).copied().filter(|&c| c != 0)
    }

    /// A frame that arrived over a tunnel for `dp` with its inport (reg14) and outport
    /// (reg15, a port or a multicast group) set: the egress pipeline of each local port
    /// it is for (ovn-controller's table 38 for tunnel input), never back into a tunnel.
    pub fn run_from_tunnel(&mut self, dp: DpId, flow: &mut Flow) {
        self.from_tunnel = true;
        let dpname = &self.p.datapath(dp).friendly;
        let node = self.sink.add(0, NodeKind::Pipeline, || {
            format!("tunnel input(dp=\"{dpname}\")")
        });
        self.execute_output(dp, flow, false, node, false);
    }

    /// Records every logical flow matched in [`Decision::flows`] (a walk that does
    /// not need them, the datapath's, leaves them out).
    pub fn recording_flows(mut self) -> Self {
        self.record_flows = true;
        self
    }

    /// Gives the interpreter a connection tracker (used in [`Semantics::Chassis`]).
    pub fn with_conntrack(mut self, ct: &'p mut dyn Conntrack) -> Self {
        self.ct = Some(ct);
        self
    }

    /// Like [`new`](Self::new), reusing `decision`'s buffers (cleared).
    pub fn with_decision(
        p: &'p Pipeline,
        sink: S,
        sem: Semantics,
        opts: TraceOptions,
        mut decision: Decision,
    ) -> Self {
        decision.clear();
        Self::with_cleared(p, sink, sem, opts, decision)
    }

    pub fn into_decision(self) -> Decision {
        self.decision
    }

    /// Runs `flow` (its inport in reg14) through `dp`'s ingress pipeline from table 0.
    pub fn run(&mut self, dp: DpId, flow: &mut Flow) {
        let in_key = flow.reg(14);
        let p = self.p;
        let inport = p
            .port_by_key(dp, in_key)
            .map_or("(unnamed)", |x| x.friendly.as_str());
        let dpname = &p.datapath(dp).friendly;
        let node = self.sink.add(0, NodeKind::Pipeline, || {
            format!("ingress(dp=\"{dpname}\", inport=\"{inport}\")")
        });
        self.trace_table(dp, flow, 0, false, node);
    }

    /// Runs only `dp`'s egress pipeline (a frame that arrived over a tunnel with its
    /// logical ports set).
    pub fn run_egress(&mut self, dp: DpId, flow: &mut Flow) {
        let p = self.p;
        let name = |k: u32| {
            p.port_by_key(dp, k)
                .map_or("(unnamed)", |x| x.friendly.as_str())
        };
        let (inp, outp) = (name(flow.reg(14)), name(flow.reg(15)));
        let dpname = &p.datapath(dp).friendly;
        let node = self.sink.add(0, NodeKind::Pipeline, || {
            format!("egress(dp=\"{dpname}\", inport=\"{inp}\", outport=\"{outp}\")")
        });
        self.trace_table(dp, flow, 0, true, node);
    }

    /// Runs `actions` on `flow` as the actions of a flow in `table` of `dp`'s
    /// pipeline: pinctrl runs a controller action's nested actions on the packet it
    /// built this way.
    pub fn run_actions(
        &mut self,
        dp: DpId,
        egress: bool,
        table: u8,
        actions: &[Action],
        flow: &mut Flow,
    ) {
        self.trace_actions(actions, dp, flow, table, egress, 0, None);
    }

    /// Resumes a pipeline a controller action paused (`put_dhcp_opts` and the like):
    /// the actions of logical flow `fid` from `index` on, on the packet the controller
    /// rewrote.
    pub fn resume(
        &mut self,
        dp: DpId,
        egress: bool,
        table: u8,
        fid: FlowId,
        index: usize,
        flow: &mut Flow,
    ) {
        let p = self.p;
        let actions: &'p [Action] = &p.flow(fid).actions;
        if let Some(rest) = actions.get(index..) {
            self.trace_actions(rest, dp, flow, table, egress, 0, None);
        }
    }

    fn next_ct_state(&mut self, comment: &mut String) -> u32 {
        if let Some(&s) = self.opts.ct_states.get(self.ct_idx) {
            self.ct_idx += 1;
            s
        } else {
            comment.push_str(" /* default (use --ct to customize) */");
            cs::ESTABLISHED | cs::TRACKED
        }
    }

    fn unsupported(&mut self, name: &'static str) {
        if self.sem == Semantics::Chassis && !self.decision.unsupported.contains(&name) {
            if self.decision.unsupported.is_empty() {
                self.decision.unsupported_flow = self.last_flow;
            }
            self.decision.unsupported.push(name);
        }
    }

    /// ovn-trace's `trace__`: finds the flow for `table`, skipping stages that only
    /// say `next;`, and runs its actions. A flow whose last action is `next;` within
    /// the same pipeline continues here rather than one call deeper (each stage still
    /// counts as one level for the depth limit, as in ovn-trace); so does one whose
    /// last action enters another pipeline with the same frame (`next(pipeline=...)`)
    /// or, when the walk `owns` its frame (its caller reads it no more), with a copy
    /// of it (an `output` to one port): as OVS resubmits, the walk goes on in place
    /// instead of stacking a frame per pipeline crossed.
    fn trace_table(&mut self, dp: DpId, flow: &mut Flow, table: u8, egress: bool, sup: usize) {
        self.walk(dp, flow, table, egress, sup, false);
    }

    /// [`trace_table`](Self::trace_table) of a frame nothing reads after the walk.
    fn trace_owned(&mut self, dp: DpId, flow: &mut Flow, table: u8, egress: bool, sup: usize) {
        self.walk(dp, flow, table, egress, sup, true);
    }

    fn walk(
        &mut self,
        dp: DpId,
        flow: &mut Flow,
        table: u8,
        egress: bool,
        sup: usize,
        owned: bool,
    ) {
        let (mut dp, mut table, mut egress, mut sup) = (dp, table, egress, sup);
        let depth = self.depth;
        // No action in a pipeline rewrites the ethertype or IP protocol.
        let class = if self.wc.is_some() {
            NO_CLASS
        } else {
            Pipeline::packet_class(flow)
        };
        // A walk that records nothing reads each pipeline it enters through its plan.
        let quiet = !S::ON && class != NO_CLASS;
        let p = self.p;
        let mut stages = quiet.then(|| p.stages(dp, egress));
        loop {
            self.steps += 1;
            if self.depth >= MAX_DEPTH || self.steps >= MAX_STEPS {
                self.decision.aborted = true;
                self.sink.add(sup, NodeKind::Error, || {
                    "*** too many nested pipeline steps".into()
                });
                break;
            }
            self.depth += 1;
            let Some((fid, actions, node)) =
                self.stage(stages.as_ref(), dp, flow, table, egress, class, sup)
            else {
                break;
            };
            match self.stage_actions(actions, dp, flow, fid.table, egress, node, Some(fid), owned) {
                Then::Table(next) => (table, sup) = (next, node),
                Then::Pipeline {
                    dp: d,
                    egress: e,
                    table: t,
                    sup: s,
                } => {
                    if quiet && (d, e) != (dp, egress) {
                        stages = Some(p.stages(d, e));
                    }
                    (dp, egress, table, sup) = (d, e, t, s);
                }
                Then::Stop => break,
            }
        }
        self.depth = depth;
    }

    /// The lookup of one stage: the flow found (recorded in the decision) and its
    /// node in the trace.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        stages: Option<&Stages<'p>>,
        dp: DpId,
        flow: &Flow,
        table: u8,
        egress: bool,
        class: usize,
        sup: usize,
    ) -> Option<(FlowId, &'p [Action], usize)> {
        let p = self.p;
        let (table, found) = match stages {
            Some(s) => s.find(table, class, flow),
            None => p.stage_flow(dp, egress, table, false, class, flow, self.wc.as_mut()),
        };
        let node = self.sink.add(sup, NodeKind::Table, || match found {
            Some((fid, _)) => {
                let f = p.flow(fid);
                let mut s = format!("{table:2}. ");
                match (&f.stage_name, &f.source) {
                    (Some(st), Some(src)) => s.push_str(&format!("{st} ({src}): ")),
                    (Some(st), None) => s.push_str(&format!("{st}: ")),
                    (None, Some(src)) => s.push_str(&format!("({src}): ")),
                    (None, None) => {}
                }
                s.push_str(&format!(
                    "{}, priority {}, uuid {:08x}",
                    f.match_s,
                    f.priority,
                    f.uuid.short()
                ));
                s
            }
            None => {
                let stage = p.stage_name(dp, egress, table);
                format!(
                    "{table:2}. {}{}no match (implicit drop)",
                    stage.unwrap_or(""),
                    if stage.is_some() { ": " } else { "" }
                )
            }
        });
        let (fid, f) = found?;
        self.last_flow = Some(fid);
        if self.record_flows {
            self.decision.flows.push(fid);
        }
        Some((fid, f, node))
    }

    /// ovn-trace's `trace_actions`.
    #[allow(clippy::too_many_arguments)]
    fn trace_actions(
        &mut self,
        actions: &[Action],
        dp: DpId,
        flow: &mut Flow,
        table: u8,
        egress: bool,
        sup: usize,
        fid: Option<FlowId>,
    ) {
        match self.stage_actions(actions, dp, flow, table, egress, sup, fid, false) {
            Then::Table(next) => self.trace_table(dp, flow, next, egress, sup),
            Then::Pipeline {
                dp,
                egress,
                table,
                sup,
            } => self.trace_table(dp, flow, table, egress, sup),
            Then::Stop => {}
        }
    }

    /// [`trace_actions`](Self::trace_actions), except that a last action that
    /// continues the walk is returned instead of followed: `next;` (the table), or
    /// (see [`trace_table`](Self::trace_table)) another pipeline entered with `flow`,
    /// which for an `output` needs the walk to own it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn stage_actions(
        &mut self,
        actions: &[Action],
        dp: DpId,
        flow: &mut Flow,
        table: u8,
        egress: bool,
        sup: usize,
        fid: Option<FlowId>,
        owned: bool,
    ) -> Then {
        if actions.is_empty() {
            self.sink.add(sup, NodeKind::Action, || "drop;".into());
            return Then::Stop;
        }
        let p = self.p;
        let mut stack: Vec<(u128, u32)> = Vec::new();
        for (idx, a) in actions.iter().enumerate() {
            self.sink.add(sup, NodeKind::Action, || {
                p.make_names_friendly(&a.to_string())
            });
            match a {
                Action::Output => {
                    let last = owned && idx + 1 == actions.len();
                    let then = self.execute_output(dp, flow, egress, sup, last);
                    if last {
                        return then;
                    }
                }
                Action::Next {
                    pipeline, table: t, ..
                } => {
                    let to_egress = *pipeline == crate::actions::Pipeline::Egress;
                    let last = idx + 1 == actions.len();
                    if to_egress == egress && last {
                        return Then::Table(*t);
                    }
                    let mut sup = sup;
                    if to_egress != egress {
                        let key = if to_egress {
                            flow.reg(15)
                        } else {
                            flow.reg(14)
                        };
                        let name = self.port_key_name(dp, key);
                        let dpname = &p.datapath(dp).friendly;
                        sup = self.sink.add(sup, NodeKind::Pipeline, || {
                            format!(
                                "{}(dp=\"{dpname}\", {}=\"{name}\")",
                                pipeline.as_str(),
                                if to_egress { "outport" } else { "inport" }
                            )
                        });
                    }
                    if last {
                        return Then::Pipeline {
                            dp,
                            egress: to_egress,
                            table: *t,
                            sup,
                        };
                    }
                    self.trace_table(dp, flow, *t, to_egress, sup);
                }
                // A constant into one word, where no trace shows it: the bits alone.
                Action::Load { set: Some(set), .. } if !S::ON => set.apply(flow, true),
                Action::Load { dst, value, set } => {
                    self.execute_load(dp, flow, *dst, value, *set, a, sup)
                }
                Action::Move { dst, src } => {
                    let (d, s) = (dst.resolve(), src.resolve());
                    self.summarize_move(s, *dst, d, flow, sup);
                    copy_bits(flow, s, d);
                }
                Action::Exchange { a: x, b: y } => {
                    let (rx, ry) = (x.resolve(), y.resolve());
                    self.summarize_move(ry, *x, rx, flow, sup);
                    self.summarize_move(rx, *y, ry, flow, sup);
                    let (vx, vy) = (
                        flow.get_bits(rx.field, rx.ofs, rx.n_bits),
                        flow.get_bits(ry.field, ry.ofs, ry.n_bits),
                    );
                    flow.set_bits(rx.field, rx.ofs, rx.n_bits, vy);
                    flow.set_bits(ry.field, ry.ofs, ry.n_bits, vx);
                }
                Action::Push(f) => {
                    let sf = f.resolve();
                    let v = flow.get_bits(sf.field, sf.ofs, sf.n_bits);
                    self.sink.add(sup, NodeKind::Modify, || {
                        format!(
                            "push({f}) -> {}",
                            value::to_string(|s| value::write_hex(s, v))
                        )
                    });
                    stack.push((v, sf.n_bits.div_ceil(8)));
                }
                Action::Pop(f) => {
                    let sf = f.resolve();
                    match stack.pop() {
                        Some((v, _)) => {
                            let v = v & value::ones(sf.n_bits);
                            flow.set_bits(sf.field, sf.ofs, sf.n_bits, v);
                            self.sink.add(sup, NodeKind::Modify, || {
                                format!(
                                    "pop({f}) <- {}",
                                    value::to_string(|s| value::write_hex(s, v))
                                )
                            });
                        }
                        None => {
                            self.sink.add(sup, NodeKind::Modify, || {
                                format!("pop({f}) <- /* empty stack */")
                            });
                        }
                    }
                }
                Action::DecTtl => {
                    if flow.is_ip_any() {
                        let ttl = flow.get(Field::IpTtl);
                        if ttl != 0 {
                            flow.set(Field::IpTtl, ttl - 1);
                            self.sink.add(sup, NodeKind::Modify, || "ip.ttl--".into());
                        } else {
                            self.sink
                                .add(sup, NodeKind::Error, || "*** TTL underflow".into());
                        }
                    } else {
                        self.sink.add(sup, NodeKind::Error, || {
                            "*** TTL decrement of non-IP packet".into()
                        });
                    }
                }
                Action::CtNext { table: t } if self.sem == Semantics::Chassis => {
                    let mut ct_flow = *flow;
                    let req = Request::default();
                    if self.ct(dp, egress, ZoneOf::Ct, &mut ct_flow, &req, "ct_next") {
                        self.trace_table(dp, &mut ct_flow, *t, egress, sup);
                    }
                    // OVS: the ct_* fields exist only in the recirculation.
                    flow.clear_conntrack();
                }
                Action::CtCommitV1 {
                    mark,
                    mark_mask,
                    label,
                    label_mask,
                } if self.sem == Semantics::Chassis => {
                    let req = Request {
                        commit: true,
                        nat: Nat::None,
                        mark: (*mark_mask != 0).then_some((*mark, *mark_mask)),
                        label: (*label_mask != 0).then_some((*label, *label_mask)),
                    };
                    let mut c = *flow;
                    self.ct(dp, egress, ZoneOf::Ct, &mut c, &req, "ct_commit");
                    flow.clear_conntrack();
                }
                Action::CtCommit(nested) if self.sem == Semantics::Chassis => {
                    let (mark, label) = self.commit_sets(nested, dp, flow, table, egress);
                    let req = Request {
                        commit: true,
                        nat: Nat::None,
                        mark,
                        label,
                    };
                    let mut c = *flow;
                    self.ct(dp, egress, ZoneOf::Ct, &mut c, &req, "ct_commit");
                    flow.clear_conntrack();
                }
                Action::CtNat {
                    kind,
                    table: t,
                    addr,
                    port_range,
                } if self.sem == Semantics::Chassis => {
                    let nat = match (addr, kind.is_dst()) {
                        (None, _) => Nat::Restore,
                        (Some(a), true) => Nat::Dst {
                            addr: addr_u128(*a),
                            port: port_range.map_or(0, |r| r.0),
                        },
                        (Some(a), false) => {
                            let (lo, hi) = port_range.unwrap_or((0, 0));
                            Nat::Src {
                                addr: addr_u128(*a),
                                lo,
                                hi,
                            }
                        }
                    };
                    let req = Request {
                        commit: addr.is_some(),
                        nat,
                        ..Request::default()
                    };
                    let zone = if *kind == NatKind::Snat {
                        ZoneOf::Snat
                    } else {
                        ZoneOf::Dnat
                    };
                    let mut ct_flow = *flow;
                    if self.ct(dp, egress, zone, &mut ct_flow, &req, kind.name()) {
                        self.trace_table(dp, &mut ct_flow, *t, egress, sup);
                    }
                    flow.clear_conntrack();
                }
                Action::CtCommitNat { table: t } if self.sem == Semantics::Chassis => {
                    let req = Request {
                        commit: true,
                        nat: Nat::Restore,
                        ..Request::default()
                    };
                    let mut ct_flow = *flow;
                    if self.ct(dp, egress, ZoneOf::Ct, &mut ct_flow, &req, "ct_commit_nat") {
                        self.trace_table(dp, &mut ct_flow, *t, egress, sup);
                    }
                    flow.clear_conntrack();
                }
                Action::CtLb {
                    mark,
                    table: t,
                    backends,
                    flag,
                    hash_fields,
                } if self.sem == Semantics::Chassis => {
                    let lb = ChassisLb {
                        mark: *mark,
                        backends,
                        hash_fields: hash_fields.as_deref(),
                        flag: *flag,
                    };
                    self.chassis_ct_lb(dp, flow, &lb, *t, egress, sup);
                    flow.clear_conntrack();
                }
                Action::CtNext { table: t } => {
                    self.unsupported("ct_next");
                    let mut comment = String::new();
                    let state = self.next_ct_state(&mut comment);
                    let node = self.sink.add(sup, NodeKind::Transformation, || {
                        format!("ct_next(ct_state={}{comment})", cs::format(state))
                    });
                    let mut ct_flow = *flow;
                    ct_flow.set(Field::CtState, u128::from(state));
                    self.trace_table(dp, &mut ct_flow, *t, egress, node);
                }
                Action::CtCommitV1 { .. } | Action::CtCommit(_) => self.unsupported("ct_commit"),
                Action::CtNat {
                    kind,
                    table: t,
                    addr,
                    ..
                } => self.execute_ct_nat(dp, flow, *kind, *t, *addr, egress, sup),
                Action::CtCommitNat { table: t } => {
                    self.unsupported("ct_commit_nat");
                    let mut s =
                        String::from("ct_commit_nat /* assuming no un-nat entry, so no change */");
                    let mut ct_flow = *flow;
                    if ct_flow.get(Field::CtState) as u32 & cs::TRACKED == 0 {
                        let st = self.next_ct_state(&mut s);
                        let cur = ct_flow.get(Field::CtState);
                        ct_flow.set(Field::CtState, cur | u128::from(st));
                    }
                    let node = self.sink.add(sup, NodeKind::Transformation, || s);
                    self.trace_table(dp, &mut ct_flow, *t, egress, node);
                }
                Action::CtLb {
                    mark,
                    table: t,
                    backends,
                    ..
                } => self.execute_ct_lb(dp, flow, *mark, *t, backends, egress, sup),
                Action::Select {
                    dst,
                    table: t,
                    members,
                } => {
                    self.unsupported("select");
                    let (id, user) = match self
                        .opts
                        .select_id
                        .filter(|s| members.iter().any(|m| m.0 == *s))
                    {
                        Some(s) => (s, true),
                        None => (members[0].0, false),
                    };
                    let mut sel = *flow;
                    let sf = dst.resolve();
                    sel.set_bits(sf.field, sf.ofs, sf.n_bits, u128::from(id));
                    let node = self.sink.add(sup, NodeKind::Transformation, || {
                        format!(
                            "select: {dst} = {id}{}",
                            if user {
                                ""
                            } else {
                                " /* Randomly selected. Use --select-id to specify. */"
                            }
                        )
                    });
                    self.trace_table(dp, &mut sel, *t, egress, node);
                }
                Action::CtClear => {
                    // ovn-trace forgets the connection too (flow_clear_conntrack).
                    flow.clear_conntrack();
                }
                Action::Nested {
                    kind,
                    actions: nested,
                } => self.execute_nested(*kind, nested, dp, flow, table, egress, sup, a),
                Action::GetMacBind { nd: _, port, ip } => {
                    let port_key = flow_read(flow, port.resolve()) as u32;
                    let ip = read_ip(flow, ip.resolve());
                    let mac = p.mac_binding(dp, port_key, ip);
                    flow.set(Field::EthDst, u128::from(mac.unwrap_or(0)));
                    self.sink.add(sup, NodeKind::Action, || match mac {
                        Some(m) => format!("/* MAC binding to {}. */", value::mac_string(m)),
                        None => "/* No MAC binding. */".into(),
                    });
                    let m = mac.unwrap_or(0);
                    self.sink.add(sup, NodeKind::Modify, || {
                        format!("eth.dst = {}", value::mac_string(m))
                    });
                }
                // pinctrl learns (MAC_Binding, FDB) or takes a health-check reply and
                // the walk goes on, as after OVS's controller action without a pause;
                // ovn-trace does nothing.
                Action::PutMacBind { .. }
                | Action::PutFdb { .. }
                | Action::HandleSvcCheck { .. } => {
                    if self.sem == Semantics::Chassis {
                        self.decision.controller.push(ControllerOp {
                            dp,
                            egress,
                            table,
                            flow: *flow,
                            action: a.clone(),
                            resume: None,
                        });
                    }
                }
                Action::LookupMacBind {
                    dst, port, ip, mac, ..
                } => {
                    let port_key = flow_read(flow, port.resolve()) as u32;
                    let ipv = read_ip(flow, ip.resolve());
                    let m = flow_read(flow, mac.resolve()) as u64;
                    let found = p.mac_binding(dp, port_key, ipv) == Some(m);
                    let eth_dst = flow.get(Field::EthDst) as u64;
                    self.sink.add(sup, NodeKind::Action, || {
                        if found {
                            format!("/* MAC binding to {} found. */", value::mac_string(eth_dst))
                        } else {
                            "/* lookup failed - No MAC binding. */".into()
                        }
                    });
                    write_ref(flow, *dst, u128::from(found));
                }
                Action::LookupMacBindIp { dst, port, ip, .. } => {
                    let port_key = flow_read(flow, port.resolve()) as u32;
                    let ipv = read_ip(flow, ip.resolve());
                    let found = p.mac_binding(dp, port_key, ipv).is_some();
                    self.sink.add(sup, NodeKind::Action, || {
                        if found {
                            "/* MAC binding found. */".into()
                        } else {
                            "/* lookup failed - No MAC binding. */".into()
                        }
                    });
                    write_ref(flow, *dst, u128::from(found));
                }
                Action::PutOpts { kind, dst, options } => {
                    if *kind != OptsKind::NdRa {
                        self.sink.add(sup, NodeKind::Error, || {
                            "/* We assume that this packet is DHCPDISCOVER or DHCPREQUEST. */"
                                .into()
                        });
                    }
                    self.sink.add(sup, NodeKind::Modify, || {
                        let opts: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                        format!("{}({})", kind.name(), opts.join(", "))
                    });
                    if !dst.resolve().field.is_register() {
                        self.sink
                            .add(sup, NodeKind::Modify, || format!("{dst} = 1"));
                    }
                    if self.sem == Semantics::Chassis {
                        self.decision.controller.push(ControllerOp {
                            dp,
                            egress,
                            table,
                            flow: *flow,
                            action: a.clone(),
                            resume: fid.map(|f| (f, idx + 1)),
                        });
                        // The controller answers and resumes the pipeline; this walk
                        // stops here.
                        return Then::Stop;
                    }
                    write_ref(flow, *dst, 1);
                }
                Action::SetQueue(_)
                | Action::SetMeter { .. }
                | Action::Igmp
                | Action::TriggerEvent { .. } => {}
                Action::Result { kind, dst, set } => {
                    self.execute_result(*kind, (*dst, *set), dp, flow, sup)
                }
                Action::Log {
                    name,
                    verdict,
                    severity,
                    ..
                } => {
                    let dir = if egress { "OUT" } else { "IN" };
                    let n = name.clone().unwrap_or_else(|| "<unnamed>".into());
                    let f = *flow;
                    self.sink.add(sup, NodeKind::Transformation, || {
                        format!(
                            "LOG: ACL name={n}, direction={dir}, verdict={verdict}, severity={severity}, packet=\"{}\"",
                            crate::trace::flow_format(&f)
                        )
                    });
                }
                Action::OvnFieldLoad { field, value: v } => {
                    let v = *v;
                    self.sink
                        .add(sup, NodeKind::Modify, || format!("{} = {v}", field.name()));
                    if self.sem == Semantics::Chassis {
                        self.unsupported("ovn_field_load");
                    }
                }
                Action::CheckPktLarger { .. } => self.unsupported("check_pkt_larger"),
                Action::BindVport { .. } => self.unsupported("bind_vport"),
                Action::FwdGroup { .. } => self.unsupported("fwd_group"),
                Action::Dhcp6Reply => self.unsupported("handle_dhcpv6_reply"),
                Action::BfdMsg => self.unsupported("handle_bfd_msg"),
                Action::CtSnatToVip if self.sem == Semantics::Chassis => {
                    self.chassis_ct_snat_to_vip(dp, flow, egress);
                }
                Action::CtSnatToVip => self.execute_ct_snat_to_vip(flow, sup),
                Action::GetFdb { dst, mac } => {
                    let m = flow_read(flow, mac.resolve()) as u64;
                    let key = p.fdb(dp, m).unwrap_or(0);
                    write_ref(flow, *dst, u128::from(key));
                }
                Action::LookupFdb { dst, port, mac } => {
                    let port_key = flow_read(flow, port.resolve()) as u32;
                    let m = flow_read(flow, mac.resolve()) as u64;
                    let found = p.fdb(dp, m) == Some(port_key);
                    let eth_dst = flow.get(Field::EthDst) as u64;
                    self.sink.add(sup, NodeKind::Action, || {
                        if found {
                            format!(
                                "/* MAC lookup for {} found in FDB. */",
                                value::mac_string(eth_dst)
                            )
                        } else {
                            "/* lookup mac failed in mac learning table. */".into()
                        }
                    });
                    write_ref(flow, *dst, u128::from(found));
                }
                Action::CommitEcmpNh { .. } => self.unsupported("commit_ecmp_nh"),
                Action::CommitLbAff {
                    vip,
                    vip_port,
                    backend,
                    backend_port,
                    proto,
                    timeout,
                } if self.sem == Semantics::Chassis => {
                    let session = Affinity {
                        dp: self.p.datapath(dp).key,
                        client: ip_addrs(flow).map_or(0, |(src, _)| src),
                        vip: addr_u128(*vip),
                        proto: proto.map_or(0, L4Proto::number),
                        vip_port: if proto.is_some() { *vip_port } else { 0 },
                    };
                    let backend = (addr_u128(*backend), *backend_port);
                    let committed = self
                        .ct
                        .as_deref_mut()
                        .map(|ct| ct.commit_lb_affinity(session, backend, *timeout));
                    match committed {
                        Some(true) => {}
                        Some(false) => self.unsupported("lb_affinity_table_full"),
                        None => self.unsupported("commit_lb_aff"),
                    }
                }
                Action::CommitLbAff { .. } => self.unsupported("commit_lb_aff"),
                Action::Sample { .. } => {}
            }
        }
        Then::Stop
    }

    fn port_key_name(&self, dp: DpId, key: u32) -> &'p str {
        match self.p.port_by_key(dp, key) {
            Some(p) => &p.friendly,
            None if key == 0 => "",
            None => "(unnamed)",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn execute_load(
        &mut self,
        dp: DpId,
        flow: &mut Flow,
        dst: FieldRef,
        v: &crate::expr::Const,
        set: Option<WordSet>,
        a: &Action,
        sup: usize,
    ) {
        if S::ON && !dst.resolve().field.is_register() {
            self.sink.add(sup, NodeKind::Modify, || {
                let s = a.to_string();
                s.strip_suffix(';').unwrap_or(&s).to_owned()
            });
        }
        if let Some(set) = set {
            set.apply(flow, true);
            return;
        }
        let sf = dst.resolve();
        if !flow.prereqs_ok(sf.field.prereq()) {
            return;
        }
        match v {
            crate::expr::Const::Int(c) => {
                let ones = value::ones(sf.n_bits);
                let mask = c.mask.map_or(ones, |m| m & ones) << sf.ofs;
                flow.set_masked(sf.field, (c.value & ones) << sf.ofs, mask);
            }
            crate::expr::Const::Str(name) => {
                let key = self.p.lookup_port(dp, name).unwrap_or(0);
                flow.set(sf.field, u128::from(key));
            }
        }
    }

    /// ovn-trace's `summarize_move`: shows assignments to packet fields.
    fn summarize_move(
        &mut self,
        src: Subfield,
        dst_ref: FieldRef,
        dst: Subfield,
        flow: &Flow,
        sup: usize,
    ) {
        if dst.field.is_register() || !S::ON {
            return;
        }
        let text = if src.ofs == 0 && src.n_bits >= src.field.width() {
            src.field.format_value(flow.get(src.field))
        } else {
            let v = flow.get_bits(src.field, src.ofs, src.n_bits);
            value::to_string(|s| value::write_hex(s, v))
        };
        self.sink
            .add(sup, NodeKind::Modify, || format!("{dst_ref} = {text}"));
    }

    /// ovn-trace's `execute_output`. With `tail` (the output is the last action of a
    /// walk that owns `flow`), a frame that goes on to one pipeline is not walked here:
    /// `flow` becomes that frame and the pipeline is returned.
    fn execute_output(
        &mut self,
        dp: DpId,
        flow: &mut Flow,
        egress: bool,
        sup: usize,
        tail: bool,
    ) -> Then {
        let p = self.p;
        let key = flow.reg(15);
        if key == 0 {
            self.sink.add(sup, NodeKind::Error, || {
                "*** output to null logical port".into()
            });
            return Then::Stop;
        }
        let mut port = p.port_id_by_key(dp, key);
        let mcgroup = p.mcgroup_by_key(dp, key);
        let mut out_name: &'p str = match (port, mcgroup) {
            (Some(id), _) => &p.port(id).friendly,
            (None, Some(m)) => &m.name,
            (None, None) => "(unnamed)",
        };
        if port.is_none() && mcgroup.is_none() {
            self.sink.add(sup, NodeKind::Error, || {
                format!("*** unknown port or multicast group {key}")
            });
        }
        let dpname: &'p str = &p.datapath(dp).friendly;

        if egress {
            let ty: &str = port.map_or("", |id| &p.port(id).ty);
            self.sink.add(sup, NodeKind::Output, || {
                format!("/* output to \"{out_name}\", type \"{ty}\" */")
            });
            if let Some(id) = port
                && let Some(peer) = p.port(id).peer
            {
                let peer = p.port(peer);
                let node = self.sink.add(sup, NodeKind::Pipeline, || {
                    format!(
                        "ingress(dp=\"{}\", inport=\"{}\")",
                        p.datapath(peer.dp).friendly,
                        peer.friendly
                    )
                });
                let mut copy;
                let new = if tail {
                    flow
                } else {
                    copy = *flow;
                    &mut copy
                };
                if self.sem == Semantics::Chassis {
                    // physical.c: a patch port clears conntrack, zones, flags and
                    // the logical registers before the peer's ingress, whose datapath
                    // the metadata names from then on.
                    new.clear_regs(16);
                    new.clear_conntrack();
                    new.set(Field::Metadata, u128::from(p.datapath(peer.dp).key));
                }
                new.set_reg(14, peer.key);
                new.set_reg(15, 0);
                let then = Then::Pipeline {
                    dp: peer.dp,
                    egress: false,
                    table: 0,
                    sup: node,
                };
                if tail {
                    return then;
                }
                self.trace_owned(peer.dp, new, 0, false, node);
            } else {
                self.sink
                    .add(sup, NodeKind::Modify, || format!("output(\"{out_name}\")"));
                if let Some(id) = port
                    && self.sem == Semantics::Chassis
                {
                    self.decision.deliveries.push(Delivery {
                        dp,
                        port: id,
                        flow: *flow,
                    });
                }
            }
            return Then::Stop;
        }

        let in_key = flow.reg(14);
        let inport_name = self.port_key_name(dp, in_key);
        let allow_loopback = flow.reg(10) & mlf::ALLOW_LOOPBACK != 0;
        // The frame as egress gets it: the walk's own when it goes on with it (`tail`),
        // else a copy.
        let mut copy;
        let egress_flow: &mut Flow = if tail {
            flow
        } else {
            copy = *flow;
            &mut copy
        };
        // Registers other than inport (14) and outport (15).
        egress_flow.clear_regs(match self.sem {
            Semantics::Trace => 14,
            Semantics::Chassis => 10,
        });

        if let Some(m) = mcgroup {
            let mname: &str = &m.name;
            let mcnode = self.sink.add(sup, NodeKind::Pipeline, || {
                format!("multicast(dp=\"{dpname}\", mcgroup=\"{mname}\")")
            });
            for &pid in &m.ports {
                if let Some(chassis) = self.remote_chassis(pid) {
                    // One copy per chassis with members, the group's key as outport.
                    let seen = self
                        .decision
                        .tunnels
                        .iter()
                        .any(|t| t.chassis == chassis && t.dp == dp && t.outport_key == key);
                    if !self.from_tunnel && !seen {
                        let mut copy = *egress_flow;
                        copy.set_reg(15, key);
                        self.decision.tunnels.push(TunnelOut {
                            dp,
                            chassis,
                            outport_key: key,
                            flow: copy,
                        });
                    }
                    continue;
                }
                let pp = p.port(pid);
                let node = self.sink.add(mcnode, NodeKind::Pipeline, || {
                    format!(
                        "egress(dp=\"{dpname}\", inport=\"{inport_name}\", outport=\"{}\")",
                        pp.friendly
                    )
                });
                if pp.key != in_key || allow_loopback {
                    self.sink.set_always_indent(node);
                    egress_flow.set_reg(15, pp.key);
                    if self.sem == Semantics::Chassis {
                        // Each copy starts from the frame as it left ingress.
                        let mut copy = *egress_flow;
                        self.trace_owned(dp, &mut copy, 0, true, node);
                    } else {
                        // ovn-trace reuses one flow across the group's members.
                        self.trace_table(dp, egress_flow, 0, true, node);
                    }
                } else {
                    self.sink.add(node, NodeKind::Output, || {
                        "/* omitting output because inport == outport && !flags.loopback */".into()
                    });
                }
            }
            return Then::Stop;
        }

        if let Some(id) = port
            && p.port(id).ty == "chassisredirect"
        {
            let pr = p.port(id);
            match pr.distributed_port {
                Some(d) => {
                    let dn: &'p str = &p.port(d).friendly;
                    self.sink.add(sup, NodeKind::Output, || {
                        format!(
                            "/* Replacing type \"{}\" outport \"{}\" with distributed port \"{dn}\". */",
                            pr.ty, pr.friendly
                        )
                    });
                    port = Some(d);
                    out_name = dn;
                    egress_flow.set_reg(15, p.port(d).key);
                }
                None => {
                    self.sink.add(sup, NodeKind::Error, || {
                        format!(
                            "*** output to type \"{}\" port \"{out_name}\" with no or invalid distributed port",
                            pr.ty
                        )
                    });
                    return Then::Stop;
                }
            }
        }

        if let Some(id) = port
            && let Some(chassis) = self.remote_chassis(id)
        {
            if !self.from_tunnel {
                self.sink.add(sup, NodeKind::Output, || {
                    format!("/* output to \"{out_name}\" on another chassis: tunnel */")
                });
                self.decision.tunnels.push(TunnelOut {
                    dp,
                    chassis,
                    outport_key: p.port(id).key,
                    flow: *egress_flow,
                });
            }
            return Then::Stop;
        }
        if port.is_some_and(|id| p.port(id).key != in_key) || allow_loopback {
            let node = self.sink.add(sup, NodeKind::Pipeline, || {
                format!("egress(dp=\"{dpname}\", inport=\"{inport_name}\", outport=\"{out_name}\")")
            });
            if tail {
                return Then::Pipeline {
                    dp,
                    egress: true,
                    table: 0,
                    sup: node,
                };
            }
            self.trace_owned(dp, egress_flow, 0, true, node);
        } else {
            self.sink.add(sup, NodeKind::Output, || {
                "/* omitting output because inport == outport && !flags.loopback */".into()
            });
        }
        Then::Stop
    }

    /// The zone a `ct()` of `kind` in `dp` uses, as actions.c encodes them and
    /// physical.c loads the zone registers: `ct_next`, `ct_commit`, `ct_lb` and
    /// `ct_commit_nat` use a switch's port zone (the inport in ingress, the outport in
    /// egress: `MFF_LOG_CT_ZONE`) or a router's DNAT zone; `ct_dnat` and `ct_snat` use
    /// the datapath's DNAT and SNAT zones (`MFF_LOG_DNAT_ZONE`, `MFF_LOG_SNAT_ZONE`),
    /// which ovn-controller gives switches too (`ct_snat` of a load-balancer hairpin).
    fn zone(&self, dp: DpId, flow: &Flow, egress: bool, kind: ZoneOf) -> Zone {
        let d = self.p.datapath(dp);
        match (d.is_router, kind) {
            (_, ZoneOf::Snat) => Zone::Snat(d.key),
            (true, _) | (false, ZoneOf::Dnat) => Zone::Dnat(d.key),
            (false, ZoneOf::Ct) => Zone::Port {
                dp: d.key,
                port: flow.reg(if egress { 15 } else { 14 }),
            },
        }
    }

    /// [`Semantics::Chassis`]: runs `ct()` with `req` on `flow` in its zone. False
    /// (and the frame fails closed under `name`) without a tracker or when the
    /// tracker refuses.
    fn ct(
        &mut self,
        dp: DpId,
        egress: bool,
        kind: ZoneOf,
        flow: &mut Flow,
        req: &Request,
        name: &'static str,
    ) -> bool {
        let zone = self.zone(dp, flow, egress, kind);
        self.decision.conntrack = true;
        let Some(ct) = self.ct.as_deref_mut() else {
            self.unsupported(name);
            return false;
        };
        match ct.execute(zone, flow, req) {
            Ok(()) => true,
            Err(e) => {
                self.unsupported(e.name());
                false
            }
        }
    }

    /// What `ct_commit { ... }`'s nested actions write into `ct_mark` and
    /// `ct_label`, as (value, mask): run once from all-zero and once from all-one
    /// values, the bits they leave alone differ.
    fn commit_sets(
        &mut self,
        nested: &[Action],
        dp: DpId,
        flow: &Flow,
        table: u8,
        egress: bool,
    ) -> CommitSets {
        let (mut zero, mut one) = (*flow, *flow);
        zero.set(Field::CtMark, 0);
        zero.set(Field::CtLabel, 0);
        one.set(Field::CtMark, u128::from(u32::MAX));
        one.set(Field::CtLabel, u128::MAX);
        self.trace_actions(nested, dp, &mut zero, table, egress, 0, None);
        self.trace_actions(nested, dp, &mut one, table, egress, 0, None);
        let (m0, m1) = (
            zero.get(Field::CtMark) as u32,
            one.get(Field::CtMark) as u32,
        );
        let (l0, l1) = (zero.get(Field::CtLabel), one.get(Field::CtLabel));
        let mark_mask = !(m0 ^ m1);
        let label_mask = !(l0 ^ l1);
        (
            (mark_mask != 0).then_some((m0 & mark_mask, mark_mask)),
            (label_mask != 0).then_some((l0 & label_mask, label_mask)),
        )
    }

    /// [`Semantics::Chassis`] `ct_lb`/`ct_lb_mark`: with backends, a new connection
    /// is committed with DNAT to the backend its tuple hashes to (OVS's select group
    /// of `ct(commit, nat(dst=...))` buckets) and its `natted` bit set; an existing
    /// one keeps the backend it has. Without backends, the connection's NAT is applied.
    fn chassis_ct_lb(
        &mut self,
        dp: DpId,
        flow: &Flow,
        lb: &ChassisLb<'_>,
        table: u8,
        egress: bool,
        sup: usize,
    ) {
        let (mark, backends) = (lb.mark, lb.backends);
        let name = if mark { "ct_lb_mark" } else { "ct_lb" };
        let hash = match lb.hash_fields {
            None => lb_hash(flow),
            Some(fields) => match lb_hash_fields(flow, fields) {
                Some(h) => h,
                None => {
                    // OVS refuses the group: the packet goes nowhere.
                    self.unsupported("ct_lb_hash_fields");
                    return;
                }
            },
        };
        let req = if backends.is_empty() {
            Request {
                commit: false,
                nat: Nat::Restore,
                ..Request::default()
            }
        } else {
            let v4 = flow.dl_type() == ETH_TYPE_IP;
            let family = |b: &&LbBackend| matches!(b.addr, Addr::V4(_)) == v4;
            let n = backends.iter().filter(family).count();
            let Some(b) = (n > 0)
                .then(|| backends.iter().filter(family).nth(hash as usize % n))
                .flatten()
            else {
                // No bucket of the packet's family: OVS's ct(nat) fails, the packet
                // goes nowhere.
                self.decision.conntrack = true;
                return;
            };
            let bits = 2 | match lb.flag {
                LbFlag::None => 0,
                LbFlag::SkipSnat => 4,
                LbFlag::ForceSnat => 8,
            };
            Request {
                commit: true,
                nat: Nat::Dst {
                    addr: addr_u128(b.addr),
                    port: b.port,
                },
                mark: mark.then_some((bits, bits)),
                label: (!mark).then_some((u128::from(bits), u128::from(bits))),
            }
        };
        let mut ct_flow = *flow;
        if self.ct(dp, egress, ZoneOf::Ct, &mut ct_flow, &req, name) {
            self.trace_table(dp, &mut ct_flow, table, egress, sup);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn execute_ct_nat(
        &mut self,
        dp: DpId,
        flow: &Flow,
        kind: NatKind,
        table: u8,
        addr: Option<Addr>,
        egress: bool,
        sup: usize,
    ) {
        self.unsupported(match kind {
            NatKind::Dnat => "ct_dnat",
            NatKind::Snat => "ct_snat",
            NatKind::DnatInCzone => "ct_dnat_in_czone",
            NatKind::SnatInCzone => "ct_snat_in_czone",
        });
        let is_dst = kind.is_dst();
        if !is_dst && self.p.datapath(dp).has_local_l3gateway && addr.is_none() {
            return;
        }
        let dir = if is_dst { "dst" } else { "src" };
        let mut ct_flow = *flow;
        let mut s = format!(
            "ct_{}nat{}",
            &dir[..1],
            if kind.in_czone() { "in_czone" } else { "" }
        );
        match addr {
            Some(Addr::V4(a)) => {
                s.push_str(&format!("(ip4.{dir}={})", std::net::Ipv4Addr::from(a)));
                ct_flow.set(
                    if is_dst {
                        Field::Ipv4Dst
                    } else {
                        Field::Ipv4Src
                    },
                    u128::from(a),
                );
                let st = ct_flow.get(Field::CtState);
                ct_flow.set(
                    Field::CtState,
                    st | u128::from(if is_dst { cs::DST_NAT } else { cs::SRC_NAT }),
                );
            }
            Some(Addr::V6(a)) => {
                s.push_str(&format!("(ip6.{dir}={})", value::ipv6_string(a)));
                ct_flow.set(
                    if is_dst {
                        Field::Ipv6Dst
                    } else {
                        Field::Ipv6Src
                    },
                    a,
                );
                let st = ct_flow.get(Field::CtState);
                ct_flow.set(
                    Field::CtState,
                    st | u128::from(if is_dst { cs::DST_NAT } else { cs::SRC_NAT }),
                );
            }
            None => s.push_str(&format!(
                " /* assuming no un-{}nat entry, so no change */",
                &dir[..1]
            )),
        }
        if ct_flow.get(Field::CtState) as u32 & cs::TRACKED == 0 {
            let st = self.next_ct_state(&mut s);
            let cur = ct_flow.get(Field::CtState);
            ct_flow.set(Field::CtState, cur | u128::from(st));
        }
        let node = self.sink.add(sup, NodeKind::Transformation, || s);
        self.trace_table(dp, &mut ct_flow, table, egress, node);
    }

    #[allow(clippy::too_many_arguments)]
    fn execute_ct_lb(
        &mut self,
        dp: DpId,
        flow: &Flow,
        mark: bool,
        table: u8,
        backends: &[LbBackend],
        egress: bool,
        sup: usize,
    ) {
        self.unsupported(if mark { "ct_lb_mark" } else { "ct_lb" });
        let mut comment = String::new();
        let mut lb = *flow;
        let v4 = lb.dl_type() == ETH_TYPE_IP;
        let v6 = lb.dl_type() == ETH_TYPE_IPV6;
        if v4 || v6 {
            let family_ok = |a: &Addr| matches!(a, Addr::V4(_)) == v4;
            let user = self
                .opts
                .lb_dst
                .filter(|(a, _)| !self.lb_dst_used && family_ok(a));
            let mut dst: Option<(Addr, u16)> = None;
            if !backends.is_empty() {
                for b in backends.iter().filter(|b| family_ok(&b.addr)) {
                    if let Some((ua, _)) = user
                        && ua == b.addr
                    {
                        self.lb_dst_used = true;
                        dst = Some((b.addr, b.port));
                        break;
                    }
                    if dst.is_none() {
                        dst = Some((b.addr, b.port));
                    }
                }
                if dst.is_none() {
                    self.sink.add(sup, NodeKind::Error, || {
                        "*** no load balancing destination (use --lb-dst)".into()
                    });
                }
            } else if let Some(u) = user {
                dst = Some(u);
            }
            if let Some((addr, port)) = dst {
                match addr {
                    Addr::V4(a) => {
                        lb.ct_nw_dst = lb.get(Field::Ipv4Dst) as u32;
                        lb.set(Field::Ipv4Dst, u128::from(a));
                    }
                    Addr::V6(a) => {
                        lb.ct_ipv6_dst = lb.get(Field::Ipv6Dst);
                        lb.set(Field::Ipv6Dst, a);
                    }
                }
                lb.ct_tp_dst = lb.tp_dst();
                if port != 0 {
                    lb.set(Field::TcpDst, u128::from(port));
                }
                let st = lb.get(Field::CtState);
                lb.set(Field::CtState, st | u128::from(cs::DST_NAT));
            }
            let st = self.next_ct_state(&mut comment);
            let cur = lb.get(Field::CtState);
            lb.set(Field::CtState, cur | u128::from(st));
        }
        let node = self.sink.add(sup, NodeKind::Transformation, || {
            format!("{}{comment}", if mark { "ct_lb_mark" } else { "ct_lb" })
        });
        self.trace_table(dp, &mut lb, table, egress, node);
    }

    /// The load balancer whose VIP is the connection's original destination.
    fn lb_vip(&self, flow: &Flow) -> Option<(Addr, u16)> {
        let orig_dst = match flow.dl_type() {
            ETH_TYPE_IPV6 => flow.ct_ipv6_dst,
            _ => v4_mapped(flow.ct_nw_dst),
        };
        let v = self.p.lb_vips().at(orig_dst).next()?;
        Some((v.addr, v.port))
    }

    /// An action that writes a bit: the port-security checks (two in every switch a
    /// frame crosses) where the walk runs, the others in a call.
    #[inline(always)]
    fn execute_result(
        &mut self,
        kind: ResultKind,
        (dst, set): (FieldRef, Option<WordSet>),
        dp: DpId,
        flow: &mut Flow,
        sup: usize,
    ) {
        match kind {
            ResultKind::CheckInPortSec => {
                let v = !self.in_port_sec_ok(dp, flow);
                write_result(flow, dst, set, v);
            }
            ResultKind::CheckOutPortSec => {
                let v = !self.out_port_sec_ok(dp, flow);
                write_result(flow, dst, set, v);
            }
            _ => self.execute_other_result(kind, (dst, set), dp, flow, sup),
        }
    }

    #[inline(never)]
    fn execute_other_result(
        &mut self,
        kind: ResultKind,
        (dst, set): (FieldRef, Option<WordSet>),
        dp: DpId,
        flow: &mut Flow,
        sup: usize,
    ) {
        match kind {
            // Not reached from `execute_result`, which runs these itself.
            ResultKind::CheckInPortSec | ResultKind::CheckOutPortSec => {
                self.execute_result(kind, (dst, set), dp, flow, sup)
            }
            ResultKind::DnsLookup => {
                write_result(flow, dst, set, false);
                self.sink.add(sup, NodeKind::Error, || {
                    "*** dns_lookup action not implemented".into()
                });
                self.unsupported("dns_lookup");
            }
            ResultKind::ChkLbHairpin | ResultKind::ChkLbHairpinReply
                if self.sem == Semantics::Chassis =>
            {
                let res = if kind == ResultKind::ChkLbHairpin {
                    self.chassis_chk_lb_hairpin(dp, flow)
                } else {
                    self.chassis_chk_lb_hairpin_reply(dp, flow)
                };
                write_result(flow, dst, set, res);
            }
            ResultKind::ChkLbHairpin | ResultKind::ChkLbHairpinReply => {
                let orig = kind == ResultKind::ChkLbHairpin;
                let mut res = 0u8;
                if let Some((_, vip_port)) = self.lb_vip(flow) {
                    let v4 = flow.dl_type() == ETH_TYPE_IP;
                    let v6 = flow.dl_type() == ETH_TYPE_IPV6;
                    if v4 || v6 {
                        if flow.get(Field::CtState) as u32 & cs::DST_NAT != 0 {
                            res = u8::from(if v4 {
                                flow.get(Field::Ipv4Src) == flow.get(Field::Ipv4Dst)
                            } else {
                                flow.get(Field::Ipv6Src) == flow.get(Field::Ipv6Dst)
                            });
                        }
                        let port = if orig { flow.ct_tp_dst } else { flow.tp_dst() };
                        res &= u8::from(vip_port == port);
                    }
                }
                write_result(flow, dst, set, res != 0);
                self.sink
                    .add(sup, NodeKind::Modify, || format!("{dst} = {res}"));
            }
            ResultKind::ChkLbAff if self.sem == Semantics::Chassis => {
                let res = self.chassis_chk_lb_aff(dp, flow);
                write_result(flow, dst, set, res);
            }
            ResultKind::ChkEcmpNhMac | ResultKind::ChkEcmpNh | ResultKind::ChkLbAff => {
                // ovn-trace leaves these untouched; the datapath cannot run them yet.
                self.unsupported(kind.name());
            }
        }
    }

    /// [`Semantics::Chassis`] `chk_lb_hairpin()`: ovn-controller's
    /// `OFTABLE_CHK_LB_HAIRPIN` flows, one per VIP and backend: the packet was
    /// load-balanced (DNAT) to a backend that is its own source, with the VIP as the
    /// connection's original destination. When true, the flow `learn`s the session's
    /// reply ([`HairpinReply`]), as OVS does.
    fn chassis_chk_lb_hairpin(&mut self, dp: DpId, flow: &Flow) -> bool {
        let Some((src, dst)) = ip_addrs(flow) else {
            return false;
        };
        let need = cs::TRACKED | cs::DST_NAT;
        if flow.get(Field::CtState) as u32 & need != need || src != dst {
            return false;
        }
        let Some(vip) = self.original_vip(flow) else {
            return false;
        };
        let reply = HairpinReply {
            dp: self.p.datapath(dp).key,
            backend: src,
            vip: addr_u128(vip.hairpin_snat),
            proto: flow.nw_proto(),
            backend_port: if vip.port != 0 { flow.tp_dst() } else { 0 },
        };
        let Some(ct) = self.ct.as_deref_mut() else {
            self.unsupported("chk_lb_hairpin");
            return false;
        };
        if !ct.learn_hairpin_reply(reply) {
            // The session's replies would not be recognised: refuse the session.
            self.unsupported("lb_hairpin_table_full");
        }
        true
    }

    /// [`Semantics::Chassis`] `chk_lb_hairpin_reply()`: whether a hairpin session
    /// learned this packet as its reply (`OFTABLE_CHK_LB_HAIRPIN_REPLY`'s learned
    /// flows). Only a packet to a VIP (or its `hairpin_snat_ip`) can be one.
    fn chassis_chk_lb_hairpin_reply(&mut self, dp: DpId, flow: &Flow) -> bool {
        let Some((src, dst)) = ip_addrs(flow) else {
            return false;
        };
        if !self.p.lb_vips().is_hairpin_source(dst) {
            return false;
        }
        let reply = HairpinReply {
            dp: self.p.datapath(dp).key,
            backend: src,
            vip: dst,
            proto: flow.nw_proto(),
            backend_port: flow.tp_src(),
        };
        let Some(ct) = self.ct.as_deref_mut() else {
            self.unsupported("chk_lb_hairpin_reply");
            return false;
        };
        ct.hairpin_reply_learned(&reply)
            || ct.hairpin_reply_learned(&HairpinReply {
                backend_port: 0,
                ..reply
            })
    }

    /// [`Semantics::Chassis`] `chk_lb_aff()`: `OFTABLE_CHK_LB_AFFINITY`'s learned
    /// flows. A live session loads its backend where northd's `ls_in_lb` /
    /// `lr_in_dnat` flows look for it (`reg4` or `xxreg0`/`xxreg1`, port in
    /// `reg8[0..15]`) and sets `MLF_USE_LB_AFF_SESSION`.
    fn chassis_chk_lb_aff(&mut self, dp: DpId, flow: &mut Flow) -> bool {
        let Some((client, vip)) = ip_addrs(flow) else {
            return false;
        };
        let router = self.p.datapath(dp).is_router;
        let session = Affinity {
            dp: self.p.datapath(dp).key,
            client,
            vip,
            proto: flow.nw_proto(),
            vip_port: flow.tp_dst(),
        };
        let Some(ct) = self.ct.as_deref_mut() else {
            self.unsupported("chk_lb_aff");
            return false;
        };
        let any_port = Affinity {
            proto: 0,
            vip_port: 0,
            ..session
        };
        let Some((backend, port)) = ct
            .lb_affinity(&session)
            .or_else(|| ct.lb_affinity(&any_port))
        else {
            let flags = flow.reg(10) & !mlf::USE_LB_AFF_SESSION;
            flow.set_reg(10, flags);
            return false;
        };
        match flow.dl_type() {
            ETH_TYPE_IP => flow.set_reg(4, backend as u32),
            _ => flow.set(Field::Xxreg(if router { 1 } else { 0 }), backend),
        }
        flow.set_bits(Field::Reg(8), 0, 16, u128::from(port));
        flow.set_reg(10, flow.reg(10) | mlf::USE_LB_AFF_SESSION);
        true
    }

    /// The VIP that is `flow`'s connection's original destination (address, and port
    /// when the VIP has one), as ovn-controller's hairpin flows match it.
    fn original_vip(&self, flow: &Flow) -> Option<&LbVip> {
        let orig_dst = match flow.dl_type() {
            ETH_TYPE_IP => v4_mapped(flow.ct_nw_dst),
            ETH_TYPE_IPV6 => flow.ct_ipv6_dst,
            _ => return None,
        };
        self.p
            .lb_vips()
            .at(orig_dst)
            .find(|v| v.port == 0 || v.port == flow.ct_tp_dst)
    }

    /// [`Semantics::Chassis`] `ct_snat_to_vip`: ovn-controller's
    /// `OFTABLE_CT_SNAT_HAIRPIN`, one flow per VIP: a load-balanced connection (DNAT,
    /// the VIP as its original destination) is committed in the datapath's SNAT zone
    /// with its source translated to the VIP (or `hairpin_snat_ip`), so the backend that
    /// reached itself sees the VIP, not itself, and answers through the hairpin. No
    /// VIP matches: nothing happens. Like OVS's `ct` without recirculation, the
    /// packet goes on translated and untracked.
    fn chassis_ct_snat_to_vip(&mut self, dp: DpId, flow: &mut Flow, egress: bool) {
        let need = cs::TRACKED | cs::DST_NAT;
        if flow.get(Field::CtState) as u32 & need != need {
            return;
        }
        let Some(vip) = self.original_vip(flow) else {
            return;
        };
        let req = Request {
            commit: true,
            nat: Nat::Src {
                addr: addr_u128(vip.hairpin_snat),
                lo: 0,
                hi: 0,
            },
            ..Request::default()
        };
        self.ct(dp, egress, ZoneOf::Snat, flow, &req, "ct_snat_to_vip");
        flow.clear_conntrack();
    }

    fn execute_ct_snat_to_vip(&mut self, flow: &Flow, sup: usize) {
        self.unsupported("ct_snat_to_vip");
        let Some((addr, port)) = self.lb_vip(flow) else {
            return;
        };
        let same = match addr {
            Addr::V4(v) => v == flow.ct_nw_dst,
            Addr::V6(v) => v == flow.ct_ipv6_dst,
        };
        if same && port == flow.ct_tp_dst {
            // ovn-trace names the VIP by its address alone (ip_address_and_port_from_lb_key).
            self.sink
                .add(sup, NodeKind::Action, || format!("/* nat(src={addr}) */"));
        }
    }

    /// ovn-trace's `execute_check_in_port_sec`: true when the frame passes.
    fn in_port_sec_ok(&self, dp: DpId, flow: &Flow) -> bool {
        let Some(port) = self.p.port_by_key(dp, flow.reg(14)) else {
            return true;
        };
        if port.port_security.is_empty() {
            return true;
        }
        let src = flow.get(Field::EthSrc) as u64;
        let Some(ps) = port.port_security.iter().find(|ps| ps.mac == src) else {
            return false;
        };
        match flow.dl_type() {
            ETH_TYPE_IP => {
                if ps.ipv4.is_empty() && ps.ipv6.is_empty() {
                    return true;
                }
                let nw_src = flow.get(Field::Ipv4Src) as u32;
                ps.ipv4.contains(&nw_src)
                    || (flow.nw_proto() == 17
                        && flow.tp_src() == 68
                        && flow.tp_dst() == 67
                        && nw_src == 0
                        && flow.get(Field::Ipv4Dst) as u32 == u32::MAX)
            }
            ETH_TYPE_ARP => {
                if flow.get(Field::ArpSha) as u64 != ps.mac {
                    return false;
                }
                ps.ipv4.is_empty() || ps.ipv4.contains(&(flow.get(Field::ArpSpa) as u32))
            }
            ETH_TYPE_IPV6 => {
                if ps.ipv4.is_empty() && ps.ipv6.is_empty() {
                    return true;
                }
                let src6 = flow.get(Field::Ipv6Src);
                let lla = link_local(ps.mac);
                if !ps.ipv6.contains(&src6) && src6 != lla {
                    return false;
                }
                if flow.nw_proto() == 58 {
                    let t = flow.tp_src();
                    if t == 135 {
                        let sll = flow.get(Field::NdSll) as u64;
                        if sll != 0 && sll != ps.mac {
                            return false;
                        }
                    }
                    if t == 136 {
                        let tll = flow.get(Field::NdTll) as u64;
                        if tll != 0 && tll != ps.mac {
                            return false;
                        }
                        if !ps.ipv6.is_empty() {
                            let target = flow.get(Field::NdTarget);
                            if !ps.ipv6.contains(&target) && target != lla {
                                return false;
                            }
                        }
                    }
                }
                true
            }
            _ => true,
        }
    }

    /// ovn-trace's `execute_check_out_port_sec`: true when the frame passes.
    fn out_port_sec_ok(&self, dp: DpId, flow: &Flow) -> bool {
        let Some(port) = self.p.port_by_key(dp, flow.reg(15)) else {
            return true;
        };
        if port.port_security.is_empty() {
            return true;
        }
        let dst = flow.get(Field::EthDst) as u64;
        let Some(ps) = port.port_security.iter().find(|ps| ps.mac == dst) else {
            return false;
        };
        match flow.dl_type() {
            ETH_TYPE_IP => {
                if ps.ipv4.is_empty() && ps.ipv6.is_empty() {
                    return true;
                }
                if ps.ipv4.is_empty() {
                    return false;
                }
                let d = flow.get(Field::Ipv4Dst) as u32;
                ps.ipv4.contains(&d) || d == u32::MAX || d >> 28 == 0xe
            }
            ETH_TYPE_IPV6 => {
                if ps.ipv4.is_empty() && ps.ipv6.is_empty() {
                    return true;
                }
                if ps.ipv6.is_empty() {
                    return false;
                }
                let d = flow.get(Field::Ipv6Dst);
                ps.ipv6.contains(&d) || d == link_local(ps.mac) || d >> 120 == 0xff
            }
            _ => true,
        }
    }

    /// The packet-generating nested actions (ovn-trace's `execute_arp`,
    /// `execute_icmp4`, ...): nested actions run on a derived packet.
    #[allow(clippy::too_many_arguments)]
    fn execute_nested(
        &mut self,
        kind: NestKind,
        nested: &[Action],
        dp: DpId,
        flow: &Flow,
        table: u8,
        egress: bool,
        sup: usize,
        a: &Action,
    ) {
        if kind != NestKind::Clone && self.sem == Semantics::Chassis {
            // pinctrl builds the packet and runs the nested actions on it.
            self.decision.controller.push(ControllerOp {
                dp,
                egress,
                table,
                flow: *flow,
                action: a.clone(),
                resume: None,
            });
            return;
        }
        let mut f = *flow;
        let name = match kind {
            NestKind::Clone => "clone",
            NestKind::Arp => {
                f.set(Field::IpFrag, 0);
                f.set(Field::IpDscp, 0);
                f.set(Field::IpEcn, 0);
                f.set(Field::IpTtl, 0);
                f.set(Field::TcpFlags, 0);
                f.set(Field::EthType, u128::from(ETH_TYPE_ARP));
                f.set(Field::ArpOp, 1);
                f.set(Field::ArpSha, flow.get(Field::EthSrc));
                f.set(Field::ArpTha, 0);
                "arp"
            }
            NestKind::NdNa | NestKind::NdNaRouter => {
                f.set(Field::EthSrc, flow.get(Field::EthDst));
                f.set(Field::EthDst, flow.get(Field::EthSrc));
                f.set(Field::Ipv6Dst, flow.get(Field::Ipv6Src));
                f.set(Field::Ipv6Src, flow.get(Field::NdTarget));
                f.set(Field::TcpSrc, 136);
                f.set(Field::ArpSha, 0);
                f.set(Field::ArpTha, flow.get(Field::EthDst));
                "nd_na"
            }
            NestKind::NdNs => {
                let d6 = flow.get(Field::Ipv6Dst);
                let sn = (0xff02u128 << 112) | (0x1_ff00_0000u128) | (d6 & 0xff_ffff);
                let mac = 0x3333_0000_0000u64 | (sn as u64 & 0xffff_ffff);
                f.set(Field::EthDst, u128::from(mac));
                f.set(Field::TcpSrc, 135);
                f.set(Field::ArpSha, 0);
                f.set(Field::ArpTha, flow.get(Field::EthDst));
                "nd_ns"
            }
            NestKind::Icmp4 | NestKind::Icmp4Error => {
                if !self.icmp(&mut f, flow, false, false) {
                    return;
                }
                "icmp4"
            }
            NestKind::Icmp6 | NestKind::Icmp6Error => {
                if !self.icmp(&mut f, flow, false, true) {
                    return;
                }
                "icmp6"
            }
            NestKind::TcpReset => {
                if !self.tcp_reset(&mut f, flow, false) {
                    return;
                }
                "tcp_reset"
            }
            NestKind::SctpAbort => {
                if !self.sctp_abort(&mut f, flow, false) {
                    return;
                }
                "sctp_abort"
            }
            NestKind::Reject => {
                let ok = match flow.nw_proto() {
                    6 => self.tcp_reset(&mut f, flow, true).then_some("tcp_reset"),
                    132 => self.sctp_abort(&mut f, flow, true).then_some("sctp_abort"),
                    _ => {
                        let v6 = flow.dl_type() != ETH_TYPE_IP;
                        self.icmp(&mut f, flow, true, v6).then_some(if v6 {
                            "icmp6"
                        } else {
                            "icmp4"
                        })
                    }
                };
                match ok {
                    Some(n) => n,
                    None => return,
                }
            }
        };
        let node = self.sink.add(sup, NodeKind::Transformation, || name.into());
        self.trace_actions(nested, dp, &mut f, table, egress, node, None);
    }

    fn swap_addrs(f: &mut Flow, orig: &Flow, loopback: bool, v6: bool) {
        let (s, d) = if v6 {
            (Field::Ipv6Src, Field::Ipv6Dst)
        } else {
            (Field::Ipv4Src, Field::Ipv4Dst)
        };
        if loopback {
            f.set(Field::EthDst, orig.get(Field::EthSrc));
            f.set(Field::EthSrc, orig.get(Field::EthDst));
            f.set(d, orig.get(s));
            f.set(s, orig.get(d));
        }
    }

    fn icmp(&mut self, f: &mut Flow, orig: &Flow, loopback: bool, v6: bool) -> bool {
        let unreach = if v6 { 1 } else { 3 };
        if loopback && orig.tp_src() == unreach {
            return false;
        }
        Self::swap_addrs(f, orig, loopback, v6);
        f.set(Field::IpProto, if v6 { 58 } else { 1 });
        f.set(Field::IpTtl, 255);
        f.set(Field::TcpSrc, u128::from(unreach));
        f.set(Field::TcpDst, 1);
        true
    }

    fn tcp_reset(&mut self, f: &mut Flow, orig: &Flow, loopback: bool) -> bool {
        if loopback && orig.get(Field::TcpFlags) == 0x004 {
            return false;
        }
        let v6 = orig.dl_type() != ETH_TYPE_IP;
        Self::swap_addrs(f, orig, loopback, v6);
        f.set(Field::IpProto, 6);
        f.set(Field::IpTtl, 255);
        f.set(Field::TcpFlags, 0x004);
        true
    }

    fn sctp_abort(&mut self, f: &mut Flow, orig: &Flow, loopback: bool) -> bool {
        if loopback && orig.get(Field::TcpFlags) == 0x004 {
            return false;
        }
        let v6 = orig.dl_type() != ETH_TYPE_IP;
        Self::swap_addrs(f, orig, loopback, v6);
        // ovn-trace sets TCP for the IPv6 case; kept for equal output.
        f.set(Field::IpProto, if v6 { 6 } else { 132 });
        f.set(Field::IpTtl, 255);
        f.set(Field::TcpFlags, 0x004);
        true
    }
}

/// What a `ct_commit` writes: `ct_mark` and `ct_label` as (value, mask).
type CommitSets = (Option<(u32, u32)>, Option<(u128, u128)>);

/// An address as the tracker takes it: IPv4 as IPv4-mapped IPv6.
/// Which of a datapath's zones a `ct()` uses ([`Interpreter::zone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneOf {
    /// `MFF_LOG_CT_ZONE` in a switch, the DNAT zone in a router.
    Ct,
    Dnat,
    Snat,
}

/// An IP packet's source and destination, IPv4-mapped for IPv4.
fn ip_addrs(flow: &Flow) -> Option<(u128, u128)> {
    match flow.dl_type() {
        ETH_TYPE_IP => Some((
            v4_mapped(flow.get(Field::Ipv4Src) as u32),
            v4_mapped(flow.get(Field::Ipv4Dst) as u32),
        )),
        ETH_TYPE_IPV6 => Some((flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst))),
        _ => None,
    }
}

fn addr_u128(a: Addr) -> u128 {
    match a {
        Addr::V4(v) => v4_mapped(v),
        Addr::V6(v) => v,
    }
}

/// The hash that picks a load balancer's backend for a new connection: the 5-tuple,
/// so a connection's retransmitted first packet picks the same one.
/// A `ct_lb`'s arguments as [`Semantics::Chassis`] carries them out.
struct ChassisLb<'a> {
    mark: bool,
    backends: &'a [LbBackend],
    /// `hash_fields`: OVS field names (northd's rendering of `selection_fields`).
    hash_fields: Option<&'a str>,
    flag: LbFlag,
}

/// The bucket hash of OVS's `selection_method=hash,fields(...)`: over the named fields
/// only (a field the packet lacks counts as zero), so packets equal in them pick one
/// backend. `None` for a name OVS does not know (it would refuse the group).
fn lb_hash_fields(flow: &Flow, fields: &str) -> Option<u32> {
    let l4 = |proto: u8, f: Field| {
        if flow.nw_proto() == proto {
            flow.get(f)
        } else {
            0
        }
    };
    let ip = |v4: Field, v6: Field| match flow.dl_type() {
        ETH_TYPE_IP => flow.get(v4),
        ETH_TYPE_IPV6 => flow.get(v6),
        _ => 0,
    };
    let l4_any = flow.is_ip_any() && matches!(flow.nw_proto(), 6 | 17 | 132);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for name in fields.split(',').map(str::trim) {
        let v: u128 = match name {
            "eth_src" => flow.get(Field::EthSrc),
            "eth_dst" => flow.get(Field::EthDst),
            "ip_src" | "nw_src" => ip(Field::Ipv4Src, Field::Ipv6Src),
            "ip_dst" | "nw_dst" => ip(Field::Ipv4Dst, Field::Ipv6Dst),
            "ipv6_src" if flow.dl_type() == ETH_TYPE_IPV6 => flow.get(Field::Ipv6Src),
            "ipv6_dst" if flow.dl_type() == ETH_TYPE_IPV6 => flow.get(Field::Ipv6Dst),
            "ipv6_src" | "ipv6_dst" => 0,
            // northd passes `tp_src`/`tp_dst` through when the load balancer names no
            // protocol.
            "tp_src" if l4_any => flow.get(Field::TcpSrc),
            "tp_dst" if l4_any => flow.get(Field::TcpDst),
            "tp_src" | "tp_dst" => 0,
            "tcp_src" => l4(6, Field::TcpSrc),
            "tcp_dst" => l4(6, Field::TcpDst),
            "udp_src" => l4(17, Field::TcpSrc),
            "udp_dst" => l4(17, Field::TcpDst),
            "sctp_src" => l4(132, Field::TcpSrc),
            "sctp_dst" => l4(132, Field::TcpDst),
            _ => return None,
        };
        for w in [v as u64, (v >> 64) as u64] {
            h = (h ^ w).wrapping_mul(0x100_0000_01b3);
            h ^= h >> 29;
        }
    }
    Some((h ^ (h >> 32)) as u32)
}

fn lb_hash(flow: &Flow) -> u32 {
    let v6 = flow.dl_type() == ETH_TYPE_IPV6;
    let (s, d) = if v6 {
        (flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst))
    } else {
        (flow.get(Field::Ipv4Src), flow.get(Field::Ipv4Dst))
    };
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in [
        s as u64,
        (s >> 64) as u64,
        d as u64,
        (d >> 64) as u64,
        u64::from(flow.nw_proto()),
        (u64::from(flow.tp_src()) << 16) | u64::from(flow.tp_dst()),
    ] {
        h = (h ^ v).wrapping_mul(0x100_0000_01b3);
        h ^= h >> 29;
    }
    (h ^ (h >> 32)) as u32
}

fn flow_read(flow: &Flow, sf: Subfield) -> u128 {
    flow.get_bits(sf.field, sf.ofs, sf.n_bits)
}

/// An IP address read from a 32- or 128-bit field, IPv4 as IPv4-mapped IPv6.
fn read_ip(flow: &Flow, sf: Subfield) -> u128 {
    let v = flow_read(flow, sf);
    if sf.n_bits == 32 {
        v4_mapped(v as u32)
    } else {
        v
    }
}

/// A result action's boolean into `dst` (through `set`, its bits found when parsed).
#[inline]
fn write_result(flow: &mut Flow, dst: FieldRef, set: Option<WordSet>, v: bool) {
    match set {
        Some(set) => set.apply(flow, v),
        None => write_ref(flow, dst, u128::from(v)),
    }
}

fn write_ref(flow: &mut Flow, r: FieldRef, v: u128) {
    let sf = r.resolve();
    flow.set_bits(sf.field, sf.ofs, sf.n_bits, v);
}

fn copy_bits(flow: &mut Flow, src: Subfield, dst: Subfield) {
    let v = flow.get_bits(src.field, src.ofs, src.n_bits);
    flow.set_bits(dst.field, dst.ofs, dst.n_bits, v);
}
