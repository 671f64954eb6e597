//! The Southbound replica against real ovsdb-server and ovn-northd (OVN 23.03), driven only
//! with the ovn-nbctl commands an operator would type. Every assertion compares the typed
//! replica with what `ovn-sbctl --format=json list` shows; waits are deadlines, never sleeps.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovnest::sb::{
    ChangeSet, DHCP_OPTIONS_STAGE, LogicalFlow, PortAddresses, PortBinding, RowChange, SbRow,
    Snapshot, Southbound,
};
use ovnest_ovsdb::{
    Clause, Datum, Function, MonitorCondition, Mutation, Mutator, Operation, OperationResult,
    RowData,
};
use ovnest_tests::ovn::{OvnCentral, free_port};
use ovnest_tests::ovsdb_json::{map, opt, set, string, uuid};
use ovnest_tests::{privilege, wait};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovsdb-client",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];
const DEADLINE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start_client(rt: &tokio::runtime::Runtime, remote: &str) -> Southbound {
    let _guard = rt.enter();
    let mut config = ovnest::sb::config(remote.parse().expect("remote"));
    config.backoff_max = Duration::from_secs(1);
    let sb = Southbound::start(config);
    wait::until("first snapshot", DEADLINE, || {
        sb.snapshot().is_synced().then_some(())
    });
    sb
}

/// The seed lab (shared/seeds/ovn-and-containers-lab.txt, with the addresses of
/// recipes/lab-nb.sh so northd also makes DHCP flows): VIFs vm1 and vm5, containers c51
/// and c52 on parent vm5 with tags 51 and 52, DHCPv4 options on all of them.
fn seed_lab(ovn: &OvnCentral) {
    ovn.nbctl(&["ls-add", "dmz"]);
    let dhcp = ovn.nbctl(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.128/26",
        "options:lease_time=3600",
        "options:router=172.16.255.129",
        "options:server_id=172.16.255.129",
        "options:server_mac=02:ac:10:ff:01:29",
    ]);
    let dhcp = dhcp.trim();
    for (port, n) in [
        ("dmz-vm1", "30"),
        ("dmz-vm5", "32"),
        ("dmz-c51", "33"),
        ("dmz-c52", "34"),
    ] {
        let addr = format!("02:ac:10:ff:01:{n} 172.16.255.1{n}");
        ovn.nbctl(&["lsp-add", "dmz", port]);
        ovn.nbctl(&["lsp-set-addresses", port, &addr]);
        ovn.nbctl(&["lsp-set-port-security", port, &addr]);
        ovn.nbctl(&["lsp-set-dhcpv4-options", port, dhcp]);
    }
    for (port, tag) in [("dmz-c51", "51"), ("dmz-c52", "52")] {
        ovn.nbctl(&["set", "Logical_Switch_Port", port, "parent_name=dmz-vm5"]);
        ovn.nbctl(&["set", "Logical_Switch_Port", port, &format!("tag={tag}")]);
    }
    ovn.sync();
}

/// A Port_Binding as both sides can show it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PbView {
    uuid: String,
    logical_port: String,
    parent_port: Option<String>,
    tag: Option<i64>,
    mac: Vec<PortAddresses>,
    port_security: Vec<PortAddresses>,
    tunnel_key: i64,
    datapath: String,
    port_type: String,
    options: BTreeMap<String, String>,
    chassis: Option<String>,
    requested_chassis: Option<String>,
    up: Option<bool>,
    encap: Option<String>,
    external_ids: BTreeMap<String, String>,
}

/// What to ask ovn-sbctl for: `_uuid` and every Port_Binding column the replica monitors.
fn pb_columns() -> Vec<&'static str> {
    std::iter::once("_uuid")
        .chain(PortBinding::COLUMNS.iter().copied())
        .collect()
}

fn addrs(v: &Value) -> Vec<PortAddresses> {
    set(v).iter().map(|a| string(a).parse().unwrap()).collect()
}

