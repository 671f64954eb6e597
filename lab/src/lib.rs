//! `ovnest lab` and `ovnest bench`, kept out of the agent's crate (the `ovnest` binary
//! links them; `ovnest run` does not need them). [`bench`] measures on the lab.
//!
//! The seed lab, one command: real OVN central (NB, SB, northd), the seed series' network
//! built with its own `ovn-nbctl` commands (switch `dmz`, router lr0, and switch `inside`
//! behind it), the hypervisor and the VMs as network namespaces, vm5's tagging bridge as
//! a userspace-datapath OVS bridge `br-vm5` with c51 and c52 on access ports 51 and 52
//! (as the seed does it), the VIFs plugged through `external_ids:iface-id` in a local
//! Open_vSwitch DB, `ovnest run` on the hypervisor, and `dhclient` on every machine.
//!
//! ```text
//!  ns hv ─ ovnest (XDP on vm1, vm2, vm3, vm4, brint-brvm5)
//!   vm1 ───────── eth0 [ns vm1 .130]        dmz 172.16.255.128/26, lr0-dmz .129
//!   vm2 ───────── eth0 [ns vm2 .131]
//!   vm3 ───────── eth0 [ns vm3 .194]        inside 172.16.255.192/26, lr0-inside .193
//!   vm4 ───────── eth0 [ns vm4 .195]
//!   brint-brvm5 ─ brvm5-brint ┐ ns vm5: OVS br-vm5 (netdev), internal port vm5 .132
//!                             ├ c51 (tag 51) ── eth0 [ns c51 .133]
//!                             └ c52 (tag 52) ── eth0 [ns c52 .134]
//! ```

pub mod bench;
pub mod central;
pub mod containers;
mod dhcp;
pub mod hypervisors;
mod network;
pub mod process;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

pub use network::{
    INSIDE_PORTS, LAB_PORTS, LabPort, MACHINES, Machine, lab_ports, start_ovn_controller,
};

#[derive(Subcommand, Clone, Debug)]
pub enum LabCommand {
    /// Start everything and print what to try.
    Up(LabArgs),
    /// Stop and remove everything `up` made, by the pids and names it recorded.
    Down(LabArgs),
    /// Print the environment for driving the lab's OVN by hand.
    Env(LabArgs),
}

