//! The seed lab end to end: real OVN (NB, SB, northd driven by `ovn-nbctl` as an operator
//! types it), vm5's real OVS tagging bridge, and the `ovnest` binary on the hypervisor
//! namespace with XDP on real veths. Every wait polls a condition with a deadline.

use std::{path::PathBuf, time::Duration};

use ovnest::agent::{config::DatapathMode, status::Status};
use ovnest_lab::{
    Lab,
    hypervisors::{self, Hv2Agent},
};
use ovnest_tests::{
    netns,
    packet::{PacketSocket, Received},
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovs-vswitchd",
    "ping",
    "ethtool",
];

/// A lab with its own namespace prefix and directory, torn down on drop.
struct TestLab(Lab);

impl TestLab {
    fn up(name: &str, datapath: DatapathMode) -> TestLab {
        TestLab::up_with(name, datapath, 1, ovnest_lab::Addressing::Static)
    }

    fn up_with(
        name: &str,
        datapath: DatapathMode,
        hypervisors: u8,
        addressing: ovnest_lab::Addressing,
    ) -> TestLab {
        TestLab::up_hv2(name, datapath, hypervisors, addressing, Default::default())
    }

    fn up_hv2(
        name: &str,
        datapath: DatapathMode,
        hypervisors: u8,
        addressing: ovnest_lab::Addressing,
        hv2_agent: Hv2Agent,
    ) -> TestLab {
        let prefix = format!("t{}{name}-", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
        Lab::down(&dir);
        let args = ovnest_lab::LabArgs {
            dir,
            prefix,
            ovnest: Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
            agent: ovnest_lab::AgentKind::Ovnest,
            datapath,
            containers: Default::default(),
            addressing,
            hypervisors,
            hv2_agent,
        };
        TestLab(Lab::up(&args).unwrap_or_else(|e| panic!("lab up: {e:#}")))
    }

    fn ping(&self, from: &str, ip: &str) -> bool {
        self.0.exec(from, "ping", &["-c1", "-W1", ip]).is_ok()
    }

    /// Pings until one answer comes back, or panics after the deadline.
    fn assert_pings(&self, from: &str, ip: &str) {
        wait::until(&format!("{from} -> {ip} answers"), DEADLINE, || {
            self.ping(from, ip).then_some(())
        });
    }

    /// Three one-second pings all unanswered.
    fn assert_no_ping(&self, from: &str, ip: &str) {
        for _ in 0..3 {
            assert!(!self.ping(from, ip), "{from} -> {ip} still answers");
        }
    }

    fn sb_port(&self, port: &str, column: &str) -> String {
        self.0
            .sbctl(&[
                "--bare",
                &format!("--columns={column}"),
                "find",
                "Port_Binding",
                &format!("logical_port={port}"),
            ])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn status(&self) -> Status {
        wait::until("status.json", DEADLINE, || {
            Status::read(&self.0.state_dir()).ok()
        })
    }

    fn counter(&self, name: &str) -> u64 {
        self.status().counters.get(name).copied().unwrap_or(0)
    }

    /// The name of the chassis `port` is bound to.
    fn chassis_of(&self, port: &str) -> String {
        let uuid = self.sb_port(port, "chassis");
        if uuid.is_empty() {
            return String::new();
        }
        self.0
            .sbctl(&["--bare", "--columns=name", "list", "Chassis", &uuid])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.0.dir.join("ovnest.log"))
        {
            eprintln!("--- ovnest.log ---\n{log}");
            for other in ["hv2-ovnest.log", "hv2-ovn-controller.log"] {
                if let Ok(log) = std::fs::read_to_string(self.0.dir.join(other)) {
                    eprintln!("--- {other} ---\n{log}");
                }
            }
        }
        Lab::down(&self.0.dir);
    }
}

const VM1: &str = "172.16.255.130";
const VM5: &str = "172.16.255.132";
const C51: &str = "172.16.255.133";
const C52: &str = "172.16.255.134";

#[test]
fn seed_lab_end_to_end() {
    if !require_root("seed_lab_end_to_end") || !require_tools("seed_lab_end_to_end", TOOLS) {
        return;
    }
    let lab = TestLab::up("e2e", DatapathMode::Xdp);
    let chassis = lab
        .0
        .sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", "name=hv1"])
        .unwrap()
        .trim()
        .to_owned();
    assert!(!chassis.is_empty(), "chassis hv1 registered");

    // Every port claimed by hv1 and up, in the SB and in the NB.
    for port in ["dmz-vm1", "dmz-vm2", "dmz-vm5", "dmz-c51", "dmz-c52"] {
        assert_eq!(lab.sb_port(port, "chassis"), chassis, "{port} chassis");
        assert_eq!(lab.sb_port(port, "up"), "true", "{port} up in SB");
        let nb_up = lab
            .0
            .nbctl(&[
                "--bare",
                "--columns=up",
                "find",
                "Logical_Switch_Port",
                &format!("name={port}"),
            ])
            .unwrap();
        assert_eq!(nb_up.trim(), "true", "{port} up in NB");
    }
    lab.0
        .nbctl(&["--wait=hv", "sync"])
        .expect("--wait=hv returns");

    // The seed's connectivity: containers, VMs, hairpin through vm5's VIF, parent <-> child.
    lab.assert_pings("vm1", C51);
    lab.assert_pings("vm1", C52);
    lab.assert_pings("vm2", C51);
    lab.assert_pings("c51", C52);
    lab.assert_pings("vm5", C51);
    lab.assert_pings("c52", VM5);

    // A spoofed source MAC from c51 and a frame on an unused tag reach nobody, counted.
    let spoof_before = lab.counter("drop_port_security");
    lab.0
        .exec(
            "c51",
            "ip",
            &["link", "set", "eth0", "address", "02:00:00:00:00:66"],
        )
        .unwrap();
    lab.0
        .exec(
            "c51",
            "ip",
            &[
                "neigh",
                "replace",
                VM1,
                "lladdr",
                "02:ac:10:ff:01:30",
                "dev",
                "eth0",
            ],
        )
        .unwrap();
    assert!(!lab.ping("c51", VM1), "spoofed c51 reached vm1");
    wait::until("spoofed frames counted", DEADLINE, || {
        (lab.counter("drop_port_security") > spoof_before).then_some(())
    });
    lab.0
        .exec(
            "c51",
            "ip",
            &["link", "set", "eth0", "address", "02:ac:10:ff:01:33"],
        )
        .unwrap();
    lab.assert_pings("c51", VM1);

    let unknown_before = lab.counter("drop_unknown_tag");
    lab.0.vm5_vsctl(&["set", "Port", "c52", "tag=99"]).unwrap();
    assert!(!lab.ping("c52", VM1), "unused tag 99 reached vm1");
    wait::until("unused tag counted", DEADLINE, || {
        (lab.counter("drop_unknown_tag") > unknown_before).then_some(())
    });

    // Tag change in OVN: 52 -> 53. Traffic flows once the VM bridge uses 53 too.
    lab.0
        .nbctl(&[
            "--wait=hv",
            "set",
            "Logical_Switch_Port",
            "dmz-c52",
            "tag=53",
        ])
        .unwrap();
    lab.0.vm5_vsctl(&["set", "Port", "c52", "tag=52"]).unwrap();
    lab.assert_no_ping("c52", VM1);
    lab.0.vm5_vsctl(&["set", "Port", "c52", "tag=53"]).unwrap();
    lab.assert_pings("c52", VM1);
    assert_eq!(lab.sb_port("dmz-c52", "up"), "true");

    // Reparent c52 under vm2: the row is re-created; hv1 claims it again under vm2, and
    // vm5's tag 53 no longer means c52.
    lab.0
        .nbctl(&[
            "--wait=hv",
            "set",
            "Logical_Switch_Port",
            "dmz-c52",
            "parent_name=dmz-vm2",
        ])
        .unwrap();
    wait::until("c52 claimed under vm2", DEADLINE, || {
        (lab.sb_port("dmz-c52", "parent_port") == "dmz-vm2"
            && lab.sb_port("dmz-c52", "up") == "true")
            .then_some(())
    });
    lab.assert_no_ping("c52", VM1);
    lab.0
        .nbctl(&[
            "--wait=hv",
            "set",
            "Logical_Switch_Port",
            "dmz-c52",
            "parent_name=dmz-vm5",
        ])
        .unwrap();
    lab.assert_pings("c52", VM1);

    // A new child with tag_request=0: northd picks the tag, hv1 binds it.
    lab.0
        .nbctl(&[
            "--wait=hv",
            "lsp-add",
            "dmz",
            "dmz-c57",
            "dmz-vm5",
            "0",
            "--",
            "lsp-set-addresses",
            "dmz-c57",
            "02:ac:10:ff:01:57 172.16.255.157",
        ])
        .unwrap();
    let tag = wait::until("dmz-c57 tag allocated and up", DEADLINE, || {
        let tag: u16 = lab.sb_port("dmz-c57", "tag").parse().ok()?;
        (lab.sb_port("dmz-c57", "up") == "true").then_some(tag)
    });
    assert!((1..=4095).contains(&tag));
    let status = lab.status();
    let vm5 = status
        .ports
        .iter()
        .find(|p| p.logical_port == "dmz-vm5")
        .expect("vm5 in status");
    assert!(
        vm5.children
            .iter()
            .any(|c| c.logical_port == "dmz-c57" && c.tag == Some(tag)),
        "{vm5:?}"
    );

    // The SB monitor holds the local datapaths only; ovn-monitor-all=true in the local
    // Open_vSwitch DB widens it to every row on the fly, and removing it narrows it again.
    let monitoring = |want: &str| {
        wait::until(&format!("monitoring {want}"), DEADLINE, || {
            (lab.status().sb_monitor == want).then_some(())
        })
    };
    // Every datapath of the lab is local (inside is behind lr0); a switch without a port
    // here is not.
    lab.0.nbctl(&["--wait=sb", "ls-add", "far"]).unwrap();
    monitoring("local datapaths [dmz, inside, lr0]");
    let vsctl = |args: &[&str]| {
        let db = format!("--db={}", lab.0.hv_db);
        // --no-wait: the hypervisor's DB has no ovs-vswitchd to wait for.
        let out = std::process::Command::new("ovs-vsctl")
            .args([db.as_str(), "--no-wait", "--timeout=10"])
            .args(args)
            .output()
            .expect("ovs-vsctl");
        assert!(out.status.success(), "ovs-vsctl {args:?}: {out:?}");
    };
    vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "external_ids:ovn-monitor-all=true",
    ]);
    monitoring("every row (ovn-monitor-all)");
    lab.assert_pings("c52", VM1);
    vsctl(&[
        "remove",
        "Open_vSwitch",
        ".",
        "external_ids",
        "ovn-monitor-all",
    ]);
    monitoring("local datapaths [dmz, inside, lr0]");

    // Delete c51: its traffic stops, c52 is unaffected.
    lab.0.nbctl(&["--wait=hv", "lsp-del", "dmz-c51"]).unwrap();
    lab.assert_no_ping("vm1", C51);
    lab.assert_pings("c52", VM1);

    // SIGTERM is a stop for restart: the chassis stays. `ovnest cleanup` is the exit that
    // releases the ports and removes the chassis.
    assert!(lab.0.stop_agent());
    assert!(!chassis.is_empty());
    assert_eq!(
        lab.0
            .sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", "name=hv1"])
            .unwrap()
            .trim(),
        chassis,
        "chassis kept on SIGTERM"
    );
    let cleanup = std::process::Command::new(env!("CARGO_BIN_EXE_ovnest"))
        .args(["cleanup", "--state-dir"])
        .arg(lab.0.state_dir())
        .output()
        .expect("ovnest cleanup");
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    wait::until("chassis removed", DEADLINE, || {
        lab.0
            .sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", "name=hv1"])
            .ok()
            .filter(|o| o.trim().is_empty())
    });
    assert_eq!(lab.sb_port("dmz-c52", "chassis"), "");
}

