//! Conditional monitoring against real ovsdb-server and ovn-northd, as ovn-controller does
//! with `ovn-monitor-all=false`: a chassis with a port on `dmz` (behind router `lr0`,
//! with `inside` behind it too) replicates the rows of dmz, lr0 and inside and not those
//! of an unrelated switch `far`; with monitor-all it replicates everything; binding a
//! port of `far` to the chassis brings far's rows in, by `monitor_cond_change` on the
//! same connection. Each table is compared with `ovn-sbctl` filtered by the same rule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ovnest::agent::monitor::{Conditions, MonitorPlan};
use ovnest::sb::{
    LogicalFlow, MacBinding, MulticastGroup, PortBinding, SbRow, Snapshot, Southbound,
};
use ovnest_tests::ovn::OvnCentral;
use ovnest_tests::ovsdb_json::{opt, string, uuid};
use ovnest_tests::{privilege, wait};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];
const DEADLINE: Duration = Duration::from_secs(30);

/// dmz (vm1, vm2) and inside (vm3) behind lr0; far (vm9) on its own; MAC bindings on lr0
/// and on far's router lr9.
fn topology(ovn: &OvnCentral) {
    ovn.sbctl(&["chassis-add", "hv1", "geneve", "127.0.0.5"]);
    ovn.nbctl(&["lr-add", "lr0"]);
    for (ls, lrp, mac, net, ports) in [
        (
            "dmz",
            "lr0-dmz",
            "02:ac:10:ff:01:29",
            "172.16.255.129/26",
            &["dmz-vm1", "dmz-vm2"][..],
        ),
        (
            "inside",
            "lr0-inside",
            "02:ac:10:ff:01:c1",
            "172.16.255.193/26",
            &["inside-vm3"][..],
        ),
    ] {
        ovn.nbctl(&["ls-add", ls]);
        ovn.nbctl(&["lrp-add", "lr0", lrp, mac, net]);
        let lsp = format!("{ls}-lr0");
        ovn.nbctl(&["lsp-add", ls, &lsp]);
        ovn.nbctl(&["lsp-set-type", &lsp, "router"]);
        ovn.nbctl(&["lsp-set-addresses", &lsp, "router"]);
        ovn.nbctl(&["lsp-set-options", &lsp, &format!("router-port={lrp}")]);
        for p in ports {
            ovn.nbctl(&["lsp-add", ls, p]);
        }
    }
    ovn.nbctl(&[
        "lsp-set-addresses",
        "dmz-vm1",
        "02:ac:10:ff:01:30 172.16.255.130",
    ]);
    ovn.nbctl(&["ls-add", "far"]);
    ovn.nbctl(&["lsp-add", "far", "far-vm9"]);
    ovn.nbctl(&["lsp-set-addresses", "far-vm9", "02:00:00:00:09:09 10.9.9.9"]);
    ovn.nbctl(&["lr-add", "lr9"]);
    ovn.nbctl(&[
        "lrp-add",
        "lr9",
        "lr9-far",
        "02:00:00:00:09:01",
        "10.9.9.1/24",
    ]);
    ovn.nbctl(&["lsp-add", "far", "far-lr9"]);
    ovn.nbctl(&["lsp-set-type", "far-lr9", "router"]);
    ovn.nbctl(&["lsp-set-addresses", "far-lr9", "router"]);
    ovn.nbctl(&["lsp-set-options", "far-lr9", "router-port=lr9-far"]);
    ovn.sync();
    for (router, port, ip, mac) in [
        ("lr0", "lr0-dmz", "172.16.255.130", "02:ac:10:ff:01:30"),
        ("lr9", "lr9-far", "10.9.9.9", "02:00:00:00:09:09"),
    ] {
        let dp = ovn.sbctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "Datapath_Binding",
            &format!("external_ids:name={router}"),
        ]);
        ovn.sbctl(&[
            "create",
            "MAC_Binding",
            &format!("logical_port={port}"),
            &format!("ip=\"{ip}\""),
            &format!("mac=\"{mac}\""),
            &format!("datapath={}", dp.trim()),
        ]);
    }
}

fn local_ports() -> BTreeSet<String> {
    ["dmz-vm1".to_owned()].into()
}

/// A Southbound client started with the plan's conditions, as the agent starts it.
fn start(ovn: &OvnCentral, monitor_all: bool) -> (Southbound, Conditions) {
    let plan = MonitorPlan::compute(&Snapshot::default(), "hv1", local_ports(), monitor_all);
    let sb = Southbound::start_with(
        ovnest::sb::config(ovn.sb_remote().parse().unwrap()),
        &plan.conditions(),
    );
    (sb, Conditions::started_with(plan))
}

