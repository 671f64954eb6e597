//! `ovnest run`: the hypervisor agent.
//!
//! One loop, reconcile-not-react: on every Southbound or local-DB change, and every
//! `--resync` seconds to heal anything missed, it computes the whole desired state from the
//! latest snapshot (pure functions in [`bindings`] and [`desired`]), writes only the
//! difference into the XDP program's maps, and then tells the SB what it did (claims,
//! `up`, `nb_cfg`). Without the SB it keeps forwarding with the last state (headless) and
//! resyncs when the SB returns.
//!
//! The datapath outlives the agent: its maps and XDP links are pinned per chassis
//! (`ovnest_datapath::fastpath::pins`). On start the agent adopts what a previous ovnest
//! left, keeps it forwarding untouched until it has a plan from a synced Southbound, and
//! then reconciles it by difference. A signal or a crash is a stop for restart: chassis,
//! claims and datapath stay; `ovnest cleanup` ([`cleanup`]) is the deliberate exit.

pub mod bindings;
pub mod chassis;
pub mod cleanup;
pub mod config;
pub mod desired;
pub mod encaps;
pub mod local_datapaths;
pub mod local_ovs;
mod metrics;
pub mod monitor;
pub mod status;
#[cfg(test)]
mod tests;
pub mod underlay;
mod userspace;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use ovnest_common::PortKey;
use ovnest_datapath::{
    FastPath, TableSet,
    fastpath::{Decisions, Options, PinDir},
};
use tokio::sync::watch;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use self::{
    bindings::{OddState, Plan, Role},
    chassis::ChassisSpec,
    config::{DatapathMode, Effective, Flags, RunArgs},
    desired::StatsSlots,
    local_ovs::LocalOvs,
    monitor::{Conditions, MonitorPlan},
    status::{PortStatus, SocketStatus, Status, SvcMonitorStatus},
};
use crate::{
    ovsdb::{ConnectionState, Operation},
    sb::{self, Snapshot, Southbound},
};

/// How long one SB transaction may take before the loop moves on (and retries later).
const TRANSACT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the poll threads get to adopt a new snapshot before a change is
/// acknowledged anyway later (they adopt within one batch, or are asleep).
const ADOPTION_TIMEOUT: Duration = Duration::from_millis(500);
/// The decision cache's entries are counted (a walk of its maps) at most this often.
const CACHE_COUNT_EVERY: Duration = Duration::from_secs(5);
/// Local interfaces appearing or vanishing are noticed at least this often.
const INTERFACE_POLL: Duration = Duration::from_secs(1);

/// Runs the agent until SIGINT/SIGTERM, which stop it for a restart: the chassis, the
/// claims and the pinned datapath stay (`ovnest cleanup` removes them).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let flags = Flags::check(&args)?;
    let userspace = (flags.datapath != DatapathMode::Xdp).then(|| {
        userspace::Userspace::new(ovnest_datapath::afxdp::AfXdpConfig {
            cores: flags.cores,
            busy_poll: flags.busy_poll,
            ..Default::default()
        })
    });
    let local = flags.ovs_db.clone().map(local_ovs::start);
    let mut local_rx = local.as_ref().map(|(_, rx)| rx.clone());
    let (metrics_tx, metrics_rx) = watch::channel(String::new());
    if let Some(addr) = flags.metrics {
        metrics::serve(addr, metrics_rx)
            .await
            .with_context(|| format!("--metrics {addr}"))?;
    }

    let mut agent = Agent {
        flags: Some(flags.clone()),
        userspace,
        ..Agent::default()
    };
    let mut southbound: Option<(String, Southbound, watch::Receiver<Arc<Snapshot>>)> = None;
    // pinctrl's MAC_Binding/FDB writes go to the current Southbound.
    let mut pinctrl_writer: Option<crate::pinctrl::Writer> = None;
    let mut resync = tokio::time::interval(INTERFACE_POLL.min(flags.resync));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut waiting_for = String::new();
    // What woke the loop, and how many passes ran: the reconcile span's fields.
    let mut trigger = "start";
    let mut pass: u64 = 0;

    loop {
        let local_view: Option<LocalOvs> = local_rx.as_ref().map(|rx| rx.borrow().clone());
        match Effective::resolve(&flags, local_view.as_ref()) {
            Err(missing) => {
                if missing != waiting_for {
                    warn!("waiting for {missing}");
                    waiting_for = missing;
                }
            }
            Ok(effective) => {
                waiting_for.clear();
                if agent.fast_path.is_none() {
                    agent.open_datapath(&flags, &effective)?;
                }
                let restart = southbound
                    .as_ref()
                    .is_none_or(|(remote, _, _)| *remote != effective.ovn_remote);
                if restart {
                    let remotes = effective.ovn_remote.parse().map_err(|e| {
                        anyhow::anyhow!("ovn-remote {:?}: {e}", effective.ovn_remote)
                    })?;
                    info!(
                        "chassis {}: connecting to Southbound {}",
                        effective.chassis, effective.ovn_remote
                    );
                    let plan = MonitorPlan::compute(
                        &Snapshot::default(),
                        &effective.chassis,
                        effective.binds.values().cloned().collect(),
                        effective.monitor_all,
                    );
                    let sb = Southbound::start_with(sb::config(remotes), &plan.conditions());
                    agent.conditions = Conditions::started_with(plan);
                    // Before the first snapshot is read: the pipeline (userspace
                    // datapaths run it) follows the change sets from here.
                    if agent.userspace.is_some() {
                        agent.logical.subscribe(sb.subscribe());
                    }
                    let watch = sb.watch();
                    if let Some(userspace) = &agent.userspace {
                        if let Some(w) = pinctrl_writer.take() {
                            w.stop();
                        }
                        pinctrl_writer = Some(crate::pinctrl::spawn_writer(
                            userspace.pinctrl_queue.clone(),
                            sb.client().clone(),
                            tokio::runtime::Handle::current(),
                        ));
                    }
                    southbound = Some((effective.ovn_remote.clone(), sb, watch));
                }
                if let Some((_, sb, _)) = &southbound {
                    pass += 1;
                    let span = info_span!(
                        "reconcile",
                        pass,
                        trigger,
                        sb_generation = sb.snapshot().generation()
                    );
                    agent.reconcile(&effective, sb).instrument(span).await;
                    let _ = metrics_tx.send(agent.status.render_prometheus());
                }
            }
        }
        trigger = tokio::select! {
            _ = async { match southbound.as_mut() { Some((_, _, w)) => { let _ = w.changed().await; } None => std::future::pending().await } } => "southbound",
            _ = async { match local_rx.as_mut() { Some(rx) => { if rx.changed().await.is_err() { std::future::pending::<()>().await } } None => std::future::pending().await } } => "local-ovs",
            _ = resync.tick() => "resync",
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        };
    }

    // A stop for restart: nothing is undone. The next ovnest adopts the pinned datapath;
    // `ovnest cleanup` is the exit that removes the chassis and the datapath.
    info!("stopping; chassis, claims and datapath stay (`ovnest cleanup` removes them)");
    Ok(())
}