#[derive(Args, Clone, Debug)]
pub struct LabArgs {
    /// Where the lab keeps its databases, sockets, pidfiles and logs.
    #[arg(long, default_value = "/tmp/ovnest-lab")]
    pub dir: PathBuf,
    /// Prefix for the namespace names (several labs side by side, e.g. in tests).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The ovnest binary to run as the agent (default: this one).
    #[arg(long)]
    pub ovnest: Option<PathBuf>,
    /// Which chassis agent runs the hypervisor: ovnest, or the peer it is measured
    /// against (ovn-controller with a userspace-datapath ovs-vswitchd).
    #[arg(long, value_enum, default_value = "ovnest")]
    pub agent: AgentKind,
    /// ovnest's datapath mode (`ovnest run --datapath`).
    #[arg(long, value_enum, default_value = "hybrid")]
    pub datapath: ovnest::agent::config::DatapathMode,
    /// vm5's containers: by hand on its OVS bridge as in the seed (`ovs`), through
    /// `ovnest-cni` with the TC tagger (`cni`: ready, none started; `podman`: c51 and c52
    /// started by podman).
    #[arg(long, value_enum, default_value = "ovs")]
    pub containers: containers::Containers,
    /// How the machines get their addresses: from OVN's DHCP with `dhclient`, as in the
    /// seed (where the agent answers DHCP: ovn-controller, ovnest hybrid or afxdp), or
    /// set statically at once.
    #[arg(long, value_enum, default_value = "dhcp")]
    pub addressing: Addressing,
    /// 2: vm1 and vm2 on a second hypervisor running real ovn-controller with userspace
    /// OVS, reached through Geneve over an underlay veth ([`hypervisors`]).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub hypervisors: u8,
    /// With `--hypervisors 2`: the second hypervisor's agent (real ovn-controller with
    /// userspace OVS, or ovnest with the same `--datapath` as the first).
    #[arg(long, value_enum, default_value = "ovn-controller")]
    pub hv2_agent: hypervisors::Hv2Agent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Addressing {
    /// `dhclient` on every machine, answered by OVN's DHCP through the chassis agent.
    Dhcp,
    /// Each port's address and a default route through lr0, set when the lab is built.
    Static,
}

impl LabArgs {
    /// What the machines get: DHCP only where the agent can answer it (ovnest's `xdp`
    /// mode has no pinctrl; the baseline lab has no agent at all).
    pub fn effective_addressing(&self) -> Addressing {
        use ovnest::agent::config::DatapathMode;
        let answers_dhcp = match self.agent {
            AgentKind::OvnController => true,
            AgentKind::Ovnest => self.datapath != DatapathMode::Xdp,
            AgentKind::None => false,
        };
        if answers_dhcp {
            self.addressing
        } else {
            Addressing::Static
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentKind {
    Ovnest,
    OvnController,
    /// No chassis agent: OVN and the namespaces only (the benchmark baseline's lab).
    None,
}

pub fn run(command: LabCommand) -> anyhow::Result<()> {
    match command {
        LabCommand::Up(args) => {
            let lab = Lab::up(&args)?;
            println!("{}", lab.banner());
            Ok(())
        }
        LabCommand::Down(args) => {
            Lab::down(&args.dir);
            println!("lab in {} is down", args.dir.display());
            Ok(())
        }
        LabCommand::Env(args) => {
            let lab = Lab::open(&args.dir)?;
            print!("{}", lab.env());
            Ok(())
        }
    }
}

/// A running lab.
#[derive(Clone, Debug)]
pub struct Lab {
    pub dir: PathBuf,
    pub prefix: String,
    pub nb: String,
    pub sb: String,
    /// The hypervisor's local Open_vSwitch DB (read by ovnest).
    pub hv_db: String,
    /// vm5's own Open_vSwitch DB (its tagging bridge).
    pub vm5_db: String,
}

/// Where and how one `ovnest run` of the lab runs.
pub(crate) struct AgentRun<'a> {
    /// The namespace, without the lab's prefix.
    pub ns: &'a str,
    pub ovs_db: &'a str,
    pub state_dir: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

const STATE_FILE: &str = "lab.env";
/// Present when the machines got their addresses by DHCP.
const DHCP_FILE: &str = "addressing-dhcp";

impl Lab {
    /// Brings the whole lab up; on failure tears down what it made.
    pub fn up(args: &LabArgs) -> anyhow::Result<Lab> {
        if args.dir.join(STATE_FILE).exists() {
            bail!(
                "a lab is already up in {} (run `ovnest lab down` first)",
                args.dir.display()
            );
        }
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("creating {}", args.dir.display()))?;
        let dir = std::fs::canonicalize(&args.dir)?;
        let result = Lab::build(&dir, args);
        if result.is_err() {
            Lab::down(&dir);
        }
        result
    }

    fn build(dir: &Path, args: &LabArgs) -> anyhow::Result<Lab> {
        let prefix = args.prefix.as_str();
        std::fs::write(dir.join("prefix"), prefix)?;
        let (nb, sb) = central::start(dir)?;
        let hv_db = central::start_db(dir, "hv", central::VSWITCH_SCHEMA, &[])?;
        let vm5_db = central::start_db(dir, "vm5", central::VSWITCH_SCHEMA, &[])?;
        let lab = Lab {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            nb,
            sb,
            hv_db,
            vm5_db,
        };
        let addressing = args.effective_addressing();
        if args.hypervisors > 1 && args.agent == AgentKind::None {
            bail!("--hypervisors 2 needs a chassis agent on the first hypervisor");
        }
        if args.hypervisors < 2 && args.hv2_agent != hypervisors::Hv2Agent::default() {
            bail!("--hv2-agent needs --hypervisors 2");
        }
        network::logical(&lab)?;
        containers::logical(&lab, args.containers)?;
        network::namespaces(&lab, addressing, args.hypervisors)?;
        network::hypervisor_db(&lab, args.agent, args.hypervisors)?;
        if args.hypervisors > 1 {
            hypervisors::start(&lab, args)?;
        }
        let by_hand = args.containers == containers::Containers::Ovs;
        if by_hand {
            network::vm5_bridge(&lab, addressing)?;
        } else {
            let vm5 = LAB_PORTS
                .iter()
                .find(|p| p.name == "dmz-vm5")
                .context("lab port")?;
            let ovnest = match &args.ovnest {
                Some(path) => path.clone(),
                None => std::env::current_exe().context("locating the ovnest binary")?,
            };
            containers::vm5(&lab, vm5, &ovnest)?;
        }
        match args.agent {
            AgentKind::Ovnest => lab.start_agent(args.ovnest.clone(), args.datapath)?,
            AgentKind::OvnController => network::start_ovn_controller(&lab)?,
            AgentKind::None => {}
        }
        std::fs::write(dir.join(STATE_FILE), lab.env())?;
        if args.agent != AgentKind::None {
            lab.wait_ready(Duration::from_secs(60))?;
        }
        if addressing == Addressing::Dhcp {
            // With ovnest-cni, vm5's address is set on its uplink and its containers
            // get theirs from the plugin.
            let machines: Vec<&Machine> = MACHINES
                .iter()
                .filter(|m| by_hand || !["vm5", "c51", "c52"].contains(&m.ns))
                .collect();
            dhcp::start(&lab, &machines)?;
            std::fs::write(dir.join(DHCP_FILE), "")?;
        }
        if args.containers == containers::Containers::Podman {
            containers::start_podman(&lab)?;
        }
        Ok(lab)
    }

    /// A lab that is up in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Lab> {
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("no lab in {}", dir.display()))?;
        if !dir.join(STATE_FILE).exists() {
            bail!("no lab is up in {} (run `ovnest lab up`)", dir.display());
        }
        let prefix = std::fs::read_to_string(dir.join("prefix")).unwrap_or_default();
        Ok(Lab {
            nb: central::nb_remote(&dir),
            sb: central::sb_remote(&dir),
            hv_db: format!("unix:{}", dir.join("hv.sock").display()),
            vm5_db: format!("unix:{}", dir.join("vm5.sock").display()),
            prefix,
            dir,
        })
    }

