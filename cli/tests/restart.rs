//! Hitless restart and upgrade on the seed lab (real OVN, the `ovnest` binary, XDP on
//! veths): an established flow (c51 -> vm1, 10 kpps, sequence-numbered) runs while the
//! agent is killed with -9 and restarted, stopped with SIGTERM and restarted, upgraded to
//! a build whose L2 table layout changed, and while the Southbound restarts. The
//! datapath is pinned, so no frame may be lost; each case prints a `LOSS|` line (the
//! figures of BENCHMARKS.md §"Restart and upgrade").
//!
//! ```sh
//! sudo -E cargo test -p ovnest-cli --test restart -- --nocapture --test-threads=1 2>&1 | grep LOSS
//! ```

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use ovnest::agent::{config::DatapathMode, status::Status};
use ovnest_datapath::{FastPath, fastpath::PinDir};
use ovnest_lab::{AgentKind, Lab, LabArgs, process};
use ovnest_tests::{
    fixtures::Frame,
    flow::{Flow, FlowReport},
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(60);
const PPS: u32 = 10_000;
const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovs-vswitchd",
    "ping",
    "ethtool",
    "nsenter",
];
const OVNEST: &str = env!("CARGO_BIN_EXE_ovnest");

const VM1_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
const C51_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];
const VM1_IP: [u8; 4] = [172, 16, 255, 130];
const C51_IP: [u8; 4] = [172, 16, 255, 133];
const VM1: &str = "172.16.255.130";

/// A lab of its own, torn down on drop.
struct TestLab {
    lab: Lab,
    agent: AgentKind,
    datapath: DatapathMode,
}

impl TestLab {
    fn up(name: &str, agent: AgentKind) -> TestLab {
        TestLab::up_with(name, agent, DatapathMode::Xdp)
    }

