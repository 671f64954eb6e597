//! Connections per second through stateful ACLs, like netperf's TCP_CRR: a client in
//! c51 opens a TCP connection to an echo server in vm1, sends one byte, reads it back
//! and closes, over and over. ovnest (`--datapath hybrid`) and the peer (ovn-controller
//! with a userspace ovs-vswitchd, OVS's userspace conntrack) each run their own copy of the
//! seed lab on this machine at the same time; rounds alternate between them. Each lab is
//! measured stateless first (no ACL) and then with c51's security group (`allow-related`
//! for what it opens, drop for what is opened to it), so every connection goes through
//! conntrack.
//!
//! `cargo bench -p ovnest-cli --bench tcp_crr [-- CONNECTIONS_PER_ROUND]` (root).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use ovnest::agent::config::DatapathMode;
use ovnest_lab::{AgentKind, Lab, LabArgs};
use ovnest_tests::netns;

const ROUNDS: usize = 5;
const VM1: [u8; 4] = [172, 16, 255, 130];

fn lab(name: &str, agent: AgentKind) -> Lab {
    let dir = std::env::temp_dir().join(format!("ovnest-bench-{name}"));
    Lab::down(&dir);
    let args = LabArgs {
        dir,
        prefix: format!("b{name}-"),
        ovnest: Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
        agent,
        datapath: DatapathMode::Hybrid,
        containers: Default::default(),
        hypervisors: 1,
        hv2_agent: Default::default(),
        addressing: ovnest_lab::Addressing::Static,
    };
    Lab::up(&args).unwrap_or_else(|e| panic!("{name} lab: {e:#}"))
}

/// An echo server in vm1 (one byte per connection), serving until the process ends.
fn serve(lab: &Lab, port: u16) {
    let listener = {
        let _inside = netns::enter(&lab.ns("vm1"));
        TcpListener::bind(SocketAddr::from((VM1, port))).expect("listen in vm1")
    };
    thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_ok() {
                let _ = s.write_all(&b);
            }
        }
    });
}

/// `n` connections from c51, one after the other: the time they took and how many
/// failed (a connection that does not open within a second, or gets no echo, counts
/// as failed; its wait is part of the time).
fn crr(lab: &Lab, port: u16, n: usize) -> (Duration, usize) {
    let _inside = netns::enter(&lab.ns("c51"));
    let to = SocketAddr::from((VM1, port));
    let start = Instant::now();
    let mut failed = 0;
    for _ in 0..n {
        let ok = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.set_nodelay(true)?;
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
        })();
        failed += usize::from(ok.is_err());
    }
    (start.elapsed(), failed)
}

fn stateful(lab: &Lab) {
    for acl in [
        [
            "from-lport",
            "1002",
            "inport == \"dmz-c51\" && ip4",
            "allow-related",
        ],
        ["to-lport", "1001", "outport == \"dmz-c51\" && ip4", "drop"],
    ] {
        let mut args = vec!["acl-add", "dmz"];
        args.extend_from_slice(&acl);
        lab.nbctl(&args).expect("acl-add");
    }
    lab.nbctl(&["--wait=hv", "sync"]).expect("--wait=hv");
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tcp_crr: needs root (namespaces, XDP, OVN daemons); nothing measured");
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probing
    }
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let labs = [
        ("ovnest", lab("co", AgentKind::Ovnest)),
        ("ovn-controller", lab("cc", AgentKind::OvnController)),
    ];
    for (_, lab) in &labs {
        serve(lab, 7000);
        // Warm up: ARP, the first upcalls.
        crr(lab, 7000, 10);
    }
    println!(
        "TCP connect/request/response/close from c51 to vm1, {n} per round, {ROUNDS} rounds, labs interleaved"
    );
    println!(
        "{:<16} {:<10} {:>12} {:>12} {:>12} {:>8}",
        "agent", "ACLs", "conn/s p50", "conn/s min", "conn/s max", "failed"
    );
    let mut results = Vec::new();
    for mode in ["none", "stateful"] {
        if mode == "stateful" {
            for (_, lab) in &labs {
                stateful(lab);
            }
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); labs.len()];
        let mut failures = vec![0; labs.len()];
        for _ in 0..ROUNDS {
            for (i, (_, lab)) in labs.iter().enumerate() {
                let (took, failed) = crr(lab, 7000, n);
                rates[i].push(n as f64 / took.as_secs_f64());
                failures[i] += failed;
            }
        }
        for (((name, _), r), failed) in labs.iter().zip(rates.iter_mut()).zip(&failures) {
            r.sort_by(f64::total_cmp);
            println!(
                "{name:<16} {mode:<10} {:>12.0} {:>12.0} {:>12.0} {failed:>8}",
                r[r.len() / 2],
                r[0],
                r[r.len() - 1]
            );
            results.push((name.to_string(), mode, r[r.len() / 2]));
        }
    }
    let p50 = |agent: &str, mode: &str| {
        results
            .iter()
            .find(|(a, m, _)| a == agent && *m == mode)
            .map_or(f64::NAN, |r| r.2)
    };
    println!(
        "stateful p50 ratio ovnest / ovn-controller: {:.2}",
        p50("ovnest", "stateful") / p50("ovn-controller", "stateful")
    );
    println!(
        "ovnest stateful / stateless p50: {:.2}",
        p50("ovnest", "stateful") / p50("ovnest", "none")
    );
    for (_, lab) in &labs {
        Lab::down(&lab.dir);
    }
}
