//! The lab's logical network (NB, with the seed's commands) and its physical emulation
//! (namespaces, veths, vm5's OVS bridge, the hypervisor's Open_vSwitch DB).

use std::time::Duration;

use anyhow::Context as _;

use crate::{
    Addressing, Lab,
    process::{self, Daemon, run},
};

/// One logical port of the seed lab.
#[derive(Clone, Copy, Debug)]
pub struct LabPort {
    pub name: &'static str,
    pub mac: &'static str,
    pub ip: &'static str,
    /// VLAN tag under dmz-vm5 for containers.
    pub tag: Option<u16>,
}

impl LabPort {
    /// Bound on the lab's chassis (not a router port: `dmz-lr0`, `inside-lr0`).
    pub fn vif_or_child(&self) -> bool {
        !self.name.ends_with("-lr0")
    }
}

/// MACs and addresses as in the reference recipe (02:ac:10:ff:01:NN ↔ 172.16.255.1NN).
pub const LAB_PORTS: [LabPort; 6] = [
    LabPort {
        name: "dmz-lr0",
        mac: "02:ac:10:ff:01:29",
        ip: "172.16.255.129",
        tag: None,
    },
    LabPort {
        name: "dmz-vm1",
        mac: "02:ac:10:ff:01:30",
        ip: "172.16.255.130",
        tag: None,
    },
    LabPort {
        name: "dmz-vm2",
        mac: "02:ac:10:ff:01:31",
        ip: "172.16.255.131",
        tag: None,
    },
    LabPort {
        name: "dmz-vm5",
        mac: "02:ac:10:ff:01:32",
        ip: "172.16.255.132",
        tag: None,
    },
    LabPort {
        name: "dmz-c51",
        mac: "02:ac:10:ff:01:33",
        ip: "172.16.255.133",
        tag: Some(51),
    },
    LabPort {
        name: "dmz-c52",
        mac: "02:ac:10:ff:01:34",
        ip: "172.16.255.134",
        tag: Some(52),
    },
];

/// The seed series' second switch `inside`, behind lr0: its router port and two VMs.
pub const INSIDE_PORTS: [LabPort; 3] = [
    LabPort {
        name: "inside-lr0",
        mac: "02:ac:10:ff:01:c1",
        ip: "172.16.255.193",
        tag: None,
    },
    LabPort {
        name: "inside-vm3",
        mac: "02:ac:10:ff:01:c2",
        ip: "172.16.255.194",
        tag: None,
    },
    LabPort {
        name: "inside-vm4",
        mac: "02:ac:10:ff:01:c3",
        ip: "172.16.255.195",
        tag: None,
    },
];

/// Every logical port of the lab, both switches.
pub fn lab_ports() -> impl Iterator<Item = &'static LabPort> {
    LAB_PORTS.iter().chain(INSIDE_PORTS.iter())
}

/// The port called `name`.
pub fn lab_port(name: &str) -> anyhow::Result<&'static LabPort> {
    lab_ports()
        .find(|p| p.name == name)
        .with_context(|| format!("no lab port {name}"))
}

/// A machine of the lab: a namespace with one NIC on a logical port.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// Its namespace, without the lab's prefix.
    pub ns: &'static str,
    /// Its NIC in that namespace.
    pub nic: &'static str,
    /// The logical port it is plugged on.
    pub port: &'static str,
    /// Its default gateway: the router port on its switch.
    pub gateway: &'static str,
}

const DMZ_GATEWAY: &str = "172.16.255.129";
const INSIDE_GATEWAY: &str = "172.16.255.193";

/// The seed's machines, in the order the seed series brings them up.
pub const MACHINES: [Machine; 7] = [
    Machine {
        ns: "vm1",
        nic: "eth0",
        port: "dmz-vm1",
        gateway: DMZ_GATEWAY,
    },
    Machine {
        ns: "vm2",
        nic: "eth0",
        port: "dmz-vm2",
        gateway: DMZ_GATEWAY,
    },
    Machine {
        ns: "vm3",
        nic: "eth0",
        port: "inside-vm3",
        gateway: INSIDE_GATEWAY,
    },
    Machine {
        ns: "vm4",
        nic: "eth0",
        port: "inside-vm4",
        gateway: INSIDE_GATEWAY,
    },
    // vm5's own address is on an internal port of its bridge, as in the seed.
    Machine {
        ns: "vm5",
        nic: "vm5",
        port: "dmz-vm5",
        gateway: DMZ_GATEWAY,
    },
    Machine {
        ns: "c51",
        nic: "eth0",
        port: "dmz-c51",
        gateway: DMZ_GATEWAY,
    },
    Machine {
        ns: "c52",
        nic: "eth0",
        port: "dmz-c52",
        gateway: DMZ_GATEWAY,
    },
];