#[derive(Default)]
struct Agent {
    flags: Option<Flags>,
    fast_path: Option<FastPath>,
    /// The AF_XDP datapath (`--datapath hybrid|afxdp`).
    userspace: Option<userspace::Userspace>,
    effective: Option<Effective>,
    /// The plan and the snapshot it came from: kept while the SB is away (headless).
    plan: Plan,
    plan_snapshot: Arc<Snapshot>,
    slots: StatsSlots,
    /// Interfaces with our program attached, by ifindex → name.
    attached: BTreeMap<u32, String>,
    /// Counter slots found in an adopted datapath, by port: kept for the same ports.
    adopted_slots: BTreeMap<PortKey, u32>,
    /// A plan from a synced Southbound has been made: until then an adopted datapath is
    /// left exactly as found (an empty plan would tear it down).
    planned: bool,
    /// Problems already logged, so each is logged once.
    logged: BTreeSet<String>,
    status: Status,
    /// The decision cache's generation (`CACHE_GEN`) as last set, and how many times it
    /// was switched (each switch invalidates every entry).
    cache_generation: u64,
    cache_invalidations: u64,
    /// Entries counted last, when, and the installs made by then (counting walks the
    /// maps).
    cache_entries: Option<(std::time::Instant, u64, u64)>,
    /// The compiled logical pipeline, the input and residency it came from, and the
    /// Southbound's change sets since.
    logical: crate::lflow::incremental::Incremental,
    /// The SB monitor's conditions (local datapaths).
    conditions: Conditions,
    /// What the current reconcile pass changed.
    pass: PassChanges,
    /// Whether this chassis terminates tunnels, as last assessed.
    tunnels: Option<encaps::Tunnels>,
    /// The other chassis tunnelled to, as last computed: `NAME IP`, with a note when its
    /// next hop is not resolved yet.
    tunnel_peers: Vec<String>,
}

/// What one reconcile pass changed, reported when it ends.
#[derive(Debug, Default)]
struct PassChanges {
    /// Southbound operations transacted (chassis, claims, `up`, nb_cfg).
    sb_ops: usize,
    /// XDP map entries written or removed.
    map_updates: usize,
    /// New monitor conditions applied.
    monitor: bool,
    /// The logical pipeline recompiled.
    pipeline: bool,
    attached: usize,
    detached: usize,
    /// nb_cfg acknowledged.
    nb_cfg: Option<i64>,
}

impl PassChanges {
    fn any(&self) -> bool {
        self.sb_ops > 0
            || self.map_updates > 0
            || self.monitor
            || self.pipeline
            || self.attached > 0
            || self.detached > 0
            || self.nb_cfg.is_some()
    }
}

