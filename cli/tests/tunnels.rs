//! Tunnels against real ovn-controller.
//!
//! - A chassis never advertises an Encap it cannot terminate: ovnest without tunnels (its
//!   encap IP on no interface it can use) registers alone in a transport zone of its own,
//!   so a real ovn-controller peer builds no Geneve port to it, while it does build one to
//!   an ordinary chassis (the control); `ovnest status` says there are no tunnels, and why.
//! - Interop: ovnest on one hypervisor namespace, real ovn-controller with userspace OVS
//!   (netdev datapath, Geneve in userspace, as `shared/reference/.../two-chassis.sh`) on
//!   another, an underlay veth between them; VMs on each ping each other across the
//!   tunnel, unicast and broadcast.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use ovnest::agent::status::Status;
use ovnest_lab::process::{self, Daemon};
use ovnest_tests::{
    netns::NetNs,
    ovn::OvnCentral,
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// A real ovn-controller chassis: its own Open_vSwitch DB (ovsdb-server) and
/// ovn-controller. No ovs-vswitchd: the tunnel ports it creates are rows in its DB, which
/// is what this test reads.
struct Peer {
    dir: PathBuf,
}

fn ovs_env(command: &mut Command, dir: &Path) {
    for var in [
        "OVS_RUNDIR",
        "OVN_RUNDIR",
        "OVS_LOGDIR",
        "OVN_LOGDIR",
        "OVS_DBDIR",
    ] {
        command.env(var, dir);
    }
}

impl Peer {
    fn start(ovn: &OvnCentral, name: &str, encap_ip: &str) -> Peer {
        Peer::start_in(ovn, name, encap_ip, None)
    }

    /// With `netns`: ovs-vswitchd runs there too, with `br-phy` owning the underlay veth
    /// `und` and the encap address on its internal port (OVS's userspace tunnels need it
    /// so), and the VIF `tap2` on `br-int` for logical port `p2`.
    fn start_in(ovn: &OvnCentral, name: &str, encap_ip: &str, netns: Option<&NetNs>) -> Peer {
        let dir = ovn.dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        process::run("ovsdb-tool", &["create", &path("conf.db"), VSWITCH_SCHEMA]).unwrap();
        let db = Daemon::new(&dir, "ovsdb");
        let in_ns = |program: &str| -> Command {
            let mut c = match netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns.name(), program]);
                    c
                }
                None => Command::new(program),
            };
            ovs_env(&mut c, &dir);
            c
        };
        let status = in_ns("ovsdb-server")
            .args([
                &path("conf.db"),
                &format!("--remote=punix:{}", path("db.sock")),
                &db.pidfile_arg(),
                &db.log_arg(),
                &format!("--unixctl={}", path("ovsdb.ctl")),
                "--detach",
                "--no-chdir",
            ])
            .status()
            .expect("ovsdb-server");
        assert!(status.success(), "ovsdb-server: {status}");
        let peer = Peer { dir: dir.clone() };
        peer.vsctl(&["--no-wait", "init"]);
        peer.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={name}"),
            &format!("external_ids:ovn-remote=\"{}\"", ovn.sb_remote()),
            "external_ids:ovn-encap-type=geneve",
            &format!("external_ids:ovn-encap-ip={encap_ip}"),
            "external_ids:ovn-bridge-datapath-type=netdev",
        ]);
        if let Some(ns) = netns {
            let vswitchd = Daemon::new(&peer.dir, "vswitchd");
            let status = in_ns("ovs-vswitchd")
                .args([
                    &format!("unix:{}", path("db.sock")),
                    &vswitchd.pidfile_arg(),
                    &vswitchd.log_arg(),
                    &format!("--unixctl={}", path("vswitchd.ctl")),
                    "--detach",
                    "--no-chdir",
                ])
                .status()
                .expect("ovs-vswitchd");
            assert!(status.success(), "ovs-vswitchd: {status}");
            peer.vsctl(&[
                "add-br",
                "br-phy",
                "--",
                "set",
                "Bridge",
                "br-phy",
                "datapath_type=netdev",
                "--",
                "add-port",
                "br-phy",
                "und",
            ]);
            ns.ip(&["addr", "add", &format!("{encap_ip}/24"), "dev", "br-phy"]);
            ns.ip(&["link", "set", "br-phy", "up"]);
            peer.vsctl(&[
                "add-br",
                "br-int",
                "--",
                "set",
                "Bridge",
                "br-int",
                "datapath_type=netdev",
                "fail-mode=secure",
                "other-config:disable-in-band=true",
            ]);
            peer.vsctl(&[
                "add-port",
                "br-int",
                "tap2",
                "--",
                "set",
                "Interface",
                "tap2",
                "external_ids:iface-id=p2",
            ]);
        }
        let controller = Daemon::new(&peer.dir, "ovn-controller");
        let status = in_ns("ovn-controller")
            .args([
                &format!("unix:{}", path("db.sock")),
                &controller.pidfile_arg(),
                &controller.log_arg(),
                "--detach",
                "--no-chdir",
            ])
            .status()
            .expect("ovn-controller");
        assert!(status.success(), "ovn-controller: {status}");
        peer
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut full = vec![db.as_str(), "--timeout=10"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full).unwrap()
    }

    /// The `ovn-chassis-id`s of the tunnel ports ovn-controller made (`CHASSIS@IP`).
    fn tunnels(&self) -> Vec<String> {
        self.vsctl(&[
            "--bare",
            "--columns=external_ids",
            "find",
            "Port",
            "external_ids:ovn-chassis-id!=\"\"",
        ])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ovn-chassis-id="))
        .map(|id| id.trim_matches('"').to_owned())
        .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("ovn-controller.log"))
        {
            eprintln!("--- peer ovn-controller.log ---\n{log}");
        }
        for name in ["ovn-controller", "vswitchd", "ovsdb"] {
            process::stop(
                &self.dir.join(format!("{name}.pid")),
                Duration::from_secs(5),
            );
        }
    }
}

