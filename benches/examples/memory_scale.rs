//! Where the agent's heap goes at the `--scale` topology (`lflows::scaled(20_000, 4_095,
//! 1_000)`): the fixture written as Southbound rows into the raw replica, the typed
//! replica, the pipeline's `Database` and the compiled `Pipeline`, each step's live bytes
//! and peak counted by a global allocator.
//!
//! `cargo run --release -p ovnest-benches --example memory_scale [-- --local]`: with
//! `--local`, only the rows the agent's SB monitor asks for on a chassis binding the dmz
//! containers (the flows of the seed's datapaths and every flow of a datapath group; the
//! ports of the seed's datapaths), not the 20 `far` switches' own.

use std::sync::atomic::Ordering;

use ovnest::lflow::database;
use ovnest::sb::{Replica, monitor_tables};
use ovnest_benches::counting::{ALLOCS, Counting, IN_USE, PEAK};
use ovnest_benches::sb_rows::rows;
use ovnest_logical::Pipeline;
use ovnest_ovsdb::{Counters, Database, DbChange, TableUpdates, UpdateFormat, layout};
use ovnest_tests::fixtures::lflows;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The process's resident set, from /proc/self/statm.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// Live bytes and blocks now; the peak is reset to now.
fn mark() -> (usize, usize, usize) {
    let now = IN_USE.load(Ordering::Relaxed);
    let peak = PEAK.swap(now, Ordering::Relaxed);
    (now, ALLOCS.load(Ordering::Relaxed), peak)
}

fn main() {
    let schema = ovnest_benches::sb_schema();
    let counters = Counters::default();
    let mut raw = Database::new(layout(&monitor_tables(&[]), &schema));
    let mut replica = Replica::new();
    let local = std::env::args().any(|a| a == "--local");
    let json = {
        let mut fixture = lflows::scaled(20_000, 4_095, 1_000);
        if local {
            let far: Vec<_> = fixture
                .datapaths
                .iter()
                .filter(|d| d.name.as_deref().is_some_and(|n| n.starts_with("far")))
                .map(|d| d.uuid)
                .collect();
            fixture
                .flows
                .retain(|f| f.datapaths.len() > 1 || !far.contains(&f.datapaths[0]));
            fixture.ports.retain(|p| !far.contains(&p.datapath));
            fixture.mcgroups.retain(|m| !far.contains(&m.datapath));
        }
        rows(&fixture)
    };
    let updates = TableUpdates::from_json(json, UpdateFormat::V2).unwrap();
    let mut last = mark();
    let mut step = |name: &str| {
        let now = mark();
        println!(
            "{name:<28} {:>+10.1} MB live ({:>+9} blocks), {:>7.1} MB in all; peak during it {:>7.1} MB; RSS {:>7.1} MB",
            (now.0 as f64 - last.0 as f64) / 1e6,
            now.1 as i64 - last.1 as i64,
            now.0 as f64 / 1e6,
            now.2 as f64 / 1e6,
            rss_mb(),
        );
        last = now;
    };
    step("update2 JSON (parsed)");
    raw.apply(updates, &counters);
    step("raw replica (input dropped)");
    replica.update(&raw, DbChange::Reset, &counters).unwrap();
    assert_eq!(counters.snapshot().bad_rows, 0);
    step("typed replica");
    let snap = replica.snapshot();
    let db = database(&snap);
    step("pipeline Database");
    let res = lflows::dmz_resident(&db);
    let pipeline = Pipeline::compile(&db, &res);
    step("compiled Pipeline");
    let t = std::time::Instant::now();
    // SAFETY: malloc_trim takes no pointers; it only returns free pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    let trim = t.elapsed();
    step(&format!("(malloc_trim: {trim:.1?})"));
    println!(
        "{} Logical_Flow rows, {} compiled flows",
        db.flows.len(),
        pipeline.n_flows()
    );
    drop(pipeline);
    step("(Pipeline dropped)");
    drop(db);
    step("(Database dropped)");
    drop((snap, replica));
    step("(typed replica dropped)");
    drop(raw);
    step("(raw replica dropped)");
}