impl Agent {
    /// Opens the datapath pinned for this chassis: adopts what a previous ovnest left
    /// (tables, links, counters) or starts empty.
    fn open_datapath(&mut self, flags: &Flags, effective: &Effective) -> anyhow::Result<()> {
        let pins = PinDir::for_chassis(&flags.bpffs_root, &effective.chassis);
        let fast_path = FastPath::open(&Options {
            pins: Some(pins.clone()),
            // OVN's logical flows decide every frame (`hybrid`, `afxdp`): in userspace, and
            // with `hybrid` from XDP's decision cache once a flow's first frame was decided.
            decisions: match flags.datapath {
                DatapathMode::Xdp => Decisions::Physical,
                DatapathMode::Hybrid => Decisions::Cached {
                    entries: flags.cache_size,
                },
                DatapathMode::Afxdp => Decisions::Userspace,
            },
            newer_layout: flags.newer_layout.clone(),
        })
        .with_context(|| {
            format!(
                "loading the XDP program pinned in {} (ovnest needs root, or CAP_BPF + \
                 CAP_NET_ADMIN + CAP_PERFMON, and a bpffs)",
                pins.path().display()
            )
        })?;
        for (index, _) in fast_path.attached() {
            let name = ifname(index).unwrap_or_else(|| format!("ifindex {index}"));
            self.attached.insert(index, name);
        }
        let adopted = fast_path.kernel_tables();
        self.adopted_slots = adopted
            .vifs
            .values()
            .chain(adopted.children.values())
            .map(|i| (i.key, i.port.stats_slot))
            .collect();
        if !self.attached.is_empty() || !adopted.vifs.is_empty() {
            info!(
                "adopted the datapath in {}: {} interfaces, {} VIFs, {} containers; it \
                 forwards as it was until the Southbound is read",
                pins.path().display(),
                self.attached.len(),
                adopted.vifs.len(),
                adopted.children.len()
            );
        }
        let record = cleanup::RunRecord {
            pid: std::process::id(),
            chassis: effective.chassis.clone(),
            ovn_remote: effective.ovn_remote.clone(),
            pin_dir: pins.path().to_owned(),
        };
        if let Err(e) = record.write(&flags.state_dir) {
            warn!("writing {}: {e}", flags.state_dir.display());
        }
        self.fast_path = Some(fast_path);
        Ok(())
    }

    /// The datapath's tunnels: the other chassis from the SB whose next hop the host has
    /// resolved, and the ports bound on them. `None` without tunnels.
    fn tunnel_table(
        &mut self,
        tunnels: &encaps::Tunnels,
        effective: &Effective,
    ) -> Option<ovnest_datapath::pipeline::TunnelTable> {
        self.tunnel_peers.clear();
        let encaps::Tunnels::Terminated { underlay, ifindex } = tunnels else {
            return None;
        };
        let local_ip: std::net::Ipv4Addr = effective.encap_ip.parse().ok()?;
        let Some(mac) = underlay::interface_mac(underlay) else {
            self.log_once(format!("no MAC for the underlay interface {underlay}"));
            return None;
        };
        let (peers, remote_ports, skipped) = encaps::remote_chassis(
            &self.plan_snapshot,
            &effective.chassis,
            &tunnels.transport_zones(&effective.chassis),
        );
        for why in skipped {
            self.log_once(format!("no tunnel to chassis {why}"));
        }
        let dev = underlay.clone();
        let (table, unresolved) = underlay::tunnel_table(
            (*ifindex, underlay),
            (mac, local_ip),
            &peers,
            &remote_ports,
            &|ip| underlay::next_hop_mac(&dev, ip),
        );
        self.tunnel_peers = peers
            .iter()
            .map(|p| {
                let note = if unresolved.contains(&p.name) {
                    " (next hop unresolved)"
                } else {
                    ""
                };
                format!("{} {}{note}", p.name, p.ip)
            })
            .collect();
        for name in unresolved {
            if let Some(peer) = peers.iter().find(|p| p.name == name) {
                // The kernel resolves the next hop on the first datagram it sends there.
                underlay::solicit(local_ip, peer.ip);
                debug!(
                    "tunnel to {name}: next hop toward {} not resolved yet",
                    peer.ip
                );
            }
        }
        Some(table)
    }