#[test]
fn forwarding_survives_the_southbound_going_away() {
    if !require_root("forwarding_survives_the_southbound_going_away")
        || !require_tools("headless", TOOLS)
    {
        return;
    }
    let lab = TestLab::up("hl", DatapathMode::Xdp);
    lab.assert_pings("c51", VM1);
    lab.0.stop_sb();
    wait::until("agent notices", DEADLINE, || {
        lab.status()
            .southbound
            .starts_with("disconnected")
            .then_some(())
    });
    lab.assert_pings("c51", VM1);
    lab.assert_pings("c52", C51);
    // A change made while the SB is away is picked up after it returns.
    lab.0.start_sb().unwrap();
    wait::until("agent reconnects", DEADLINE, || {
        lab.status()
            .southbound
            .starts_with("connected")
            .then_some(())
    });
    lab.0.nbctl(&["--wait=hv", "lsp-del", "dmz-c52"]).unwrap();
    lab.assert_no_ping("c52", VM1);
    lab.assert_pings("c51", VM1);
}

/// A kernel counter of an interface in one of the lab's namespaces.
fn iface_counter(lab: &TestLab, ns: &str, dev: &str, counter: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{counter}");
    lab.0
        .exec(ns, "cat", &[&path])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// (rx, tx) of `port` from a status the agent wrote after `after_ms`.
fn port_stats(lab: &TestLab, port: &str, after_ms: i64) -> (u64, u64) {
    let status = wait::until("a fresh status", DEADLINE, || {
        Status::read(&lab.0.state_dir())
            .ok()
            .filter(|s| s.updated_unix_ms > after_ms)
    });
    let all = status
        .ports
        .iter()
        .flat_map(|p| std::iter::once(p).chain(p.children.iter()));
    all.filter(|p| p.logical_port == port)
        .map(|p| (p.rx_packets, p.tx_packets))
        .next()
        .unwrap_or_default()
}

/// `--datapath afxdp`: every frame through the userspace datapath. The lab works, and
/// ovnest's per-port counters match what the VMs' own interfaces counted.
#[test]
fn afxdp_mode_carries_the_lab_and_counts_every_frame() {
    if !require_root("afxdp_mode") || !require_tools("afxdp_mode", TOOLS) {
        return;
    }
    let lab = TestLab::up("ax", DatapathMode::Afxdp);
    assert_eq!(lab.status().datapath, "afxdp");
    lab.assert_pings("c51", VM1);
    lab.assert_pings("c51", C52);
    lab.assert_pings("vm5", C51);
    lab.assert_pings("vm2", C52);

    // Quiet now: count what vm1 sends and receives against dmz-vm1's counters, read from
    // a status written after the interface counters were.
    let sent_before = iface_counter(&lab, "vm1", "eth0", "tx_packets");
    let received_before = iface_counter(&lab, "vm1", "eth0", "rx_packets");
    let (rx_before, tx_before) = port_stats(&lab, "dmz-vm1", now_ms());
    lab.0
        .exec("vm1", "ping", &["-c5", "-i0.2", "-W1", C51])
        .expect("5 pings vm1 -> c51");
    let sent = iface_counter(&lab, "vm1", "eth0", "tx_packets") - sent_before;
    let received = iface_counter(&lab, "vm1", "eth0", "rx_packets") - received_before;
    assert!(
        sent >= 5 && received >= 5,
        "sent {sent}, received {received}"
    );
    let mut last = (0, 0);
    let matched = wait::poll(DEADLINE, || {
        let (rx, tx) = port_stats(&lab, "dmz-vm1", now_ms());
        last = (rx - rx_before, tx - tx_before);
        last == (sent, received)
    });
    assert!(
        matched,
        "dmz-vm1 (rx, tx) moved by {last:?}; vm1's eth0 sent {sent}, received {received}"
    );
    assert!(
        lab.counter("userspace_logical_delivered") > 0,
        "frames went through the logical pipeline in userspace"
    );
    assert_eq!(
        lab.counter("redirected"),
        0,
        "nothing forwarded in XDP in afxdp mode"
    );
}

/// `--datapath hybrid`: a broadcast XDP hands up is flooded (by the logical pipeline's
/// `_MC_flood` group) to every other port of the switch, each container with its own
/// tag, and never back to its sender.
#[test]
fn hybrid_mode_floods_broadcasts_to_every_other_port_once() {
    if !require_root("hybrid_flood") || !require_tools("hybrid_flood", TOOLS) {
        return;
    }
    let lab = TestLab::up("hy", DatapathMode::Hybrid);
    lab.assert_pings("c51", VM1);
    let open = |ns: &str, dev: &str| {
        let _inside = netns::enter(&lab.0.ns(ns));
        PacketSocket::open(dev).expect("packet socket")
    };
    let receivers = [
        ("vm1", "eth0"),
        ("vm2", "eth0"),
        ("c52", "eth0"),
        ("vm5", "vm5"),
        ("c51", "eth0"),
    ];
    let sockets: Vec<(&str, PacketSocket)> = receivers
        .iter()
        .map(|(ns, dev)| (*ns, open(ns, dev)))
        .collect();
    // c51 asks for an address nobody has: ARP requests to broadcast, which only a flood
    // delivers.
    let _ = lab.0.exec("c51", "ping", &["-c1", "-W1", "172.16.255.150"]);
    let asks_for_150 = |f: &Received| {
        f.bytes.len() >= 42
            && f.bytes[12..14] == [8, 6]
            && f.bytes[21] == 1
            && f.bytes[38..42] == [172, 16, 255, 150]
    };
    for (ns, socket) in &sockets {
        let got = socket
            .recv_matching(Duration::from_secs(3), asks_for_150)
            .unwrap();
        if *ns == "c51" {
            assert!(got.is_none(), "the flood came back to its sender c51");
        } else {
            let got = got.unwrap_or_else(|| panic!("{ns} never saw c51's broadcast"));
            assert_eq!(
                got.bytes[6..12],
                [0x02, 0xac, 0x10, 0xff, 0x01, 0x33],
                "{ns}: from c51"
            );
        }
    }
    assert!(lab.counter("userspace_logical_delivered") > 0);
}

/// The seed's own steps, decided by OVN's logical flows in ovnest (`--datapath hybrid`):
/// a tagged container gets its address from OVN's DHCP with `dhclient`, exactly the
/// options the operator set; ARPs for and pings its gateway; a TTL-1 ping comes back as
/// time exceeded from the router; a DHCP request from a spoofed MAC gets nothing; ACLs
/// added and removed with `--wait=hv` apply from the next frame, to-lport on a container
/// and from-lport on a VM.
#[test]
fn seed_steps_through_the_logical_pipeline() {
    if !require_root("seed_steps") || !require_tools("seed_steps", &[TOOLS, &["dhclient"]].concat())
    {
        return;
    }
    let lab = TestLab::up("sd", DatapathMode::Hybrid);
    lab.assert_pings("c51", VM1);
    let dir = lab.0.dir.clone();
    // dhclient as the seed runs it, giving up after 10 s without a lease; once bound it
    // configures the interface and route and goes to the background, where it is
    // stopped at once (kill -9: no release) so the lab's teardown finds no process.
    let conf = dir.join("dhclient.conf");
    std::fs::write(&conf, "timeout 10;\nretry 60;\n").unwrap();
    let dhclient = |ns: &str| -> Result<String, String> {
        let lease = dir.join(format!("{ns}.leases"));
        let _ = std::fs::remove_file(&lease);
        let pid = dir.join(format!("{ns}.dhclient.pid"));
        let out = lab.0.exec(
            ns,
            "dhclient",
            &[
                "-1",
                "-cf",
                &conf.display().to_string(),
                "-pf",
                &pid.display().to_string(),
                "-lf",
                &lease.display().to_string(),
                "eth0",
            ],
        );
        if let Ok(p) = std::fs::read_to_string(&pid)
            && let Ok(p) = p.trim().parse::<i32>()
        {
            // SAFETY: kill(2) with a pid read from dhclient's own pid file.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let leases = std::fs::read_to_string(&lease).unwrap_or_default();
        match out {
            Ok(_) if leases.contains("fixed-address") => Ok(leases),
            other => Err(format!("{other:?}")),
        }
    };

    // DHCP: c51 (tag 51, behind vm5's bridge) without an address asks with dhclient.
    lab.0
        .exec("c51", "ip", &["addr", "flush", "dev", "eth0"])
        .unwrap();
    let lease = dhclient("c51").expect("c51 gets a lease from OVN's DHCP through ovnest");
    let dhcp_uuid = lab
        .0
        .nbctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "DHCP_Options",
            "cidr=\"172.16.255.128/26\"",
        ])
        .unwrap();
    let options = lab
        .0
        .nbctl(&["dhcp-options-get-options", dhcp_uuid.trim()])
        .unwrap();
    let option = |name: &str| {
        options
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("DHCP option {name} in {options}"))
            .to_owned()
    };
    for expected in [
        format!("fixed-address {C51};"),
        "option subnet-mask 255.255.255.192;".to_owned(),
        format!("option routers {};", option("router")),
        format!("option dhcp-lease-time {};", option("lease_time")),
        format!("option dhcp-server-identifier {};", option("server_id")),
    ] {
        assert!(
            lease.contains(&expected),
            "lease lacks `{expected}`:\n{lease}"
        );
    }
    let addr = lab
        .0
        .exec("c51", "ip", &["-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        addr.contains(&format!("{C51}/26")),
        "c51 configured: {addr}"
    );

    // The gateway: ARP answered by the pipeline, then ICMP echo from lr0.
    lab.assert_pings("c51", GATEWAY);
    let neigh = lab
        .0
        .exec("c51", "ip", &["neigh", "show", GATEWAY])
        .unwrap();
    assert!(
        neigh.contains("02:ac:10:ff:01:29"),
        "router's MAC learnt: {neigh}"
    );

    // TTL 1 towards another network: time exceeded from the router (pinctrl's icmp4).
    // ping fails (no echo reply): its report is what matters, so keep its output.
    let text = lab
        .0
        .exec(
            "c51",
            "sh",
            &["-c", "ping -c1 -W2 -t1 172.16.255.194; true"],
        )
        .unwrap();
    assert!(
        text.contains("Time to live exceeded") && text.contains(GATEWAY),
        "ping -t1 answered by the router: {text}"
    );

    // A DHCP request from a MAC that is not c51's: port security, no offer.
    lab.0
        .exec(
            "c51",
            "ip",
            &["link", "set", "eth0", "address", "02:00:00:00:00:66"],
        )
        .unwrap();
    lab.0
        .exec("c51", "ip", &["addr", "flush", "dev", "eth0"])
        .unwrap();
    assert!(dhclient("c51").is_err(), "a spoofed MAC got a DHCP lease");
    lab.0
        .exec(
            "c51",
            "ip",
            &["link", "set", "eth0", "address", "02:ac:10:ff:01:33"],
        )
        .unwrap();
    lab.0
        .exec(
            "c51",
            "ip",
            &["addr", "add", &format!("{C51}/26"), "dev", "eth0"],
        )
        .unwrap();
    lab.assert_pings("c51", VM1);

    // ACLs, live: to-lport on the container, from-lport on a VM.
    lab.assert_pings("vm2", C51);
    lab.0
        .nbctl(&[
            "--wait=hv",
            "acl-add",
            "dmz",
            "to-lport",
            "1001",
            "ip4.src == 172.16.255.131",
            "drop",
        ])
        .unwrap();
    assert!(
        !lab.ping("vm2", C51),
        "to-lport drop ACL ignored (first frame after --wait=hv)"
    );
    assert!(lab.ping("vm1", C51), "the ACL dropped more than vm2");
    lab.0
        .nbctl(&[
            "--wait=hv",
            "acl-add",
            "dmz",
            "from-lport",
            "1001",
            "inport == \"dmz-vm1\" && ip4.dst == 172.16.255.134",
            "drop",
        ])
        .unwrap();
    assert!(!lab.ping("vm1", C52), "from-lport drop ACL on vm1 ignored");
    assert!(
        lab.ping("vm1", C51),
        "the from-lport ACL dropped more than vm1 -> c52"
    );
    lab.0.nbctl(&["--wait=hv", "acl-del", "dmz"]).unwrap();
    assert!(lab.ping("vm2", C51), "removed ACL still drops");
    assert!(lab.ping("vm1", C52), "removed ACL still drops");
    assert!(
        lab.counter("userspace_logical_dropped") > 0,
        "drops counted"
    );
}

