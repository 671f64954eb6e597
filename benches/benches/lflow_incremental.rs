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
use ovnest_benches::sb_rows::{flow_row, rows, uuid};
use ovnest_logical::db::Database as LDb;
use ovnest_logical::{
    Pipeline,
    pipeline::{Changes, Residency},
};
use ovnest_ovsdb::{Counters, Database, DbChange, TableUpdates, UpdateFormat, layout};
use ovnest_tests::fixtures::lflows;
use serde_json::{Map, json};

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
    let schema = ovnest_benches::sb_schema();
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
    let new = lflows::add_acl(&mut acl, 1);
    let f = acl
        .flows
        .iter()
        .find(|f| f.uuid == new)
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