fn sbctl_ports(ovn: &OvnCentral) -> BTreeMap<String, PbView> {
    ovn.sb_rows("Port_Binding", &pb_columns())
        .into_iter()
        .map(|r: Map<String, Value>| {
            let pb = PbView {
                uuid: uuid(&r["_uuid"]),
                logical_port: string(&r["logical_port"]),
                parent_port: opt(&r["parent_port"], string),
                tag: opt(&r["tag"], |v| v.as_i64().unwrap()),
                mac: addrs(&r["mac"]),
                port_security: addrs(&r["port_security"]),
                tunnel_key: r["tunnel_key"].as_i64().unwrap(),
                datapath: uuid(&r["datapath"]),
                port_type: string(&r["type"]),
                options: map(&r["options"]),
                chassis: opt(&r["chassis"], uuid),
                requested_chassis: opt(&r["requested_chassis"], uuid),
                up: opt(&r["up"], |v| v.as_bool().unwrap()),
                encap: opt(&r["encap"], uuid),
                external_ids: map(&r["external_ids"]),
            };
            (pb.logical_port.clone(), pb)
        })
        .collect()
}

fn view(pb: &PortBinding) -> PbView {
    PbView {
        uuid: pb.uuid.to_string(),
        logical_port: pb.logical_port.clone(),
        parent_port: pb.parent_port.clone(),
        tag: pb.tag.map(i64::from),
        mac: pb.mac.clone(),
        port_security: pb.port_security.clone(),
        tunnel_key: i64::from(pb.tunnel_key),
        datapath: pb.datapath.to_string(),
        port_type: pb.port_type.clone(),
        options: pb.options.clone(),
        chassis: pb.chassis.map(|u| u.to_string()),
        requested_chassis: pb.requested_chassis.map(|u| u.to_string()),
        up: pb.up,
        encap: pb.encap.map(|u| u.to_string()),
        external_ids: pb.external_ids.clone(),
    }
}

fn replica_ports(s: &Snapshot) -> BTreeMap<String, PbView> {
    s.port_bindings()
        .map(|pb| (pb.logical_port.clone(), view(pb)))
        .collect()
}

/// Waits until the replica's Port_Bindings equal ovn-sbctl's, every column; on timeout the
/// panic shows both sides and the daemons' logs.
fn converge(ovn: &OvnCentral, sb: &Southbound, what: &str) -> Arc<Snapshot> {
    let last = Mutex::new(None);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        wait::until(what, DEADLINE, || {
            let want = sbctl_ports(ovn);
            let snap = sb.snapshot();
            let have = replica_ports(&snap);
            if want == have && snap.invalid_rows().count() == 0 {
                return Some(snap);
            }
            *last.lock().unwrap() = Some((want, have));
            None
        })
    }));
    match r {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{what}: last comparison (sbctl, replica): {:#?}",
                last.lock().unwrap()
            );
            eprintln!("counters: {:?}\n{}", sb.counters(), ovn.logs());
            std::panic::resume_unwind(e)
        }
    }
}

fn drain(rx: &mut broadcast::Receiver<Arc<ChangeSet>>) -> Vec<Arc<ChangeSet>> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.push(c),
            Err(broadcast::error::TryRecvError::Lagged(n)) => panic!("subscriber lagged by {n}"),
            Err(_) => return out,
        }
    }
}

/// The Port_Binding changes in `sets` about `port`.
fn port_changes(sets: &[Arc<ChangeSet>], port: &str) -> Vec<RowChange<PortBinding>> {
    all_port_changes(sets)
        .into_iter()
        .filter(|rc| {
            rc.before()
                .or(rc.after())
                .is_some_and(|pb| pb.logical_port == port)
        })
        .collect()
}

fn all_port_changes(sets: &[Arc<ChangeSet>]) -> Vec<RowChange<PortBinding>> {
    sets.iter()
        .flat_map(|s| s.of::<PortBinding>().iter().cloned())
        .collect()
}

fn assert_clean(sb: &Southbound) {
    let c = sb.counters();
    assert_eq!(
        (
            c.bad_rows,
            c.bad_updates,
            c.malformed_messages,
            c.oversized_messages,
            c.unknown_methods
        ),
        (0, 0, 0, 0, 0),
        "{c:?}"
    );
}