    /// Whether the datapath terminates tunnels on an interface holding the encap IP;
    /// logged when it changes.
    fn assess_tunnels(&mut self, effective: &Effective) -> encaps::Tunnels {
        let datapath = self
            .flags
            .as_ref()
            .map_or(DatapathMode::Xdp, |f| f.datapath);
        let limit = encaps::datapath_limit(datapath, &effective.encap_type);
        let holder = effective
            .encap_ip
            .parse()
            .ok()
            .and_then(encaps::interface_holding);
        let mut tunnels = encaps::assess(&effective.encap_ip, limit, holder);
        // Terminated only once the underlay's program runs there.
        if let Some(fast_path) = self.fast_path.as_mut() {
            let wanted = match &tunnels {
                encaps::Tunnels::Terminated { ifindex, .. } => Some(*ifindex),
                encaps::Tunnels::None { .. } => None,
            };
            for stale in fast_path
                .underlays()
                .filter(|i| Some(*i) != wanted)
                .collect::<Vec<_>>()
            {
                info!("detaching the underlay program from ifindex {stale}");
                let _ = fast_path.detach_underlay(stale);
            }
            if let encaps::Tunnels::Terminated { underlay, ifindex } = &tunnels
                && !fast_path.underlays().any(|i| i == *ifindex)
            {
                match fast_path.attach_underlay(*ifindex) {
                    Ok(mode) => info!("attached the underlay program to {underlay} ({mode:?})"),
                    Err(e) => {
                        tunnels = encaps::Tunnels::None {
                            reason: format!("the underlay program on {underlay}: {e}"),
                        }
                    }
                }
            }
        }
        if self.tunnels.as_ref() != Some(&tunnels) {
            match &tunnels {
                encaps::Tunnels::Terminated { .. } => info!("tunnels: {}", tunnels.describe()),
                encaps::Tunnels::None { .. } => warn!(
                    "no tunnels ({}): chassis {} registers alone in transport zone {:?}, so \
                     no other chassis sends to it; local ports only",
                    tunnels.describe(),
                    effective.chassis,
                    tunnels.transport_zones(&effective.chassis),
                ),
            }
            self.tunnels = Some(tunnels.clone());
        }
        tunnels
    }

    fn log_once(&mut self, line: String) {
        if self.logged.insert(line.clone()) {
            warn!("{line}");
        }
    }

    async fn transact(&mut self, sb: &Southbound, what: &str, ops: Vec<Operation>) -> bool {
        if ops.is_empty() {
            return true;
        }
        let n = ops.len();
        match tokio::time::timeout(TRANSACT_TIMEOUT, sb.transact(ops)).await {
            Ok(Ok(_)) => {
                self.pass.sb_ops += n;
                true
            }
            Ok(Err(e)) => {
                warn!("{what}: {e} (retrying on the next reconcile)");
                false
            }
            Err(_) => {
                warn!(
                    "{what}: no answer from the Southbound within {TRANSACT_TIMEOUT:?} (retrying)"
                );
                false
            }
        }
    }

    async fn reconcile(&mut self, effective: &Effective, sb: &Southbound) {
        self.pass = PassChanges::default();
        self.reconcile_pass(effective, sb).await;
        let c = &self.pass;
        if c.any() {
            info!(
                sb_ops = c.sb_ops,
                map_updates = c.map_updates,
                monitor = c.monitor,
                pipeline = c.pipeline,
                attached = c.attached,
                detached = c.detached,
                nb_cfg = c.nb_cfg,
                "reconciled"
            );
        } else {
            debug!("reconciled: nothing to change");
        }
    }