    /// The namespace called `name` in this lab.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn nbctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.nb);
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        process::run("ovn-nbctl", &full)
    }

    pub fn sbctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.sb);
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        process::run("ovn-sbctl", &full)
    }

    /// Runs a command in one of the lab's namespaces.
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
        process::run_in(&self.ns(ns), program, args)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn agent_pidfile(&self) -> PathBuf {
        self.dir.join("ovnest.pid")
    }

    /// The lease file of the dhclient on machine `ns` (DHCP addressing).
    pub fn lease_file(&self, ns: &str) -> PathBuf {
        dhcp::lease_file(&self.dir, ns)
    }

    /// The pidfile of the dhclient on machine `ns` (DHCP addressing).
    pub fn dhclient_pidfile(&self, ns: &str) -> PathBuf {
        dhcp::pidfile(&self.dir, ns)
    }

    /// Starts `ovnest run` in the hypervisor namespace, reading the local OVS DB.
    pub fn start_agent(
        &self,
        ovnest: Option<PathBuf>,
        datapath: ovnest::agent::config::DatapathMode,
    ) -> anyhow::Result<()> {
        self.start_agent_with(ovnest, datapath, &[])
    }

    /// [`Lab::start_agent`] with more `ovnest run` flags.
    pub fn start_agent_with(
        &self,
        ovnest: Option<PathBuf>,
        datapath: ovnest::agent::config::DatapathMode,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let agent = AgentRun {
            ns: "hv",
            ovs_db: &self.hv_db,
            state_dir: self.state_dir(),
            pidfile: self.agent_pidfile(),
            log: self.dir.join("ovnest.log"),
        };
        self.spawn_ovnest(&agent, ovnest, datapath, extra)
    }

    /// `ovnest run` in namespace `agent.ns`, reading `agent.ovs_db`; its pid in
    /// `agent.pidfile`.
    pub(crate) fn spawn_ovnest(
        &self,
        agent: &AgentRun<'_>,
        ovnest: Option<PathBuf>,
        datapath: ovnest::agent::config::DatapathMode,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        use clap::ValueEnum as _;
        let mode = datapath
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        let binary = match ovnest {
            Some(path) => path,
            None => std::env::current_exe().context("locating the ovnest binary")?,
        };
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&agent.log)?;
        // nsenter, not `ip netns exec`: that remounts /sys, and the datapath pinned on a
        // bpffs private to it would go with the process.
        let child = std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns(agent.ns)))
            .arg(&binary)
            .args([
                "run",
                "--datapath",
                &mode,
                "--ovs-db",
                agent.ovs_db,
                "--state-dir",
            ])
            .arg(&agent.state_dir)
            .arg("--bpffs-root")
            .arg(self.bpffs_root())
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        std::fs::write(&agent.pidfile, child.id().to_string())?;
        Ok(())
    }

    /// Where this lab's ovnest pins its datapath (one lab's pins never meet another's).
    pub fn bpffs_root(&self) -> PathBuf {
        bpffs_root(&self.prefix)
    }

    /// Stops the agent with SIGTERM: a stop for restart, so its chassis, claims and
    /// pinned datapath stay (`ovnest cleanup` removes them).
    pub fn stop_agent(&self) -> bool {
        process::stop(&self.agent_pidfile(), Duration::from_secs(10))
    }

    /// Pid of the hypervisor's agent (ovnest or ovn-controller), if running.
    pub fn agent_pid(&self) -> Option<i32> {
        process::alive(&self.agent_pidfile())
            .or_else(|| process::alive(&self.dir.join("ovn-controller.pid")))
    }

    /// Stops the SB ovsdb-server (its database file stays).
    pub fn stop_sb(&self) {
        process::stop(&self.dir.join("sb.pid"), Duration::from_secs(5));
    }

    /// Starts the SB ovsdb-server again on its existing database.
    pub fn start_sb(&self) -> anyhow::Result<()> {
        central::start_db(&self.dir, "sb", central::SB_SCHEMA, &[]).map(|_| ())
    }

    /// `ovs-vsctl` on the hypervisor's Open_vSwitch database.
    pub fn hv_vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.hv_db);
        let mut full = vec![db.as_str(), "--no-wait"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full)
    }

    /// `ovs-vsctl` on vm5's own bridge database.
    pub fn vm5_vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db={}", self.vm5_db);
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        process::run("ovs-vsctl", &full)
    }

    /// Waits until northd and the chassis agree: every lab port bound and up, and
    /// `ovn-nbctl --wait=hv sync` returns.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        process::wait_for("every lab port up in the Southbound", timeout, || {
            self.sbctl(&[
                "--bare",
                "--columns=logical_port,up",
                "find",
                "Port_Binding",
                "up=true",
            ])
            .map(|out| {
                let by_hand = containers::mode(&self.dir) == containers::Containers::Ovs;
                lab_ports()
                    .filter(|p| p.vif_or_child() && (by_hand || p.tag.is_none()))
                    .all(|p| out.split_whitespace().any(|w| w == p.name))
            })
            .unwrap_or(false)
        })
        .with_context(|| format!("see {}", self.dir.join("ovnest.log").display()))?;
        self.nbctl(&["--wait=hv", "sync"])?;
        Ok(())
    }

    /// What to paste into a shell to drive this lab's OVN by hand.
    pub fn env(&self) -> String {
        format!(
            "export OVN_NB_DB={nb}\nexport OVN_SB_DB={sb}\n# the hypervisor's Open_vSwitch DB (ovnest reads iface-ids from it):\nexport OVNEST_HV_DB={hv}\n# vm5's own bridge br-vm5:\nexport OVNEST_VM5_DB={vm5}\n# e.g. ovn-nbctl show; ovn-sbctl show; ovs-vsctl --db=$OVNEST_VM5_DB show\n",
            nb = self.nb,
            sb = self.sb,
            hv = self.hv_db,
            vm5 = self.vm5_db
        )
    }

    pub fn banner(&self) -> String {
        if containers::mode(&self.dir) != containers::Containers::Ovs {
            return self.cni_banner();
        }
        let p = &self.prefix;
        let ovnest = std::env::current_exe().map_or("ovnest".into(), |e| e.display().to_string());
        let addressing = if self.dir.join(DHCP_FILE).exists() {
            format!(
                "vm1 vm2 vm3 vm4 vm5 c51 c52 got their addresses from OVN's DHCP with dhclient \
                 (leases: {}/*.leases).",
                self.dir.display()
            )
        } else {
            "Static addresses (no DHCP: --addressing static, or an agent without pinctrl)."
                .to_owned()
        };
        format!(
            "The seed lab is up (real OVN + ovnest on the hypervisor namespace {p}hv).\n\
             {addressing}\n\n\
             The seed's steps:\n  \
             ip netns exec {p}c51 ping -c3 172.16.255.129       # c51 (tag 51) -> its default gateway, lr0\n  \
             ip netns exec {p}c51 ping -c3 172.16.255.194       # -> vm3 on switch inside, across lr0\n  \
             ip netns exec {p}c51 traceroute -n 172.16.255.194  # hop 1: lr0 (TTL exceeded), hop 2: vm3\n  \
             ip netns exec {p}c52 ping -c3 172.16.255.133       # c52 -> c51, hairpin through vm5's VIF\n  \
             # an ACL: nothing from vm2 (.131) reaches dmz's ports, until it is removed\n  \
             ovn-nbctl --db={nb} --wait=hv acl-add dmz to-lport 1001 'ip4.src == 172.16.255.131' drop\n  \
             ip netns exec {p}vm2 ping -c3 -W1 172.16.255.133   # no answer now\n  \
             ovn-nbctl --db={nb} --wait=hv acl-del dmz\n  \
             ip netns exec {p}hv {ovnest} status --state-dir {state}\n{hv2}\n\
             Drive OVN by hand (`ovnest lab env --dir {dir}` prints this again):\n{env}\n\
             Logs: {dir}/*.log   Tear down: ovnest lab down --dir {dir}\n",
            nb = self.nb,
            state = self.state_dir().display(),
            dir = self.dir.display(),
            env = self.env(),
            hv2 = self.hv2_banner(&ovnest),
        )
    }

    /// With `--hypervisors 2`: where vm1 and vm2 are and what runs there.
    fn hv2_banner(&self, ovnest: &str) -> String {
        let p = &self.prefix;
        if process::alive(&self.dir.join("hv2-ovnest.pid")).is_some() {
            format!(
                "  # vm1 and vm2 are on hypervisor {p}hv2 (ovnest, Geneve over und):\n  \
                 ip netns exec {p}hv2 {ovnest} status --state-dir {}\n",
                hypervisors::ovnest_state_dir(self).display()
            )
        } else if process::alive(&self.dir.join("hv2-ovn-controller.pid")).is_some() {
            format!(
                "  # vm1 and vm2 are on hypervisor {p}hv2 (ovn-controller + OVS, Geneve over und)\n"
            )
        } else {
            String::new()
        }
    }

    fn cni_banner(&self) -> String {
        let p = &self.prefix;
        let dir = self.dir.display();
        let mut out = String::from(
            "The seed lab is up; vm5's containers are made by ovnest-cni (TC tagger, no OVS in vm5).\n\nTry:\n",
        );
        if containers::mode(&self.dir) == containers::Containers::Podman {
            for c in containers::PODMAN_CONTAINERS {
                let addr = containers::podman_address(self, c).unwrap_or_else(|| "?".into());
                out += &format!("  # podman container {c} in vm5 has {addr} from OVN\n");
            }
            out += &format!(
                "  CONTAINERS_CONF={dir}/cni/podman/containers.conf nsenter --net=/run/netns/{p}vm5 \\\n    \
                 podman --root {dir}/cni/podman/root --runroot {dir}/cni/podman/run --storage-driver vfs \\\n    \
                 exec c51 ping -c3 172.16.255.130\n"
            );
        }
        out += &format!(
            "  # a container by hand, calling the plugin as a runtime does:\n  \
             ip netns add {p}ct1\n  \
             CNI_COMMAND=ADD CNI_CONTAINERID=ct1 CNI_NETNS=/run/netns/{p}ct1 CNI_IFNAME=eth0 \\\n    \
             nsenter --net=/run/netns/{p}vm5 {dir}/cni/bin/ovnest-cni < {dir}/cni/dmz.conf\n  \
             ip netns exec {p}ct1 ping -c3 172.16.255.130\n\n\
             Drive OVN by hand (`ovnest lab env --dir {dir}` prints this again):\n{env}\n\
             Logs: {dir}/*.log   Tear down: ovnest lab down --dir {dir}\n",
            env = self.env()
        );
        out
    }

    /// Stops and removes everything a lab in `dir` made. Safe to call on a half-built or
    /// absent lab.
    pub fn down(dir: &Path) {
        let prefix = std::fs::read_to_string(dir.join("prefix")).unwrap_or_default();
        dhcp::stop(dir);
        process::stop(&dir.join("ovnest.pid"), Duration::from_secs(10));
        hypervisors::stop_ovnest(dir);
        // The stopped agents' datapaths stay pinned until removed.
        remove_pins(&bpffs_root(&prefix));
        process::stop(&dir.join("ovn-controller.pid"), Duration::from_secs(10));
        process::stop(&dir.join("hv-vswitchd.pid"), Duration::from_secs(5));
        process::stop(&dir.join("vm5-vswitchd.pid"), Duration::from_secs(5));
        hypervisors::stop(dir, &prefix);
        // Podman's containers first: their DEL needs the NB and vm5.
        containers::down(dir, &prefix);
        central::stop(dir, &["vm5", "hv", "northd", "sb", "nb"]);
        network::remove_namespaces(&prefix);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The bpffs root of the lab with namespace prefix `prefix`.
fn bpffs_root(prefix: &str) -> PathBuf {
    let name = if prefix.is_empty() { "default" } else { prefix };
    Path::new("/sys/fs/bpf/ovnest-lab").join(name.trim_end_matches('-'))
}

/// Removes every chassis's pins under `root` (detaching their programs), then `root`.
fn remove_pins(root: &Path) {
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let _ = ovnest_datapath::fastpath::PinDir::at(entry.path()).remove();
        }
    }
    let _ = std::fs::remove_dir(root);
}
