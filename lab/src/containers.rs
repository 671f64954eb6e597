//! How vm5's containers are made (`ovnest lab up --containers`):
//! - `ovs`: the seed's way, by hand: c51 and c52 on access ports of vm5's OVS bridge,
//!   with static ports in the NB;
//! - `cni`: vm5 without OVS, ready for `ovnest-cni`: its address on its uplink, switch
//!   `dmz` with `other_config:subnet` (OVN allocates), a conflist, a plugin directory and
//!   a bpffs for the tagger's pins, all in the lab directory;
//! - `podman`: as `cni`, and podman (Debian's, CNI backend) runs c51 and c52 in vm5 from
//!   a busybox rootfs, their ports created by `ovnest-cni`.
//!
//! More container VMs can join a running lab ([`add_vm`]): each a namespace cabled to
//! the hypervisor with its own logical port, for tests and benchmarks that need a VM to
//! themselves.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    Lab, LabPort,
    process::{self, run},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Containers {
    #[default]
    Ovs,
    Cni,
    Podman,
}

impl Containers {
    fn name(self) -> &'static str {
        match self {
            Containers::Ovs => "ovs",
            Containers::Cni => "cni",
            Containers::Podman => "podman",
        }
    }
}

const MODE_FILE: &str = "containers";
/// Namespaces of VMs added with [`add_vm`], one per line (removed by `down`).
const EXTRA_FILE: &str = "extra-namespaces";
/// Addresses `ovnest-cni` must leave alone: the lab's static ports (.129 to .134) and
/// the VMs [`add_vm`] adds (.135 to .140).
pub const EXCLUDE_IPS: &str = "172.16.255.129..172.16.255.140";
pub const SUBNET: &str = "172.16.255.128/26";
/// The podman containers of `--containers podman`.
pub const PODMAN_CONTAINERS: [&str; 2] = ["c51", "c52"];

/// The mode a lab in `dir` was made with.
pub fn mode(dir: &Path) -> Containers {
    match std::fs::read_to_string(dir.join(MODE_FILE)).as_deref() {
        Ok("cni") => Containers::Cni,
        Ok("podman") => Containers::Podman,
        _ => Containers::Ovs,
    }
}

/// The NB side of `cni`/`podman`: the hand-made container ports go, OVN allocates.
pub fn logical(lab: &Lab, mode: Containers) -> anyhow::Result<()> {
    std::fs::write(lab.dir.join(MODE_FILE), mode.name())?;
    if mode == Containers::Ovs {
        return Ok(());
    }
    lab.nbctl(&["lsp-del", "dmz-c51", "--", "lsp-del", "dmz-c52"])?;
    lab.nbctl(&[
        "set",
        "Logical_Switch",
        "dmz",
        &format!("other_config:subnet={SUBNET}"),
        &format!("other_config:exclude_ips=\"{EXCLUDE_IPS}\""),
    ])?;
    Ok(())
}

/// vm5 without OVS: the hand-made containers' namespaces go, vm5's address moves to its
/// uplink, and the plugin's files are laid out.
pub fn vm5(lab: &Lab, vm5: &LabPort, ovnest: &Path) -> anyhow::Result<()> {
    for c in ["c51", "c52"] {
        run("ip", &["netns", "del", &lab.ns(c)])?;
    }
    crate::network::address(lab, "vm5", "brvm5-brint", vm5)?;
    files(lab, ovnest)?;
    let list = write_conflist(lab, "dmz", "dmz-vm5", "brvm5-brint", json!({}))?;
    // The same as one plugin's configuration, for calling the plugin by hand.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(list)?)?;
    std::fs::write(cni_dir(lab).join("dmz.conf"), single_conf(&v).to_string())?;
    Ok(())
}

pub fn cni_dir(lab: &Lab) -> PathBuf {
    lab.dir.join("cni")
}

