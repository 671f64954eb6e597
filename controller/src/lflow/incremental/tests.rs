//! The agent's pipeline fed from the replica's change sets equals a full compile of the
//! final database, through updates, skipped snapshots, recreated rows and fallbacks.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::ovsdb::{Counters, Database as RawDb, DbChange, TableUpdates, UpdateFormat, layout};
use crate::sb::tests::{msgs, sb_schema};
use crate::sb::{CHANGE_BUFFER, Replica, monitor_tables};

const DMZ: &str = "31f08edb-c664-4990-9370-c6e10f844b2d";
const LR0: &str = "c88e3705-5813-432c-ab50-a2638a20a220";

/// A replica fed updates as the client task feeds it, with the agent's subscriber.
struct Sb {
    db: RawDb,
    replica: Replica,
    counters: Counters,
}

impl Sb {
    fn new() -> Sb {
        let schema = sb_schema();
        Sb {
            db: RawDb::new(layout(&monitor_tables(&[]), &schema)),
            replica: Replica::new(),
            counters: Counters::default(),
        }
    }

    fn reset(&mut self, body: Value) {
        let mut db = self.db.empty_like();
        db.apply(
            TableUpdates::from_json(body, UpdateFormat::V2).unwrap(),
            &self.counters,
        );
        self.db = db;
        self.replica
            .update(&self.db, DbChange::Reset, &self.counters)
            .unwrap();
    }

    fn update(&mut self, body: Value) {
        let touched = self.db.apply(
            TableUpdates::from_json(body, UpdateFormat::V2).unwrap(),
            &self.counters,
        );
        self.replica
            .update(&self.db, DbChange::Rows(&touched), &self.counters)
            .expect("the update changes the replica");
        assert_eq!(self.counters.snapshot().bad_rows, 0);
        assert_eq!(self.counters.snapshot().bad_updates, 0);
    }
}

fn flow(pipeline: &str, table: u8, priority: u16, m: &str, actions: &str) -> Value {
    json!({"insert": {
        "logical_datapath": ["uuid", DMZ], "pipeline": pipeline, "table_id": table,
        "priority": priority, "match": m, "actions": actions,
        "external_ids": ["map", [["stage-name", "test"]]]
    }})
}

const ACL: &str = "0a000000-0000-4000-8000-000000000001";

/// The lab's datapaths and ports, a port group, an address set and a few flows.
fn initial() -> Value {
    let mut body = msgs("monitor_cond_since-all.json")[1]["result"][2].clone();
    body["Datapath_Binding"] = json!({
        DMZ: {"initial": {"tunnel_key": 1, "external_ids": ["map", [["logical-switch", "397037fb-3f6f-4b20-a998-00aa99063185"], ["name", "dmz"]]]}},
        LR0: {"initial": {"tunnel_key": 2, "external_ids": ["map", [["logical-router", "9fb8bdca-7234-4a8e-aa8e-e714167fc3ab"], ["name", "lr0"]]]}}
    });
    body["Port_Group"] = json!({
        "0b000000-0000-4000-8000-000000000001": {"initial": {"name": "pg_web", "ports": ["set", ["dmz-c51", "dmz-vm1"]]}}
    });
    body["Address_Set"] = json!({
        "0c000000-0000-4000-8000-000000000001": {"initial": {"name": "as_bad", "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]}}
    });
    body["Logical_Flow"] = json!({
        "0a000000-0000-4000-8000-000000000010": flow("ingress", 0, 50, "inport == \"dmz-c51\"", "next;"),
        "0a000000-0000-4000-8000-000000000011": flow("ingress", 0, 0, "1", "drop;"),
        "0a000000-0000-4000-8000-000000000012": flow("egress", 4, 2000, "outport == @pg_web && ip4.src == $as_bad", "drop;"),
        "0a000000-0000-4000-8000-000000000013": flow("egress", 4, 0, "1", "next;"),
        "0a000000-0000-4000-8000-000000000014": flow("ingress", 1, 100, "is_chassis_resident(\"dmz-c51\")", "next;")
    });
    body
}

fn residency() -> Residency {
    Residency::Ports(Arc::new(HashSet::from(["dmz-c51".to_owned()])))
}

/// One agent pass; its pipeline must be a full compile's.
fn pass(agent: &mut Incremental, sb: &Sb, want: Path) -> Update {
    let snap = sb.replica.snapshot();
    let u = agent.update(&snap, true, residency());
    assert_eq!(u.path, want);
    let full = Pipeline::compile(&database(&snap), &residency());
    assert_eq!(u.pipeline.describe(), full.describe());
    assert_eq!(u.pipeline.n_flows(), full.n_flows());
    assert!(u.pipeline.n_flows() >= snap.table::<LogicalFlow>().len());
    u
}

fn subscribed() -> (Sb, Incremental) {
    let mut sb = Sb::new();
    let mut agent = Incremental::default();
    agent.subscribe(sb.replica.change_sender().subscribe());
    sb.reset(initial());
    let u = pass(&mut agent, &sb, Path::Compiled);
    assert!(u.pipeline.errors.is_empty(), "{:?}", u.pipeline.errors);
    (sb, agent)
}

#[test]
fn change_sets_drive_updates_equal_to_full_compiles() {
    let (mut sb, mut agent) = subscribed();

    // One ACL added: one table rebuilt from the change list.
    sb.update(json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "outport == @pg_web && ip4.src == 172.16.255.131", "drop;")}}));
    let u = pass(&mut agent, &sb, Path::Rows);
    assert_eq!(u.rebuilt, Some(1));

    // Several updates between two passes (snapshots skipped): a flow modified, a port
    // group and an address set changed, the ACL removed, a port recreated with a new
    // uuid (a reparent), tags changed (not compiled: nothing to rebuild).
    sb.update(json!({"Logical_Flow": {"0a000000-0000-4000-8000-000000000010": {"modify": {"actions": "drop;"}}}}));
    sb.update(json!({"Port_Group": {"0b000000-0000-4000-8000-000000000001": {"modify": {"ports": ["set", ["dmz-vm2"]]}}}}));
    sb.update(json!({"Address_Set": {"0c000000-0000-4000-8000-000000000001": {"modify": {"addresses": ["set", ["10.0.0.3"]]}}}}));
    let u = pass(&mut agent, &sb, Path::Rows);
    assert!(!u.unchanged);
    sb.update(json!({"Logical_Flow": {ACL: {"delete": null}}}));
    let c51 = sb
        .replica
        .snapshot()
        .port_binding("dmz-c51")
        .unwrap()
        .clone();
    sb.update(json!({"Port_Binding": {
        c51.uuid.to_string(): {"delete": null},
        "b78169a0-0000-4000-8000-000000000001": {"insert": {"logical_port": "dmz-c51", "tunnel_key": 9, "datapath": ["uuid", DMZ], "mac": "02:ac:10:ff:01:33 172.16.255.133", "up": false}}
    }}));
    pass(&mut agent, &sb, Path::Rows);
    for m in msgs("monitor_cond_since-all.json").into_iter().skip(2) {
        sb.update(m["params"][2].clone());
    }
    let u = pass(&mut agent, &sb, Path::Rows);
    assert!(u.unchanged);

    // A port removed and a flow added and removed again within one interval.
    let vm2 = sb
        .replica
        .snapshot()
        .port_binding("dmz-vm2")
        .unwrap()
        .clone();
    sb.update(json!({"Port_Binding": {vm2.uuid.to_string(): {"delete": null}}}));
    sb.update(
        json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "ip4.src == 1.2.3.4", "drop;")}}),
    );
    sb.update(json!({"Logical_Flow": {ACL: {"delete": null}}}));
    pass(&mut agent, &sb, Path::Rows);
}