/// The machine called `ns`.
pub fn machine(ns: &str) -> anyhow::Result<&'static Machine> {
    MACHINES
        .iter()
        .find(|m| m.ns == ns)
        .with_context(|| format!("no lab machine {ns}"))
}

const NAMESPACES: [&str; 8] = ["hv", "vm1", "vm2", "vm3", "vm4", "vm5", "c51", "c52"];

/// Builds `dmz` in the NB exactly as an operator following the seed would.
pub fn logical(lab: &Lab) -> anyhow::Result<()> {
    let nb = |args: &[&str]| lab.nbctl(args);
    nb(&["ls-add", "dmz"])?;
    nb(&["lr-add", "lr0"])?;
    nb(&[
        "lrp-add",
        "lr0",
        "lr0-dmz",
        "02:ac:10:ff:01:29",
        "172.16.255.129/26",
    ])?;
    nb(&[
        "lsp-add",
        "dmz",
        "dmz-lr0",
        "--",
        "lsp-set-type",
        "dmz-lr0",
        "router",
        "--",
        "lsp-set-addresses",
        "dmz-lr0",
        "router",
        "--",
        "lsp-set-options",
        "dmz-lr0",
        "router-port=lr0-dmz",
    ])?;
    for port in LAB_PORTS.iter().filter(|p| p.vif_or_child()) {
        let addresses = format!("{} {}", port.mac, port.ip);
        nb(&["lsp-add", "dmz", port.name])?;
        nb(&["lsp-set-addresses", port.name, &addresses])?;
        nb(&["lsp-set-port-security", port.name, &addresses])?;
    }
    for port in LAB_PORTS.iter().filter(|p| p.tag.is_some()) {
        let tag = format!("tag={}", port.tag.unwrap_or_default());
        nb(&[
            "set",
            "Logical_Switch_Port",
            port.name,
            "parent_name=dmz-vm5",
        ])?;
        nb(&["set", "Logical_Switch_Port", port.name, &tag])?;
    }
    let dhcp = nb(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.128/26",
        "options=\"lease_time\"=\"3600\" \"router\"=\"172.16.255.129\" \"server_id\"=\"172.16.255.129\" \"server_mac\"=\"02:ac:10:ff:01:29\"",
    ])?;
    for port in LAB_PORTS.iter().filter(|p| p.vif_or_child()) {
        nb(&["lsp-set-dhcpv4-options", port.name, dhcp.trim()])?;
    }
    inside(lab)
}

/// The seed series' second switch `inside` (172.16.255.192/26) behind lr0, with vm3
/// and vm4 on it and DHCP options of its own, as that series builds it.
fn inside(lab: &Lab) -> anyhow::Result<()> {
    let nb = |args: &[&str]| lab.nbctl(args);
    let router = lab_port("inside-lr0")?;
    nb(&["ls-add", "inside"])?;
    nb(&[
        "lrp-add",
        "lr0",
        "lr0-inside",
        router.mac,
        &format!("{}/26", router.ip),
    ])?;
    nb(&[
        "lsp-add",
        "inside",
        "inside-lr0",
        "--",
        "lsp-set-type",
        "inside-lr0",
        "router",
        "--",
        "lsp-set-addresses",
        "inside-lr0",
        "router",
        "--",
        "lsp-set-options",
        "inside-lr0",
        "router-port=lr0-inside",
    ])?;
    let dhcp = nb(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.192/26",
        &format!(
            "options=\"lease_time\"=\"3600\" \"router\"=\"{ip}\" \"server_id\"=\"{ip}\" \"server_mac\"=\"{mac}\"",
            ip = router.ip,
            mac = router.mac
        ),
    ])?;
    for port in INSIDE_PORTS.iter().filter(|p| p.vif_or_child()) {
        let addresses = format!("{} {}", port.mac, port.ip);
        nb(&["lsp-add", "inside", port.name])?;
        nb(&["lsp-set-addresses", port.name, &addresses])?;
        nb(&["lsp-set-port-security", port.name, &addresses])?;
        nb(&["lsp-set-dhcpv4-options", port.name, dhcp.trim()])?;
    }
    Ok(())
}