    async fn reconcile_pass(&mut self, effective: &Effective, sb: &Southbound) {
        self.effective = Some(effective.clone());
        let mut snapshot = sb.snapshot();
        let tunnels = self.assess_tunnels(effective);
        let spec = ChassisSpec {
            name: effective.chassis.clone(),
            hostname: effective.hostname.clone(),
            encap_type: effective.encap_type.clone(),
            encap_ip: effective.encap_ip.clone(),
            transport_zones: tunnels.transport_zones(&effective.chassis),
        };

        // Local interfaces, by the logical port they carry.
        let mut vifs = BTreeMap::new();
        let mut missing = Vec::new();
        let mut iface_of: BTreeMap<u32, String> = BTreeMap::new();
        for (iface, port) in &effective.binds {
            match ifindex(iface) {
                Some(index) => {
                    vifs.insert(port.clone(), index);
                    iface_of.insert(index, iface.clone());
                }
                None => missing.push(format!("{iface} (iface-id {port})")),
            }
        }

        if snapshot.is_synced() {
            let ops = chassis::register(&snapshot, &spec);
            if !ops.is_empty() {
                info!(
                    "registering chassis {} (encap {} {})",
                    spec.name, spec.encap_type, spec.encap_ip
                );
                self.transact(sb, "chassis registration", ops).await;
            }
            // The monitor first: the rows of a datapath that just became local are in the
            // snapshot before this pass programs anything or acknowledges nb_cfg. A new
            // local datapath can make more local (its ports), hence the rounds.
            for _ in 0..4 {
                if !self.update_monitor(effective, sb, &snapshot).await {
                    break;
                }
                self.pass.monitor = true;
                snapshot = sb.snapshot();
            }
            let chassis_uuid = snapshot.chassis(&spec.name).map(|c| c.uuid);
            self.plan = bindings::plan(&snapshot, chassis_uuid, &vifs);
            self.plan_snapshot = snapshot.clone();
            if !self.planned {
                self.keep_adopted_slots(&snapshot);
                self.planned = true;
            }
        }
        for odd in self.plan.odd.clone() {
            self.log_once(format!(
                "odd SB state: {}",
                serde_json::to_string(&odd).unwrap_or_default()
            ));
        }

        // The logical pipeline (userspace datapaths run it), then the datapath, from the
        // plan (the last one while the SB is away).
        let logical = if self.userspace.is_some() {
            self.logical_pipeline(&snapshot)
        } else {
            None
        };
        let mut slots = std::mem::take(&mut self.slots);
        let ports = desired::logical_ports(&self.plan_snapshot, &self.plan, &mut slots);
        self.slots = slots;
        let (tables, conflicts) = TableSet::build(&ports);
        for conflict in &conflicts {
            self.log_once(format!("datapath conflict: {conflict:?}"));
        }
        let Some(fast_path) = self.fast_path.as_mut() else {
            return;
        };
        if !self.planned {
            // Nothing known yet: an adopted datapath forwards as it was.
            return;
        }
        let programmed_ok = match fast_path.apply(&tables) {
            Ok(diff) => {
                if !diff.is_empty() {
                    info!("datapath: {} map updates", diff.len());
                }
                self.pass.map_updates = diff.len();
                true
            }
            Err(e) => {
                error!("programming the datapath: {e} (retrying)");
                false
            }
        };
        let wanted: BTreeSet<u32> = self
            .plan
            .bound
            .iter()
            .filter_map(|b| match b.role {
                Role::Vif { ifindex } => Some(ifindex),
                Role::Child { .. } => None,
            })
            .collect();
        for (&index, name) in &iface_of {
            if wanted.contains(&index) && !self.attached.contains_key(&index) {
                match fast_path.attach(index) {
                    Ok(mode) => {
                        info!("attached XDP to {name} (ifindex {index}, {mode:?})");
                        self.attached.insert(index, name.clone());
                        self.pass.attached += 1;
                    }
                    Err(e) => error!("attaching XDP to {name}: {e}"),
                }
            }
        }
        let stale: Vec<u32> = self
            .attached
            .keys()
            .filter(|i| !wanted.contains(i))
            .copied()
            .collect();
        for index in stale {
            if let Some(name) = self.attached.remove(&index) {
                self.pass.detached += 1;
                // A vanished interface took its attachment with it; nothing to undo then.
                if let Err(e) = fast_path.detach(index) {
                    info!("detaching XDP from {name}: {e}");
                }
            }
        }
        let mut programmed_ok = programmed_ok;
        let tunnel_table = self.tunnel_table(&tunnels, effective);
        let Some(fast_path) = self.fast_path.as_mut() else {
            return;
        };
        let underlay = match &tunnels {
            encaps::Tunnels::Terminated { ifindex, .. } => Some(*ifindex),
            encaps::Tunnels::None { .. } => None,
        };
        if let Some(userspace) = self.userspace.as_mut() {
            userspace.publish(&ports, logical, tunnel_table.filter(|_| underlay.is_some()));
            // pinctrl's health checks: the Service_Monitor rows of backends bound here.
            userspace
                .pinctrl_queue
                .sync_svc_monitors(crate::pinctrl::svc_monitor::specs(
                    &snapshot,
                    &effective.chassis,
                ));
            let mut serving: BTreeSet<u32> = self.attached.keys().copied().collect();
            serving.extend(underlay);
            if let Err(e) = userspace.serve(&serving, fast_path) {
                error!("AF_XDP datapath: {e} (retrying)");
            }
            // Nothing is acknowledged before every poll thread decides with it, and the
            // XDP decision cache serves only decisions made with it.
            if !userspace.wait_adopted(ADOPTION_TIMEOUT) {
                warn!(
                    "AF_XDP datapath: a poll thread did not adopt the new tables within {ADOPTION_TIMEOUT:?}; not acknowledging yet"
                );
                programmed_ok = false;
            } else if matches!(fast_path.decisions(), Decisions::Cached { .. })
                && self.cache_generation != userspace.published()
            {
                match fast_path.set_cache_generation(userspace.published()) {
                    Ok(()) => {
                        self.cache_generation = userspace.published();
                        self.cache_invalidations += 1;
                        debug!(
                            "decision cache: generation {} in use",
                            self.cache_generation
                        );
                    }
                    Err(e) => {
                        error!("decision cache generation: {e} (not acknowledging yet)");
                        programmed_ok = false;
                    }
                }
            }
            if programmed_ok && let Err(e) = fast_path.userspace_serving() {
                error!("moving the XDP links to this ovnest's program: {e} (retrying)");
                programmed_ok = false;
            }
        }

        // Tell the SB what is done.
        let mut nb_cfg_acked = snapshot.chassis_private(&spec.name).map_or(0, |p| p.nb_cfg);
        if snapshot.is_synced()
            && programmed_ok
            && let Some(chassis) = snapshot.chassis(&spec.name)
        {
            let programmed: BTreeSet<String> = self
                .plan
                .bound
                .iter()
                .map(|b| b.port.logical_port.clone())
                .filter(|name| {
                    ports
                        .iter()
                        .any(|p| &p.name == name && tables.ports.contains_key(&p.key))
                })
                .collect();
            let ops =
                bindings::port_binding_updates(&snapshot, chassis.uuid, &self.plan, &programmed);
            self.transact(sb, "port claims", ops).await;
            let target = snapshot.sb_global().map_or(0, |g| g.nb_cfg);
            if let Some(private) = snapshot.chassis_private(&spec.name)
                && private.nb_cfg != target
            {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                if self
                    .transact(
                        sb,
                        "nb_cfg",
                        vec![chassis::ack_nb_cfg(private.uuid, target, now_ms)],
                    )
                    .await
                {
                    debug!("nb_cfg {target} acknowledged");
                    nb_cfg_acked = target;
                    self.pass.nb_cfg = Some(target);
                }
            }
        }

        self.count_cache_entries();
        self.status =
            self.build_status(effective, sb, &snapshot, missing, &conflicts, nb_cfg_acked);
        if let Some(flags) = &self.flags
            && let Err(e) = self.status.write(&flags.state_dir)
        {
            self.log_once(format!("writing {}: {e}", flags.state_dir.display()));
        }
    }

