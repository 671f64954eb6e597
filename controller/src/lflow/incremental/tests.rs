//! The agent's pipeline fed from the replica's change sets equals a full compile of the
//! final database, through updates, skipped snapshots, recreated rows and fallbacks.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::sb::tests::{DMZ, Harness, LR0, datapaths, msgs};
use crate::sb::{CHANGE_BUFFER, ChangeSet};

/// The SB tests' replica harness, every update checked to leave no invalid row.
struct Sb(Harness);

impl std::ops::Deref for Sb {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Sb {
    fn new() -> Sb {
        Sb(Harness::all_tables())
    }

    fn reset(&mut self, body: Value) {
        self.0.reset(body).unwrap();
    }

    fn update(&mut self, body: Value) {
        assert!(self.apply(body), "the update changes the replica");
    }

    /// Applies an update; false when it changed no typed row.
    fn apply(&mut self, body: Value) -> bool {
        let changed = self.0.update(body).is_some();
        let snap = self.replica.snapshot();
        let invalid: Vec<_> = snap.invalid_rows().collect();
        assert!(invalid.is_empty(), "{invalid:?}");
        assert_eq!(self.counters.snapshot().bad_rows, 0);
        assert_eq!(self.counters.snapshot().bad_updates, 0);
        changed
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
    body["Datapath_Binding"] = datapaths();
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

/// One agent pass; its database must be the snapshot's rebuilt, its pipeline a full
/// compile's.
fn pass(agent: &mut Incremental, sb: &Sb, want: Path) -> Update {
    let snap = sb.replica.snapshot();
    let u = agent.update(&snap, true, residency());
    assert_eq!(u.path, want);
    let db = database(&snap);
    assert!(
        agent.database() == Some(&db),
        "the patched database differs from the rebuilt one:\n{:#?}\nrebuilt:\n{db:#?}",
        agent.database()
    );
    let full = Pipeline::compile(&db, &residency());
    assert_eq!(u.pipeline.describe(), full.describe());
    assert_eq!(u.pipeline.n_flows(), full.n_flows());
    // A flow whose match names a set that is gone is an error, not lost.
    assert!(u.pipeline.n_flows() + u.pipeline.errors.len() >= snap.table::<LogicalFlow>().len());
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

const MB1: &str = "0e000000-0000-4000-8000-000000000001";
const MB2: &str = "0e000000-0000-4000-8000-000000000002";

fn mac_binding(port: &str, ip: &str, mac: &str) -> Value {
    json!({"insert": {"logical_port": port, "ip": ip, "mac": mac, "timestamp": 0, "datapath": ["uuid", LR0]}})
}

#[test]
fn every_table_patched_as_rebuilt() {
    let (mut sb, mut agent) = subscribed();
    let vm1 = sb
        .replica
        .snapshot()
        .port_binding("dmz-vm1")
        .unwrap()
        .uuid
        .to_string();

    // MAC_Binding churn: learnt, refreshed (timestamp only: nothing the pipeline reads),
    // moved, forgotten; a static one beside.
    sb.update(json!({"MAC_Binding": {
        MB1: mac_binding("lr0-dmz", "172.16.255.133", "02:ac:10:ff:01:33"),
        MB2: mac_binding("lr0-dmz", "172.16.255.134", "02:ac:10:ff:01:34")
    }}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"MAC_Binding": {MB1: {"modify": {"timestamp": 5}}}}));
    let u = pass(&mut agent, &sb, Path::Rows);
    assert!(u.unchanged);
    sb.update(json!({"MAC_Binding": {MB1: {"modify": {"mac": "02:ac:10:ff:01:99"}}}}));
    sb.update(json!({"MAC_Binding": {MB2: {"delete": null}}}));
    sb.update(
        json!({"Static_MAC_Binding": {"0e000000-0000-4000-8000-000000000003": {"insert": {
        "logical_port": "lr0-dmz", "ip": "172.16.255.140", "mac": "02:ac:10:ff:01:40",
        "override_dynamic_mac": false, "datapath": ["uuid", LR0]}}}}),
    );
    pass(&mut agent, &sb, Path::Rows);

    // FDB, Multicast_Group, Load_Balancer, DHCP options.
    sb.update(json!({"FDB": {"0f000000-0000-4000-8000-000000000001": {"insert": {"mac": "02:00:00:00:00:01", "dp_key": 1, "port_key": 3}}}}));
    sb.update(json!({"Multicast_Group": {"0f000000-0000-4000-8000-000000000002": {"insert": {
        "datapath": ["uuid", DMZ], "name": "_MC_flood", "tunnel_key": 32768, "ports": ["set", [["uuid", vm1]]]}}}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"Load_Balancer": {"0f000000-0000-4000-8000-000000000003": {"insert": {
        "name": "lb0", "vips": ["map", [["172.16.255.200:80", "172.16.255.133:80"]]], "protocol": "tcp",
        "options": ["map", [["hairpin_snat_ip", "169.254.0.5"]]]}}}}));
    sb.update(json!({"Multicast_Group": {"0f000000-0000-4000-8000-000000000002": {"modify": {"ports": ["set", [["uuid", vm1]]]}}}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"DHCP_Options": {"0f000000-0000-4000-8000-000000000004": {"insert": {"name": "router", "code": 3, "type": "ipv4"}}}}));
    sb.update(json!({"DHCPv6_Options": {"0f000000-0000-4000-8000-000000000005": {"insert": {"name": "server_id", "code": 2, "type": "mac"}}}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"FDB": {"0f000000-0000-4000-8000-000000000001": {"delete": null}}}));
    sb.update(json!({"Load_Balancer": {"0f000000-0000-4000-8000-000000000003": {"modify": {"vips": ["map", [["172.16.255.200:80", "172.16.255.133:80"]]]}}}}));
    pass(&mut agent, &sb, Path::Rows);

    // Port_Binding columns the pipeline reads: key, security, peer, friendly name.
    sb.update(json!({"Port_Binding": {vm1.as_str(): {"modify": {"tunnel_key": 42}}}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"Port_Binding": {vm1.as_str(): {"modify": {
        "port_security": "02:ac:10:ff:01:31 172.16.255.131 172.16.255.132",
        "external_ids": ["map", [["name", "vm one"]]]}}}}));
    sb.update(
        json!({"Port_Binding": {"0f000000-0000-4000-8000-000000000006": {"insert": {
        "logical_port": "lr0-ext", "tunnel_key": 7, "datapath": ["uuid", LR0], "type": "patch",
        "options": ["map", [["peer", "ext-lr0"]]], "up": false}}}}),
    );
    pass(&mut agent, &sb, Path::Rows);

    // Port groups and address sets: created, changed, removed.
    sb.update(json!({"Port_Group": {"0b000000-0000-4000-8000-000000000002": {"insert": {"name": "1_pg_db", "ports": ["set", ["dmz-vm1"]]}}}}));
    sb.update(json!({"Address_Set": {"0c000000-0000-4000-8000-000000000002": {"insert": {"name": "as_good", "addresses": ["set", ["10.1.0.1"]]}}}}));
    sb.update(json!({"Logical_Flow": {ACL: flow("egress", 4, 1001, "outport == @1_pg_db && ip4.src == $as_good", "drop;")}}));
    pass(&mut agent, &sb, Path::Rows);
    sb.update(json!({"Port_Group": {"0b000000-0000-4000-8000-000000000001": {"delete": null}}}));
    sb.update(json!({"Address_Set": {"0c000000-0000-4000-8000-000000000002": {"modify": {"addresses": ["set", ["10.1.0.2", "10.1.0.3"]]}}}}));
    pass(&mut agent, &sb, Path::Rows);

    // Many flows in one pass (the database's rows merged rather than moved one by one),
    // then half of them removed and the rest changed.
    let many: Vec<String> = (0..40)
        .map(|i| format!("0a000000-0000-4000-8000-0000000001{i:02x}"))
        .collect();
    let rows: serde_json::Map<String, Value> = many
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let m = format!("ip4.src == 10.9.0.{i}");
            (u.clone(), flow("ingress", 2, 10 + i as u16, &m, "next;"))
        })
        .collect();
    sb.update(json!({"Logical_Flow": rows}));
    pass(&mut agent, &sb, Path::Rows);
    let rows: serde_json::Map<String, Value> = many
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let row = if i % 2 == 0 {
                json!({"delete": null})
            } else {
                json!({"modify": {"actions": "drop;"}})
            };
            (u.clone(), row)
        })
        .collect();
    sb.update(json!({"Logical_Flow": rows}));
    pass(&mut agent, &sb, Path::Rows);

    // A datapath's friendly name (a full compile of the pipeline, the database patched).
    sb.update(json!({"Datapath_Binding": {DMZ: {"modify": {"external_ids": ["map", [["logical-switch", "397037fb-3f6f-4b20-a998-00aa99063185"], ["name", "dmz"], ["name2", "DMZ"]]]}}}}));
    pass(&mut agent, &sb, Path::Rows);
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Random updates to the tables the pipeline reads, with passes at random points: each
/// pass's patched database is the rebuilt one, its `Changes` those the change sets give
/// on the two whole databases, and the pipeline a full compile's.
#[test]
fn random_updates_patch_as_rebuilt() {
    const PORTS: [&str; 5] = ["r-p0", "r-p1", "r-p2", "r-p3", "r-p4"];
    const GROUPS: [&str; 3] = ["pg_a", "1_pg_b", "pg_web"];
    const SETS: [&str; 3] = ["as_a", "as_b", "as_bad"];
    const MATCHES: [&str; 6] = [
        "1",
        "inport == \"r-p1\"",
        "outport == @pg_a",
        "outport == @1_pg_b && ip4.src == $as_a",
        "ip4.dst == $as_b",
        "is_chassis_resident(\"r-p2\")",
    ];
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut sb, mut agent) = subscribed();
        let mut rx = sb.replica.change_sender().subscribe();
        let mut prev = (
            sb.replica.snapshot().generation(),
            database(&sb.replica.snapshot()),
        );
        // Port name → its row's uuid, while it exists.
        let mut ports: std::collections::BTreeMap<&str, String> = Default::default();
        let mut next_uuid = 0u32;
        let mut fresh = || {
            next_uuid += 1;
            format!(
                "1f000000-0000-4000-8000-{:012x}",
                (seed << 20) | u64::from(next_uuid)
            )
        };
        let flows: Vec<String> = (0..8)
            .map(|i| format!("1a000000-0000-4000-8000-{i:012x}"))
            .collect();
        let mut live_flows: HashSet<String> = HashSet::new();
        let mut named: std::collections::BTreeMap<String, String> = [
            ("Port_Group/pg_web", "0b000000-0000-4000-8000-000000000001"),
            ("Address_Set/as_bad", "0c000000-0000-4000-8000-000000000001"),
        ]
        .into_iter()
        .map(|(k, u)| (k.to_owned(), u.to_owned()))
        .collect();
        for step in 0..60 {
            let body = match rng.below(7) {
                0 | 1 => {
                    let u = rng.pick(&flows).clone();
                    let row = if live_flows.contains(&u) {
                        match rng.below(3) {
                            0 => json!({"delete": null}),
                            1 => json!({"modify": {"priority": 100 + rng.below(3)}}),
                            _ => json!({"modify": {"match": *rng.pick(&MATCHES)}}),
                        }
                    } else {
                        flow(
                            "egress",
                            4 + rng.below(2) as u8,
                            100 + rng.below(3) as u16,
                            rng.pick(&MATCHES),
                            "drop;",
                        )
                    };
                    if row.get("delete").is_some() {
                        live_flows.remove(&u);
                    } else {
                        live_flows.insert(u.clone());
                    }
                    json!({"Logical_Flow": {u: row}})
                }
                2 => {
                    let name = *rng.pick(&PORTS);
                    let row = match ports.get(name).cloned() {
                        Some(u) if rng.below(2) == 0 => {
                            ports.remove(name);
                            json!({u: {"delete": null}})
                        }
                        Some(u) => json!({u: {"modify": {"tunnel_key": 20 + rng.below(4),
                            "port_security": format!("02:00:00:00:00:{:02x} 10.0.0.{}", rng.below(9), rng.below(9))}}}),
                        None => {
                            let u = fresh();
                            ports.insert(name, u.clone());
                            json!({u: {"insert": {"logical_port": name, "tunnel_key": 30 + rng.below(4),
                                "datapath": ["uuid", DMZ], "up": false}}})
                        }
                    };
                    json!({"Port_Binding": row})
                }
                3 | 4 => {
                    let (table, name, column) = if rng.below(2) == 0 {
                        ("Port_Group", *rng.pick(&GROUPS), "ports")
                    } else {
                        ("Address_Set", *rng.pick(&SETS), "addresses")
                    };
                    let members: Vec<String> = (0..rng.below(3))
                        .map(|i| match table {
                            "Port_Group" => rng.pick(&PORTS).to_string(),
                            _ => format!("10.0.{i}.{}", rng.below(4)),
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let key = format!("{table}/{name}");
                    let row = match named.get(&key).cloned() {
                        Some(u) if rng.below(3) == 0 => {
                            named.remove(&key);
                            json!({u: {"delete": null}})
                        }
                        Some(u) => json!({u: {"modify": {column: ["set", members]}}}),
                        None => {
                            let u = fresh();
                            named.insert(key, u.clone());
                            json!({u: {"insert": {"name": name, column: ["set", members]}}})
                        }
                    };
                    json!({table: row})
                }
                5 => {
                    let (u, ip) = *rng.pick(&[(MB1, "172.16.255.1"), (MB2, "172.16.255.2")]);
                    let key = format!("mb/{u}");
                    let row = match named.get(&key) {
                        Some(_) if rng.below(2) == 0 => {
                            named.remove(&key);
                            json!({"delete": null})
                        }
                        Some(_) => {
                            json!({"modify": {"mac": format!("02:00:00:00:01:{:02x}", rng.below(9))}})
                        }
                        None => {
                            named.insert(key, u.to_owned());
                            mac_binding("lr0-dmz", ip, "02:00:00:00:01:00")
                        }
                    };
                    json!({"MAC_Binding": {u: row}})
                }
                _ => {
                    // A pass.
                    let snap = sb.replica.snapshot();
                    let mut sets = Vec::new();
                    while let Ok(set) = rx.try_recv() {
                        sets.push(set);
                    }
                    let new = database(&snap);
                    let mut patched = prev.1.clone();
                    let got = patch(
                        &mut patched,
                        sets.iter().map(|s| &**s),
                        prev.0,
                        &snap,
                        &residency(),
                        &residency(),
                    )
                    .unwrap_or_else(|| panic!("seed {seed} step {step}: not patched"));
                    assert!(
                        patched == new,
                        "seed {seed} step {step}: the patched database differs"
                    );
                    let want = changes_from_sets(
                        sets.iter().map(|s| &**s),
                        prev.0,
                        snap.generation(),
                        &prev.1,
                        &new,
                        &residency(),
                        &residency(),
                    )
                    .expect("the sets cover the update");
                    assert_same(&got, &want, &format!("seed {seed} step {step}"));
                    let snap_flows = snap.table::<LogicalFlow>().len();
                    let u = agent.update(&snap, true, residency());
                    assert_eq!(u.path, Path::Rows, "seed {seed} step {step}");
                    assert!(agent.database() == Some(&new), "seed {seed} step {step}");
                    let full = Pipeline::compile(&new, &residency());
                    assert_eq!(
                        u.pipeline.describe(),
                        full.describe(),
                        "seed {seed} step {step}"
                    );
                    assert!(u.pipeline.n_flows() + u.pipeline.errors.len() >= snap_flows);
                    prev = (snap.generation(), new);
                    continue;
                }
            };
            sb.apply(body);
        }
    }
}