#[test]
fn what_the_change_list_cannot_say_falls_back() {
    let (mut sb, mut agent) = subscribed();

    // A datapath group: flows naming it change datapaths without a row change.
    sb.update(json!({"Logical_DP_Group": {"0d000000-0000-4000-8000-000000000001": {"insert": {"datapaths": ["set", [["uuid", DMZ], ["uuid", LR0]]]}}}}));
    pass(&mut agent, &sb, Path::Between);
    sb.update(json!({"Logical_Flow": {ACL: {"insert": {
        "logical_dp_group": ["uuid", "0d000000-0000-4000-8000-000000000001"], "pipeline": "ingress",
        "table_id": 2, "priority": 10, "match": "ip4", "actions": "next;"}}}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"Logical_DP_Group": {"0d000000-0000-4000-8000-000000000001": {"modify": {"datapaths": ["set", [["uuid", LR0]]]}}}}));
    pass(&mut agent, &sb, Path::Between);

    // A resync (reconnect without resume).
    sb.reset(initial());
    pass(&mut agent, &sb, Path::Between);
    sb.update(
        json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "ip4.src == 1.2.3.4", "drop;")}}),
    );
    pass(&mut agent, &sb, Path::Rows);

    // A lagged subscriber: more change sets than the channel keeps.
    for i in 0..=CHANGE_BUFFER {
        let actions = if i % 2 == 0 { "next;" } else { "drop;" };
        sb.update(json!({"Logical_Flow": {ACL: {"modify": {"actions": actions}}}}));
    }
    pass(&mut agent, &sb, Path::Between);
    sb.update(json!({"Logical_Flow": {ACL: {"delete": null}}}));
    pass(&mut agent, &sb, Path::Rows);

    // A new subscription (a new Southbound): compared whole once, then rows again.
    agent.subscribe(sb.replica.change_sender().subscribe());
    sb.update(
        json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "ip4.src == 1.2.3.5", "drop;")}}),
    );
    pass(&mut agent, &sb, Path::Between);
    sb.update(json!({"Logical_Flow": {ACL: {"modify": {"priority": 1002}}}}));
    pass(&mut agent, &sb, Path::Rows);

    // A snapshot kept from a previous connection is compared whole.
    let snap = sb.replica.snapshot();
    let u = agent.update(&snap, false, residency());
    assert_eq!(u.path, Path::Between);
    assert!(u.unchanged);
    sb.update(json!({"Logical_Flow": {ACL: {"delete": null}}}));
    pass(&mut agent, &sb, Path::Between);
    sb.update(
        json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "ip4.src == 1.2.3.6", "drop;")}}),
    );
    pass(&mut agent, &sb, Path::Rows);
}