    /// The logical pipeline for `snapshot`, updated from the Southbound's change sets
    /// since the last pass (the tables their rows touch), compared whole only when they
    /// cannot say (see [`crate::lflow::incremental`]). `None` until the first full snapshot.
    fn logical_pipeline(&mut self, snapshot: &Snapshot) -> Option<Arc<ovnest_logical::Pipeline>> {
        use crate::lflow::incremental::Path;
        use ovnest_logical::pipeline::Residency;
        if !snapshot.is_synced() && self.logical.pipeline().is_none() {
            return None;
        }
        let resident: std::collections::HashSet<String> = self
            .plan
            .bound
            .iter()
            .map(|b| b.port.logical_port.clone())
            .collect();
        let residency = Residency::Ports(resident.into());
        let started = std::time::Instant::now();
        // plan_snapshot is this Southbound's while it is synced, else one kept from before.
        let update = self
            .logical
            .update(&self.plan_snapshot, snapshot.is_synced(), residency);
        if update.unchanged {
            return Some(update.pipeline);
        }
        let pipeline = update.pipeline;
        self.pass.pipeline = true;
        info!(
            "logical pipeline {}: {} flows, {} classifier rules, {} not compiled, in {:?}",
            match (update.path, update.rebuilt) {
                (Path::Compiled, _) | (_, None) => "compiled".to_owned(),
                (Path::Rows, Some(n)) =>
                    format!("updated from the SB changes ({n} tables rebuilt)"),
                (Path::Between, Some(n)) => format!("updated ({n} tables rebuilt)"),
            },
            pipeline.n_flows(),
            pipeline.n_rules(),
            pipeline.errors.len(),
            started.elapsed()
        );
        for e in &pipeline.errors {
            self.log_once(format!(
                "logical flow {} not compiled: {}",
                e.uuid, e.reason
            ));
        }
        Some(pipeline)
    }

    /// Narrows or widens the SB monitor to the local datapaths of this snapshot; true
    /// when the server applied new conditions (the replica then holds their rows).
    async fn update_monitor(
        &mut self,
        effective: &Effective,
        sb: &Southbound,
        snapshot: &Snapshot,
    ) -> bool {
        let plan = MonitorPlan::compute(
            snapshot,
            &effective.chassis,
            effective.binds.values().cloned().collect(),
            effective.monitor_all,
        );
        let summary = monitor_summary(snapshot, &plan);
        match tokio::time::timeout(TRANSACT_TIMEOUT, self.conditions.update(sb, plan)).await {
            Ok(Ok(true)) => {
                info!("SB monitor: {summary}");
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                warn!("SB monitor conditions: {e} (retrying on the next reconcile)");
                false
            }
            Err(_) => {
                warn!("SB monitor conditions: no answer within {TRANSACT_TIMEOUT:?} (retrying)");
                false
            }
        }
    }

    /// Counts the decision cache's entries, at most every [`CACHE_COUNT_EVERY`].
    fn count_cache_entries(&mut self) {
        let Some(fast_path) = &self.fast_path else {
            return;
        };
        if fast_path.cache_capacity() == 0
            || self
                .cache_entries
                .is_some_and(|(at, _, _)| at.elapsed() < CACHE_COUNT_EVERY)
        {
            return;
        }
        let installs = self
            .userspace
            .as_ref()
            .map_or(0, |u| u.cache_stats.read().installs);
        match fast_path.cache_entries() {
            Ok(n) => self.cache_entries = Some((std::time::Instant::now(), n, installs)),
            Err(e) => self.log_once(format!("counting decision cache entries: {e}")),
        }
    }

