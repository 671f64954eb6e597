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
//! A third column, measured in the same rounds, is the ceiling: no agent at all, the
//! client's and the server's namespaces joined directly by one plain veth pair (same
//! addresses, same kernel TCP stack, same client and server code). It is what this
//! machine allows the method to reach; no agent can beat it. It has no ACL and no load
//! balancer, so in those cases it is the bound, not a like-for-like figure.
//!
//! `--clients K` runs K clients at once (each doing its share of the round's connections,
//! one after the other; the server answers K at a time): the rate then measures capacity,
//! CPU per connection, rather than one connection's latency.
//!
//! `--busy-poll-us A,B,..` adds one ovnest lab per value, its agent restarted with
//! `ovnest run --busy-poll-us V`, measured in the same rounds (the poll threads' spin
//! after their last frame, against the default's).
//!
//! `cargo bench -p ovnest-cli --bench tcp_crr [-- CONNECTIONS_PER_ROUND] [--clients K]
//! [--busy-poll-us A,B,..]` (root).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use ovnest::agent::config::DatapathMode;
use ovnest_lab::{AgentKind, Lab, LabArgs};
use ovnest_tests::netns::{self, NetNs};

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

/// An echo server in namespace `ns` on vm1's address (one byte per connection), `threads`
/// connections at a time, serving until the process ends.
fn serve(ns: &str, port: u16, threads: usize) {
    let listener = {
        let _inside = netns::enter(ns);
        TcpListener::bind(SocketAddr::from((VM1, port))).expect("listen in vm1")
    };
    for _ in 0..threads.max(1) {
        let listener = listener.try_clone().expect("listener clone");
        thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(&b);
                }
            }
        });
    }
}

/// The ceiling: the client's and the server's namespaces joined by one veth pair, with
/// the lab's addresses and the lab's interface settings (IPv6 off, checksums in software,
/// GRO on), and no agent.
struct Ceiling {
    client: NetNs,
    server: NetNs,
}

impl Ceiling {
    fn new() -> Ceiling {
        let (client, server) = (NetNs::new("crr-client"), NetNs::new("crr-server"));
        client.without_ipv6();
        server.without_ipv6();
        client.veth_to("eth0", &server, "eth0");
        let [a, b, c, _] = VM1;
        for (ns, host) in [(&client, 131), (&server, VM1[3])] {
            ns.exec(&["ethtool", "-K", "eth0", "tx", "off", "gro", "on"]);
            ns.ip(&[
                "addr",
                "add",
                &format!("{a}.{b}.{c}.{host}/26"),
                "dev",
                "eth0",
            ]);
        }
        Ceiling { client, server }
    }
}

/// Consecutive failed connections after which a lab counts as dead for the rest of its
/// round (the peer's vswitchd can abort, see BENCHMARKS.md §10): each failure waits a
/// second, so a dead lab would otherwise stall the bench for an hour.
const DEAD_AFTER: usize = 5;

/// `n` connections from namespace `client` to `to`, `clients` at a time (each client
/// one after the other): the time they took and how many failed (a connection that does
/// not open within a second, or gets no echo, counts as failed; its wait is part of the
/// time). `None` when a client saw the target stop answering (`DEAD_AFTER` failures in a
/// row).
fn crr(client: &str, to: SocketAddr, n: usize, clients: usize) -> Option<(Duration, usize)> {
    let clients = clients.clamp(1, n.max(1));
    let start = Instant::now();
    let outcomes: Vec<Option<usize>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                // Client k's share: n split as evenly as it goes.
                let share = n / clients + usize::from(k < n % clients);
                scope.spawn(move || one_client(client, to, share))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    let took = start.elapsed();
    let mut failed = 0;
    for o in outcomes {
        failed += o?;
    }
    Some((took, failed))
}

