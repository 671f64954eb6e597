//! `--hypervisors 2`: vm1 and vm2 move to a second hypervisor namespace `hv2`, connected
//! to `hv` by an underlay veth (`und`, 10.99.0.1 on hv, 10.99.0.2 on hv2, MTU 1600 so
//! the VMs keep 1500 under Geneve's 58 bytes). hv2 runs real ovn-controller with a
//! userspace OVS (netdev datapath): `br-int` for vm1 and vm2, and `br-phy` owning the
//! underlay with hv2's tunnel address on its internal port (OVS's userspace tunnels need
//! the address on a bridge of their own, as in shared/reference/.../two-chassis.sh).
//! The first hypervisor's agent tunnels to it from 10.99.0.1.
//!
//! `--hv2-agent ovnest` runs ovnest there instead (same `--datapath` as on hv): a local
//! Open_vSwitch DB with vm1's and vm2's iface-ids and no ovs-vswitchd, 10.99.0.2 on `und`
//! itself, its state in `<dir>/hv2/state`, its log in `<dir>/hv2-ovnest.log`.
//!
//! ```text
//!  ns hv  ─ agent, encap 10.99.0.1 on und ──── und ─ ns hv2: OVS br-phy (10.99.0.2)
//!   vm3, vm4, brint-brvm5 (vm5, c51, c52)            ovn-controller, OVS br-int
//!                                                     vm1 ── eth0 [ns vm1]
//!                                                     vm2 ── eth0 [ns vm2]
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{
    Lab, central,
    process::{self, Daemon},
};

/// The second hypervisor's namespace (without the lab's prefix) and chassis name.
pub const HV2: &str = "hv2";
/// The VMs that live on the second hypervisor.
pub const HV2_VMS: [&str; 2] = ["vm1", "vm2"];
pub const HV1_ENCAP: &str = "10.99.0.1";
pub const HV2_ENCAP: &str = "10.99.0.2";
/// The underlay's MTU: a 1500-byte VM frame plus Geneve's 58 bytes of headers.
pub const UNDERLAY_MTU: &str = "1600";

/// The agent of the second hypervisor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Hv2Agent {
    /// Real ovn-controller with a userspace-datapath ovs-vswitchd (the interop peer).
    #[default]
    OvnController,
    /// ovnest, as on the first hypervisor.
    Ovnest,
}

/// hv2's ovnest state directory (its `ovnest status --state-dir`).
pub fn ovnest_state_dir(lab: &Lab) -> PathBuf {
    rundir(lab).join("state")
}

fn ovnest_pidfile(dir: &std::path::Path) -> PathBuf {
    dir.join("hv2-ovnest.pid")
}

/// The hypervisor namespace machine `vm` is plugged into.
pub fn hypervisor_of(vm: &str, hypervisors: u8) -> &'static str {
    if hypervisors >= 2 && HV2_VMS.contains(&vm) {
        HV2
    } else {
        "hv"
    }
}

fn rundir(lab: &Lab) -> PathBuf {
    lab.dir.join(HV2)
}

fn in_hv2(lab: &Lab, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let run = format!("OVS_RUNDIR={}", rundir(lab).display());
    let ovn = format!("OVN_RUNDIR={}", rundir(lab).display());
    let mut full = vec![run.as_str(), ovn.as_str(), program];
    full.extend_from_slice(args);
    process::run_in(&lab.ns(HV2), "env", &full)
}

