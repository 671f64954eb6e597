//! Instructions per pipeline traversal, for callgrind (the guest has no hardware
//! counters and criterion's times move with the other agents' load).
//!
//! ```text
//! cargo build --release -p ovnest-benches --example traversal_instructions
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='traversal_instructions::one' \
//!     $CARGO_TARGET_DIR/release/examples/traversal_instructions 2000 l2_c51_to_vm1
//! ```
//!
//! Instructions per traversal = the run's total Ir / (N + 1000 warm-up traversals).
//! Without valgrind it prints wall-clock ns per traversal.

use ovnest_logical::{
    Decision, Interpreter, Pipeline, Semantics, TraceOptions, flow::Flow, microflow,
    pipeline::Residency, trace::NoTrace,
};
use ovnest_tests::fixtures::lflows;

/// One traversal, as `benches/logical.rs` runs it.
#[inline(never)]
fn one(p: &Pipeline, dp: u32, flow: &Flow, decision: &mut Decision) {
    let mut f = *flow;
    let mut it = Interpreter::with_decision(
        p,
        NoTrace,
        Semantics::Chassis,
        TraceOptions::default(),
        std::mem::take(decision),
    );
    it.run(dp, &mut f);
    *decision = it.into_decision();
    std::hint::black_box(&*decision);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(1_000_000, |s| s.parse().expect("count"));
    let only = args.get(2).cloned();
    let p = Pipeline::compile(&lflows::seed_acl(), &Residency::Everywhere);
    assert!(p.errors.is_empty());
    let dp = p.datapath_by_name("dmz").expect("dmz");
    for case in lflows::cases() {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        let flow = microflow::parse(&case.microflow, &Default::default(), &|x| {
            p.lookup_port(dp, x)
        })
        .expect("microflow");
        let mut d = Decision::default();
        for _ in 0..1000 {
            one(&p, dp, &flow, &mut d);
        }
        let t = std::time::Instant::now();
        for _ in 0..n {
            one(&p, dp, &flow, &mut d);
        }
        println!(
            "{}: {:.1} ns/traversal",
            case.name,
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