/// `ovnest run` with its state and pins of its own, stopped (and its pins removed) on drop.
struct Agent {
    child: Child,
    state: PathBuf,
    pins: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(ovn: &OvnCentral, chassis: &str, encap_ip: &str) -> Agent {
        Agent::start_in(ovn, chassis, encap_ip, None, &[])
    }

    fn start_in(
        ovn: &OvnCentral,
        chassis: &str,
        encap_ip: &str,
        netns: Option<&NetNs>,
        binds: &[&str],
    ) -> Agent {
        let state = ovn.dir().join("ovnest-state");
        let log = ovn.dir().join("ovnest.log");
        let pins = PathBuf::from("/sys/fs/bpf/ovnest-test")
            .join(format!("{}-tunnels", std::process::id()));
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_ovnest")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ovnest")),
        };
        command.args(["run", "--datapath", "hybrid"]);
        for bind in binds {
            command.args(["--bind", bind]);
        }
        let child = command
            .args(["--chassis", chassis, "--ovn-remote", &ovn.sb_remote()])
            .args(["--encap-ip", encap_ip])
            .arg("--state-dir")
            .arg(&state)
            .arg("--bpffs-root")
            .arg(&pins)
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("ovnest run");
        Agent {
            child,
            state,
            pins,
            log,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of the child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- ovnest log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = Command::new(env!("CARGO_BIN_EXE_ovnest"))
            .args(["cleanup", "--state-dir"])
            .arg(&self.state)
            .arg("--bpffs-root")
            .arg(&self.pins)
            .output();
        remove_tree(&self.pins);
    }
}