/// What the agent does on every reconcile, until the plan stops changing: recompute from
/// the snapshot, send the conditions if they changed. Returns the settled plan.
fn settle(
    rt: &tokio::runtime::Runtime,
    sb: &Southbound,
    conditions: &mut Conditions,
) -> MonitorPlan {
    wait::until("the first snapshot", DEADLINE, || {
        sb.snapshot().is_synced().then_some(())
    });
    wait::until("the monitor plan to settle", DEADLINE, || {
        let snap = sb.snapshot();
        let plan = MonitorPlan::compute(
            &snap,
            "hv1",
            local_ports(),
            conditions.applied()?.monitor_all,
        );
        let changed = rt
            .block_on(conditions.update(sb, plan.clone()))
            .expect("monitor_cond_change");
        (!changed).then_some(plan)
    })
}

fn datapath_names(snap: &Snapshot, dps: &BTreeSet<ovnest::ovsdb::Uuid>) -> Vec<String> {
    let mut v: Vec<String> = dps
        .iter()
        .map(|u| {
            snap.datapath(u)
                .and_then(|d| d.name())
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

/// The UUIDs ovn-sbctl lists in `table`, kept by `keep(row)`.
fn sbctl_uuids(
    ovn: &OvnCentral,
    table: &str,
    columns: &[&str],
    keep: impl Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> BTreeSet<String> {
    let cols: Vec<&str> = std::iter::once("_uuid")
        .chain(columns.iter().copied())
        .collect();
    ovn.sb_rows(table, &cols)
        .iter()
        .filter(|r| keep(r))
        .map(|r| uuid(&r["_uuid"]))
        .collect()
}

fn replica_uuids<T: SbRow>(snap: &Snapshot) -> BTreeSet<String> {
    snap.table::<T>()
        .iter()
        .map(|r| r.uuid().to_string())
        .collect()
}

/// Waits until the replica's conditional tables hold exactly the rows ovn-sbctl shows
/// that the plan's rule selects (the other tables are monitored in full).
fn assert_replica_selects(ovn: &OvnCentral, sb: &Southbound, plan: &MonitorPlan) -> Snapshot {
    let local: BTreeSet<String> = plan.local_datapaths.iter().map(|u| u.to_string()).collect();
    let chassis = plan.chassis_uuid.map(|u| u.to_string());
    let all = plan.monitor_all;
    let is_local = |dp: &serde_json::Value| all || local.contains(&uuid(dp));
    let ports = local_ports();
    let last = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait::until(
            "the replica to hold exactly the selected rows",
            DEADLINE,
            || {
                let snap = (*sb.snapshot()).clone();
                let want_flows = sbctl_uuids(
                    ovn,
                    LogicalFlow::TABLE,
                    &["logical_datapath", "logical_dp_group"],
                    |r| {
                        all || opt(&r["logical_datapath"], |d| local.contains(&uuid(d)))
                            .unwrap_or(false)
                            || (!local.is_empty() && opt(&r["logical_dp_group"], uuid).is_some())
                    },
                );
                let want_ports = sbctl_uuids(
                    ovn,
                    PortBinding::TABLE,
                    &["logical_port", "parent_port", "type", "datapath", "chassis"],
                    |r| {
                        let ty = string(&r["type"]);
                        all || ["patch", "chassisredirect", "external"].contains(&ty.as_str())
                            || is_local(&r["datapath"])
                            || ports.contains(&string(&r["logical_port"]))
                            || opt(&r["parent_port"], string).is_some_and(|p| ports.contains(&p))
                            || (chassis.is_some() && opt(&r["chassis"], uuid) == chassis)
                    },
                );
                let want_mb = sbctl_uuids(ovn, MacBinding::TABLE, &["datapath"], |r| {
                    is_local(&r["datapath"])
                });
                let want_mg = sbctl_uuids(ovn, MulticastGroup::TABLE, &["datapath"], |r| {
                    is_local(&r["datapath"])
                });
                let have = (
                    replica_uuids::<LogicalFlow>(&snap),
                    replica_uuids::<PortBinding>(&snap),
                    replica_uuids::<MacBinding>(&snap),
                    replica_uuids::<MulticastGroup>(&snap),
                );
                let want = (want_flows, want_ports, want_mb, want_mg);
                if have == want && snap.invalid_rows().count() == 0 {
                    return Some(snap);
                }
                *last.lock().unwrap() = format!("want {want:#?}\nhave {have:#?}");
                None
            },
        )
    }));
    match r {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}\n{}", last.lock().unwrap(), ovn.logs());
            std::panic::resume_unwind(e)
        }
    }
}