    fn up_with(name: &str, agent: AgentKind, datapath: DatapathMode) -> TestLab {
        let prefix = format!("t{}{name}-", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
        Lab::down(&dir);
        let args = LabArgs {
            dir,
            prefix,
            ovnest: Some(PathBuf::from(OVNEST)),
            agent,
            datapath,
            containers: Default::default(),
            addressing: ovnest_lab::Addressing::Static,
            hypervisors: 1,
            hv2_agent: Default::default(),
        };
        let lab = Lab::up(&args).unwrap_or_else(|e| panic!("lab up: {e:#}"));
        TestLab {
            lab,
            agent,
            datapath,
        }
    }

    /// The established flow: c51's frames as vm5's VIF carries them (tag 51) to vm1.
    /// Sent straight onto vm5's uplink, not through its OVS bridge: a userspace bridge
    /// drops frames of its own when the machine is busy, which would blur what the
    /// hypervisor's datapath did.
    fn flow(&self) -> Flow {
        let marker = 5151;
        let frame = Frame::eth(VM1_MAC, C51_MAC)
            .udp(C51_IP, VM1_IP, marker, 5001, 64)
            .vlan(51)
            .build();
        let flow = Flow::start(
            (&self.lab.ns("vm5"), "brvm5-brint"),
            (&self.lab.ns("vm1"), "eth0"),
            frame,
            marker,
            46,
            PPS,
        );
        self.flowing(&flow, 1000);
        flow
    }

    /// Waits for `more` frames of `flow` beyond what it had.
    fn flowing(&self, flow: &Flow, more: u64) {
        let start = flow.received();
        wait::until("the flow's frames arriving", DEADLINE, || {
            (flow.received() >= start + more).then_some(())
        });
    }

    fn start_ovnest(&self, extra: &[&str]) {
        self.lab
            .start_agent_with(Some(PathBuf::from(OVNEST)), self.datapath, extra)
            .unwrap_or_else(|e| panic!("start ovnest: {e:#}"));
    }

    fn kill_agent(&self, signal: i32) {
        let pid = self.lab.agent_pid().expect("the agent runs");
        // SAFETY: signalling the lab's own agent.
        unsafe { libc::kill(pid, signal) };
        wait::until("the agent gone", DEADLINE, || (!running(pid)).then_some(()));
    }

    fn agent_running(&self) -> bool {
        self.lab.agent_pid().is_some_and(running)
    }

    /// The restarted agent has read the Southbound and programmed what it says: every
    /// lab port up again.
    fn ready_after(&self, since_ms: i64) {
        self.synced_after(since_ms);
        self.lab
            .wait_ready(DEADLINE)
            .unwrap_or_else(|e| panic!("lab ready again: {e:#}"));
    }

    /// The restarted agent has read the Southbound and acknowledged the latest `nb_cfg`.
    fn synced_after(&self, since_ms: i64) {
        if self.agent == AgentKind::Ovnest {
            wait::until("a synced status from the new agent", DEADLINE, || {
                Status::read(&self.lab.state_dir())
                    .ok()
                    .filter(|s| {
                        s.updated_unix_ms > since_ms
                            && s.synced
                            && s.southbound.starts_with("connected")
                    })
                    .map(|_| ())
            });
        }
        self.lab
            .nbctl(&["--wait=hv", "sync"])
            .unwrap_or_else(|e| panic!("nb_cfg acknowledged: {e:#}"));
    }

    fn chassis_uuid(&self) -> String {
        self.lab
            .sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", "name=hv1"])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn ping(&self, from: &str, ip: &str) -> bool {
        self.lab.exec(from, "ping", &["-c1", "-W1", ip]).is_ok()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in ["ovnest.log", "ovn-controller.log"] {
                if let Ok(text) = std::fs::read_to_string(self.lab.dir.join(log)) {
                    let tail: Vec<&str> = text.lines().rev().take(60).collect();
                    eprintln!("--- {log} (last lines) ---");
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
        Lab::down(&self.lab.dir);
    }
}

/// Whether `pid` runs (a zombie the test has not reaped does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One measured case: the flow's loss around `disrupt`.
fn measure(lab: &TestLab, case: &str, disrupt: impl FnOnce(&Flow)) -> FlowReport {
    let flow = lab.flow();
    // Established first (with `hybrid`, decided and cached), then disrupted.
    lab.flowing(&flow, 100);
    let started = Instant::now();
    disrupt(&flow);
    let took = started.elapsed();
    lab.flowing(&flow, 1000);
    let report = flow.stop();
    let agent = match (lab.agent, lab.datapath) {
        (AgentKind::Ovnest, DatapathMode::Xdp) => "ovnest (xdp)",
        (AgentKind::Ovnest, DatapathMode::Hybrid) => "ovnest (hybrid)",
        (AgentKind::Ovnest, DatapathMode::Afxdp) => "ovnest (afxdp)",
        (AgentKind::OvnController, _) => "ovn-controller + OVS",
        (AgentKind::None, _) => "none",
    };
    println!(
        "LOSS| {case} | {agent} | {} sent | {} lost | longest outage {} frames ({:.1} ms) | back in {:.1} s",
        report.sent,
        report.lost,
        report.longest_outage,
        report.longest_outage as f64 * 1000.0 / f64::from(PPS),
        took.as_secs_f64()
    );
    report
}

#[test]
fn restarts_and_upgrades_lose_no_frame_and_cleanup_removes_everything() {
    let test = "restarts_and_upgrades";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up("rs", AgentKind::Ovnest);
    let chassis = lab.chassis_uuid();
    assert!(!chassis.is_empty());

    let mut reports = Vec::new();
    reports.push((
        "no disruption (3 s)",
        // 3 s of the flow's frames (at PPS).
        measure(&lab, "no disruption (3 s)", |flow| {
            flow.run_for(3 * u64::from(PPS), DEADLINE)
        }),
    ));
    reports.push((
        "kill -9 + restart",
        measure(&lab, "kill -9 + restart", |_| {
            lab.kill_agent(libc::SIGKILL);
            let since = now_ms();
            lab.start_ovnest(&[]);
            lab.ready_after(since);
        }),
    ));
    reports.push((
        "SIGTERM + restart",
        measure(&lab, "SIGTERM + restart", |_| {
            lab.kill_agent(libc::SIGTERM);
            // A stop for restart: the chassis and the claims stay.
            assert_eq!(lab.chassis_uuid(), chassis, "chassis kept on SIGTERM");
            let since = now_ms();
            lab.start_ovnest(&[]);
            lab.ready_after(since);
        }),
    ));
    reports.push((
        "upgrade (new L2 table layout)",
        measure(&lab, "upgrade (new L2 table layout)", |_| {
            lab.kill_agent(libc::SIGTERM);
            let since = now_ms();
            lab.start_ovnest(&["--newer-layout", "MACS"]);
            lab.ready_after(since);
        }),
    ));
    assert_eq!(lab.chassis_uuid(), chassis, "same chassis row throughout");
    for (case, report) in &reports {
        assert_eq!(report.lost, 0, "{case}: {report:?}");
    }

    // A change made while the agent is down is applied when it starts: c52 is deleted,
    // and its tag must stop forwarding (no stale decision survives the restart).
    assert!(lab.ping("c52", VM1), "c52 reaches vm1 before");
    lab.kill_agent(libc::SIGKILL);
    lab.lab
        .nbctl(&["lsp-del", "dmz-c52"])
        .expect("delete c52 in the NB");
    let since = now_ms();
    lab.start_ovnest(&[]);
    wait::until("c52 gone from the new agent's ports", DEADLINE, || {
        Status::read(&lab.lab.state_dir()).ok().filter(|s| {
            s.updated_unix_ms > since
                && s.synced
                && s.ports
                    .iter()
                    .flat_map(|p| p.children.iter())
                    .all(|c| c.logical_port != "dmz-c52")
        })
    });
    lab.lab
        .nbctl(&["--wait=hv", "sync"])
        .expect("nb_cfg acknowledged");
    assert!(!lab.ping("c52", VM1), "deleted c52 still forwarded");
    assert!(lab.ping("c51", VM1), "c51 still forwarded");

    // The deliberate exit: chassis and claims gone from the SB, datapath from the kernel.
    let pin_dir = lab.lab.bpffs_root().join("hv1");
    assert!(pin_dir.join("links").read_dir().unwrap().next().is_some());
    let out = std::process::Command::new(OVNEST)
        .args(["cleanup", "--state-dir"])
        .arg(lab.lab.state_dir())
        .output()
        .expect("ovnest cleanup");
    assert!(
        out.status.success(),
        "ovnest cleanup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lab.agent_running(), "cleanup stopped the agent");
    assert!(lab.chassis_uuid().is_empty(), "chassis removed");
    let claimed = lab
        .lab
        .sbctl(&[
            "--bare",
            "--columns=chassis",
            "find",
            "Port_Binding",
            "logical_port=dmz-c51",
        ])
        .unwrap();
    assert_eq!(claimed.trim(), "", "c51 released");
    assert!(!pin_dir.exists(), "pins removed");
    assert!(
        !lab.ping("c51", VM1),
        "forwarding removed with the datapath"
    );
}

/// The default datapath: the established flow is served from the old program's decision
/// cache while the agent is away, and from the new program's (refilled by its first
/// frame's upcall) once the new agent's userspace datapath serves and the links move.
#[test]
fn hybrid_restarts_and_upgrades_lose_no_frame() {
    let test = "hybrid_restarts";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up_with("hy", AgentKind::Ovnest, DatapathMode::Hybrid);
    let chassis = lab.chassis_uuid();
    let restart = |case: &'static str, signal: i32, extra: &'static [&'static str]| {
        let report = measure(&lab, case, |_| {
            lab.kill_agent(signal);
            let since = now_ms();
            lab.start_ovnest(extra);
            lab.ready_after(since);
        });
        (case, report)
    };
    let reports = [
        restart("kill -9 + restart", libc::SIGKILL, &[]),
        restart("SIGTERM + restart", libc::SIGTERM, &[]),
        restart(
            "upgrade (new L2 table layout)",
            libc::SIGTERM,
            &["--newer-layout", "MACS"],
        ),
    ];
    assert_eq!(lab.chassis_uuid(), chassis, "same chassis row throughout");
    for (case, report) in &reports {
        assert_eq!(report.lost, 0, "{case}: {report:?}");
    }
    // The flow goes on through the new program's cache, not only the old one's: a flow
    // runs until the latest agent's status counts installs and hits.
    let flow = lab.flow();
    wait::until("hits in the new program's decision cache", DEADLINE, || {
        Status::read(&lab.lab.state_dir())
            .ok()
            .and_then(|s| s.cache)
            .filter(|c| c.installs > 0 && c.hits > 0)
    });
    let report = flow.stop();
    assert_eq!(report.lost, 0, "{report:?}");
}

/// The Southbound's ovsdb-server stops and comes back while the flow runs; a change made
/// in the NB meanwhile reaches the datapath once it is back.
#[test]
fn a_southbound_restart_loses_no_frame_and_misses_no_change() {
    let test = "southbound_restart";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up("sb", AgentKind::Ovnest);
    assert!(lab.ping("c52", VM1));
    let report = measure(&lab, "SB ovsdb-server restart", |_| {
        lab.lab.stop_sb();
        wait::until("the agent notices", DEADLINE, || {
            Status::read(&lab.lab.state_dir())
                .ok()
                .filter(|s| s.southbound.starts_with("disconnected"))
        });
        // northd cannot write the SB now; it will once it is back.
        lab.lab
            .nbctl(&["lsp-del", "dmz-c52"])
            .expect("delete c52 in the NB");
        lab.lab.start_sb().expect("SB back");
        lab.lab
            .nbctl(&["--wait=hv", "sync"])
            .expect("the change reaches the chassis");
    });
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(!lab.ping("c52", VM1), "c52 deleted while the SB was away");
    assert!(lab.ping("c51", VM1));
}

/// A VIF deleted and created again (as a hypervisor does when a VM is rebooted or
/// migrated back): its port comes back without restarting ovnest.
#[test]
fn a_vif_deleted_and_recreated_comes_back_without_a_restart() {
    let test = "vif_recreated";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up("vf", AgentKind::Ovnest);
    let pid = lab.lab.agent_pid();
    assert!(lab.ping("vm2", VM1));
    let hv = lab.lab.ns("hv");
    let vm2 = lab.lab.ns("vm2");
    process::run("ip", &["-n", &hv, "link", "del", "vm2"]).unwrap();
    assert!(!lab.ping("vm2", VM1), "vm2 has no VIF");
    process::run(
        "ip",
        &[
            "-n", &hv, "link", "add", "vm2", "type", "veth", "peer", "name", "eth0", "netns", &vm2,
        ],
    )
    .unwrap();
    for (ns, dev) in [(&hv, "vm2"), (&vm2, "eth0")] {
        process::run(
            "ip",
            &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
        )
        .unwrap();
    }
    process::run(
        "ip",
        &["netns", "exec", &vm2, "ethtool", "-K", "eth0", "gro", "on"],
    )
    .unwrap();
    process::run(
        "ip",
        &[
            "-n",
            &vm2,
            "link",
            "set",
            "eth0",
            "address",
            "02:ac:10:ff:01:31",
        ],
    )
    .unwrap();
    process::run(
        "ip",
        &[
            "-n",
            &vm2,
            "addr",
            "add",
            "172.16.255.131/26",
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    process::run("ip", &["-n", &vm2, "link", "set", "eth0", "up"]).unwrap();
    process::run("ip", &["-n", &hv, "link", "set", "vm2", "up"]).unwrap();
    wait::until("vm2 reaches vm1 again", DEADLINE, || {
        lab.ping("vm2", VM1).then_some(())
    });
    assert_eq!(lab.lab.agent_pid(), pid, "the same agent throughout");
    assert!(lab.ping("c51", VM1));
}

/// ovn-controller + OVS, killed with -9 and restarted, for the side-by-side figure (OVS
/// keeps its flows while ovn-controller is away; what a restart costs is measured).
#[test]
fn side_by_side_ovn_controller_killed_and_restarted() {
    let test = "side_by_side_ovn_controller";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up("oc", AgentKind::OvnController);
    let baseline = measure(&lab, "no disruption (3 s)", |flow| {
        flow.run_for(3 * u64::from(PPS), DEADLINE)
    });
    assert!(baseline.received > 0, "{baseline:?}");
    let report = measure(&lab, "kill -9 + restart", |_| {
        lab.kill_agent(libc::SIGKILL);
        let since = now_ms();
        ovnest_lab::start_ovn_controller(&lab.lab).expect("restart ovn-controller");
        lab.ready_after(since);
    });
    assert!(report.sent > 0 && report.received > 0, "{report:?}");
}

/// `kill -9` while the agent takes in a change of 1,000 ports (1,000 containers added
/// under vm5 and c52 deleted, one NB transaction), then a restart: every port the SB
/// wants is claimed, up and forwarded, and c52's tag forwards nothing any more.
#[test]
fn kill_9_in_the_middle_of_1000_port_changes_loses_nothing_and_keeps_nothing_stale() {
    let test = "kill_9_mid_update";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let lab = TestLab::up("k9", AgentKind::Ovnest);
    assert!(lab.ping("c52", VM1));
    const N: u16 = 1000;
    let tag = |i: u16| 1000 + i;
    let name = |i: u16| format!("dmz-k{i}");
    let mac = |i: u16| [0x02, 0x00, 0x00, 0xaa, (i >> 8) as u8, i as u8];
    let mut args: Vec<String> = vec!["lsp-del".into(), "dmz-c52".into()];
    for i in 0..N {
        let m = mac(i);
        args.extend([
            "--".into(),
            "lsp-add".into(),
            "dmz".into(),
            name(i),
            "dmz-vm5".into(),
            tag(i).to_string(),
            "--".into(),
            "lsp-set-addresses".into(),
            name(i),
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.lab.nbctl(&args).expect("1000 ports in one transaction");
    // Kill as soon as the kernel holds some of them: the agent is writing them (L2
    // entries first, the containers' classification last).
    let pins = PinDir::at(lab.lab.bpffs_root().join("hv1"));
    let in_kernel = || {
        FastPath::inspect(&pins)
            .map(|t| {
                (
                    t.macs.keys().filter(|k| k.mac[3] == 0xaa).count(),
                    t.children.keys().filter(|k| k.vid >= 1000).count(),
                )
            })
            .unwrap_or((0, 0))
    };
    wait::until("the first new L2 entries in the kernel", DEADLINE, || {
        (in_kernel().0 > 0).then_some(())
    });
    lab.kill_agent(libc::SIGKILL);
    let (macs_at_kill, children_at_kill) = in_kernel();
    let claimed_at_kill = lab
        .lab
        .sbctl(&[
            "--bare",
            "--columns=logical_port",
            "find",
            "Port_Binding",
            "up=true",
        ])
        .unwrap_or_default()
        .split_whitespace()
        .filter(|p| p.starts_with("dmz-k"))
        .count();
    println!(
        "killed with {macs_at_kill} L2 entries and {children_at_kill} containers of {N} in \
         the kernel, {claimed_at_kill} up in the SB"
    );

    let since = now_ms();
    lab.start_ovnest(&[]);
    wait::until(
        "all 1000 ports claimed and up",
        Duration::from_secs(180),
        || {
            let up = lab
                .lab
                .sbctl(&[
                    "--bare",
                    "--columns=logical_port",
                    "find",
                    "Port_Binding",
                    "up=true",
                ])
                .ok()?;
            let n = up
                .split_whitespace()
                .filter(|p| p.starts_with("dmz-k"))
                .count();
            (n == usize::from(N)).then_some(())
        },
    );
    lab.synced_after(since);

    // Every sampled new tag forwards to vm1; c52's tag 52 does not.
    let (vm5, vm1) = {
        let _in = ovnest_tests::netns::enter(&lab.lab.ns("vm5"));
        let vm5 = ovnest_tests::packet::PacketSocket::open("brvm5-brint").unwrap();
        drop(_in);
        let _in = ovnest_tests::netns::enter(&lab.lab.ns("vm1"));
        (
            vm5,
            ovnest_tests::packet::PacketSocket::open("eth0").unwrap(),
        )
    };
    let arrives = |src: [u8; 6], vid: u16, marker: u16| {
        let frame = Frame::eth(VM1_MAC, src)
            .udp([172, 16, 255, 200], VM1_IP, marker, 5001, 32)
            .vlan(vid)
            .build();
        vm5.send(&frame).unwrap();
        vm1.recv_matching(Duration::from_secs(2), |f| {
            f.bytes.len() > 36 && f.bytes[34..36] == marker.to_be_bytes()
        })
        .unwrap()
        .is_some()
    };
    for i in [0, 1, N / 2, N - 2, N - 1] {
        assert!(
            arrives(mac(i), tag(i), 7000 + i),
            "{} (tag {}) not forwarded",
            name(i),
            tag(i)
        );
    }
    assert!(
        !arrives([0x02, 0xac, 0x10, 0xff, 0x01, 0x34], 52, 6999),
        "deleted c52's tag still forwarded"
    );
}
