//! What the agent pays per pass for one ACL added at the `--scale` topology (20,000
//! ports, 4,095 containers on one switch, 1,000 ACLs in port groups), from the typed
//! Southbound snapshot to the updated pipeline: the pass with the `Database` rebuilt from
//! the snapshot and compared whole with the previous one (`between`), the same rebuild
//! with the changes from the rows the set names (`change_set`), the agent's pass (the
//! previous `Database` patched from the change set, `patched`), the patch alone, and the
//! rebuild alone.
//!
//! `cargo bench -p ovnest-benches --bench lflow_incremental`. The fixture is
//! `lflows::scaled` written as Southbound rows into a real replica (the typed tables the
//! agent reads), one ACL added as one update.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ovnest::lflow::{
    database,
    incremental::{changes_from_sets, patch},
};
use ovnest::sb::{Replica, monitor_tables};
use ovnest_logical::db::{Database as LDb, Uuid as LUuid};
use ovnest_logical::{
    Pipeline,
    pipeline::{Changes, Residency},
};
use ovnest_ovsdb::{Counters, Database, DbChange, Schema, TableUpdates, UpdateFormat, layout};
use ovnest_tests::fixtures::lflows;
use serde_json::{Map, Value, json};

fn uuid(u: LUuid) -> String {
    let h = format!("{:032x}", u.0);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    json!([
        "map",
        pairs
            .into_iter()
            .map(|(k, v)| json!([k, v]))
            .collect::<Vec<_>>()
    ])
}

