//! `ovnest trace` against real `ovn-trace` (OVN 23.03): each topology is built with
//! ovn-nbctl on a real ovsdb-server + ovn-northd, every logical flow northd writes must
//! parse and compile, and every generated microflow must trace the same, line for line,
//! in ovn-trace's detailed, summary and minimal forms (`--all`). ovnest runs in-process
//! (one Southbound fetch and compile per topology); ovn-trace is one process per
//! microflow. A failure lists every mismatch with its topology, the command that
//! reproduces it and the unified diff.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ovnest::trace::TraceArgs;
use ovnest_logical::db::Database;
use ovnest_logical::pipeline::{Pipeline, Residency};
use ovnest_logical::trace::Formats;
use ovnest_tests::ovn::OvnCentral;
use ovnest_tests::trace::{Microflow, Topology, diff, microflows, ovn_trace, topology};
use ovnest_tests::{privilege, wait};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
    "ovn-trace",
];

/// Where ovn-trace 23.03 itself dies, with what it logs and what ovnest's trace must
/// still show: those microflows cannot be compared, but ovnest must reach the action.
/// Both are casts whose type assertion aborts: `nd_na_router` read as `nd_na` (a
/// neighbor solicitation for a router port's own IPv6 address) and `put_nd_ra_opts` read
/// as `put_dhcpv6_opts` (a router solicitation).
const ORACLE_ABORTS: &[(&str, &str)] = &[
    (
        "assertion ovnact->type == OVNACT_ND_NA failed",
        "nd_na_router {",
    ),
    (
        "assertion ovnact->type == OVNACT_PUT_DHCPV6_OPTS failed",
        "put_nd_ra_opts(",
    ),
];

/// ovn-trace's output forms, all at once.
const FORMAT: &[&str] = &["--all"];

fn formats() -> Formats {
    Formats {
        detailed: true,
        summary: true,
        minimal: true,
    }
}

/// What `ovnest trace` prints for `mf`, through the CLI's own option parsing.
fn ovnest_trace(p: &Pipeline, mf: &Microflow) -> String {
    let args = TraceArgs {
        db: String::new(),
        detailed: false,
        summary: false,
        minimal: false,
        all: true,
        ct: mf.ct.clone(),
        lb_dst: mf.lb_dst.clone(),
        select_id: mf.select_id,
        chassis_ports: Vec::new(),
        args: vec![mf.expr.clone()],
    };
    let opts = match args.options() {
        Ok(o) => o,
        Err(e) => return format!("ovnest trace: {e:#}"),
    };
    match ovnest_logical::trace(p, None, &mf.expr, &opts, formats()) {
        Ok(s) | Err(s) => s,
    }
}

/// The rows ovnest read, comparable across fetches (whose order is the replica's).
fn rows(db: &Database) -> BTreeSet<String> {
    let dbg = |v: &dyn std::fmt::Debug| format!("{v:?}");
    db.datapaths
        .iter()
        .map(|r| dbg(r))
        .chain(db.ports.iter().map(|r| dbg(r)))
        .chain(db.mcgroups.iter().map(|r| dbg(r)))
        .chain(db.flows.iter().map(|r| dbg(r)))
        .chain(db.mac_bindings.iter().map(|r| dbg(r)))
        .chain(db.load_balancers.iter().map(|r| dbg(r)))
        .chain(db.address_sets.iter().map(|r| dbg(r)))
        .chain(db.port_groups.iter().map(|r| dbg(r)))
        .collect()
}

fn check(t: Topology) {
    let test = format!("trace_differential::{}", t.name);
    if !privilege::require_tools(&test, TOOLS) {
        return;
    }
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let started = Instant::now();
    let ovn = OvnCentral::start();
    t.build(&ovn);
    let remote = ovn.sb_remote();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fetch = || {
        rt.block_on(ovnest::lflow::fetch(
            remote.parse().expect("SB remote"),
            Duration::from_secs(30),
        ))
        .unwrap_or_else(|e| panic!("{test}: fetch the SB: {e:#}"))
    };
    // Northd is done when another sync leaves the SB as it was: both sides must trace
    // the same database.
    let mut fetches = 0;
    let db = wait::until("the SB to settle", Duration::from_secs(30), || {
        let before = fetch();
        ovn.sync();
        fetches += 2;
        (rows(&before) == rows(&fetch())).then_some(before)
    });
    let pipeline = Pipeline::compile(&db, &Residency::Everywhere);
    let mut problems: Vec<String> = pipeline
        .errors
        .iter()
        .map(|e| {
            let flow = db.flows.iter().find(|f| f.uuid == e.uuid);
            format!(
                "logical flow {} does not compile: {}\n    match=({}) actions=({})",
                e.uuid,
                e.reason,
                flow.map_or("?", |f| &*f.match_),
                flow.map_or("?", |f| &*f.actions),
            )
        })
        .collect();

    let flows = microflows(&t);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let oracle_started = Instant::now();
    let expected = ovn_trace::trace_all(ovn.dir(), &remote, FORMAT, &flows, workers);
    let oracle_time = oracle_started.elapsed();
    let mut mismatches = 0;
    let mut oracle_aborts = 0;
    for (mf, want) in flows.iter().zip(expected) {
        let got = ovnest_trace(&pipeline, mf);
        let want = match want {
            Ok(w) => w,
            Err(e) => {
                match ORACLE_ABORTS.iter().find(|(why, _)| e.contains(why)) {
                    Some((_, shows)) if got.contains(shows) => oracle_aborts += 1,
                    Some((_, shows)) => problems.push(format!(
                        "{mf}\n{e}\novnest's trace does not show `{shows}`:\n{got}"
                    )),
                    None => problems.push(format!("{mf}\n{e}")),
                }
                continue;
            }
        };
        let d = diff::unified(&want, &got, "ovn-trace", "ovnest trace");
        if !d.is_empty() {
            mismatches += 1;
            problems.push(format!("{mf}\n{d}"));
        }
    }
    let after = rows(&fetch());
    let changed = rows(&db).symmetric_difference(&after).count();
    if changed > 0 {
        problems.push(format!(
            "the Southbound changed while tracing ({changed} rows differ): the traces may \
             compare different databases"
        ));
    }
    eprintln!(
        "{test}: {} logical flows, {} microflows, {mismatches} mismatches, \
         {oracle_aborts} not compared (ovn-trace aborts), SB settled after {fetches} fetches, \
         {:.1?} ({oracle_time:.1?} in ovn-trace)",
        db.flows.len(),
        flows.len(),
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{test}: {} problem(s) ({mismatches} mismatching microflows of {}) on the network \
         built with:\n{}\n{}",
        problems.len(),
        flows.len(),
        t.script(),
        problems.join("\n")
    );
}

#[test]
fn seed() {
    check(topology::seed());
}

#[test]
fn acl_stateless() {
    check(topology::acl_stateless());
}

#[test]
fn acl_stateful() {
    check(topology::acl_stateful());
}

#[test]
fn load_balancers() {
    check(topology::load_balancers());
}

#[test]
fn ipv6() {
    check(topology::ipv6());
}

#[test]
fn gateway() {
    check(topology::gateway());
}