/// Removes a bpffs directory tree (pins, then directories: bpffs has no recursive rmdir).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                remove_tree(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[test]
fn a_chassis_without_tunnels_gets_none_from_ovn_controller() {
    let test = "a_chassis_without_tunnels_gets_none_from_ovn_controller";
    if !require_root(test)
        || !require_tools(
            test,
            &[
                "ovsdb-tool",
                "ovsdb-server",
                "ovn-northd",
                "ovn-sbctl",
                "ovs-vsctl",
                "ovn-controller",
            ],
        )
    {
        return;
    }
    let ovn = OvnCentral::start();
    let peer = Peer::start(&ovn, "peer", "192.0.2.2");
    // 127.0.0.1, as the one-hypervisor lab has it: no wire to other chassis.
    let chassis = format!("hv-notun-{}", std::process::id());
    let agent = Agent::start(&ovn, &chassis, "127.0.0.1");

    // Registered, with the Encap the schema requires, alone in its transport zone.
    let zone = format!("ovnest-no-tunnels-{chassis}");
    wait::until("ovnest's chassis in its own zone", DEADLINE, || {
        ovn.try_sbctl(&[
            "--bare",
            "--columns=transport_zones",
            "find",
            "Chassis",
            &format!("name={chassis}"),
        ])
        .ok()
        .filter(|z| z.trim() == zone)
    });
    // The control: an ordinary chassis, added after ovnest's, gets its tunnel.
    ovn.sbctl(&["chassis-add", "control", "geneve", "192.0.2.9"]);
    wait::until("the peer's tunnel to the control chassis", DEADLINE, || {
        peer.tunnels()
            .contains(&"control@192.0.2.9".to_owned())
            .then_some(())
    });
    // By then the peer has seen ovnest's chassis too, and made no tunnel to it.
    assert_eq!(peer.tunnels(), ["control@192.0.2.9"]);
    let log = std::fs::read_to_string(peer.dir.join("ovn-controller.log")).unwrap();
    assert!(
        !log.contains(&format!("ovn-{chassis}")),
        "a port for ovnest's chassis appeared in the peer's log"
    );

    // ovnest says so.
    let status = wait::until("status with tunnels", DEADLINE, || {
        Status::read(&agent.state)
            .ok()
            .filter(|s| !s.tunnels.is_empty())
    });
    assert!(status.tunnels.starts_with("none: "), "{}", status.tunnels);
    let text = std::fs::read_to_string(&agent.log).unwrap();
    assert!(text.contains("no tunnels"), "{text}");
}

fn ping(ns: &NetNs, args: &[&str]) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "ping", "-c", "1", "-W", "1"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A VM: its namespace, cabled to `tap` on the hypervisor, with the port's MAC and IP.
fn vm(hv: &NetNs, tap: &str, label: &str, mac: &str, ip: &str) -> NetNs {
    let vm = NetNs::new(label);
    hv.veth_to(tap, &vm, "eth0");
    vm.ip(&["link", "set", "eth0", "address", mac]);
    vm.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    vm.without_ipv6();
    // Checksums in software: a veth would otherwise hand on partial ones.
    vm.exec(&["ethtool", "-K", "eth0", "tx", "off"]);
    vm.gro_on("eth0");
    vm
}

