//! The logical pipeline's slow-path speed (issue: pipeline traversals per second per
//! core, goal >= 1 M/s) and the compile of the seed lab's flows.
//!
//! `cargo bench -p ovnest-benches --bench logical`. Fixtures: tests/data/lflows/ (the
//! seed's SB as northd wrote it). A traversal is what the userspace datapath does per
//! frame: the interpreter with the chassis semantics and no trace, from the ingress
//! pipeline to the decision (deliveries with their headers, or controller actions).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ovnest_logical::{
    Decision, Interpreter, Pipeline, Semantics, TraceOptions, microflow,
    pipeline::{Changes, Residency, TouchedRows},
    trace::NoTrace,
};
use ovnest_tests::fixtures::lflows;

fn compile(c: &mut Criterion) {
    let db = lflows::seed_acl();
    let mut g = c.benchmark_group("logical_compile");
    g.throughput(Throughput::Elements(db.flows.len() as u64));
    g.bench_function("seed_acl", |b| {
        b.iter(|| Pipeline::compile(std::hint::black_box(&db), &Residency::Everywhere))
    });
    g.finish();
}

fn traversal(c: &mut Criterion) {
    let p = Pipeline::compile(&lflows::seed_acl(), &Residency::Everywhere);
    assert!(p.errors.is_empty());
    let mut g = c.benchmark_group("logical_traversal");
    g.throughput(Throughput::Elements(1));
    for case in lflows::cases() {
        let dp = p.datapath_by_name("dmz").expect("dmz");
        let flow = microflow::parse(&case.microflow, &Default::default(), &|n| {
            p.lookup_port(dp, n)
        })
        .expect("microflow");
        let mut decision = Decision::default();
        g.bench_function(case.name, |b| {
            b.iter(|| {
                let mut f = flow;
                let mut it = Interpreter::with_decision(
                    &p,
                    NoTrace,
                    Semantics::Chassis,
                    TraceOptions::default(),
                    std::mem::take(&mut decision),
                );
                it.run(dp, &mut f);
                decision = it.into_decision();
                std::hint::black_box(&decision);
            })
        });
    }
    g.finish();
}

/// The `--scale` fixture and its changes, built on first use (a run filtered to other
/// groups does not pay for it).
struct Scale {
    db: ovnest_logical::db::Database,
    res: Residency,
    p: Pipeline,
    /// One ACL added (`acl-add pg0 to-lport 2001 ... drop`).
    acl: ovnest_logical::db::Database,
    acl_changes: Changes,
    /// One port joins a port group (its security group changes).
    pg: ovnest_logical::db::Database,
    pg_changes: Changes,
    /// A copy of `db` (a container's tag changed: the logical flows do not change).
    same: ovnest_logical::db::Database,
    /// The rows each change touched, as the Southbound monitor names them.
    acl_rows: TouchedRows,
    pg_rows: TouchedRows,
    tag_rows: TouchedRows,
}