const GATEWAY: &str = "172.16.255.129";

/// `--datapath hybrid`: a flow served from the XDP decision cache obeys an ACL from the
/// acknowledgement of its `nb_cfg` on. c51 sends a UDP frame to vm1 every 10 ms (raw
/// sockets, a sequence number in each); a drop ACL added with `--wait=hv` drops the
/// very next frame sent after the command returned, and every one after it; removed
/// with `--wait=hv`, the next frame passes again.
#[test]
fn cached_flows_follow_acls_from_the_acknowledgement_on() {
    use std::{
        sync::{
            Mutex,
            atomic::{AtomicBool, Ordering},
        },
        time::Instant,
    };
    if !require_root("cached_flows_follow_acls")
        || !require_tools("cached_flows_follow_acls", TOOLS)
    {
        return;
    }
    let lab = TestLab::up("co", DatapathMode::Hybrid);
    lab.assert_pings("c51", VM1);
    let (c51_mac, vm1_mac) = (
        [0x02, 0xac, 0x10, 0xff, 0x01, 0x33],
        [0x02, 0xac, 0x10, 0xff, 0x01, 0x30],
    );
    let frame = |seq: u32| {
        let mut f = ovnest_tests::fixtures::Frame::eth(vm1_mac, c51_mac)
            .udp([172, 16, 255, 133], [172, 16, 255, 130], 40000, 5001, 16)
            .build();
        let n = f.len();
        f[n - 4..].copy_from_slice(&seq.to_be_bytes());
        f
    };
    let seq_of = |f: &Received| {
        let b = &f.bytes;
        (b.len() >= 58
            && b[12..14] == [8, 0]
            && b[26..30] == [172, 16, 255, 133]
            && b[36..38] == [0x13, 0x89])
        .then(|| {
            u32::from_be_bytes([
                b[b.len() - 4],
                b[b.len() - 3],
                b[b.len() - 2],
                b[b.len() - 1],
            ])
        })
    };
    let open = |ns: &str| {
        let _inside = netns::enter(&lab.0.ns(ns));
        PacketSocket::open("eth0").expect("packet socket")
    };
    let (tx, rx) = (open("c51"), open("vm1"));
    // (sequence number, when its send started), and the numbers received.
    let sent: Mutex<Vec<(u32, Instant)>> = Mutex::new(Vec::new());
    let received: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let acl = [
        "dmz",
        "to-lport",
        "1001",
        "ip4.src == 172.16.255.133 && udp.dst == 5001",
    ];
    let (added, removing, removed) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                sent.lock().unwrap().push((seq, Instant::now()));
                tx.send(&frame(seq)).expect("send");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let deadline = Instant::now() + Duration::from_millis(100);
                if let Some(seq) = rx
                    .recv_until(deadline)
                    .expect("recv")
                    .as_ref()
                    .and_then(seq_of)
                {
                    received.lock().unwrap().push(seq);
                }
            }
        });
        let count_sent_after = |t: Instant| {
            sent.lock()
                .unwrap()
                .iter()
                .filter(|(_, at)| *at > t)
                .count()
        };
        // The flow runs and is served from the cache.
        wait::until("20 frames through", DEADLINE, || {
            (received.lock().unwrap().len() >= 20).then_some(())
        });
        let mut args = vec!["--wait=hv", "acl-add"];
        args.extend(acl);
        args.push("drop");
        lab.0.nbctl(&args).expect("acl-add");
        let added = Instant::now();
        wait::until("20 frames sent under the ACL", DEADLINE, || {
            (count_sent_after(added) >= 20).then_some(())
        });
        // Frames sent from here on may pass: the datapath drops the ACL before the
        // command returns.
        let removing = Instant::now();
        let mut args = vec!["--wait=hv", "acl-del"];
        args.extend(&acl[..4]);
        lab.0.nbctl(&args).expect("acl-del");
        let removed = Instant::now();
        wait::until("20 frames through again", DEADLINE, || {
            let first_after = sent
                .lock()
                .unwrap()
                .iter()
                .find(|(_, at)| *at > removed)
                .map(|(s, _)| *s)?;
            let back = received
                .lock()
                .unwrap()
                .iter()
                .filter(|s| **s >= first_after)
                .count();
            (back >= 20).then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        (added, removing, removed)
    });
    let sent = sent.into_inner().unwrap();
    let received: std::collections::BTreeSet<u32> =
        received.into_inner().unwrap().into_iter().collect();
    let under_acl: Vec<u32> = sent
        .iter()
        .filter(|(_, at)| *at > added && *at < removing)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        under_acl.len() >= 20,
        "{} frames sent under the ACL",
        under_acl.len()
    );
    let leaked: Vec<&u32> = under_acl.iter().filter(|s| received.contains(s)).collect();
    assert!(
        leaked.is_empty(),
        "frames sent after acl-add --wait=hv returned reached vm1: {leaked:?}"
    );
    let first_after = sent
        .iter()
        .find(|(_, at)| *at > removed)
        .map(|(s, _)| *s)
        .unwrap();
    assert!(
        received.contains(&first_after),
        "the first frame after acl-del --wait=hv returned ({first_after}) was lost"
    );
    // The frames before, under and after the ACL were decided from the cache: hits, and
    // the ACL's drops carried out by XDP.
    let mut last = None;
    let served = wait::poll(DEADLINE, || {
        let status = lab.status();
        let cache = status
            .cache
            .clone()
            .expect("hybrid reports its decision cache");
        let drops = status.counters.get("drop_logical").copied().unwrap_or(0);
        let ok = cache.hits >= 40 && cache.invalidations >= 2 && drops >= 10;
        last = Some((cache, drops));
        ok
    });
    assert!(
        served,
        "cache hits, invalidations and ACL drops from the cache: {last:?}"
    );
}

