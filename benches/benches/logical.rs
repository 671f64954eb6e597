//! The logical pipeline's slow-path speed (issue: pipeline traversals per second per
//! core, goal >= 1 M/s) and the compile of the seed lab's flows.
//!
//! `cargo bench -p ovnest-benches --bench logical`. Fixtures: tests/data/lflows/ (the
//! seed's SB as northd wrote it). A traversal is what the userspace datapath does per
//! frame: the interpreter with the chassis semantics and no trace, from the ingress
//! pipeline to the decision (deliveries with their headers, or controller actions).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ovnest_logical::{
    Decision, Interpreter, Pipeline, Semantics, TraceOptions, microflow, pipeline::Residency,
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

criterion_group!(benches, compile, traversal);
criterion_main!(benches);