/// Namespaces, veths, each NIC's MAC (and its address when `addressing` is static). IPv6
/// is off so the lab's counters show only what the tests and the operator send.
pub fn namespaces(lab: &Lab, addressing: Addressing, hypervisors: u8) -> anyhow::Result<()> {
    for name in NAMESPACES {
        let ns = lab.ns(name);
        run("ip", &["netns", "add", &ns]).with_context(|| {
            format!("namespace {ns} (left over from another lab? `ovnest lab down`)")
        })?;
        run_in(lab, name, "ip", &["link", "set", "lo", "up"])?;
        run_in(
            lab,
            name,
            "sysctl",
            &["-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        )?;
        run_in(
            lab,
            name,
            "sysctl",
            &["-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        )?;
    }
    if hypervisors > 1 {
        crate::hypervisors::underlay(lab)?;
    }
    // Hypervisor side: the VIFs. VM side: the VM's NIC.
    let hv_of = |vm| crate::hypervisors::hypervisor_of(vm, hypervisors);
    veth(lab, (hv_of("vm1"), "vm1"), ("vm1", "eth0"))?;
    veth(lab, (hv_of("vm2"), "vm2"), ("vm2", "eth0"))?;
    veth(lab, ("hv", "vm3"), ("vm3", "eth0"))?;
    veth(lab, ("hv", "vm4"), ("vm4", "eth0"))?;
    veth(lab, ("hv", "brint-brvm5"), ("vm5", "brvm5-brint"))?;
    veth(lab, ("vm5", "c51"), ("c51", "eth0"))?;
    veth(lab, ("vm5", "c52"), ("c52", "eth0"))?;
    for (ns, dev) in [
        ("vm1", "eth0"),
        ("vm2", "eth0"),
        ("vm3", "eth0"),
        ("vm4", "eth0"),
        ("vm5", "brvm5-brint"),
    ] {
        // Frames redirected by XDP into a veth need NAPI on the receiving end.
        run_in(lab, ns, "ethtool", &["-K", dev, "gro", "on"])?;
    }
    for ns in ["vm1", "vm2", "vm3", "vm4", "c51", "c52"] {
        configure(lab, machine(ns)?, addressing)?;
    }
    Ok(())
}

fn veth(lab: &Lab, (ns_a, a): (&str, &str), (ns_b, b): (&str, &str)) -> anyhow::Result<()> {
    let (ns_a, ns_b) = (lab.ns(ns_a), lab.ns(ns_b));
    run(
        "ip",
        &[
            "-n", &ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", &ns_b,
        ],
    )?;
    for (ns, dev) in [(&ns_a, a), (&ns_b, b)] {
        // Checksums in software: frames cross AF_PACKET (OVS userspace) and XDP.
        run(
            "ip",
            &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
        )?;
        run("ip", &["-n", ns, "link", "set", dev, "up"])?;
    }
    Ok(())
}

pub(crate) fn address(lab: &Lab, ns: &str, dev: &str, port: &LabPort) -> anyhow::Result<()> {
    run_in(lab, ns, "ip", &["link", "set", dev, "address", port.mac])?;
    run_in(
        lab,
        ns,
        "ip",
        &["addr", "add", &format!("{}/26", port.ip), "dev", dev],
    )?;
    run_in(lab, ns, "ip", &["link", "set", dev, "up"])?;
    Ok(())
}

/// A machine's NIC: its port's MAC, up; with static addressing also its port's address
/// and a default route through the router (what DHCP would give it).
fn configure(lab: &Lab, machine: &Machine, addressing: Addressing) -> anyhow::Result<()> {
    let port = lab_port(machine.port)?;
    match addressing {
        Addressing::Static => {
            address(lab, machine.ns, machine.nic, port)?;
            run_in(
                lab,
                machine.ns,
                "ip",
                &["route", "replace", "default", "via", machine.gateway],
            )?;
        }
        Addressing::Dhcp => {
            run_in(
                lab,
                machine.ns,
                "ip",
                &["link", "set", machine.nic, "address", port.mac],
            )?;
            run_in(lab, machine.ns, "ip", &["link", "set", machine.nic, "up"])?;
        }
    }
    Ok(())
}

fn run_in(lab: &Lab, ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    process::run_in(&lab.ns(ns), program, args)
}

/// Starts an OVS/OVN daemon in namespace `ns` with its run directory (control sockets,
/// OpenFlow management sockets) inside the lab directory, not /var/run.
fn daemon_in(lab: &Lab, ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let ovs = format!("OVS_RUNDIR={}", lab.dir.display());
    let ovn = format!("OVN_RUNDIR={}", lab.dir.display());
    let mut full = vec![ovs.as_str(), ovn.as_str(), program];
    full.extend_from_slice(args);
    run_in(lab, ns, "env", &full)
}

/// The hypervisor's Open_vSwitch DB as ovn-controller would find it: system-id,
/// ovn-remote, encap, and each VIF's iface-id (the seed's `brint-brvm5` for vm5). No
/// ovs-vswitchd: ovnest only reads this DB.
pub fn hypervisor_db(lab: &Lab, agent: crate::AgentKind, hypervisors: u8) -> anyhow::Result<()> {
    let db = format!("--db={}", lab.hv_db);
    let vsctl = |args: &[&str]| {
        let mut full = vec![db.as_str(), "--no-wait"];
        full.extend_from_slice(args);
        run("ovs-vsctl", &full)
    };
    vsctl(&["init"])?;
    let remote = format!("external_ids:ovn-remote=\"{}\"", lab.sb);
    vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "external_ids:system-id=hv1",
        &remote,
        "external_ids:ovn-encap-type=geneve",
        &format!(
            "external_ids:ovn-encap-ip={}",
            if hypervisors > 1 {
                crate::hypervisors::HV1_ENCAP
            } else {
                "127.0.0.1"
            }
        ),
    ])?;
    if agent == crate::AgentKind::OvnController {
        // The peer: ovn-controller programs a userspace-datapath br-int in ovs-vswitchd.
        vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            "external_ids:ovn-bridge-datapath-type=netdev",
        ])?;
        vsctl(&[
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
            "other-config:disable-in-band=true",
        ])?;
        let vswitchd = Daemon::new(&lab.dir, "hv-vswitchd");
        daemon_in(
            lab,
            "hv",
            "ovs-vswitchd",
            &[
                &lab.hv_db,
                &vswitchd.pidfile_arg(),
                &vswitchd.log_arg(),
                &format!("--unixctl={}", lab.dir.join("hv-vswitchd.ctl").display()),
                "--detach",
                "--no-chdir",
            ],
        )
        .context("starting ovs-vswitchd for the peer's br-int")?;
    } else {
        vsctl(&["add-br", "br-int"])?;
    }
    for (iface, port) in [
        ("vm1", "dmz-vm1"),
        ("vm2", "dmz-vm2"),
        ("vm3", "inside-vm3"),
        ("vm4", "inside-vm4"),
        ("brint-brvm5", "dmz-vm5"),
    ] {
        if crate::hypervisors::hypervisor_of(iface, hypervisors) != "hv" {
            continue;
        }
        let id = format!("external_ids:iface-id={port}");
        vsctl(&[
            "add-port",
            "br-int",
            iface,
            "--",
            "set",
            "Interface",
            iface,
            &id,
        ])?;
    }
    Ok(())
}

