//! One ACL added at the `--scale` size: the pipeline's incremental update, timed
//! apart from the fixture's full compile, for `callgrind --toggle-collect` (the
//! instructions of `update` alone) and for a quick minimum/median without criterion.
//!
//! ```text
//! cargo build --release -p ovnest-benches --example update_acl_added
//! valgrind --tool=callgrind --toggle-collect='update_acl_added::update' \
//!     $CARGO_TARGET_DIR/release/examples/update_acl_added 3
//! ```
//!
//! The fixture is `logical_scale`'s (benches/logical.rs): `lflows::scaled(20_000, 4_095,
//! 1_000)` compiled for the containers' chassis, then one ACL on `pg0`.

use ovnest_logical::{
    Pipeline,
    db::Database,
    pipeline::{Changes, Residency, TouchedRows},
};
use ovnest_tests::fixtures::lflows;
use std::time::{Duration, Instant};

#[inline(never)]
fn update(p: &Pipeline, db: &Database, res: &Residency, changes: &Changes) -> Pipeline {
    p.update(db, res, changes)
}

fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 200,
    };
    let db = lflows::scaled(20_000, 4_095, 1_000);
    let res = lflows::dmz_resident(&db);
    let p = Pipeline::compile(&db, &res);
    let mut acl = db.clone();
    let new = lflows::add_acl(&mut acl, 1);
    let mut rows = TouchedRows::default();
    rows.flow(&db, &acl, new);
    let changes = Changes::from_rows(&db, &acl, &rows, &res, &res);
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let q = std::hint::black_box(update(&p, &acl, &res, &changes));
        times.push(started.elapsed());
        drop(q);
    }
    times.sort();
    if let (Some(min), Some(median)) = (times.first(), times.get(n / 2)) {
        println!("{n} updates: min {min:?}, median {median:?}");
    }
    Ok(())
}