/// One client's `n` connections in a row: how many failed, `None` after `DEAD_AFTER`
/// failures in a row.
fn one_client(client: &str, to: SocketAddr, n: usize) -> Option<usize> {
    let _inside = netns::enter(client);
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
    Some(failed)
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

/// The hypervisor's datapath processes of a lab: ovnest, or ovn-controller and the
/// hypervisor's ovs-vswitchd.
fn datapath_pids(lab: &Lab) -> Vec<i32> {
    ["ovnest.pid", "ovn-controller.pid", "hv-vswitchd.pid"]
        .iter()
        .filter_map(|f| ovnest_lab::process::alive(&lab.dir.join(f)))
        .collect()
}

/// CPU time the processes' threads have run, in ns (`/proc/PID/task/TID/schedstat`), and
/// the context switches of ovnest's poll threads (`ovnest-xsk*`): voluntary (sleeps in
/// poll(2)) and involuntary (preempted, e.g. by a task its transmit woke).
fn cpu_and_switches(pids: &[i32]) -> (u64, u64, u64) {
    let (mut ns, mut sleeps, mut preempted) = (0, 0, 0);
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
            ns += read("schedstat")
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if read("comm").starts_with("ovnest-xsk") {
                let status = read("status");
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                sleeps += field("voluntary_ctxt_switches:");
                preempted += field("nonvoluntary_ctxt_switches:");
            }
        }
    }
    (ns, sleeps, preempted)
}

