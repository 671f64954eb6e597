//! Replica tests on the wire captures in shared/reference/ovn-23.03/ovsdb-wire (no server).

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::ovsdb::{
    Counters, Database, DbChange, Schema, TableUpdates, UpdateFormat, Uuid, layout,
};

const WIRE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ovsdb-wire/");

fn wire(name: &str) -> String {
    std::fs::read_to_string(format!("{WIRE}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The real 20.27.0 schema, from the get_schema reply.
pub(crate) fn sb_schema() -> Schema {
    let v: Value = serde_json::from_str(&wire("get_schema-OVN_Southbound.json")).unwrap();
    Schema::from_json(&v["result"]).unwrap()
}

/// The `msg` of every line of a capture.
pub(crate) fn msgs(name: &str) -> Vec<Value> {
    wire(name)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["msg"].clone())
        .collect()
}

/// A replica fed updates as the client task feeds it (also the lflow tests').
pub(crate) struct Harness {
    pub(crate) db: Database,
    pub(crate) replica: Replica,
    pub(crate) counters: Counters,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_tables(TABLES)
    }

    /// Every table the agent monitors.
    pub(crate) fn all_tables() -> Harness {
        Harness::with_specs(monitor_tables(&[]))
    }

    fn with_tables(tables: &[&str]) -> Harness {
        Harness::with_specs(
            monitor_tables(&[])
                .into_iter()
                .filter(|t| tables.contains(&t.table.as_str()))
                .collect(),
        )
    }

    fn with_specs(spec: Vec<TableMonitor>) -> Harness {
        Harness {
            db: Database::new(layout(&spec, &sb_schema())),
            replica: Replica::new(),
            counters: Counters::default(),
        }
    }

    /// Loads a full snapshot (table-updates2 of "initial" rows), as after a (re)connect.
    pub(crate) fn reset(&mut self, body: Value) -> Option<Arc<ChangeSet>> {
        let mut db = self.db.empty_like();
        db.apply(
            TableUpdates::from_json(body, UpdateFormat::V2).unwrap(),
            &self.counters,
        );
        self.db = db;
        self.replica
            .update(&self.db, DbChange::Reset, &self.counters)
    }

    pub(crate) fn update(&mut self, body: Value) -> Option<Arc<ChangeSet>> {
        let touched = self.db.apply(
            TableUpdates::from_json(body, UpdateFormat::V2).unwrap(),
            &self.counters,
        );
        self.replica
            .update(&self.db, DbChange::Rows(&touched), &self.counters)
    }

    fn snap(&self) -> Arc<Snapshot> {
        self.replica.snapshot()
    }
}

pub(crate) const DMZ: &str = "31f08edb-c664-4990-9370-c6e10f844b2d";
pub(crate) const LR0: &str = "c88e3705-5813-432c-ab50-a2638a20a220";

/// sb-nb-dumps/sb-Datapath_Binding.txt as the server sends it.
pub(crate) fn datapaths() -> Value {
    json!({
        DMZ: {"initial": {"tunnel_key": 1, "external_ids": ["map", [["logical-switch", "397037fb-3f6f-4b20-a998-00aa99063185"], ["name", "dmz"]]]}},
        LR0: {"initial": {"tunnel_key": 2, "external_ids": ["map", [["logical-router", "9fb8bdca-7234-4a8e-aa8e-e714167fc3ab"], ["name", "lr0"]]]}}
    })
}

/// The lab's SB: datapaths plus the Port_Bindings of monitor_cond_since-all.json.
fn lab() -> Harness {
    let mut h = Harness::new();
    let reply = &msgs("monitor_cond_since-all.json")[1];
    let mut body = reply["result"][2].clone();
    body["Datapath_Binding"] = datapaths();
    let set = h.reset(body).unwrap();
    assert!(set.resync);
    assert_eq!(set.len(), 9, "2 datapaths + 7 ports");
    h
}

#[test]
fn initial_snapshot_decodes_every_column() {
    let h = lab();
    let s = h.snap();
    assert!(s.is_synced());
    assert_eq!(s.port_bindings().count(), 7);
    let c51 = s.port_binding("dmz-c51").unwrap();
    assert_eq!(c51.parent_port.as_deref(), Some("dmz-vm5"));
    assert_eq!(c51.tag, Some(51));
    assert_eq!(c51.tunnel_key, 7);
    assert_eq!(c51.mac[0].mac(), Some("02:ac:10:ff:01:33".parse().unwrap()));
    assert_eq!(c51.port_security, c51.mac);
    assert_eq!(c51.port_type, "");
    assert_eq!(c51.up, Some(false));
    assert_eq!(c51.chassis, None);
    assert!(c51.is_nested());
    assert_eq!(s.datapath(&c51.datapath).unwrap().name(), Some("dmz"));
    let lr = s.port_binding("dmz-lr0").unwrap();
    assert_eq!(lr.mac, vec![PortAddresses::Router]);
    assert_eq!(lr.options.get("peer").map(String::as_str), Some("lr0-dmz"));
    assert_eq!(lr.port_type, "patch");
    assert_eq!(s.port_binding("dmz-vm5").unwrap().tag, None);
    assert_eq!(h.counters.snapshot().bad_rows, 0);
}

#[test]
fn update3_tag_changes_emit_modifications() {
    let mut h = lab();
    for (n, m) in msgs("monitor_cond_since-all.json")
        .into_iter()
        .skip(2)
        .enumerate()
    {
        assert_eq!(m["method"], "update3");
        let set = h.update(m["params"][2].clone()).unwrap();
        assert_eq!(set.len(), 1);
        let [RowChange::Modified { old, new }] = set.of::<PortBinding>() else {
            panic!("{set:?}")
        };
        assert_eq!(new.logical_port, "dmz-c52");
        assert_eq!(
            (old.tag, new.tag),
            if n == 0 {
                (Some(52), Some(53))
            } else {
                (Some(53), Some(52))
            }
        );
    }
}

#[test]
fn modify_of_unmodelled_columns_emits_nothing() {
    let mut h = lab();
    let gen0 = h.snap().generation();
    let pb = h.snap().port_binding("dmz-c52").unwrap().clone();
    assert!(
        h.update(
            json!({"Port_Binding": {pb.uuid.to_string(): {"modify": {"_version": ["uuid", DMZ]}}}})
        )
        .is_none()
    );
    assert_eq!(h.snap().generation(), gen0);
    assert!(Arc::ptr_eq(h.snap().port_binding("dmz-c52").unwrap(), &pb));
}

#[test]
fn reparent_recreate_is_one_modification() {
    let mut h = lab();
    let old = h.snap().port_binding("dmz-c51").unwrap().clone();
    let new_uuid = "b78169a0-0000-4000-8000-000000000001";
    // northd deletes and re-creates the row with a new _uuid when parent_name changes.
    let set = h
        .update(json!({"Port_Binding": {
            old.uuid.to_string(): {"delete": null},
            new_uuid: {"insert": {"logical_port": "dmz-c51", "tunnel_key": 7, "datapath": ["uuid", DMZ], "mac": "02:ac:10:ff:01:33 172.16.255.133", "up": false}}
        }}))
        .unwrap();
    assert_eq!(set.len(), 1);
    let [RowChange::Modified { old: o, new: n }] = set.of::<PortBinding>() else {
        panic!("{set:?}")
    };
    assert_eq!(o.uuid, old.uuid);
    assert_eq!(n.uuid.to_string(), new_uuid);
    assert_eq!(
        (o.parent_port.as_deref(), n.parent_port.as_deref()),
        (Some("dmz-vm5"), None)
    );
    assert_eq!(n.tag, None);
    // The old row's uuid is gone: a later delete of it must not remove the new one.
    assert!(
        h.update(json!({"Port_Binding": {old.uuid.to_string(): {"delete": null}}}))
            .is_none()
    );
    assert_eq!(h.counters.snapshot().bad_updates, 1);
    assert!(h.snap().port_binding("dmz-c51").is_some());
}

#[test]
fn resync_emits_only_real_differences() {
    let mut h = lab();
    let reply = &msgs("monitor_cond_since-all.json")[1];
    let mut body = reply["result"][2].clone();
    body["Datapath_Binding"] = datapaths();
    // Same contents again: nothing to say.
    assert!(h.reset(body.clone()).is_none());
    // c52's tag moved and vm1 vanished while we were away.
    body["Port_Binding"]["48b8c51f-4146-410e-89b6-832c83d5689d"]["initial"]["tag"] = json!(99);
    body["Port_Binding"]
        .as_object_mut()
        .unwrap()
        .remove("c7b5c042-49d2-4431-9a00-2dfb2c32a034");
    let set = h.reset(body).unwrap();
    assert!(set.resync);
    assert_eq!(set.len(), 2, "{set:?}");
    assert!(
        set.of::<PortBinding>()
            .iter()
            .any(|c| matches!(c, RowChange::Modified { new, .. } if new.tag == Some(99)))
    );
    assert!(
        set.of::<PortBinding>()
            .iter()
            .any(|c| matches!(c, RowChange::Removed(o) if o.logical_port == "dmz-vm1"))
    );
}

#[test]
fn bad_rows_are_counted_once_skipped_and_healed() {
    let mut h = lab();
    let bad = |u: u8, row: Value| {
        (
            format!("0000000{u}-0000-4000-8000-000000000000"),
            json!({"insert": row}),
        )
    };
    let rows = [
        bad(
            1,
            json!({"logical_port": "tag0", "tag": 0, "tunnel_key": 20, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            2,
            json!({"logical_port": "tag5000", "tag": 5000, "tunnel_key": 21, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            3,
            json!({"logical_port": "badmac", "mac": "02:ac:zz:ff:01:33 10.0.0.1", "tunnel_key": 22, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            4,
            json!({"logical_port": "key0", "tunnel_key": 0, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            5,
            json!({"logical_port": "key40000", "tunnel_key": 40000, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            6,
            json!({"logical_port": "dangling", "tunnel_key": 23, "datapath": ["uuid", "11111111-2222-3333-4444-555555555555"]}),
        ),
        bad(
            7,
            json!({"logical_port": "wrongtype", "tag": "fifty-one", "tunnel_key": 24, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            8,
            json!({"logical_port": "malformed", "options": ["map", "x"], "tunnel_key": 25, "datapath": ["uuid", DMZ]}),
        ),
        bad(
            9,
            json!({"logical_port": "good", "tag": 4095, "tunnel_key": 26, "datapath": ["uuid", DMZ]}),
        ),
    ];
    let body = json!({"Port_Binding": rows.iter().cloned().collect::<serde_json::Map<_, _>>()});
    let set = h.update(body).unwrap();
    // Only the good row arrives; the other 8 are counted and listed.
    assert_eq!(set.len(), 1);
    assert_eq!(h.counters.snapshot().bad_rows, 8);
    let s = h.snap();
    assert_eq!(s.invalid_rows().count(), 8);
    assert!(s.port_binding("good").is_some() && s.port_binding("tag5000").is_none());
    assert_eq!(s.port_bindings().count(), 8);
    let reasons: Vec<String> = s.invalid_rows().map(|(_, _, why)| why.to_owned()).collect();
    for needle in [
        "tag 0",
        "tag 5000",
        "MAC",
        "tunnel_key 0",
        "tunnel_key 40000",
        "not in Datapath_Binding",
        "expected an integer",
        "undecodable",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle} in {reasons:?}"
        );
    }
    // The same bad value again (a modify of another column) is not counted again.
    h.update(json!({"Port_Binding": {rows[1].0.clone(): {"modify": {"up": true}}}}));
    assert_eq!(h.counters.snapshot().bad_rows, 8);
    // Fixing the tag brings the row in.
    let set = h
        .update(json!({"Port_Binding": {rows[1].0.clone(): {"modify": {"tag": 100}}}}))
        .unwrap();
    assert_eq!(set.len(), 1);
    assert!(matches!(set.of::<PortBinding>(), [RowChange::Added(pb)] if pb.tag == Some(100)));
    // The missing datapath appearing heals the dangling port.
    let set = h
        .update(json!({"Datapath_Binding": {"11111111-2222-3333-4444-555555555555": {"insert": {"tunnel_key": 3}}}}))
        .unwrap();
    assert!(
        set.of::<PortBinding>()
            .iter()
            .any(|c| matches!(c, RowChange::Added(pb) if pb.logical_port == "dangling"))
    );
    assert_eq!(h.snap().invalid_rows().count(), 6);
}

#[test]
fn duplicate_keys_keep_the_first_row() {
    let mut h = lab();
    let set = h.update(json!({"Port_Binding": {"00000000-0000-4000-8000-0000000000aa": {"insert": {"logical_port": "dmz-c51", "tunnel_key": 99, "datapath": ["uuid", DMZ]}}}}));
    assert!(set.unwrap().is_empty());
    assert_eq!(h.snap().port_binding("dmz-c51").unwrap().tunnel_key, 7);
    assert_eq!(h.counters.snapshot().bad_rows, 1);
}

#[test]
fn chassis_encap_and_flows_from_the_captures() {
    // task4-updates.jsonl was captured with a Port_Binding monitor lacking `datapath`;
    // leave Datapath_Binding out so ports are not judged dangling.
    let mut h = Harness::with_tables(&[
        PortBinding::TABLE,
        Chassis::TABLE,
        Encap::TABLE,
        LogicalFlow::TABLE,
    ]);
    let all = msgs("task4-updates.jsonl");
    h.reset(all[0]["result"][2].clone()).unwrap();
    for m in &all[1..] {
        h.update(m["params"][2].clone());
    }
    assert_eq!(h.counters.snapshot().bad_updates, 0);
    assert_eq!(h.counters.snapshot().bad_rows, 0);
    let s = h.snap();
    let hv1 = s.chassis("hv1").unwrap();
    assert_eq!(hv1.hostname, "hv1");
    assert!(hv1.other_config.contains_key("ct-no-masked-label"));
    let encaps: Vec<_> = s.encaps_of(hv1).collect();
    assert_eq!(encaps.len(), 1);
    let c52 = s.port_binding("dmz-c52").unwrap();
    assert_eq!(c52.chassis, Some(hv1.uuid));
    assert_eq!(s.chassis_by_uuid(&hv1.uuid).unwrap().name, "hv1");
    assert_eq!(c52.up, Some(true));

    // The DHCP options flow of sb-Logical_Flow-c51-dhcp-raw.txt, and one of another stage.
    h.update(json!({"Logical_Flow": {
        "56b1549c-23cf-4efc-866a-e823053942ef": {"insert": {
            "actions": "reg0[3] = put_dhcp_opts(offerip = 172.16.255.133, lease_time = 3600, netmask = 255.255.255.192, router = 172.16.255.129, server_id = 172.16.255.129); next;",
            "external_ids": ["map", [["source", "northd.c:8172"], ["stage-hint", "1e92a0f6"], ["stage-name", "ls_in_dhcp_options"]]],
            "logical_datapath": ["uuid", DMZ],
            "match": "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33 && ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && udp.src == 68 && udp.dst == 67",
            "pipeline": "ingress", "priority": 100, "table_id": 20, "tags": ["map", [["in_out_port", "dmz-c51"]]]
        }},
        "56b1549c-23cf-4efc-866a-e823053942e0": {"insert": {
            "actions": "next;", "external_ids": ["map", [["stage-name", "ls_in_dhcp_options"]]], "pipeline": "ingress"
        }}
    }}));
    let s = h.snap();
    assert_eq!(s.table::<LogicalFlow>().len(), 2);
    assert_eq!(s.dhcp_flows_for("dmz-c51").count(), 1);
    let f = s.dhcp_flows_for("dmz-c51").next().unwrap();
    assert_eq!((f.table_id, f.priority), (20, 100));
    assert_eq!(f.pipeline, Pipeline::Ingress);
    assert_eq!(f.stage_name(), Some(DHCP_OPTIONS_STAGE));
    assert_eq!(f.source(), Some("northd.c:8172"));
    assert_eq!(
        s.flow_datapaths(f).collect::<Vec<_>>(),
        vec![DMZ.parse().unwrap()]
    );
    assert!(f.actions.contains("offerip = 172.16.255.133"));
}

#[test]
fn every_update_fixture_applies_cleanly() {
    // Every reply or notification that carries table updates, into a full-schema replica.
    let mut n = 0;
    for name in [
        "monitor-v1.json",
        "monitor_cond-v2.json",
        "monitor_cond_since-all.json",
        "monitor_cond_since-resume.json",
        "monitor_cond_since-v3.json",
        "cluster-mcs-1.json",
        "cluster-mcs-resume.json",
        "cluster-mcs-badid.json",
        "task4-updates.jsonl",
    ] {
        let mut h = Harness::with_tables(&[PortBinding::TABLE, Chassis::TABLE, Encap::TABLE]);
        for m in msgs(name) {
            // id 0 is the monitor request's reply; others (monitor_cond_change's {}) carry no rows.
            let result = if m["id"] == 0 { m.get("result") } else { None };
            let (body, format, reset) = match (m.get("method").and_then(Value::as_str), result) {
                (Some("update"), _) => (m["params"][1].clone(), UpdateFormat::V1, false),
                (Some("update2"), _) => (m["params"][1].clone(), UpdateFormat::V2, false),
                (Some("update3"), _) => (m["params"][2].clone(), UpdateFormat::V2, false),
                (None, Some(Value::Array(r))) => (r[2].clone(), UpdateFormat::V2, true),
                (None, Some(r @ Value::Object(_))) if name == "monitor-v1.json" => {
                    (r.clone(), UpdateFormat::V1, true)
                }
                (None, Some(r @ Value::Object(_))) => (r.clone(), UpdateFormat::V2, true),
                _ => continue,
            };
            let updates = TableUpdates::from_json(body, format).unwrap();
            assert!(
                updates.malformed.is_empty(),
                "{name}: {:?}",
                updates.malformed
            );
            if reset {
                h.db = h.db.empty_like();
                h.db.apply(updates, &h.counters);
                h.replica.update(&h.db, DbChange::Reset, &h.counters);
            } else {
                let t = h.db.apply(updates, &h.counters);
                h.replica.update(&h.db, DbChange::Rows(&t), &h.counters);
            }
            n += 1;
        }
        // monitor_cond-v2.json narrows with monitor_cond_change and then deletes: fine.
        assert_eq!(h.counters.snapshot().bad_rows, 0, "{name}");
        assert_eq!(h.counters.snapshot().bad_updates, 0, "{name}");
    }
    assert!(n >= 20, "{n}");
}

#[test]
fn monitor_v1_replace_semantics() {
    let mut h = Harness::with_tables(&[PortBinding::TABLE]);
    let m = msgs("monitor-v1.json");
    h.db = h.db.empty_like();
    h.db.apply(
        TableUpdates::from_json(m[1]["result"].clone(), UpdateFormat::V1).unwrap(),
        &h.counters,
    );
    h.replica.update(&h.db, DbChange::Reset, &h.counters);
    assert_eq!(h.snap().port_binding("dmz-c52").unwrap().tag, Some(52));
    let t = h.db.apply(
        TableUpdates::from_json(m[2]["params"][1].clone(), UpdateFormat::V1).unwrap(),
        &h.counters,
    );
    let set = h
        .replica
        .update(&h.db, DbChange::Rows(&t), &h.counters)
        .unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(h.snap().port_binding("dmz-c52").unwrap().tag, Some(53));
    let _ = Uuid::ZERO;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    /// Whatever a server sends as table updates, applying it never panics.
    #[test]
    fn arbitrary_updates_never_panic(v in crate::ovsdb::proptest_json(), v1 in any::<bool>(), reset in any::<bool>()) {
        let mut h = lab();
        let body = json!({"Port_Binding": {"48b8c51f-4146-410e-89b6-832c83d5689d": v.clone()}, "Chassis": v.clone(), "Datapath_Binding": {DMZ: v.clone()}});
        for candidate in [v, body] {
            let fmt = if v1 { UpdateFormat::V1 } else { UpdateFormat::V2 };
            if let Ok(u) = TableUpdates::from_json(candidate, fmt) {
                if reset {
                    h.db = h.db.empty_like();
                    h.db.apply(u, &h.counters);
                    h.replica.update(&h.db, DbChange::Reset, &h.counters);
                } else {
                    let t = h.db.apply(u, &h.counters);
                    h.replica.update(&h.db, DbChange::Rows(&t), &h.counters);
                }
            }
        }
        let _ = h.snap().port_bindings().count();
    }
}

#[test]
fn new_tables_decode_and_refuse_what_ovn_sb_forbids() {
    let mut h = lab();
    let row = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02x}");
    let set = h
        .update(json!({
            "Gateway_Chassis": {row(1): {"insert": {"name": "lr0-public-gw1", "priority": 10, "chassis": ["uuid", LR0]}}},
            "Multicast_Group": {
                row(2): {"insert": {"datapath": ["uuid", DMZ], "name": "_MC_flood", "tunnel_key": 32768}},
                row(3): {"insert": {"datapath": ["uuid", DMZ], "name": "_MC_bad", "tunnel_key": 7}}
            },
            "Logical_Flow": {
                row(4): {"insert": {"pipeline": "egress", "table_id": 3, "priority": 100, "match": "1", "actions": "next;"}},
                row(5): {"insert": {"pipeline": "sideways", "table_id": 3}},
                row(6): {"insert": {"pipeline": "ingress", "table_id": 40}}
            },
            "DHCP_Options": {row(7): {"insert": {"name": "router", "code": 3, "type": "ipv4"}},
                             row(8): {"insert": {"name": "odd", "code": 250, "type": "float"}}},
            "Load_Balancer": {row(9): {"insert": {"name": "lb", "protocol": "icmp"}}},
            "FDB": {row(10): {"insert": {"mac": "02:00:00:00:00:01", "dp_key": 1, "port_key": 0}}},
            "MAC_Binding": {row(11): {"insert": {"logical_port": "lr0-dmz", "ip": "fe80::1", "mac": "02:00:00:00:00:02", "datapath": ["uuid", LR0]}}}
        }))
        .unwrap();
    assert_eq!(set.of::<GatewayChassis>().len(), 1);
    assert_eq!(set.of::<MulticastGroup>().len(), 1);
    assert_eq!(set.of::<LogicalFlow>().len(), 1);
    assert_eq!(set.of::<DhcpOptions>().len(), 1);
    assert_eq!(set.of::<MacBinding>().len(), 1);
    let s = h.snap();
    let flow = s.table::<LogicalFlow>().iter().next().unwrap();
    assert_eq!(
        (flow.pipeline, flow.table_id, flow.priority),
        (Pipeline::Egress, 3, 100)
    );
    assert!(
        s.table::<MulticastGroup>()
            .get(&(DMZ.parse().unwrap(), "_MC_flood".to_owned()))
            .is_some()
    );
    assert_eq!(
        s.table::<GatewayChassis>()
            .get("lr0-public-gw1")
            .unwrap()
            .priority,
        10
    );
    assert_eq!(
        s.table::<MacBinding>().iter().next().unwrap().ip,
        "fe80::1".parse::<std::net::IpAddr>().unwrap()
    );
    let mut invalid: Vec<(&str, String)> = s
        .invalid_rows()
        .map(|(t, _, why)| (t, why.to_owned()))
        .collect();
    invalid.sort();
    let tables: Vec<&str> = invalid.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tables,
        [
            "DHCP_Options",
            "FDB",
            "Load_Balancer",
            "Logical_Flow",
            "Logical_Flow",
            "Multicast_Group"
        ],
        "{invalid:?}"
    );
    for needle in [
        "float",
        "port_key: 0",
        "icmp",
        "sideways",
        "table_id: 40",
        "tunnel_key: 7",
    ] {
        assert!(
            invalid.iter().any(|(_, why)| why.contains(needle)),
            "{needle} in {invalid:?}"
        );
    }
    assert_eq!(h.counters.snapshot().bad_rows, 6);
}