fn set(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// A Logical_Flow row: one datapath, or a Logical_DP_Group shared by flows on the same
/// datapaths (as northd writes them).
fn flow_row(f: &ovnest_logical::db::LogicalFlow, groups: &mut Map<String, Value>) -> Value {
    let mut row = json!({
        "pipeline": if f.egress { "egress" } else { "ingress" },
        "table_id": f.table_id, "priority": f.priority,
        "match": f.match_, "actions": f.actions,
        "external_ids": map(f.stage_name.as_deref().map(|s| ("stage-name", s)).into_iter()
            .chain(f.source.as_deref().map(|s| ("source", s)))),
    });
    if let [dp] = f.datapaths[..] {
        row["logical_datapath"] = json!(["uuid", uuid(dp)]);
    } else {
        let mut dps = f.datapaths.clone();
        dps.sort();
        let key = dps.iter().fold(0u128, |h, d| {
            h.rotate_left(7) ^ d.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let g = uuid(LUuid(key & !(0xf << 76) | (0x4 << 76)));
        groups.entry(g.clone()).or_insert_with(|| {
            json!({"initial": {"datapaths": set(dps.iter().map(|d| json!(["uuid", uuid(*d)])))}})
        });
        row["logical_dp_group"] = json!(["uuid", g]);
    }
    row
}

/// `db` as a Southbound snapshot's table updates.
fn rows(db: &LDb) -> Value {
    let mut t: Map<String, Value> = Map::new();
    let mut put = |table: &str, uuid: String, row: Value| {
        t.entry(table)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .insert(uuid, json!({"initial": row}));
    };
    for d in &db.datapaths {
        let nb = d.nb_uuid.map(uuid).unwrap_or_default();
        let kind = if d.is_router {
            "logical-router"
        } else {
            "logical-switch"
        };
        let mut ids = vec![(kind, nb.as_str())];
        ids.extend(d.name.as_deref().map(|n| ("name", n)));
        ids.extend(d.name2.as_deref().map(|n| ("name2", n)));
        put(
            "Datapath_Binding",
            uuid(d.uuid),
            json!({"tunnel_key": d.tunnel_key, "external_ids": map(ids)}),
        );
    }
    for p in &db.ports {
        let mut options = Vec::new();
        options.extend(p.peer.as_deref().map(|v| ("peer", v)));
        options.extend(
            p.distributed_port
                .as_deref()
                .map(|v| ("distributed-port", v)),
        );
        put(
            "Port_Binding",
            uuid(p.uuid),
            json!({
                "logical_port": p.name, "datapath": ["uuid", uuid(p.datapath)],
                "tunnel_key": p.tunnel_key, "type": p.ty, "options": map(options),
                "external_ids": map(p.name2.as_deref().map(|n| ("name", n))),
                "port_security": set(p.port_security.iter().map(|s| json!(s))),
            }),
        );
    }
    for (i, m) in db.mcgroups.iter().enumerate() {
        put(
            "Multicast_Group",
            uuid(LUuid(0x6d63_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
            json!({
                "datapath": ["uuid", uuid(m.datapath)], "name": m.name, "tunnel_key": m.tunnel_key,
                "ports": set(m.ports.iter().map(|p| json!(["uuid", uuid(*p)]))),
            }),
        );
    }
    let mut groups = Map::new();
    for f in &db.flows {
        put("Logical_Flow", uuid(f.uuid), flow_row(f, &mut groups));
    }
    for (i, (name, addrs)) in db.address_sets.iter().enumerate() {
        put(
            "Address_Set",
            uuid(LUuid(0xa5a5_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
            json!({"name": name, "addresses": set(addrs.iter().map(|a| json!(a)))}),
        );
    }
    for (i, (name, ports)) in db.port_groups.iter().enumerate() {
        put(
            "Port_Group",
            uuid(LUuid(0x9090_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
            json!({"name": name, "ports": set(ports.iter().map(|a| json!(a)))}),
        );
    }
    for (table, opts) in [
        ("DHCP_Options", &db.dhcp_options),
        ("DHCPv6_Options", &db.dhcpv6_options),
    ] {
        for (i, o) in opts.iter().enumerate() {
            put(
                table,
                uuid(LUuid(
                    0xd0d0_0000_0000_4000_8000_0000_0000_0000
                        | (i as u128) << 8
                        | table.len() as u128,
                )),
                json!({"name": o.name, "code": o.code, "type": o.ty}),
            );
        }
    }
    let mut t = Value::Object(t);
    t["Logical_DP_Group"] = Value::Object(groups);
    t
}

struct Fixture {
    res: Residency,
    old_db: LDb,
    old: Pipeline,
    base: u64,
    snap: std::sync::Arc<ovnest::sb::Snapshot>,
    set: std::sync::Arc<ovnest::sb::ChangeSet>,
    /// The ACL removed again (what puts a patched database back between iterations).
    snap_del: std::sync::Arc<ovnest::sb::Snapshot>,
    set_del: std::sync::Arc<ovnest::sb::ChangeSet>,
}

fn fixture() -> Fixture {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/ovsdb-wire/get_schema-OVN_Southbound.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let schema = Schema::from_json(&v["result"]).unwrap();
    let counters = Counters::default();
    let mut raw = Database::new(layout(&monitor_tables(&[]), &schema));
    let mut replica = Replica::new();

    let fixture = lflows::scaled(20_000, 4_095, 1_000);
    raw.apply(
        TableUpdates::from_json(rows(&fixture), UpdateFormat::V2).unwrap(),
        &counters,
    );
    replica.update(&raw, DbChange::Reset, &counters).unwrap();
    assert_eq!(counters.snapshot().bad_rows, 0);
    let snap0 = replica.snapshot();
    let old_db = database(&snap0);
    assert_eq!(old_db.flows.len(), fixture.flows.len());
    assert_eq!(old_db.ports.len(), fixture.ports.len());
    let res = lflows::dmz_resident(&old_db);
    let old = Pipeline::compile(&old_db, &res);
    assert_eq!(
        old.n_flows(),
        Pipeline::compile(&fixture, &res).n_flows(),
        "the replica holds the fixture"
    );

    // `acl-add pg0 to-lport 2001 'ip4.src == 192.0.2.1' drop`: one Logical_Flow row.
    let mut acl = fixture.clone();
    lflows::add_acl(&mut acl, 1);
    let f = acl
        .flows
        .iter()
        .find(|f| {
            fixture
                .flows
                .binary_search_by_key(&f.uuid, |g| g.uuid)
                .is_err()
        })
        .expect("the new ACL");
    let mut groups = Map::new();
    let row = flow_row(f, &mut groups);
    let touched = raw.apply(
        TableUpdates::from_json(
            json!({"Logical_Flow": {uuid(f.uuid): {"insert": row}}}),
            UpdateFormat::V2,
        )
        .unwrap(),
        &counters,
    );
    let set = replica
        .update(&raw, DbChange::Rows(&touched), &counters)
        .expect("one row added");
    assert_eq!(set.len(), 1, "the ACL's datapath group exists already");
    let snap = replica.snapshot();
    let touched = raw.apply(
        TableUpdates::from_json(
            json!({"Logical_Flow": {uuid(f.uuid): {"delete": null}}}),
            UpdateFormat::V2,
        )
        .unwrap(),
        &counters,
    );
    let set_del = replica
        .update(&raw, DbChange::Rows(&touched), &counters)
        .expect("one row removed");
    Fixture {
        res,
        old_db,
        old,
        base: snap0.generation(),
        snap,
        set,
        snap_del: replica.snapshot(),
        set_del,
    }
}

fn bench(c: &mut Criterion) {
    let s = fixture();
    let mut g = c.benchmark_group("lflow_incremental_scale");
    g.sample_size(20);
    // Both passes end in the same pipeline as a full compile.
    let new_db = database(&s.snap);
    let full = Pipeline::compile(&new_db, &s.res).describe();
    let between = Changes::between(&s.old_db, &new_db, &s.res, &s.res);
    let from_sets = changes_from_sets(
        [&*s.set],
        s.base,
        s.snap.generation(),
        &s.old_db,
        &new_db,
        &s.res,
        &s.res,
    )
    .expect("the change set covers the update");
    assert_eq!(s.old.update(&new_db, &s.res, &between).describe(), full);
    let q = s.old.update(&new_db, &s.res, &from_sets);
    assert_eq!(q.describe(), full);
    let mut patched = s.old_db.clone();
    let changes = patch(&mut patched, [&*s.set], s.base, &s.snap, &s.res, &s.res)
        .expect("the change set covers the update");
    assert!(patched == new_db, "the patched database is the rebuilt one");
    assert_eq!(s.old.update(&patched, &s.res, &changes).describe(), full);
    patch(
        &mut patched,
        [&*s.set_del],
        s.snap.generation(),
        &s.snap_del,
        &s.res,
        &s.res,
    )
    .expect("the change set covers the update");
    assert!(patched == s.old_db, "the ACL removed again");
    eprintln!(
        "scale: {} flow rows, one ACL added: {} tables rebuilt",
        new_db.flows.len(),
        q.tables_rebuilt_since(&s.old)
    );
    drop((new_db, full, q));

    g.bench_function("pass_one_acl_between", |b| {
        b.iter(|| {
            let db = database(black_box(&s.snap));
            let changes = Changes::between(&s.old_db, &db, &s.res, &s.res);
            black_box(s.old.update(&db, &s.res, &changes))
        })
    });
    g.bench_function("pass_one_acl_change_set", |b| {
        b.iter(|| {
            let db = database(black_box(&s.snap));
            let changes = changes_from_sets(
                [&*s.set],
                s.base,
                s.snap.generation(),
                &s.old_db,
                &db,
                &s.res,
                &s.res,
            )
            .expect("covered");
            black_box(s.old.update(&db, &s.res, &changes))
        })
    });
    // The agent's pass: the previous database patched from the change set, then the
    // pipeline updated (both timed, drops included); the ACL's removal, patched back
    // untimed, restores the database for the next iteration.
    let mut db = s.old_db.clone();
    let mut timed = |b: &mut criterion::Bencher, with_update: bool| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let changes =
                    patch(&mut db, [&*s.set], s.base, &s.snap, &s.res, &s.res).expect("covered");
                if with_update {
                    drop(black_box(s.old.update(&db, &s.res, &changes)));
                } else {
                    drop(black_box(changes));
                }
                total += t.elapsed();
                let back = s.snap.generation();
                patch(&mut db, [&*s.set_del], back, &s.snap_del, &s.res, &s.res).expect("covered");
            }
            total
        })
    };
    g.bench_function("pass_one_acl_patched", |b| timed(b, true));
    g.bench_function("patch_one_acl", |b| timed(b, false));
    g.bench_function("database_from_snapshot", |b| {
        b.iter(|| database(black_box(&s.snap)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