    /// The decision cache's figures (`hybrid` only).
    fn cache_status(&self) -> Option<status::CacheStatus> {
        let fast_path = self.fast_path.as_ref()?;
        let capacity = u64::from(fast_path.cache_capacity());
        if capacity == 0 {
            return None;
        }
        let lookups = fast_path.cache_counters().unwrap_or_default();
        let ct = fast_path.ct_counters().unwrap_or_default();
        let installs = self
            .userspace
            .as_ref()
            .map(|u| u.cache_stats.read())
            .unwrap_or_default();
        let (entries, installs_then) = self.cache_entries.map_or((0, 0), |(_, n, i)| (n, i));
        use ovnest_common::CacheCounter as C;
        Some(status::CacheStatus {
            generation: self.cache_generation,
            capacity: 2 * capacity,
            entries,
            hits: lookups.get(C::Hit),
            misses: lookups.get(C::Miss),
            stale: lookups.get(C::Stale),
            uncacheable: lookups.get(C::Uncacheable),
            upcalls: fast_path
                .counters()
                .map_or(0, |c| c.get(ovnest_common::Counter::ToUserspace)),
            installs: installs.installs,
            replaced: installs.replaced,
            install_failures: installs.failed,
            // The LRU is the only thing that removes entries: new entries written minus
            // entries present, both as of the last count.
            evictions: installs_then.saturating_sub(entries),
            invalidations: self.cache_invalidations,
            ct_entries: installs.ct_entries,
            ct_commits: installs.ct_commits,
            ct_table_full: installs.ct_full,
            ct_mirrored: installs.ct_mirrored,
            ct_est_hits: ct[ovnest_common::ct::CtCounter::EstHit as usize],
            ct_gone: ct[ovnest_common::ct::CtCounter::Gone as usize],
            tunnel: {
                let t = fast_path.tunnel_counters().unwrap_or_default();
                ovnest_common::tunnel::TunnelCounter::ALL
                    .iter()
                    .map(|c| (c.name().to_owned(), t[*c as usize]))
                    .collect()
            },
        })
    }

