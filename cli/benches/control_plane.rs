//! Control-plane latency: an NB change until every chassis has programmed it, as an
//! operator sees it (`ovn-nbctl --wait=hv`, which returns once the chassis acknowledged
//! the change's nb_cfg after programming its datapath). ovnest and the peer
//! (ovn-controller + userspace ovs-vswitchd) each run their own copy of the seed lab on
//! this machine at the same time; changes alternate between them (A B A B ...).
//!
//! `cargo bench -p ovnest-cli --bench control_plane [-- ROUNDS]` (root). Prints p50/p99 and
//! the agents' resident memory.

use std::{path::PathBuf, time::Duration};

use ovnest::agent::config::DatapathMode;
use ovnest_lab::{
    AgentKind, Lab, LabArgs,
    bench::latency::{nb_change_latency, percentile, rss_kib},
};

fn lab(name: &str, agent: AgentKind) -> Lab {
    let dir = std::env::temp_dir().join(format!("ovnest-bench-{name}"));
    Lab::down(&dir);
    let args = LabArgs {
        dir,
        prefix: format!("b{name}-"),
        ovnest: Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
        agent,
        datapath: DatapathMode::Xdp,
        containers: Default::default(),
        addressing: ovnest_lab::Addressing::Static,
        hypervisors: 1,
        hv2_agent: Default::default(),
    };
    Lab::up(&args).unwrap_or_else(|e| panic!("{name} lab: {e:#}"))
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("control_plane: needs root (namespaces, XDP, OVN daemons); nothing measured");
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probing
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let labs = [
        ("ovnest", lab("o", AgentKind::Ovnest)),
        ("ovn-controller", lab("c", AgentKind::OvnController)),
    ];
    let lab_refs: Vec<&Lab> = labs.iter().map(|(_, lab)| lab).collect();
    let samples = nb_change_latency(&lab_refs, rounds, 5).expect("ovn-nbctl --wait=hv");
    println!(
        "NB change -> programmed on the chassis (ovn-nbctl --wait=hv), {rounds} changes each, interleaved"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "agent", "p50 ms", "p99 ms", "min ms", "max ms", "agent RSS"
    );
    let mut p50s = Vec::new();
    for ((name, lab), samples) in labs.iter().zip(samples.iter()) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rss = lab.agent_pid().map_or(0, rss_kib);
        println!(
            "{name:<16} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9} KiB",
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.99)),
            ms(samples[0]),
            ms(samples[samples.len() - 1]),
            rss
        );
        p50s.push(percentile(samples, 0.5));
    }
    println!(
        "p50 ratio ovn-controller / ovnest: {:.2}",
        p50s[1].as_secs_f64() / p50s[0].as_secs_f64()
    );
    for (_, lab) in &labs {
        Lab::down(&lab.dir);
    }
}