/// What a round runs against: a lab's client and server machines, or the ceiling's.
struct Target<'a> {
    name: String,
    client: String,
    lab: Option<&'a Lab>,
    /// Its datapath's processes (none for the ceiling).
    pids: Vec<i32>,
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tcp_crr: needs root (namespaces, XDP, OVN daemons); nothing measured");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `cargo bench --no-run` probing
    }
    let clients: usize = args
        .iter()
        .position(|a| a == "--clients")
        .and_then(|i| args.get(i + 1))
        .map(|k| k.parse().expect("--clients K: a number"))
        .unwrap_or(1);
    let busy_polls: Vec<String> = args
        .iter()
        .position(|a| a == "--busy-poll-us")
        .and_then(|i| args.get(i + 1))
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let n: usize = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[i - 1].starts_with("--"))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(500);
    let backend = SocketAddr::from((VM1, PORT));
    println!(
        "TCP connect/request/response/close from {CLIENT} to vm1, {n} per round, {clients} client(s) at once, {ROUNDS} rounds, targets interleaved, fresh labs per case; ceiling: one veth pair, no agent"
    );
    println!(
        "{:<16} {:<10} {:>12} {:>12} {:>12} {:>8} {:>7} {:>11} {:>11} {:>14}",
        "agent",
        "case",
        "conn/s p50",
        "conn/s min",
        "conn/s max",
        "failed",
        "rounds",
        "cpu µs/conn",
        "sleeps/conn",
        "preempted/conn"
    );
    let ceiling = Ceiling::new();
    serve(ceiling.server.name(), PORT, clients);
    let mut results = Vec::new();
    for mode in ["none", "stateful", "lb"] {
        // Fresh labs per case: no conntrack state of an earlier case, and a peer that
        // aborted in one case is measured again in the next.
        let mut labs = vec![
            ("ovnest".to_string(), lab("co", AgentKind::Ovnest)),
            (
                "ovn-controller".to_string(),
                lab("cc", AgentKind::OvnController),
            ),
        ];
        for (i, us) in busy_polls.iter().enumerate() {
            let l = lab(&format!("cs{i}"), AgentKind::Ovnest);
            assert!(l.stop_agent(), "ovnest of lab cs{i} was not running");
            l.start_agent_with(
                Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
                DatapathMode::Hybrid,
                &["--busy-poll-us", us],
            )
            .expect("restarting ovnest with --busy-poll-us");
            labs.push((format!("ovnest spin {us}µs"), l));
        }
        for (_, lab) in &labs {
            serve(&lab.ns("vm1"), PORT, clients);
            match mode {
                "stateful" => stateful(lab),
                "lb" => {
                    stateful(lab);
                    load_balancer(lab);
                }
                _ => {}
            }
        }
        let mut targets: Vec<Target> = labs
            .iter()
            .map(|(name, lab)| Target {
                name: name.clone(),
                client: lab.ns(CLIENT),
                lab: Some(lab),
                pids: datapath_pids(lab),
            })
            .collect();
        targets.push(Target {
            name: "ceiling (veth)".into(),
            client: ceiling.client.name().to_string(),
            lab: None,
            pids: Vec::new(),
        });
        let to = |t: &Target| match (mode, t.lab) {
            ("lb", Some(_)) => SocketAddr::from((VIP, PORT)),
            _ => backend,
        };
        // Warm up: ARP, the first upcalls; a restarted agent has bound its ports again
        // (polled, 30 s at most).
        for t in &targets {
            ovnest_tests::wait::poll(Duration::from_secs(30), || {
                matches!(crr(&t.client, to(t), 1, 1), Some((_, 0)))
            });
            crr(&t.client, to(t), 10, 1);
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut failures = vec![0; targets.len()];
        // Per round: the datapath's CPU µs, its poll threads' sleeps and preemptions, per
        // connection.
        let mut costs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); targets.len()];
        let mut dead = vec![false; targets.len()];
        for _ in 0..ROUNDS {
            for (i, t) in targets.iter().enumerate() {
                if dead[i] {
                    continue;
                }
                let before = cpu_and_switches(&t.pids);
                match crr(&t.client, to(t), n, clients) {
                    Some((took, failed)) => {
                        let after = cpu_and_switches(&t.pids);
                        costs[i].push((
                            (after.0 - before.0) as f64 / 1e3 / n as f64,
                            (after.1 - before.1) as f64 / n as f64,
                            (after.2 - before.2) as f64 / n as f64,
                        ));
                        rates[i].push(n as f64 / took.as_secs_f64());
                        failures[i] += failed;
                    }
                    None => dead[i] = true,
                }
            }
        }
        for (i, t) in targets.iter().enumerate() {
            let name = t.name.as_str();
            let r = &mut rates[i];
            r.sort_by(f64::total_cmp);
            let failed = failures[i];
            if r.is_empty() {
                println!(
                    "{name:<16} {mode:<10} {:>12} {:>12} {:>12} {failed:>8} {:>7}",
                    "-", "-", "-", 0
                );
            } else {
                // The datapath's cost in its median round (by CPU), for the agents.
                let c = &mut costs[i];
                c.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (cpu, sleeps, preempted) = match (t.pids.is_empty(), c.get(c.len() / 2)) {
                    (false, Some((cpu, sleeps, preempted))) => (
                        format!("{cpu:.1}"),
                        format!("{sleeps:.2}"),
                        format!("{preempted:.2}"),
                    ),
                    _ => ("-".into(), "-".into(), "-".into()),
                };
                println!(
                    "{name:<16} {mode:<10} {:>12.0} {:>12.0} {:>12.0} {failed:>8} {:>7} {cpu:>11} {sleeps:>11} {preempted:>14}",
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
                    t.lab
                        .and_then(abort_line)
                        .map_or(String::new(), |l| format!("; its vswitchd logged:{l}"))
                );
            }
        }
        drop(targets);
        for (_, lab) in &labs {
            Lab::down(&lab.dir);
        }
    }
    let p50 = |agent: &str, mode: &str| {
        results
            .iter()
            .find(|(a, m, _)| *a == agent && *m == mode)
            .map_or(f64::NAN, |r| r.2)
    };
    for mode in ["none", "stateful", "lb"] {
        let (ovnest, peer, ceiling) = (
            p50("ovnest", mode),
            p50("ovn-controller", mode),
            p50("ceiling (veth)", mode),
        );
        println!(
            "{mode} p50 ratios: ovnest / ovn-controller {:.2}, ceiling / ovn-controller {:.2}, ovnest / ceiling {:.2}",
            ovnest / peer,
            ceiling / peer,
            ovnest / ceiling
        );
    }
    for us in &busy_polls {
        for mode in ["none", "stateful", "lb"] {
            println!(
                "{mode} p50 ratio ovnest spin {us}µs / ovnest (default): {:.2}",
                p50(&format!("ovnest spin {us}µs"), mode) / p50("ovnest", mode)
            );
        }
    }
    println!(
        "ovnest stateful / stateless p50: {:.2}",
        p50("ovnest", "stateful") / p50("ovnest", "none")
    );
}