/// Two `Changes` alike (`added` in any order).
fn assert_same(a: &Changes, b: &Changes, what: &str) {
    let sorted = |v: &[usize]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    assert_eq!(
        (a.full, a.topology, a.sets, a.flow_set),
        (b.full, b.topology, b.sets, b.flow_set),
        "{what}"
    );
    assert_eq!(a.gone, b.gone, "{what}");
    assert_eq!(sorted(&a.added), sorted(&b.added), "{what}");
    assert_eq!(a.tables, b.tables, "{what}");
    assert_eq!(a.names, b.names, "{what}");
}

/// A database that is not where the change sets say it was is left untouched, so the
/// agent can rebuild it instead.
#[test]
fn a_row_not_where_its_change_says_leaves_the_database_untouched() {
    let (mut sb, _agent) = subscribed();
    let mut rx = sb.replica.change_sender().subscribe();
    let snap0 = sb.replica.snapshot();
    let c51 = snap0.port_binding("dmz-c51").unwrap().uuid.to_string();
    sb.update(json!({"Logical_Flow": {"0a000000-0000-4000-8000-000000000010": {"modify": {"actions": "drop;"}}}}));
    sb.update(json!({"Port_Binding": {c51.as_str(): {"modify": {"tunnel_key": 77}}}}));
    let snap = sb.replica.snapshot();
    let sets: Vec<Arc<ChangeSet>> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(sets.len(), 2);
    let patch_of = |db: &mut Database| {
        let sets = sets.iter().map(|s| &**s);
        patch(
            db,
            sets,
            snap0.generation(),
            &snap,
            &residency(),
            &residency(),
        )
    };

    // As it should be: patched.
    let mut db = database(&snap0);
    assert!(patch_of(&mut db).is_some());
    assert!(db == database(&snap));

    // A flow the sets modify is missing.
    let mut db = database(&snap0);
    db.flows
        .retain(|f| f.uuid.to_string() != "0a000000-0000-4000-8000-000000000010");
    let before = db.clone();
    assert!(patch_of(&mut db).is_none());
    assert!(db == before);

    // A port under another row's uuid.
    let mut db = database(&snap0);
    let p = db.ports.iter_mut().find(|p| p.name == "dmz-c51").unwrap();
    p.uuid = LUuid(7);
    let before = db.clone();
    assert!(patch_of(&mut db).is_none());
    assert!(db == before);

    // Sets that skip a generation, or start after the base.
    let mut db = database(&snap0);
    let later = patch(
        &mut db,
        sets[1..].iter().map(|s| &**s),
        snap0.generation(),
        &snap,
        &residency(),
        &residency(),
    );
    assert!(later.is_none());
    assert!(db == database(&snap0));
}