/// Plugin directory (`ovnest-cni` → the ovnest binary), bpffs for the tagger's pins,
/// podman's configuration and a busybox rootfs.
fn files(lab: &Lab, ovnest: &Path) -> anyhow::Result<()> {
    let dir = cni_dir(lab);
    for sub in ["bin", "net.d", "state", "bpf", "podman", "rootfs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::os::unix::fs::symlink(ovnest, dir.join("bin/ovnest-cni")).context("linking ovnest-cni")?;
    // Mounted in the lab's mount namespace, so every plugin run sees the same pins even
    // when a runtime gives each run its own mount namespace.
    run(
        "mount",
        &["-t", "bpf", "bpf", &dir.join("bpf").to_string_lossy()],
    )?;
    let d = dir.display();
    std::fs::write(
        dir.join("podman/containers.conf"),
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{d}/bin\", \"/usr/lib/cni\"]\n\
             network_config_dir = \"{d}/net.d\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{d}/podman/tmp\"\n"
        ),
    )?;
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .context("copying /bin/busybox (busybox-static; scripts/setup.sh installs it)")?;
    for tool in [
        "sh", "ip", "ping", "udhcpc", "sleep", "cat", "ifconfig", "route",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool))?;
    }
    Ok(())
}

/// The plugin's configuration for a VM of this lab: network `name` (switch `dmz`),
/// the VM's port and uplink; `extra` keys (pool, tagger, ...) override.
pub fn plugin_conf(lab: &Lab, name: &str, vm_port: &str, uplink: &str, extra: Value) -> Value {
    let dir = cni_dir(lab);
    let mut p = json!({
        "type": "ovnest-cni",
        "nb": lab.nb,
        "vmPort": vm_port,
        "switch": "dmz",
        "uplink": uplink,
        "bpffs": dir.join("bpf"),
        "stateDir": dir.join("state"),
        "upTimeoutMs": 20000,
    });
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({ "cniVersion": "1.0.0", "name": name, "plugins": [p] })
}

/// A conflist's ovnest-cni entry with the list's name and version: what a runtime pipes
/// into the plugin.
pub fn single_conf(list: &Value) -> Value {
    let mut p = list["plugins"][0].clone();
    p["cniVersion"] = list["cniVersion"].clone();
    p["name"] = list["name"].clone();
    p
}

pub fn write_conflist(
    lab: &Lab,
    name: &str,
    vm_port: &str,
    uplink: &str,
    extra: Value,
) -> anyhow::Result<PathBuf> {
    let path = cni_dir(lab).join("net.d").join(format!("{name}.conflist"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&plugin_conf(lab, name, vm_port, uplink, extra))?,
    )?;
    Ok(path)
}

/// `podman ARGS` in vm5 with the lab's configuration and storage. `nsenter` joins only
/// vm5's network namespace: podman needs the host's /sys (cgroups), which `ip netns
/// exec` would hide.
pub fn podman(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    podman_in(lab, "vm5", args)
}

pub fn podman_in(lab: &Lab, vm: &str, args: &[&str]) -> anyhow::Result<String> {
    let dir = cni_dir(lab).join("podman");
    let net = format!("--net=/run/netns/{}", lab.ns(vm));
    let root = dir.join("root").display().to_string();
    let runroot = dir.join("run").display().to_string();
    let conf = format!("CONTAINERS_CONF={}", dir.join("containers.conf").display());
    let mut full = vec![
        conf.as_str(),
        "nsenter",
        net.as_str(),
        "podman",
        "--root",
        &root,
        "--runroot",
        &runroot,
        "--storage-driver",
        "vfs",
    ];
    full.extend_from_slice(args);
    run("env", &full)
}

