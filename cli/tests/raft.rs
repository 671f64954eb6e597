//! The Southbound as production OVN runs it: a three-server RAFT cluster
//! (`ovsdb-tool create-cluster` / `join-cluster`), with `ovnest run --ovn-remote` given all
//! three remotes as ovn-controller is. The leader is killed with -9 while containers are
//! being added: ovnest follows the cluster and misses no change (every container claimed,
//! up and forwarded, `nb_cfg` acknowledged).
//!
//! ovn-controller connects to any member, not only the leader
//! (`ovsdb_idl_set_leader_only(sb, false)`): followers serve the same monitors and forward
//! transactions to the leader. ovnest does the same, and drops a member that reports it
//! lost the cluster (`_Server.Database.connected = false`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use ovnest::agent::status::Status;
use ovnest_lab::{
    central::{self, NB_SCHEMA, SB_SCHEMA},
    process::{self, Daemon},
};
use ovnest_tests::{
    fixtures::Frame,
    hypervisor::Hypervisor,
    netns,
    ovn::free_port,
    packet::PacketSocket,
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(90);
const OVNEST: &str = env!("CARGO_BIN_EXE_ovnest");
const MEMBERS: [&str; 3] = ["sb1", "sb2", "sb3"];
const CHILDREN: u16 = 24;

struct Cluster {
    dir: PathBuf,
    pins: PathBuf,
    agent: Option<std::process::Child>,
}

impl Cluster {
    fn sock(&self, member: &str) -> String {
        format!("unix:{}", self.dir.join(format!("{member}.sock")).display())
    }

    /// All three members, as ovn-controller's `ovn-remote` lists them.
    fn remotes(&self) -> String {
        MEMBERS
            .iter()
            .map(|m| self.sock(m))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn nb(&self) -> String {
        format!("unix:{}", self.dir.join("nb.sock").display())
    }

    fn nbctl(&self, args: &[&str]) -> String {
        let db = format!("--db={}", self.nb());
        let mut full = vec![db.as_str(), "--timeout=60"];
        full.extend_from_slice(args);
        process::run("ovn-nbctl", &full).unwrap_or_else(|e| panic!("ovn-nbctl: {e:#}"))
    }

    /// ovn-sbctl against whichever members are up (any member answers reads).
    fn sbctl(&self, args: &[&str]) -> Option<String> {
        let db = format!("--db={}", self.remotes());
        let mut full = vec![db.as_str(), "--no-leader-only", "--timeout=10"];
        full.extend_from_slice(args);
        process::run("ovn-sbctl", &full).ok()
    }

    fn role(&self, member: &str) -> Option<String> {
        let ctl = self.dir.join(format!("{member}.ctl"));
        let out = process::run(
            "ovs-appctl",
            &[
                "-t",
                &ctl.to_string_lossy(),
                "cluster/status",
                "OVN_Southbound",
            ],
        )
        .ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Role: "))
            .map(str::to_owned)
    }

    fn leader(&self) -> &'static str {
        wait::until("a leader", DEADLINE, || {
            MEMBERS
                .iter()
                .find(|m| self.role(m).as_deref() == Some("leader"))
                .copied()
        })
    }

    fn kill(&self, member: &str) {
        let pid = process::alive(&self.dir.join(format!("{member}.pid"))).expect("member runs");
        // SAFETY: killing a server this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    fn up(&self, port: &str) -> bool {
        self.sbctl(&[
            "--bare",
            "--columns=up",
            "find",
            "Port_Binding",
            &format!("logical_port={port}"),
        ])
        .is_some_and(|o| o.trim() == "true")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.join("ovnest.log"))
        {
            eprintln!("--- ovnest.log ---\n{log}");
        }
        process::stop(&self.dir.join("ovnest.pid"), Duration::from_secs(5));
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.wait();
        }
        for name in ["northd", "sb1", "sb2", "sb3", "nb"] {
            process::stop(
                &self.dir.join(format!("{name}.pid")),
                Duration::from_secs(5),
            );
        }
        remove_tree(&self.pins);
        let _ = std::fs::remove_dir_all(&self.dir);
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

fn start_cluster(dir: &Path) -> Cluster {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let cluster = Cluster {
        dir: dir.to_owned(),
        pins: PathBuf::from("/sys/fs/bpf/ovnest-test").join(format!("{}-raft", std::process::id())),
        agent: None,
    };
    let raft: Vec<String> = MEMBERS
        .iter()
        .map(|_| format!("tcp:127.0.0.1:{}", free_port()))
        .collect();
    let db = |m: &str| dir.join(format!("{m}.db")).to_string_lossy().into_owned();
    process::run(
        "ovsdb-tool",
        &["create-cluster", &db("sb1"), SB_SCHEMA, &raft[0]],
    )
    .unwrap();
    for (i, member) in MEMBERS.iter().enumerate().skip(1) {
        process::run(
            "ovsdb-tool",
            &[
                "join-cluster",
                &db(member),
                "OVN_Southbound",
                &raft[i],
                &raft[0],
            ],
        )
        .unwrap();
    }
    central::start_db(dir, "nb", NB_SCHEMA, &[]).unwrap();
    for member in MEMBERS {
        central::start_db(dir, member, SB_SCHEMA, &[]).unwrap();
    }
    for member in MEMBERS {
        process::run(
            "ovsdb-client",
            &[
                "--timeout=60",
                "wait",
                &cluster.sock(member),
                "OVN_Southbound",
                "connected",
            ],
        )
        .unwrap();
    }
    cluster.nbctl(&["--no-wait", "init"]);
    let northd = Daemon::new(dir, "northd");
    process::run(
        "ovn-northd",
        &[
            &format!("--ovnnb-db={}", cluster.nb()),
            &format!("--ovnsb-db={}", cluster.remotes()),
            &northd.pidfile_arg(),
            &northd.log_arg(),
            &format!("--unixctl={}", dir.join("northd.ctl").display()),
            "--detach",
            "--no-chdir",
        ],
    )
    .unwrap();
    cluster
}

#[test]
fn ovnest_follows_a_raft_southbound_whose_leader_dies_and_misses_no_change() {
    let test = "raft_leader_killed";
    if !require_root(test)
        || !require_tools(
            test,
            &[
                "ovsdb-tool",
                "ovsdb-server",
                "ovn-northd",
                "ovn-nbctl",
                "nsenter",
                "ethtool",
            ],
        )
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ovnest-raft-{}", std::process::id()));
    let mut cluster = start_cluster(&dir);
    let (hv, vms) = Hypervisor::with_vms();

    cluster.nbctl(&["ls-add", "dmz"]);
    for (port, mac) in [
        ("dmz-vm1", "02:ac:10:ff:01:30"),
        ("dmz-vm2", "02:ac:10:ff:01:31"),
        ("dmz-vm5", "02:ac:10:ff:01:32"),
    ] {
        cluster.nbctl(&["lsp-add", "dmz", port, "--", "lsp-set-addresses", port, mac]);
    }
    let log = std::fs::File::create(dir.join("ovnest.log")).unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", hv.ns.name()))
        .arg(OVNEST)
        .args([
            "run",
            "--datapath",
            "xdp",
            "--chassis",
            "hv1",
            "--encap-ip",
            "127.0.0.1",
        ])
        .args(["--ovn-remote", &cluster.remotes()])
        .args([
            "--bind",
            "vm1=dmz-vm1",
            "--bind",
            "vm2=dmz-vm2",
            "--bind",
            "vm5=dmz-vm5",
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--bpffs-root")
        .arg(&cluster.pins)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("ovnest run");
    std::fs::write(dir.join("ovnest.pid"), child.id().to_string()).unwrap();
    cluster.agent = Some(child);
    wait::until("the VIFs up", DEADLINE, || {
        ["dmz-vm1", "dmz-vm2", "dmz-vm5"]
            .iter()
            .all(|p| cluster.up(p))
            .then_some(())
    });

    // Containers added one transaction at a time; the leader dies half way.
    let leader = cluster.leader();
    let connected_to = Status::read(&dir.join("state"))
        .map(|s| s.southbound)
        .unwrap_or_default();
    println!("leader {leader}; ovnest {connected_to}");
    for tag in 1..=CHILDREN {
        let port = format!("dmz-c{tag}");
        let mac = format!("02:00:00:00:00:{tag:02x}");
        cluster.nbctl(&[
            "lsp-add",
            "dmz",
            &port,
            "dmz-vm5",
            &tag.to_string(),
            "--",
            "lsp-set-addresses",
            &port,
            &mac,
        ]);
        if tag == CHILDREN / 2 {
            cluster.kill(leader);
            println!("killed the leader {leader}");
        }
    }
    wait::until("every container claimed and up", DEADLINE, || {
        (1..=CHILDREN)
            .all(|tag| cluster.up(&format!("dmz-c{tag}")))
            .then_some(())
    });
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader, "a new leader was elected");
    cluster.nbctl(&["--wait=hv", "sync"]);
    let status = Status::read(&dir.join("state")).expect("status");
    assert!(
        status.southbound.starts_with("connected"),
        "{}",
        status.southbound
    );
    println!("after: leader {new_leader}; ovnest {}", status.southbound);

    // The datapath holds them: a container's frames reach vm1.
    let vm5 = {
        let _in = netns::enter(vms.vm5.name());
        PacketSocket::open("eth0").unwrap()
    };
    let vm1 = {
        let _in = netns::enter(vms.vm1.name());
        PacketSocket::open("eth0").unwrap()
    };
    for tag in [1, CHILDREN / 2, CHILDREN] {
        let marker = 9000 + tag;
        let frame = Frame::eth(
            [0x02, 0xac, 0x10, 0xff, 0x01, 0x30],
            [2, 0, 0, 0, 0, tag as u8],
        )
        .udp([172, 16, 255, 150], [172, 16, 255, 130], marker, 5001, 32)
        .vlan(tag)
        .build();
        vm5.send(&frame).unwrap();
        let got = vm1
            .recv_matching(Duration::from_secs(3), |f| {
                f.bytes.len() > 36 && f.bytes[34..36] == marker.to_be_bytes()
            })
            .unwrap();
        assert!(got.is_some(), "dmz-c{tag} not forwarded");
    }
    drop(hv);
}