/// `--hypervisors 2`: vm1 and vm2 on a second hypervisor with real ovn-controller and
/// userspace OVS, ovnest on the first; the seed's steps across the Geneve tunnel.
#[test]
fn seed_lab_across_two_hypervisors() {
    let test = "seed_lab_across_two_hypervisors";
    if !require_root(test)
        || !require_tools(test, TOOLS)
        || !require_tools(test, &["ovn-controller", "dhclient"])
    {
        return;
    }
    let lab = TestLab::up_with("2hv", DatapathMode::Hybrid, 2, ovnest_lab::Addressing::Dhcp);
    // vm1 is bound on hv2 (ovn-controller), c51 on hv1 (ovnest).
    let chassis_of = |port: &str| {
        let uuid = lab.sb_port(port, "chassis");
        lab.0
            .sbctl(&["--bare", "--columns=name", "list", "Chassis", &uuid])
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(chassis_of("dmz-vm1"), "hv2");
    assert_eq!(chassis_of("dmz-c51"), "hv1");
    // DHCP answered on both chassis (the lab waited for the leases).
    for vm in ["vm1", "c51"] {
        let lease = std::fs::read_to_string(lab.0.lease_file(vm)).unwrap_or_default();
        assert!(lease.contains("fixed-address"), "{vm}: {lease}");
    }
    let status = lab.status();
    assert!(
        status.tunnels.starts_with("geneve on und"),
        "{}",
        status.tunnels
    );

    // Container to VM and back, across the tunnel.
    lab.assert_pings("c51", VM1);
    lab.assert_pings("vm1", C51);
    // A flow's frames after its first are encapsulated in XDP from ovnest's decision
    // cache and reach OVS on the other side: every echo answered.
    let out = lab
        .0
        .exec("c51", "ping", &["-c5", "-i0.2", "-W2", VM1])
        .expect("c51 pings vm1 five times");
    assert!(out.contains("5 received"), "{out}");
    wait::until(
        "encapsulations from the cache in the status",
        DEADLINE,
        || {
            lab.status()
                .cache
                .filter(|c| c.tunnel.get("encap_hits").is_some_and(|n| *n > 0))
        },
    );
    // ARP for vm1 was answered on the sending chassis: c51 knows vm1's MAC.
    let neigh = lab.0.exec("c51", "ip", &["neigh", "show", VM1]).unwrap();
    assert!(neigh.contains("02:ac:10:ff:01:30"), "{neigh}");
    // Routed on the sending side: vm1 (hv2) -> lr0 -> vm3 (hv1), and c51 -> vm3 locally.
    lab.assert_pings("vm1", "172.16.255.194");
    // A broadcast from c51 reaches vm1 on the other chassis, which answers.
    lab.0
        .exec(
            "vm1",
            "sysctl",
            &["-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"],
        )
        .unwrap();
    let reply = wait::until("a broadcast ping answered by vm1", DEADLINE, || {
        lab.0
            .exec("c51", "ping", &["-b", "-c1", "-W1", "172.16.255.191"])
            .ok()
            .filter(|out| out.contains(&format!("from {VM1}")))
    });
    assert!(reply.contains(VM1));
    // An ACL to c51 is enforced by the receiving side's egress pipeline (ovnest runs
    // only that for frames from the tunnel): nothing from vm1 reaches c51, c52 still
    // hears vm1, and c51 again once the ACL is gone.
    lab.0
        .nbctl(&[
            "--wait=hv",
            "acl-add",
            "dmz",
            "to-lport",
            "1001",
            &format!("ip4.src == {VM1} && ip4.dst == {C51}"),
            "drop",
        ])
        .unwrap();
    lab.assert_no_ping("vm1", C51);
    lab.assert_pings("vm1", C52);
    lab.0.nbctl(&["--wait=hv", "acl-del", "dmz"]).unwrap();
    lab.assert_pings("vm1", C51);
    // ovnest encapsulated (c51's echo, its reply to vm1, the broadcast's copy); the
    // status file is rewritten every pass.
    wait::until("ovnest's tunnel copies in its status", DEADLINE, || {
        (lab.counter("userspace_tunnel_copies") >= 3).then_some(())
    });
}

/// `--hypervisors 2 --hv2-agent ovnest`: ovnest on both hypervisors, each encapsulating
/// toward and decapsulating from the other; the seed's steps across the tunnel.
#[test]
fn seed_lab_with_ovnest_on_both_hypervisors() {
    let test = "seed_lab_with_ovnest_on_both_hypervisors";
    if !require_root(test) || !require_tools(test, TOOLS) || !require_tools(test, &["dhclient"]) {
        return;
    }
    let lab = TestLab::up_hv2(
        "2nn",
        DatapathMode::Hybrid,
        2,
        ovnest_lab::Addressing::Dhcp,
        Hv2Agent::Ovnest,
    );
    assert_eq!(lab.chassis_of("dmz-vm1"), "hv2");
    assert_eq!(lab.chassis_of("dmz-c51"), "hv1");
    // DHCP answered by ovnest on both chassis (the lab waited for the leases).
    for vm in ["vm1", "vm2", "c51"] {
        let lease = std::fs::read_to_string(lab.0.lease_file(vm)).unwrap_or_default();
        assert!(lease.contains("fixed-address"), "{vm}: {lease}");
    }
    let hv2_state = hypervisors::ovnest_state_dir(&lab.0);
    for (state, peer) in [
        (lab.0.state_dir(), "hv2 10.99.0.2"),
        (hv2_state.clone(), "hv1 10.99.0.1"),
    ] {
        let status = wait::until("a tunnel to the other ovnest", DEADLINE, || {
            Status::read(&state)
                .ok()
                .filter(|s| s.tunnels.starts_with("geneve on und") && s.tunnels.contains(peer))
        });
        assert!(!status.tunnels.contains("unresolved"), "{}", status.tunnels);
    }

    lab.assert_pings("c51", VM1);
    lab.assert_pings("vm1", C51);
    // ARP answered on the sending chassis.
    let neigh = lab.0.exec("c51", "ip", &["neigh", "show", VM1]).unwrap();
    assert!(neigh.contains("02:ac:10:ff:01:30"), "{neigh}");
    // Routed on hv2's side: vm1 -> lr0 -> vm3 on hv1.
    lab.assert_pings("vm1", "172.16.255.194");
    // A broadcast from c51 is flooded to hv2 and answered by vm1.
    lab.0
        .exec(
            "vm1",
            "sysctl",
            &["-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"],
        )
        .unwrap();
    let reply = wait::until("a broadcast ping answered by vm1", DEADLINE, || {
        lab.0
            .exec("c51", "ping", &["-b", "-c1", "-W1", "172.16.255.191"])
            .ok()
            .filter(|out| out.contains(&format!("from {VM1}")))
    });
    assert!(reply.contains(VM1));
    // A flow's frames after its first are carried in XDP on both ends: encapsulated
    // from the sending chassis's decision cache, decapsulated from the receiving one's.
    lab.0
        .exec("c51", "ping", &["-c5", "-i0.2", VM1])
        .expect("c51 pings vm1");
    for state in [lab.0.state_dir(), hv2_state.clone()] {
        wait::until("Geneve carried in XDP on both chassis", DEADLINE, || {
            Status::read(&state).ok().and_then(|s| s.cache).filter(|c| {
                let hits = |k: &str| c.tunnel.get(k).copied().unwrap_or(0);
                hits("encap_hits") > 0 && hits("decap_hits") > 0
            })
        });
    }
    // DHCP's `mtu` option reaches the machine on the other chassis: vm1 renews (its
    // dhclient restarted on the lease it has) and takes the MTU; a datagram of that size
    // with DF crosses the tunnel.
    let dhcp = lab
        .0
        .nbctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "DHCP_Options",
            "cidr=\"172.16.255.128/26\"",
        ])
        .unwrap();
    lab.0
        .nbctl(&[
            "--wait=hv",
            "set",
            "DHCP_Options",
            dhcp.trim(),
            "options:mtu=1442",
        ])
        .unwrap();
    let pidfile = lab.0.dhclient_pidfile("vm1");
    assert!(
        ovnest_lab::process::stop(&pidfile, DEADLINE),
        "vm1's dhclient"
    );
    let lease = lab.0.lease_file("vm1");
    let conf = lab.0.dir.join("dhclient.conf");
    lab.0
        .exec(
            "vm1",
            "dhclient",
            &[
                "-1",
                "-cf",
                &conf.to_string_lossy(),
                "-pf",
                &pidfile.to_string_lossy(),
                "-lf",
                &lease.to_string_lossy(),
                "eth0",
            ],
        )
        .expect("vm1 renews");
    let link = lab.0.exec("vm1", "ip", &["link", "show", "eth0"]).unwrap();
    assert!(link.contains("mtu 1442"), "{link}");
    let out = lab
        .0
        .exec(
            "vm1",
            "ping",
            &["-c1", "-W2", "-M", "do", "-s", "1414", C51],
        )
        .expect("a 1442-byte datagram from vm1 to c51");
    assert!(out.contains("1422 bytes from"), "{out}");

    // Both ovnests encapsulated and decapsulated, none malformed.
    for state in [lab.0.state_dir(), hv2_state] {
        let status = wait::until("tunnel copies in both statuses", DEADLINE, || {
            Status::read(&state).ok().filter(|s| {
                s.counters
                    .get("userspace_tunnel_copies")
                    .is_some_and(|n| *n >= 2)
            })
        });
        let malformed = status.counters.get("userspace_tunnel_malformed");
        assert_eq!(malformed.copied().unwrap_or(0), 0, "{:?}", status.counters);
    }
}