/// Podman's `run` flags for this machine kind (../shared/reference/podman-cni): runc,
/// explicit ulimits, a local rootfs.
pub fn podman_run_args(lab: &Lab) -> Vec<String> {
    let rootfs = cni_dir(lab).join("rootfs").display().to_string();
    [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--rootfs",
        &rootfs,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// `--containers podman`: c51 and c52, detached, on network `dmz`.
pub fn start_podman(lab: &Lab) -> anyhow::Result<()> {
    for name in PODMAN_CONTAINERS {
        let mut args = vec!["run", "-d", "--name", name, "--network", "dmz"];
        let extra = podman_run_args(lab);
        args.extend(extra.iter().map(String::as_str));
        args.extend(["/bin/sleep", "1000000000"]);
        podman(lab, &args).with_context(|| format!("podman run {name}"))?;
    }
    Ok(())
}

/// A container's IPv4 address, as podman shows it.
pub fn podman_address(lab: &Lab, name: &str) -> Option<String> {
    let out = podman(
        lab,
        &["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"],
    )
    .ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_owned)
}

/// A VM that joined the lab: namespace `name` with `eth0` cabled to the hypervisor and
/// logical port `dmz-<name>` bound there.
#[derive(Clone, Debug)]
pub struct ContainerVm {
    pub name: String,
    /// The full namespace name (with the lab's prefix).
    pub ns: String,
    pub port: String,
    pub ip: String,
}

/// Adds VM `vm<index>` (index 6..=9: addresses .136 to .139, outside OVN's allocation).
pub fn add_vm(lab: &Lab, index: u8) -> anyhow::Result<ContainerVm> {
    anyhow::ensure!((6..=9).contains(&index), "extra VMs are vm6 to vm9");
    let name = format!("vm{index}");
    let ns = lab.ns(&name);
    let port = format!("dmz-{name}");
    let mac = format!("02:ac:10:ff:01:{:02x}", 0x30 + index);
    let ip = format!("172.16.255.{}", 130 + u16::from(index));
    let addresses = format!("{mac} {ip}");
    lab.nbctl(&[
        "lsp-add",
        "dmz",
        &port,
        "--",
        "lsp-set-addresses",
        &port,
        &addresses,
        "--",
        "lsp-set-port-security",
        &port,
        &addresses,
    ])?;
    run("ip", &["netns", "add", &ns])?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir.join(EXTRA_FILE))?;
    std::io::Write::write_all(&mut f, format!("{ns}\n").as_bytes())?;
    let vif = format!("brint-{name}");
    run(
        "ip",
        &[
            "-n",
            &lab.ns("hv"),
            "link",
            "add",
            &vif,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ],
    )?;
    for (n, dev) in [(lab.ns("hv"), vif.as_str()), (ns.clone(), "eth0")] {
        run(
            "ip",
            &["netns", "exec", &n, "ethtool", "-K", dev, "tx", "off"],
        )?;
        run("ip", &["-n", &n, "link", "set", dev, "up"])?;
    }
    run(
        "ip",
        &["netns", "exec", &ns, "ethtool", "-K", "eth0", "gro", "on"],
    )?;
    run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    run("ip", &["-n", &ns, "link", "set", "eth0", "address", &mac])?;
    run(
        "ip",
        &["-n", &ns, "addr", "add", &format!("{ip}/26"), "dev", "eth0"],
    )?;
    for sysctl in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        run("ip", &["netns", "exec", &ns, "sysctl", "-qw", sysctl])?;
    }
    let id = format!("external_ids:iface-id={port}");
    lab.hv_vsctl(&[
        "add-port",
        "br-int",
        &vif,
        "--",
        "set",
        "Interface",
        &vif,
        &id,
    ])?;
    process::wait_for(
        &format!("{port} up"),
        std::time::Duration::from_secs(30),
        || {
            lab.nbctl(&[
                "--bare",
                "--columns=up",
                "find",
                "Logical_Switch_Port",
                &format!("name={port}"),
            ])
            .is_ok_and(|o| o.trim() == "true")
        },
    )?;
    Ok(ContainerVm { name, ns, port, ip })
}

/// What `down` undoes for the container modes: podman's containers (their ports go back
/// through `ovnest-cni` DEL), added VMs, the bpffs and anything still mounted under the
/// lab directory.
pub fn down(dir: &Path, prefix: &str) {
    let cni = dir.join("cni");
    if cni.join("podman/containers.conf").exists() {
        for vm in std::iter::once(format!("{prefix}vm5")).chain(extra_namespaces(dir)) {
            let podman_dir = cni.join("podman");
            let _ = std::process::Command::new("nsenter")
                .arg(format!("--net=/run/netns/{vm}"))
                .args(["podman", "--root"])
                .arg(podman_dir.join("root"))
                .arg("--runroot")
                .arg(podman_dir.join("run"))
                .args(["--storage-driver", "vfs", "rm", "-f", "-a", "-t", "2"])
                .env("CONTAINERS_CONF", podman_dir.join("containers.conf"))
                .output();
        }
    }
    for ns in extra_namespaces(dir) {
        let _ = run("ip", &["netns", "del", &ns]);
    }
    unmount_under(dir);
}

fn extra_namespaces(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(EXTRA_FILE))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Lazily unmounts every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = run("umount", &["-l", p]);
    }
}