fn flows_by_datapath(snap: &Snapshot) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in snap.table::<LogicalFlow>().iter() {
        for dp in snap.flow_datapaths(f) {
            let name = snap
                .datapath(&dp)
                .and_then(|d| d.name())
                .unwrap_or("?")
                .to_owned();
            *out.entry(name).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn local_datapaths_only_then_what_a_new_binding_brings() {
    if !privilege::require_tools("local_datapaths_only_then_what_a_new_binding_brings", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    topology(&ovn);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (sb, mut conditions) = start(&ovn, false);
    let plan = settle(&rt, &sb, &mut conditions);
    let snap = sb.snapshot();
    assert_eq!(
        datapath_names(&snap, &plan.local_datapaths),
        ["dmz", "inside", "lr0"]
    );
    assert!(plan.chassis_uuid.is_some());
    let snap = assert_replica_selects(&ovn, &sb, &plan);
    let by_dp = flows_by_datapath(&snap);
    for dp in ["dmz", "lr0", "inside"] {
        assert!(by_dp.get(dp).is_some_and(|n| *n > 10), "{dp}: {by_dp:?}");
    }
    let far = snap
        .datapaths()
        .find(|d| d.name() == Some("far"))
        .unwrap()
        .uuid;
    let lr9 = snap
        .datapaths()
        .find(|d| d.name() == Some("lr9"))
        .unwrap()
        .uuid;
    for dp in [far, lr9] {
        assert!(
            snap.table::<LogicalFlow>()
                .iter()
                .all(|f| f.logical_datapath != Some(dp)),
            "a flow of an unrelated datapath was replicated"
        );
    }
    assert!(snap.port_binding("far-vm9").is_none());
    assert!(snap.port_binding("dmz-vm2").is_some() && snap.port_binding("inside-vm3").is_some());
    assert_eq!(snap.table::<MacBinding>().len(), 1);
    let counters = sb.counters();
    assert_eq!(
        (counters.connects, counters.full_syncs),
        (1, 1),
        "{counters:?}"
    );

    // far-vm9 bound to this chassis: far (and lr9 behind it) become local, on the same
    // connection, without a resync.
    ovn.sbctl(&["lsp-bind", "far-vm9", "hv1"]);
    // The binding reaches the replica through the chassis clause of the Port_Binding
    // condition; only then can the plan grow.
    wait::until("far-vm9's binding in the replica", DEADLINE, || {
        sb.snapshot().port_binding("far-vm9").map(|_| ())
    });
    let plan = settle(&rt, &sb, &mut conditions);
    let snap = sb.snapshot();
    assert_eq!(
        datapath_names(&snap, &plan.local_datapaths),
        ["dmz", "far", "inside", "lr0", "lr9"]
    );
    let snap = assert_replica_selects(&ovn, &sb, &plan);
    assert!(
        snap.table::<LogicalFlow>()
            .iter()
            .any(|f| f.logical_datapath == Some(far))
    );
    assert!(snap.port_binding("far-vm9").is_some());
    assert_eq!(snap.table::<MacBinding>().len(), 2);
    let counters = sb.counters();
    assert_eq!(
        (counters.connects, counters.full_syncs),
        (1, 1),
        "{counters:?}"
    );

    // Unbound again: far's rows leave.
    ovn.sbctl(&["lsp-unbind", "far-vm9"]);
    wait::until("far-vm9 unbound in the replica", DEADLINE, || {
        let snap = sb.snapshot();
        let bound = snap
            .port_binding("far-vm9")
            .is_some_and(|p| p.chassis.is_some());
        (!bound).then_some(())
    });
    let plan = settle(&rt, &sb, &mut conditions);
    assert_eq!(
        datapath_names(&sb.snapshot(), &plan.local_datapaths),
        ["dmz", "inside", "lr0"]
    );
    let snap = assert_replica_selects(&ovn, &sb, &plan);
    assert!(
        snap.table::<LogicalFlow>()
            .iter()
            .all(|f| f.logical_datapath != Some(far))
    );
}

#[test]
fn monitor_all_replicates_every_row() {
    if !privilege::require_tools("monitor_all_replicates_every_row", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    topology(&ovn);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (sb, mut conditions) = start(&ovn, true);
    let plan = settle(&rt, &sb, &mut conditions);
    assert!(plan.monitor_all);
    let snap = assert_replica_selects(&ovn, &sb, &plan);
    let total = ovn.sb_rows(LogicalFlow::TABLE, &["_uuid"]).len();
    assert_eq!(snap.table::<LogicalFlow>().len(), total);
    assert!(flows_by_datapath(&snap).contains_key("far"));
    assert!(snap.port_binding("far-vm9").is_some());
}