fn scale_fixture() -> &'static Scale {
    static SCALE: std::sync::OnceLock<Scale> = std::sync::OnceLock::new();
    SCALE.get_or_init(|| {
        let db = lflows::scaled(20_000, 4_095, 1_000);
        let res = lflows::dmz_resident(&db);
        let started = std::time::Instant::now();
        let p = Pipeline::compile(&db, &res);
        eprintln!(
            "scale: {} flow rows, {} compiled flows, {} rules, {} errors, compiled in {:?}",
            db.flows.len(),
            p.n_flows(),
            p.n_rules(),
            p.errors.len(),
            started.elapsed()
        );
        let mut acl = db.clone();
        let new = lflows::add_acl(&mut acl, 1);
        let mut acl_rows = TouchedRows::default();
        acl_rows.flow(&db, &acl, new);
        let acl_changes = Changes::from_rows(&db, &acl, &acl_rows, &res, &res);
        let q = p.update(&acl, &res, &acl_changes);
        assert_eq!(q.describe(), p.recompile(&db, &acl, &res).describe());
        eprintln!(
            "scale: one ACL added: {} tables rebuilt",
            q.tables_rebuilt_since(&p)
        );
        // Every flow naming `@pg0` is recompiled.
        let mut pg = db.clone();
        let joining = pg
            .ports
            .iter()
            .find(|p| p.name.starts_with("dmz-k"))
            .map(|p| p.name.clone())
            .expect("a container");
        for (name, ports) in pg.port_groups.iter_mut() {
            if name == "pg0" || name == "1_pg0" {
                ports.push(joining.clone());
            }
        }
        let pg_rows = TouchedRows {
            port_groups: vec!["pg0".into(), "1_pg0".into()],
            ..Default::default()
        };
        let pg_changes = Changes::from_rows(&db, &pg, &pg_rows, &res, &res);
        let q = p.update(&pg, &res, &pg_changes);
        assert_eq!(q.describe(), p.recompile(&db, &pg, &res).describe());
        eprintln!(
            "scale: one port joins pg0: {} tables rebuilt",
            q.tables_rebuilt_since(&p)
        );
        // A container's Port_Binding row is modified (its tag).
        let mut tag_rows = TouchedRows::default();
        let child = db
            .ports
            .iter()
            .find(|p| p.name.starts_with("dmz-k"))
            .expect("a container");
        tag_rows.port(&db, &db, child.uuid);
        Scale {
            acl_rows,
            pg_rows,
            tag_rows,
            same: db.clone(),
            db,
            res,
            p,
            acl,
            acl_changes,
            pg,
            pg_changes,
        }
    })
}

/// The `--scale` topology's size (20,000 ports, 4,095 containers on one switch) with
/// 1,000 stateless ACLs on port groups, generated from the seed's flows
/// (`lflows::scaled`), compiled for the chassis holding the containers. Full compile,
/// then one change at a time: the diff of the two databases and the update it drives.
fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("logical_scale");
    g.sample_size(10);
    g.bench_function("compile", |b| {
        let s = scale_fixture();
        b.iter(|| Pipeline::compile(std::hint::black_box(&s.db), &s.res))
    });
    g.sample_size(50);
    g.bench_function("diff_acl_added", |b| {
        let s = scale_fixture();
        b.iter(|| Changes::between(&s.db, std::hint::black_box(&s.acl), &s.res, &s.res))
    });
    g.bench_function("rows_acl_added", |b| {
        let s = scale_fixture();
        b.iter(|| {
            Changes::from_rows(
                &s.db,
                std::hint::black_box(&s.acl),
                &s.acl_rows,
                &s.res,
                &s.res,
            )
        })
    });
    g.bench_function("rows_port_group", |b| {
        let s = scale_fixture();
        b.iter(|| {
            Changes::from_rows(
                &s.db,
                std::hint::black_box(&s.pg),
                &s.pg_rows,
                &s.res,
                &s.res,
            )
        })
    });
    g.bench_function("update_acl_added", |b| {
        let s = scale_fixture();
        b.iter(|| {
            s.p.update(std::hint::black_box(&s.acl), &s.res, &s.acl_changes)
        })
    });
    g.bench_function("update_port_group", |b| {
        let s = scale_fixture();
        b.iter(|| {
            s.p.update(std::hint::black_box(&s.pg), &s.res, &s.pg_changes)
        })
    });
    // A container's tag changed: northd's logical flows do not carry tags (the
    // physical layer does), so the database the pipeline reads is the same and the
    // update is the diff finding nothing.
    g.bench_function("diff_tag_changed", |b| {
        let s = scale_fixture();
        b.iter(|| Changes::between(&s.db, std::hint::black_box(&s.same), &s.res, &s.res).is_empty())
    });
    // The same from the change list (the container's Port_Binding row), then the
    // update it drives (nothing to recompile: the previous pipeline, shared).
    g.bench_function("update_tag_changed", |b| {
        let s = scale_fixture();
        b.iter(|| {
            let c = Changes::from_rows(
                &s.db,
                std::hint::black_box(&s.same),
                &s.tag_rows,
                &s.res,
                &s.res,
            );
            s.p.update(&s.same, &s.res, &c)
        })
    });
    g.finish();
}

criterion_group!(benches, compile, traversal, scale);
criterion_main!(benches);