/// The namespace and the underlay veth; hv's end gets its tunnel address.
pub fn underlay(lab: &Lab) -> anyhow::Result<()> {
    let (hv, hv2) = (lab.ns("hv"), lab.ns(HV2));
    process::run("ip", &["netns", "add", &hv2]).context("namespace hv2")?;
    process::run_in(&hv2, "ip", &["link", "set", "lo", "up"])?;
    process::run_in(&hv2, "sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
    process::run(
        "ip",
        &[
            "-n",
            &hv,
            "link",
            "add",
            "und",
            "mtu",
            UNDERLAY_MTU,
            "type",
            "veth",
            "peer",
            "name",
            "und",
            "netns",
            &hv2,
            "mtu",
            UNDERLAY_MTU,
        ],
    )?;
    for ns in [&hv, &hv2] {
        // Checksums in software (OVS's AF_PACKET and XDP on both ends).
        process::run_in(ns, "ethtool", &["-K", "und", "tx", "off"])?;
        process::run("ip", &["-n", ns, "link", "set", "und", "up"])?;
    }
    for ns in [&hv, &hv2] {
        // NAPI on the receiving end of redirected frames: GRO turned on while both ends
        // are up, or the kernel does not make the other end a redirect target (XDP
        // redirects into it fail with EOPNOTSUPP unless its peer runs XDP itself).
        process::run_in(ns, "ethtool", &["-K", "und", "gro", "on"])?;
    }
    process::run(
        "ip",
        &[
            "-n",
            &hv,
            "addr",
            "add",
            &format!("{HV1_ENCAP}/24"),
            "dev",
            "und",
        ],
    )?;
    Ok(())
}

/// hv2's Open_vSwitch DB and its agent: ovs-vswitchd with br-phy and br-int, vm1 and vm2
/// plugged, and ovn-controller; or ovnest.
pub fn start(lab: &Lab, args: &crate::LabArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(rundir(lab))?;
    let db = central::start_db(&lab.dir, HV2, central::VSWITCH_SCHEMA, &[])?;
    let vsctl = |args: &[&str]| {
        let flag = format!("--db={db}");
        let mut full = vec![flag.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full)
    };
    vsctl(&["--no-wait", "init"])?;
    vsctl(&[
        "--no-wait",
        "set",
        "Open_vSwitch",
        ".",
        &format!("external_ids:system-id={HV2}"),
        &format!("external_ids:ovn-remote=\"{}\"", lab.sb),
        "external_ids:ovn-encap-type=geneve",
        &format!("external_ids:ovn-encap-ip={HV2_ENCAP}"),
        "external_ids:ovn-bridge-datapath-type=netdev",
    ])?;
    if args.agent == crate::AgentKind::OvnController {
        hv1_phy_bridge(lab)?;
    }
    if args.hv2_agent == Hv2Agent::Ovnest {
        return start_ovnest(lab, args, &db);
    }
    let vswitchd = Daemon::new(&lab.dir, "hv2-vswitchd");
    in_hv2(
        lab,
        "ovs-vswitchd",
        &[
            &db,
            &vswitchd.pidfile_arg(),
            &vswitchd.log_arg(),
            &format!("--unixctl={}", lab.dir.join("hv2-vswitchd.ctl").display()),
            "--detach",
            "--no-chdir",
        ],
    )
    .context("starting ovs-vswitchd on hv2")?;
    vsctl(&[
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
    ])?;
    let hv2 = lab.ns(HV2);
    process::run_in(
        &hv2,
        "ip",
        &["addr", "add", &format!("{HV2_ENCAP}/24"), "dev", "br-phy"],
    )?;
    process::run_in(
        &hv2,
        "ip",
        &["link", "set", "br-phy", "mtu", UNDERLAY_MTU, "up"],
    )?;
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
    for vm in HV2_VMS {
        let id = format!("external_ids:iface-id=dmz-{vm}");
        vsctl(&["add-port", "br-int", vm, "--", "set", "Interface", vm, &id])?;
    }
    let controller = Daemon::new(&lab.dir, "hv2-ovn-controller");
    in_hv2(
        lab,
        "ovn-controller",
        &[
            &db,
            &controller.pidfile_arg(),
            &controller.log_arg(),
            "--detach",
            "--no-chdir",
        ],
    )
    .context("starting ovn-controller on hv2")?;
    Ok(())
}

/// With ovn-controller on hv too (`--agent ovn-controller`, the all-OVS pair): its
/// tunnel address moves from `und` to a `br-phy` owning `und`, as on hv2.
fn hv1_phy_bridge(lab: &Lab) -> anyhow::Result<()> {
    lab.hv_vsctl(&[
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
    ])?;
    let hv = lab.ns("hv");
    let cidr = format!("{HV1_ENCAP}/24");
    process::run_in(&hv, "ip", &["addr", "del", &cidr, "dev", "und"])?;
    // ovs-vswitchd creates br-phy's internal port once it reads the row.
    process::wait_for("br-phy on hv", std::time::Duration::from_secs(10), || {
        process::run_in(&hv, "ip", &["link", "show", "br-phy"]).is_ok()
    })?;
    process::run_in(&hv, "ip", &["addr", "add", &cidr, "dev", "br-phy"])?;
    process::run_in(
        &hv,
        "ip",
        &["link", "set", "br-phy", "mtu", UNDERLAY_MTU, "up"],
    )?;
    Ok(())
}

/// ovnest on hv2: its DB names the VIFs (no ovs-vswitchd, as on hv), the tunnel address
/// sits on the underlay itself, which ovnest attaches to.
fn start_ovnest(lab: &Lab, args: &crate::LabArgs, db: &str) -> anyhow::Result<()> {
    let vsctl = |args: &[&str]| {
        let flag = format!("--db={db}");
        let mut full = vec![flag.as_str(), "--no-wait"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full)
    };
    vsctl(&["add-br", "br-int"])?;
    for vm in HV2_VMS {
        let id = format!("external_ids:iface-id=dmz-{vm}");
        vsctl(&["add-port", "br-int", vm, "--", "set", "Interface", vm, &id])?;
    }
    process::run_in(
        &lab.ns(HV2),
        "ip",
        &["addr", "add", &format!("{HV2_ENCAP}/24"), "dev", "und"],
    )?;
    let agent = crate::AgentRun {
        ns: HV2,
        ovs_db: db,
        state_dir: ovnest_state_dir(lab),
        pidfile: ovnest_pidfile(&lab.dir),
        log: lab.dir.join("hv2-ovnest.log"),
    };
    lab.spawn_ovnest(&agent, args.ovnest.clone(), args.datapath, &[])
}

/// hv2's Open_vSwitch DB.
pub fn hv2_db(lab: &Lab) -> String {
    format!("unix:{}", lab.dir.join(format!("{HV2}.sock")).display())
}

/// Moves VM `vm`'s VIF (`dmz-<vm>`) to hypervisor `to` (`hv` or [`HV2`]), as a live
/// migration looks to OVN: the interface leaves its hypervisor's br-int, the binding is
/// released, the cable is plugged on the other hypervisor, whose agent claims it.
pub fn move_vm(lab: &Lab, vm: &str, to: &str) -> anyhow::Result<()> {
    let db_of = |hv: &str| {
        if hv == HV2 {
            hv2_db(lab)
        } else {
            lab.hv_db.clone()
        }
    };
    let from = if to == HV2 { "hv" } else { HV2 };
    let vsctl = |db: &str, args: &[&str]| {
        let flag = format!("--db={db}");
        let mut full = vec![flag.as_str(), "--no-wait"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full)
    };
    let port = format!("dmz-{vm}");
    vsctl(&db_of(from), &["del-port", "br-int", vm])?;
    process::wait_for(
        &format!("{port} released by {from}"),
        std::time::Duration::from_secs(30),
        || {
            lab.sbctl(&[
                "--bare",
                "--columns=chassis",
                "find",
                "Port_Binding",
                &format!("logical_port={port}"),
            ])
            .is_ok_and(|c| c.trim().is_empty())
        },
    )?;
    let (from_ns, to_ns) = (lab.ns(from), lab.ns(to));
    process::run("ip", &["-n", &from_ns, "link", "set", vm, "netns", &to_ns])?;
    process::run_in(&to_ns, "ethtool", &["-K", vm, "tx", "off"])?;
    process::run("ip", &["-n", &to_ns, "link", "set", vm, "up"])?;
    let id = format!("external_ids:iface-id={port}");
    vsctl(
        &db_of(to),
        &["add-port", "br-int", vm, "--", "set", "Interface", vm, &id],
    )?;
    Ok(())
}

/// Stops hv2's ovnest, if it runs (its pins stay, as on hv: a stop for restart).
pub fn stop_ovnest(dir: &std::path::Path) -> bool {
    process::stop(&ovnest_pidfile(dir), std::time::Duration::from_secs(10))
}

/// Stops what [`start`] started (by pidfile; nothing when absent).
pub fn stop(dir: &std::path::Path, prefix: &str) {
    let grace = std::time::Duration::from_secs(10);
    stop_ovnest(dir);
    process::stop(&dir.join("hv2-ovn-controller.pid"), grace);
    process::stop(&dir.join("hv2-vswitchd.pid"), grace);
    central::stop(dir, &[HV2]);
    let _ = process::run("ip", &["netns", "del", &format!("{prefix}{HV2}")]);
}
