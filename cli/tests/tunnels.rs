//! Tunnels against real ovn-controller: a chassis never advertises an Encap it cannot
//! terminate. ovnest without tunnels (its encap IP on no interface it can use) registers
//! alone in a transport zone of its own, so a real ovn-controller peer builds no Geneve
//! port to it, while it does build one to an ordinary chassis (the control); `ovnest
//! status` says there are no tunnels, and why.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use ovnest::agent::status::Status;
use ovnest_lab::process::{self, Daemon};
use ovnest_tests::{
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

impl Peer {
    fn start(ovn: &OvnCentral, name: &str, encap_ip: &str) -> Peer {
        let dir = ovn.dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        process::run("ovsdb-tool", &["create", &path("conf.db"), VSWITCH_SCHEMA]).unwrap();
        let db = Daemon::new(&dir, "ovsdb");
        process::run(
            "ovsdb-server",
            &[
                &path("conf.db"),
                &format!("--remote=punix:{}", path("db.sock")),
                &db.pidfile_arg(),
                &db.log_arg(),
                &format!("--unixctl={}", path("ovsdb.ctl")),
                "--detach",
                "--no-chdir",
            ],
        )
        .unwrap();
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
        let controller = Daemon::new(&peer.dir, "ovn-controller");
        let mut command = Command::new("ovn-controller");
        for var in ["OVS_RUNDIR", "OVN_RUNDIR", "OVS_LOGDIR", "OVN_LOGDIR"] {
            command.env(var, &peer.dir);
        }
        let status = command
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
        for name in ["ovn-controller", "ovsdb"] {
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
        let state = ovn.dir().join("ovnest-state");
        let log = ovn.dir().join("ovnest.log");
        let pins = PathBuf::from("/sys/fs/bpf/ovnest-test")
            .join(format!("{}-tunnels", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_ovnest"))
            .args(["run", "--datapath", "hybrid"])
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