/// A port moved from one chassis to the other (real ovn-controller on hv2): vm1's VIF
/// leaves hv2's br-int and is plugged on hv1, ovnest claims it, traffic follows; then
/// back again, and ovn-controller claims it.
#[test]
fn a_port_moves_between_ovnest_and_ovn_controller() {
    let test = "a_port_moves_between_ovnest_and_ovn_controller";
    if !require_root(test)
        || !require_tools(test, TOOLS)
        || !require_tools(test, &["ovn-controller"])
    {
        return;
    }
    port_moves("2mv", Hv2Agent::OvnController);
}

/// The same with ovnest on both chassis.
#[test]
fn a_port_moves_between_two_ovnests() {
    let test = "a_port_moves_between_two_ovnests";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    port_moves("2mn", Hv2Agent::Ovnest);
}

fn port_moves(name: &str, hv2_agent: Hv2Agent) {
    let lab = TestLab::up_hv2(
        name,
        DatapathMode::Hybrid,
        2,
        ovnest_lab::Addressing::Static,
        hv2_agent,
    );
    assert_eq!(lab.chassis_of("dmz-vm1"), "hv2");
    lab.assert_pings("c51", VM1);

    hypervisors::move_vm(&lab.0, "vm1", "hv").unwrap();
    wait::until("dmz-vm1 claimed by hv1", DEADLINE, || {
        (lab.chassis_of("dmz-vm1") == "hv1").then_some(())
    });
    // vm1's cable is on hv1 now: an answer can only come through ovnest's local path.
    lab.assert_pings("c51", VM1);
    lab.assert_pings("vm1", C51);
    lab.assert_pings("vm2", VM1);

    hypervisors::move_vm(&lab.0, "vm1", hypervisors::HV2).unwrap();
    wait::until("dmz-vm1 claimed by hv2 again", DEADLINE, || {
        (lab.chassis_of("dmz-vm1") == "hv2").then_some(())
    });
    lab.assert_pings("c51", VM1);
    lab.assert_pings("vm1", C51);
}
