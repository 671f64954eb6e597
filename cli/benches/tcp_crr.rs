//! Connections per second through stateful ACLs and a load balancer, like netperf's
//! TCP_CRR: a client in vm2 opens a TCP connection to an echo server in vm1, sends one
//! byte, reads it back and closes, over and over. ovnest (`--datapath hybrid`) and the
//! peer (ovn-controller with a userspace ovs-vswitchd, OVS's userspace conntrack) each run
//! their own copy of the seed lab on this machine at the same time (a fresh pair for each
//! case); rounds alternate between them. The cases: stateless (no ACL), vm2's security
//! group (`allow-related` for what it opens, drop for what is opened to it), so every
//! connection goes through conntrack, then through a load balancer VIP on `dmz` whose
//! backend is vm1 (`ct_lb_mark`, on top of the security group).
//!
//! The client is vm2, a VM on the hypervisor's VIF, not a container: c51's frames cross
//! vm5's own userspace OVS bridge (the VM-side tagging), whose latency would be measured
//! instead of the hypervisor's agent.
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
/// The load balancer's VIP, off every subnet of the lab as a Kubernetes service address
/// is: the client reaches it through its default gateway (lr0), so no one has to answer
/// ARP for it; `dmz`'s load balancer translates it before the router sees the frame.
const VIP: [u8; 4] = [10, 96, 0, 10];
const PORT: u16 = 7000;
/// The connecting machine (see the module's comment for why not c51).
const CLIENT: &str = "vm2";

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

/// Consecutive failed connections after which a lab counts as dead for the rest of its
/// round (the peer's vswitchd can abort, see BENCHMARKS.md §10): each failure waits a
/// second, so a dead lab would otherwise stall the bench for an hour.
const DEAD_AFTER: usize = 5;

/// `n` connections from the client to `to`, one after the other: the time they took
/// and how many failed (a connection that does not open within a second, or gets no
/// echo, counts as failed; its wait is part of the time). `None` when the lab stopped
/// answering (`DEAD_AFTER` failures in a row).
fn crr(lab: &Lab, to: SocketAddr, n: usize) -> Option<(Duration, usize)> {
    let _inside = netns::enter(&lab.ns(CLIENT));
    let start = Instant::now();
    let (mut failed, mut in_a_row) = (0, 0);
    for _ in 0..n {
        let ok = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.set_nodelay(true)?;
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
        })();
        if ok.is_err() {
            failed += 1;
            in_a_row += 1;
            if in_a_row == DEAD_AFTER {
                return None;
            }
        } else {
            in_a_row = 0;
        }
    }
    Some((start.elapsed(), failed))
}

/// The abort the peer's vswitchd logged, if it did.
fn abort_line(lab: &Lab) -> Option<String> {
    let log = std::fs::read_to_string(lab.dir.join("hv-vswitchd.log")).ok()?;
    log.lines()
        .rev()
        .find(|l| l.contains("|EMER|"))
        .map(|l| l.split("|EMER|").last().unwrap_or(l).to_string())
}

fn stateful(lab: &Lab) {
    for acl in [
        [
            "from-lport",
            "1002",
            "inport == \"dmz-vm2\" && ip4",
            "allow-related",
        ],
        ["to-lport", "1001", "outport == \"dmz-vm2\" && ip4", "drop"],
    ] {
        let mut args = vec!["acl-add", "dmz"];
        args.extend_from_slice(&acl);
        lab.nbctl(&args).expect("acl-add");
    }
    lab.nbctl(&["--wait=hv", "sync"]).expect("--wait=hv");
}

/// The VIP `VIP:PORT` on `dmz`, backend vm1's echo server.
fn load_balancer(lab: &Lab) {
    let [a, b, c, d] = VIP;
    let [e, f, g, h] = VM1;
    let (vip, backend) = (
        format!("{a}.{b}.{c}.{d}:{PORT}"),
        format!("{e}.{f}.{g}.{h}:{PORT}"),
    );
    lab.nbctl(&["lb-add", "crr", &vip, &backend, "tcp"])
        .expect("lb-add");
    lab.nbctl(&["ls-lb-add", "dmz", "crr"]).expect("ls-lb-add");
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
    let backend = SocketAddr::from((VM1, PORT));
    println!(
        "TCP connect/request/response/close from {CLIENT} to vm1, {n} per round, {ROUNDS} rounds, labs interleaved, fresh labs per case"
    );
    println!(
        "{:<16} {:<10} {:>12} {:>12} {:>12} {:>8} {:>7}",
        "agent", "case", "conn/s p50", "conn/s min", "conn/s max", "failed", "rounds"
    );
    let mut results = Vec::new();
    for mode in ["none", "stateful", "lb"] {
        // Fresh labs per case: no conntrack state of an earlier case, and a peer that
        // aborted in one case is measured again in the next.
        let labs = [
            ("ovnest", lab("co", AgentKind::Ovnest)),
            ("ovn-controller", lab("cc", AgentKind::OvnController)),
        ];
        for (_, lab) in &labs {
            serve(lab, PORT);
            match mode {
                "stateful" => stateful(lab),
                "lb" => {
                    stateful(lab);
                    load_balancer(lab);
                }
                _ => {}
            }
        }
        let to = match mode {
            "lb" => SocketAddr::from((VIP, PORT)),
            _ => backend,
        };
        // Warm up: ARP, the first upcalls.
        for (_, lab) in &labs {
            crr(lab, to, 10);
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); labs.len()];
        let mut failures = vec![0; labs.len()];
        let mut dead = vec![false; labs.len()];
        for _ in 0..ROUNDS {
            for (i, (_, lab)) in labs.iter().enumerate() {
                if dead[i] {
                    continue;
                }
                match crr(lab, to, n) {
                    Some((took, failed)) => {
                        rates[i].push(n as f64 / took.as_secs_f64());
                        failures[i] += failed;
                    }
                    None => dead[i] = true,
                }
            }
        }
        for (i, (name, lab)) in labs.iter().enumerate() {
            let r = &mut rates[i];
            r.sort_by(f64::total_cmp);
            let failed = failures[i];
            if r.is_empty() {
                println!(
                    "{name:<16} {mode:<10} {:>12} {:>12} {:>12} {failed:>8} {:>7}",
                    "-", "-", "-", 0
                );
            } else {
                println!(
                    "{name:<16} {mode:<10} {:>12.0} {:>12.0} {:>12.0} {failed:>8} {:>7}",
                    r[r.len() / 2],
                    r[0],
                    r[r.len() - 1],
                    r.len()
                );
                results.push((name.to_string(), mode, r[r.len() / 2]));
            }
            if dead[i] {
                println!(
                    "  {name} stopped answering in case {mode} ({DEAD_AFTER} connections in a row failed){}",
                    abort_line(lab).map_or(String::new(), |l| format!("; its vswitchd logged:{l}"))
                );
            }
        }
        for (_, lab) in &labs {
            Lab::down(&lab.dir);
        }
    }
    let p50 = |agent: &str, mode: &str| {
        results
            .iter()
            .find(|(a, m, _)| a == agent && *m == mode)
            .map_or(f64::NAN, |r| r.2)
    };
    for mode in ["none", "stateful", "lb"] {
        println!(
            "{mode} p50 ratio ovnest / ovn-controller: {:.2}",
            p50("ovnest", mode) / p50("ovn-controller", mode)
        );
    }
    println!(
        "ovnest stateful / stateless p50: {:.2}",
        p50("ovnest", "stateful") / p50("ovnest", "none")
    );
}