#[test]
fn ovnest_and_ovn_controller_tunnel_to_each_other() {
    let test = "ovnest_and_ovn_controller_tunnel_to_each_other";
    if !require_root(test)
        || !require_tools(
            test,
            &[
                "ovsdb-tool",
                "ovsdb-server",
                "ovn-northd",
                "ovn-nbctl",
                "ovs-vsctl",
                "ovs-vswitchd",
                "ovn-controller",
                "ethtool",
                "ping",
            ],
        )
    {
        return;
    }
    let ovn = OvnCentral::start();
    ovn.nbctl(&["ls-add", "sw"]);
    for i in 1..=2 {
        let port = format!("p{i}");
        ovn.nbctl(&["lsp-add", "sw", &port]);
        ovn.nbctl(&[
            "lsp-set-addresses",
            &port,
            &format!("02:00:00:00:00:0{i} 10.5.0.{i}"),
        ]);
    }
    let hv1 = NetNs::new("ghv1");
    let hv2 = NetNs::new("ghv2");
    hv1.without_ipv6();
    hv2.without_ipv6();
    hv1.veth_to("und", &hv2, "und");
    for hv in [&hv1, &hv2] {
        hv.exec(&["ethtool", "-K", "und", "gro", "on", "tx", "off"]);
    }
    hv1.ip(&["addr", "add", "10.99.0.1/24", "dev", "und"]);
    let vm1 = vm(&hv1, "tap1", "gvm1", "02:00:00:00:00:01", "10.5.0.1");
    let vm2 = vm(&hv2, "tap2", "gvm2", "02:00:00:00:00:02", "10.5.0.2");
    hv1.exec(&["ethtool", "-K", "tap1", "gro", "on"]);

    let peer = Peer::start_in(&ovn, "ghv2", "10.99.0.2", Some(&hv2));
    let chassis = "ghv1";
    let agent = Agent::start_in(&ovn, chassis, "10.99.0.1", Some(&hv1), &["tap1=p1"]);

    let status = wait::until("ovnest terminates geneve on und", DEADLINE, || {
        Status::read(&agent.state)
            .ok()
            .filter(|s| s.tunnels.starts_with("geneve on und"))
    });
    assert!(
        status.tunnels.starts_with("geneve on und"),
        "{}",
        status.tunnels
    );
    // Advertised: no transport zone, and the peer builds its tunnel to it.
    wait::until("the peer's tunnel to ovnest", DEADLINE, || {
        peer.tunnels()
            .contains(&format!("{chassis}@10.99.0.1"))
            .then_some(())
    });
    for port in ["p1", "p2"] {
        wait::until(&format!("{port} up"), DEADLINE, || {
            ovn.try_nbctl(&["get", "Logical_Switch_Port", port, "up"])
                .ok()
                .filter(|v| v.trim() == "true")
        });
    }

    // Unicast both ways (the first pings also resolve the underlay's neighbours).
    wait::until("vm1 pings vm2 across the tunnel", DEADLINE, || {
        ping(&vm1, &["10.5.0.2"])
    });
    let reply = ping(&vm2, &["10.5.0.1"]).expect("vm2 pings vm1");
    assert!(reply.contains("from 10.5.0.1"), "{reply}");
    // ARP for the other chassis's VM was answered (by ls_in_arp_rsp on the sending side).
    let neigh = vm1.ip(&["neigh", "show", "10.5.0.2"]);
    assert!(neigh.contains("02:00:00:00:00:02"), "{neigh}");
    // Broadcast: flooded to the other chassis (_MC_flood), answered from there.
    vm2.exec(&["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"]);
    let reply = wait::until(
        "a broadcast ping answered across the tunnel",
        DEADLINE,
        || ping(&vm1, &["-b", "10.5.0.255"]),
    );
    assert!(reply.contains("from 10.5.0.2"), "{reply}");

    // Tunnels follow the Chassis rows: one appears with a chassis (its next hop is
    // nobody here) and goes with it.
    let status = Status::read(&agent.state).unwrap();
    assert!(
        status.tunnels.ends_with("to ghv2 10.99.0.2"),
        "{}",
        status.tunnels
    );
    ovn.sbctl(&["chassis-add", "extra", "geneve", "10.99.0.77"]);
    wait::until("a tunnel to the new chassis", DEADLINE, || {
        Status::read(&agent.state)
            .ok()
            .filter(|s| s.tunnels.contains("extra 10.99.0.77 (next hop unresolved)"))
    });
    ovn.sbctl(&["chassis-del", "extra"]);
    wait::until("the tunnel gone with its chassis", DEADLINE, || {
        Status::read(&agent.state)
            .ok()
            .filter(|s| !s.tunnels.contains("extra") && s.tunnels.contains("ghv2"))
    });
    assert!(ping(&vm1, &["10.5.0.2"]).is_some(), "ghv2's tunnel stays");

    // The frames went through ovnest's tunnel path, both ways.
    let status = wait::until("status with tunnel counters", DEADLINE, || {
        Status::read(&agent.state).ok().filter(|s| {
            s.counters
                .get("userspace_tunnel_copies")
                .is_some_and(|n| *n >= 2)
        })
    });
    assert!(
        status
            .counters
            .get("userspace_tunnel_malformed")
            .copied()
            .unwrap_or(0)
            == 0,
        "{:?}",
        status.counters
    );
    drop(agent);
}