#[test]
fn replica_follows_the_seed_lab() {
    if !privilege::require_tools("replica_follows_the_seed_lab", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    let rt = runtime();
    let sb = start_client(&rt, &ovn.sb_remote());
    let mut rx = sb.subscribe();

    seed_lab(&ovn);
    let snap = converge(&ovn, &sb, "seed lab in the replica");
    let c51 = snap.port_binding("dmz-c51").unwrap();
    assert_eq!(
        (c51.parent_port.as_deref(), c51.tag),
        (Some("dmz-vm5"), Some(51))
    );
    assert_eq!(
        snap.datapath(&c51.datapath).and_then(|d| d.name()),
        Some("dmz")
    );
    assert!(snap.sb_global().is_some());

    // DHCP options flows: the same set ovn-sbctl finds, one per port.
    let want: BTreeMap<String, String> = ovn
        .sb_rows("Logical_Flow", &["_uuid", "actions", "external_ids"])
        .into_iter()
        .filter(|r| {
            map(&r["external_ids"])
                .get("stage-name")
                .map(String::as_str)
                == Some("ls_in_dhcp_options")
        })
        .filter(|r| string(&r["actions"]).contains("put_dhcp_opts"))
        .map(|r| (uuid(&r["_uuid"]), string(&r["actions"])))
        .collect();
    // Two per port: broadcast DISCOVER/REQUEST and unicast renewal.
    assert_eq!(want.len(), 8, "{want:?}");
    let snap = wait::until("DHCP flows in the replica", DEADLINE, || {
        let s = sb.snapshot();
        let have: BTreeMap<String, String> = s
            .table::<LogicalFlow>()
            .iter()
            .filter(|f| {
                f.stage_name() == Some(DHCP_OPTIONS_STAGE) && f.actions.contains("put_dhcp_opts")
            })
            .map(|f| (f.uuid.to_string(), f.actions.to_string()))
            .collect();
        (have == want).then_some(s)
    });
    for port in ["dmz-vm1", "dmz-vm5", "dmz-c51", "dmz-c52"] {
        assert_eq!(snap.dhcp_flows_for(port).count(), 2, "{port}");
    }
    assert!(
        snap.dhcp_flows_for("dmz-c51")
            .all(|f| f.actions.contains("offerip = 172.16.255.133"))
    );

    // A tag change is an in-place update: one modification, same row.
    drain(&mut rx);
    ovn.nbctl(&["set", "Logical_Switch_Port", "dmz-c51", "tag=61"]);
    ovn.sync();
    converge(&ovn, &sb, "tag 61");
    let ch = port_changes(&drain(&mut rx), "dmz-c51");
    let [RowChange::Modified { old, new }] = ch.as_slice() else {
        panic!("{ch:#?}")
    };
    assert_eq!((old.tag, new.tag, old.uuid), (Some(51), Some(61), new.uuid));

    // Clearing parent_name makes northd delete and re-create the row: one modification.
    let before = sb.snapshot().port_binding("dmz-c52").unwrap().clone();
    ovn.nbctl(&["clear", "Logical_Switch_Port", "dmz-c52", "parent_name"]);
    ovn.sync();
    converge(&ovn, &sb, "dmz-c52 without parent");
    let sets = drain(&mut rx);
    let ch = port_changes(&sets, "dmz-c52");
    let [RowChange::Modified { old, new }] = ch.as_slice() else {
        panic!("{ch:#?}")
    };
    assert_eq!(old.uuid, before.uuid);
    assert_ne!(new.uuid, before.uuid, "northd re-created the row");
    assert_eq!(
        (old.parent_port.as_deref(), new.parent_port.as_deref()),
        (Some("dmz-vm5"), None)
    );

    // tag_request=0: northd allocates a tag, unique under the parent.
    ovn.nbctl(&["lsp-add", "dmz", "dmz-c53"]);
    ovn.nbctl(&[
        "lsp-set-addresses",
        "dmz-c53",
        "02:ac:10:ff:01:35 172.16.255.135",
    ]);
    ovn.nbctl(&[
        "set",
        "Logical_Switch_Port",
        "dmz-c53",
        "parent_name=dmz-vm5",
        "tag_request=0",
    ]);
    ovn.sync();
    let snap = converge(&ovn, &sb, "dmz-c53 with an allocated tag");
    let tag = snap
        .port_binding("dmz-c53")
        .unwrap()
        .tag
        .expect("northd allocated a tag");
    assert!((1..=4095).contains(&tag));
    assert_eq!(
        ovn.nbctl(&["get", "Logical_Switch_Port", "dmz-c53", "tag"])
            .trim(),
        tag.to_string()
    );
    assert_ne!(Some(tag), snap.port_binding("dmz-c51").unwrap().tag);

    // Delete.
    drain(&mut rx);
    ovn.nbctl(&["lsp-del", "dmz-c53"]);
    ovn.sync();
    let snap = converge(&ovn, &sb, "dmz-c53 deleted");
    assert!(snap.port_binding("dmz-c53").is_none());
    let ch = port_changes(&drain(&mut rx), "dmz-c53");
    assert!(
        matches!(ch.as_slice(), [RowChange::Removed(pb)] if pb.tag == Some(tag)),
        "{ch:#?}"
    );
    assert_clean(&sb);
}

#[test]
fn northd_and_sb_restarts_emit_only_real_differences() {
    if !privilege::require_tools("northd_and_sb_restarts_emit_only_real_differences", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed_lab(&ovn);
    let rt = runtime();
    // Over TCP this time.
    let sb = start_client(&rt, &ovn.sb_tcp_remote());
    converge(&ovn, &sb, "seed lab");

    // A northd restart recomputes everything and changes no Port_Binding.
    let mut rx = sb.subscribe();
    ovn.restart_northd();
    ovn.sync();
    converge(&ovn, &sb, "after northd restart");
    let ch = all_port_changes(&drain(&mut rx));
    assert!(ch.is_empty(), "northd restart changed ports: {ch:#?}");

    // SB down; an operator changes a tag meanwhile; SB back: the client reconnects,
    // reloads the full snapshot (standalone SB cannot resume) and reports only c51.
    let before = sb.counters();
    ovn.stop_sb();
    wait::until("client notices the SB is gone", DEADLINE, || {
        (sb.counters().disconnects > before.disconnects).then_some(())
    });
    ovn.nbctl(&["set", "Logical_Switch_Port", "dmz-c51", "tag=71"]);
    ovn.start_sb();
    ovn.sync();
    let snap = converge(&ovn, &sb, "after SB restart");
    assert_eq!(snap.port_binding("dmz-c51").unwrap().tag, Some(71));
    let after = sb.counters();
    assert!(
        after.connects > before.connects && after.full_syncs > before.full_syncs,
        "{after:?}"
    );
    assert_eq!(after.resumes, 0, "a standalone SB never resumes");
    let sets = drain(&mut rx);
    let ch = all_port_changes(&sets);
    let [RowChange::Modified { old, new }] = ch.as_slice() else {
        panic!("only dmz-c51 changed, got {ch:#?}")
    };
    assert_eq!(
        (new.logical_port.as_str(), old.tag, new.tag),
        ("dmz-c51", Some(51), Some(71))
    );
    // Whatever the resync itself reported is part of that: nothing else.
    for s in sets.iter().filter(|s| s.resync) {
        assert_eq!(s.len(), s.of::<PortBinding>().len(), "{s:#?}");
        assert!(
            s.of::<PortBinding>()
                .iter()
                .all(|rc| rc.after().is_some_and(|pb| pb.logical_port == "dmz-c51")),
            "{s:#?}"
        );
    }

    // Over TCP the server probes an idle client with echo every 5 s; we answer.
    wait::until("a server echo answered", DEADLINE, || {
        (sb.counters().echo_requests > 0).then_some(())
    });
    converge(&ovn, &sb, "still in sync after idling");
    assert_clean(&sb);
}

#[test]
fn clustered_sb_resumes_with_monitor_cond_since() {
    if !privilege::require_tools("clustered_sb_resumes_with_monitor_cond_since", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start_clustered();
    seed_lab(&ovn);
    let rt = runtime();
    let sb = start_client(&rt, &ovn.sb_remote());
    converge(&ovn, &sb, "seed lab on the clustered SB");
    assert_eq!(sb.counters().resumes, 0);

    // Reconnect with the server up: it still has our last transaction id.
    let mut rx = sb.subscribe();
    rt.block_on(sb.client().reconnect()).unwrap();
    wait::until("resume after reconnect", DEADLINE, || {
        (sb.counters().resumes == 1).then_some(())
    });
    converge(&ovn, &sb, "after resume");
    assert!(all_port_changes(&drain(&mut rx)).is_empty());

    // Restart the server: a clustered database replays its log and still knows the id.
    ovn.stop_sb();
    ovn.start_sb();
    let c = wait::until("resume after SB restart", DEADLINE, || {
        let c = sb.counters();
        (c.resumes + c.full_syncs >= 3).then_some(c)
    });
    assert_eq!(
        (c.resumes, c.full_syncs),
        (2, 1),
        "the restart resumed instead of reloading: {c:?}"
    );
    ovn.nbctl(&["set", "Logical_Switch_Port", "dmz-c52", "tag=72"]);
    ovn.sync();
    converge(&ovn, &sb, "update after resume");
    let ch = all_port_changes(&drain(&mut rx));
    assert!(
        matches!(ch.as_slice(), [RowChange::Modified { new, .. }] if new.tag == Some(72)),
        "{ch:#?}"
    );
    assert_clean(&sb);
}

#[test]
fn transact_registers_a_chassis_with_named_uuid() {
    if !privilege::require_tools("transact_registers_a_chassis_with_named_uuid", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    let rt = runtime();
    let sb = start_client(&rt, &ovn.sb_remote());
    let row = |pairs: &[(&str, Datum)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<RowData>()
    };
    let ops = vec![
        Operation::Insert {
            table: "Encap".into(),
            row: row(&[
                ("type", Datum::atom("geneve")),
                ("ip", Datum::atom("127.0.0.7")),
                ("chassis_name", Datum::atom("hv-test")),
                ("options", Datum::map([("csum", "true")])),
            ]),
            uuid_name: Some("encap0".into()),
        },
        Operation::Insert {
            table: "Chassis".into(),
            row: row(&[
                ("name", Datum::atom("hv-test")),
                ("hostname", Datum::atom("hv-test.example")),
                ("encaps", Datum::named_uuid("encap0")),
            ]),
            uuid_name: None,
        },
        Operation::Comment("ovnest sb_replica test".into()),
    ];
    let results = rt.block_on(sb.transact(ops)).expect("transact");
    let [
        OperationResult::Inserted(encap),
        OperationResult::Inserted(chassis),
        OperationResult::Empty,
    ] = results.as_slice()
    else {
        panic!("{results:?}")
    };
    // ovn-sbctl sees it.
    let rows = ovn.sb_rows("Chassis", &["_uuid", "name", "hostname", "encaps"]);
    let [r] = rows.as_slice() else {
        panic!("{rows:?}")
    };
    assert_eq!(
        (uuid(&r["_uuid"]), string(&r["name"])),
        (chassis.to_string(), "hv-test".to_owned())
    );
    assert_eq!(
        set(&r["encaps"]).iter().map(uuid).collect::<Vec<_>>(),
        vec![encap.to_string()]
    );
    let out = ovn.sbctl(&[
        "--bare",
        "--columns=ip,chassis_name,options",
        "list",
        "Encap",
    ]);
    assert!(
        out.contains("127.0.0.7") && out.contains("hv-test") && out.contains("csum=true"),
        "{out}"
    );
    // So does the replica.
    let snap = wait::until("chassis in the replica", DEADLINE, || {
        let s = sb.snapshot();
        s.chassis("hv-test")
            .is_some_and(|c| s.encaps_of(c).count() == 1)
            .then_some(s)
    });
    let ch = snap.chassis("hv-test").unwrap();
    assert_eq!(
        (ch.uuid, ch.hostname.as_str()),
        (*chassis, "hv-test.example")
    );
    assert_eq!(snap.encaps_of(ch).next().unwrap().ip, "127.0.0.7");

    // update, mutate, wait and delete with where clauses.
    let by_name = vec![Clause::eq("name", Datum::atom("hv-test"))];
    let ops = vec![
        Operation::Wait {
            table: "Chassis".into(),
            conditions: by_name.clone(),
            columns: vec!["hostname".into()],
            until: ovnest_ovsdb::WaitUntil::Equal,
            rows: vec![row(&[("hostname", Datum::atom("hv-test.example"))])],
            timeout_ms: Some(0),
        },
        Operation::Update {
            table: "Chassis".into(),
            conditions: by_name.clone(),
            row: row(&[("hostname", Datum::atom("renamed"))]),
        },
        Operation::Mutate {
            table: "Chassis".into(),
            conditions: by_name.clone(),
            mutations: vec![Mutation::new(
                "other_config",
                Mutator::Insert,
                Datum::map([("port-up-notif", "true")]),
            )],
        },
    ];
    let r = rt.block_on(sb.transact(ops)).expect("transact");
    assert_eq!(
        r[1..],
        [OperationResult::Count(1), OperationResult::Count(1)]
    );
    assert_eq!(
        ovn.sbctl(&["get", "Chassis", "hv-test", "hostname"]).trim(),
        "renamed"
    );
    wait::until("mutation in the replica", DEADLINE, || {
        sb.snapshot()
            .chassis("hv-test")
            .is_some_and(|c| {
                c.other_config
                    .get("port-up-notif")
                    .is_some_and(|v| v == "true")
            })
            .then_some(())
    });
    // A failing wait aborts the transaction and says which operation failed.
    let err = rt
        .block_on(sb.transact(vec![
            Operation::Delete {
                table: "Chassis".into(),
                conditions: by_name.clone(),
            },
            Operation::Wait {
                table: "Chassis".into(),
                conditions: vec![Clause::new("name", Function::Eq, Datum::atom("nope"))],
                columns: vec!["name".into()],
                until: ovnest_ovsdb::WaitUntil::NotEqual,
                rows: vec![],
                timeout_ms: Some(0),
            },
        ]))
        .unwrap_err();
    assert!(err.to_string().contains("operation 1"), "{err}");
    assert!(
        ovn.try_sbctl(&["get", "Chassis", "hv-test", "name"])
            .is_ok(),
        "aborted transaction deleted nothing"
    );
    let r = rt
        .block_on(sb.transact(vec![Operation::Delete {
            table: "Chassis".into(),
            conditions: by_name,
        }]))
        .unwrap();
    assert_eq!(r, [OperationResult::Count(1)]);
    wait::until("chassis gone from the replica", DEADLINE, || {
        let s = sb.snapshot();
        (s.chassis("hv-test").is_none() && s.encaps().count() == 0).then_some(())
    });
    assert_clean(&sb);
}

#[test]
fn monitor_cond_change_narrows_port_bindings() {
    if !privilege::require_tools("monitor_cond_change_narrows_port_bindings", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed_lab(&ovn);
    let rt = runtime();
    let sb = start_client(&rt, &ovn.sb_remote());
    converge(&ovn, &sb, "seed lab");
    let mut rx = sb.subscribe();
    // What ovn-controller asks for a chassis hosting vm5: the VIF and its children.
    let cond = MonitorCondition::Any(vec![
        Clause::eq("logical_port", Datum::atom("dmz-vm5")),
        Clause::eq("parent_port", Datum::atom("dmz-vm5")),
    ]);
    rt.block_on(sb.set_condition::<PortBinding>(cond))
        .expect("monitor_cond_change");
    // The server sent the deletes before its reply, so this holds at once.
    let s = sb.snapshot();
    let ports: Vec<&str> = s.port_bindings().map(|p| p.logical_port.as_str()).collect();
    assert_eq!(ports, ["dmz-c51", "dmz-c52", "dmz-vm5"]);
    let ch = all_port_changes(&drain(&mut rx));
    assert!(
        matches!(ch.as_slice(), [RowChange::Removed(pb)] if pb.logical_port == "dmz-vm1"),
        "{ch:#?}"
    );
    // Updates still flow under the condition; a new matching port appears.
    ovn.nbctl(&["lsp-add", "dmz", "dmz-c54", "dmz-vm5", "54"]);
    ovn.sync();
    wait::until("dmz-c54 under the condition", DEADLINE, || {
        sb.snapshot().port_binding("dmz-c54").map(|p| p.tag)
    });
    // Back to everything.
    rt.block_on(sb.set_condition::<PortBinding>(MonitorCondition::All))
        .unwrap();
    converge(&ovn, &sb, "all ports again");
    assert_clean(&sb);
}

#[test]
fn remote_lists_ipv6_and_ssl() {
    if !privilege::require_tools("remote_lists_ipv6_and_ssl", TOOLS) {
        return;
    }
    // ssl: parses (the connection needs SslConfig; cli/tests/cni_ssl.rs uses one).
    assert!(
        "ssl:127.0.0.1:6642"
            .parse::<ovnest_ovsdb::Remotes>()
            .is_ok()
    );
    let ovn = OvnCentral::start();
    seed_lab(&ovn);
    let rt = runtime();
    // The first remote refuses connections; the client moves on to the next.
    let good = ovn.sb_tcp6_remote().unwrap_or_else(|| ovn.sb_tcp_remote());
    let list = format!("tcp:127.0.0.1:{},{good}", free_port());
    let sb = start_client(&rt, &list);
    converge(&ovn, &sb, "via the second remote");
    assert!(sb.counters().connect_failures >= 1);
    assert!(
        matches!(&*sb.client().state().borrow(), ovnest_ovsdb::ConnectionState::Monitoring { remote, .. } if *remote == good)
    );
    assert_clean(&sb);
}