/// vm5's tagging bridge, as in the seed: br-vm5 with the uplink as a trunk, c51/c52 as
/// access ports 51/52, and vm5's own address on an internal port. Userspace datapath
/// (`netdev`): this kernel has no openvswitch module.
pub fn vm5_bridge(lab: &Lab, addressing: Addressing) -> anyhow::Result<()> {
    let db = format!("--db={}", lab.vm5_db);
    let vsctl = |args: &[&str]| {
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        run("ovs-vsctl", &full)
    };
    run("ovs-vsctl", &[&db, "--no-wait", "init"])?;
    let vswitchd = Daemon::new(&lab.dir, "vm5-vswitchd");
    daemon_in(
        lab,
        "vm5",
        "ovs-vswitchd",
        &[
            &lab.vm5_db,
            &vswitchd.pidfile_arg(),
            &vswitchd.log_arg(),
            &format!("--unixctl={}", lab.dir.join("vm5-vswitchd.ctl").display()),
            "--detach",
            "--no-chdir",
        ],
    )
    .context("starting ovs-vswitchd for vm5's bridge")?;
    vsctl(&[
        "add-br",
        "br-vm5",
        "--",
        "set",
        "Bridge",
        "br-vm5",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-vm5",
        "brvm5-brint",
        "--",
        "add-port",
        "br-vm5",
        "c51",
        "tag=51",
        "--",
        "add-port",
        "br-vm5",
        "c52",
        "tag=52",
        "--",
        "add-port",
        "br-vm5",
        "vm5",
        "--",
        "set",
        "Interface",
        "vm5",
        "type=internal",
    ])?;
    process::wait_for("vm5's internal port", Duration::from_secs(20), || {
        run_in(lab, "vm5", "ip", &["link", "show", "vm5"]).is_ok()
    })?;
    configure(lab, machine("vm5")?, addressing)
}

/// Deletes the lab's namespaces (and with them every veth).
pub fn remove_namespaces(prefix: &str) {
    for name in NAMESPACES {
        let _ = run("ip", &["netns", "del", &format!("{prefix}{name}")]);
    }
}

/// Starts real ovn-controller on the hypervisor namespace (the benchmark peer).
pub fn start_ovn_controller(lab: &Lab) -> anyhow::Result<()> {
    let daemon = Daemon::new(&lab.dir, "ovn-controller");
    // ovn-controller 23.03 has no --unixctl: its control socket goes to OVN_RUNDIR.
    daemon_in(
        lab,
        "hv",
        "ovn-controller",
        &[
            &lab.hv_db,
            &daemon.pidfile_arg(),
            &daemon.log_arg(),
            "--detach",
            "--no-chdir",
        ],
    )
    .context("starting ovn-controller")?;
    Ok(())
}