    fn build_status(
        &self,
        effective: &Effective,
        sb: &Southbound,
        snapshot: &Snapshot,
        missing: Vec<String>,
        conflicts: &[ovnest_datapath::Conflict],
        nb_cfg: i64,
    ) -> Status {
        let chassis_uuid = snapshot.chassis(&effective.chassis).map(|c| c.uuid);
        let fast_path = self.fast_path.as_ref();
        let port_status = |b: &bindings::Bound| {
            let pb = &b.port;
            let slot = self.slots.slot(&pb.logical_port);
            let mut stats = slot
                .and_then(|slot| fast_path.and_then(|f| f.port_stats(slot).ok()))
                .unwrap_or_default();
            if let (Some(slot), Some(userspace)) = (slot, &self.userspace) {
                stats.add(&userspace.counters.port_stats(slot));
            }
            let interface = match b.role {
                Role::Vif { ifindex } => self.attached.get(&ifindex).cloned(),
                Role::Child { .. } => None,
            };
            PortStatus {
                logical_port: pb.logical_port.clone(),
                interface,
                tag: match b.role {
                    Role::Child { tag, .. } => Some(tag),
                    Role::Vif { .. } => None,
                },
                macs: pb
                    .mac
                    .iter()
                    .filter_map(|a| a.mac())
                    .map(|m| m.to_string())
                    .collect(),
                tunnel_key: pb.tunnel_key,
                claimed: chassis_uuid.is_some() && pb.chassis == chassis_uuid,
                up: pb.up == Some(true),
                rx_packets: stats.rx_packets,
                tx_packets: stats.tx_packets,
                drops: stats.drops,
                children: Vec::new(),
            }
        };
        let mut ports: Vec<PortStatus> = self
            .plan
            .bound
            .iter()
            .filter(|b| matches!(b.role, Role::Vif { .. }))
            .map(port_status)
            .collect();
        for child in self
            .plan
            .bound
            .iter()
            .filter(|b| matches!(b.role, Role::Child { .. }))
        {
            let parent = child.port.parent_port.as_deref().unwrap_or_default();
            if let Some(p) = ports.iter_mut().find(|p| p.logical_port == parent) {
                p.children.push(port_status(child));
            }
        }
        let mut counters: BTreeMap<String, u64> = fast_path
            .and_then(|f| f.counters().ok())
            .map(|c| c.iter().map(|(k, v)| (k.name().to_owned(), v)).collect())
            .unwrap_or_default();
        if let Some(userspace) = &self.userspace {
            for verdict in ovnest_datapath::pipeline::Verdict::all() {
                counters.insert(
                    format!("userspace_{}", verdict.name()),
                    userspace.counters.get(verdict),
                );
            }
        }
        let southbound = match &*sb.client().state().borrow() {
            ConnectionState::Monitoring { remote, .. } => format!("connected to {remote}"),
            ConnectionState::Connected { remote } => {
                format!("connecting to {remote} (monitor not yet in place)")
            }
            ConnectionState::Disconnected => "disconnected (forwarding with the last state)".into(),
        };
        let pipeline = self.logical.pipeline().cloned();
        let named = self
            .userspace
            .as_ref()
            .map(|u| u.counters.named())
            .unwrap_or_default();
        Status {
            chassis: effective.chassis.clone(),
            southbound,
            synced: snapshot.is_synced(),
            nb_cfg,
            datapath: self
                .flags
                .as_ref()
                .map_or("xdp".into(), |f| format!("{:?}", f.datapath).to_lowercase()),
            ports,
            odd_states: self.plan.odd.iter().cloned().collect::<Vec<OddState>>(),
            conflicts: conflicts.iter().map(|c| format!("{c:?}")).collect(),
            missing_interfaces: missing,
            sb_monitor: self
                .conditions
                .applied()
                .map(|p| monitor_summary(snapshot, p))
                .unwrap_or_default(),
            invalid_rows: snapshot
                .invalid_rows()
                .map(|(table, uuid, why)| format!("{table} {uuid}: {why}"))
                .collect(),
            logical_flows: pipeline.as_ref().map_or(0, |p| p.n_flows()),
            logical_rules: pipeline.as_ref().map_or(0, |p| p.n_rules()),
            flows_not_compiled: pipeline
                .as_ref()
                .map(|p| {
                    p.errors
                        .iter()
                        .map(|e| format!("{}: {}", e.uuid, e.reason))
                        .collect()
                })
                .unwrap_or_default(),
            unsupported_actions: named
                .unsupported
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            unsupported_flows: named
                .unsupported_flows
                .iter()
                .map(|((action, flow), n)| {
                    (
                        format!("{action} in flow {}", ovnest_logical::db::Uuid(*flow)),
                        *n,
                    )
                })
                .collect(),
            counters,
            svc_monitors: self
                .userspace
                .as_ref()
                .map(|u| {
                    let (counters, monitors) = u.pinctrl_queue.svc_monitor_counters();
                    SvcMonitorStatus {
                        monitors: monitors as u64,
                        events: counters.iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    }
                })
                .filter(|s| s.monitors > 0 || !s.events.is_empty()),
            cache: self.cache_status(),
            afxdp_sockets: self
                .userspace
                .as_ref()
                .map(|u| u.counters.sockets())
                .unwrap_or_default()
                .into_iter()
                .map(|s| SocketStatus {
                    interface: ifname(s.ifindex)
                        .unwrap_or_else(|| format!("ifindex {}", s.ifindex)),
                    queue: s.queue,
                    counters: s
                        .fields()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                })
                .collect(),
            tunnels: match &self.tunnels {
                Some(t @ encaps::Tunnels::Terminated { .. }) if !self.tunnel_peers.is_empty() => {
                    format!("{} to {}", t.describe(), self.tunnel_peers.join(", "))
                }
                Some(t) => t.describe(),
                None => String::new(),
            },
            updated_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// Gives the bound ports the counter slots an adopted datapath had them on, so their
    /// counters carry on across the restart.
    fn keep_adopted_slots(&mut self, snapshot: &Snapshot) {
        for bound in &self.plan.bound {
            let pb = &bound.port;
            let Some(datapath) = snapshot.datapath(&pb.datapath) else {
                continue;
            };
            let key = PortKey {
                datapath: datapath.tunnel_key,
                port: pb.tunnel_key,
            };
            if let Some(slot) = self.adopted_slots.get(&key) {
                self.slots.keep(&pb.logical_port, *slot);
            }
        }
        self.adopted_slots.clear();
    }
}

/// `every row`, or the local datapaths by name.
fn monitor_summary(snapshot: &Snapshot, plan: &MonitorPlan) -> String {
    if plan.monitor_all {
        return "every row (ovn-monitor-all)".into();
    }
    let mut names: Vec<String> = plan
        .local_datapaths
        .iter()
        .map(|u| {
            snapshot
                .datapath(u)
                .and_then(|d| d.name())
                .map_or_else(|| u.to_string(), str::to_owned)
        })
        .collect();
    names.sort();
    format!("local datapaths [{}]", names.join(", "))
}

/// The name of interface `index` in this network namespace.
fn ifname(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes, NUL included, into buf.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if name.is_null() {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// The ifindex of `name` in this network namespace, if it exists.
fn ifindex(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex only reads the NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}
