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
    pipeline::{Changes, Residency},
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

/// The `--scale` topology's size (20,000 ports, 4,095 containers on one switch) with
/// 1,000 stateless ACLs on port groups, generated from the seed's flows
/// (`lflows::scaled`), compiled for the chassis holding the containers. Full compile,
/// then one change at a time: the diff of the two databases and the update it drives.
fn scale(c: &mut Criterion) {
    let db = lflows::scaled(20_000, 4_095, 1_000);
    let resident: std::collections::HashSet<String> = db
        .ports
        .iter()
        .filter(|p| p.name.starts_with("dmz-"))
        .map(|p| p.name.clone())
        .collect();
    let res = Residency::Ports(resident);
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
    let mut g = c.benchmark_group("logical_scale");
    g.sample_size(10);
    g.bench_function("compile", |b| {
        b.iter(|| Pipeline::compile(std::hint::black_box(&db), &res))
    });

    // One ACL added (`acl-add pg0 to-lport 2001 ... drop`).
    let mut acl = db.clone();
    lflows::add_acl(&mut acl, 1);
    let changes = Changes::between(&db, &acl, &res, &res);
    let q = p.update(&acl, &res, &changes);
    eprintln!(
        "scale: one ACL added: {} tables rebuilt",
        q.tables_rebuilt_since(&p)
    );
    g.sample_size(50);
    g.bench_function("diff_acl_added", |b| {
        b.iter(|| Changes::between(&db, std::hint::black_box(&acl), &res, &res))
    });
    g.bench_function("update_acl_added", |b| {
        b.iter(|| p.update(std::hint::black_box(&acl), &res, &changes))
    });

    // One port joins a port group (its security group changes): every flow naming
    // `@pg0` is recompiled.
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
    let changes = Changes::between(&db, &pg, &res, &res);
    let q = p.update(&pg, &res, &changes);
    eprintln!(
        "scale: one port joins pg0: {} tables rebuilt",
        q.tables_rebuilt_since(&p)
    );
    g.bench_function("update_port_group", |b| {
        b.iter(|| p.update(std::hint::black_box(&pg), &res, &changes))
    });

    // A container's tag changed: northd's logical flows do not carry tags (the
    // physical layer does), so the database the pipeline reads is the same and the
    // update is the diff finding nothing.
    let same = db.clone();
    g.bench_function("diff_tag_changed", |b| {
        b.iter(|| Changes::between(&db, std::hint::black_box(&same), &res, &res).is_empty())
    });
    g.finish();
}

criterion_group!(benches, compile, traversal, scale);
criterion_main!(benches);
