//! `ovnest run` flags and the effective configuration: flags override the local
//! Open_vSwitch DB, which follows ovn-controller's conventions.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use super::local_ovs::LocalOvs;
use crate::ovsdb::Remotes;

/// The usual ovsdb-server socket of the local Open_vSwitch DB.
pub const DEFAULT_OVS_DB: &str = "unix:/var/run/openvswitch/db.sock";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatapathMode {
    /// The physical layer only, hand-written in XDP (tags, port security, ARP, known
    /// unicast), without OVN's logical flows: no ACLs, no DHCP, no routing. A benchmark
    /// mode for the physical layer; what XDP cannot finish (flooding) is dropped.
    Xdp,
    /// OVN's logical pipeline decides every frame in the userspace AF_XDP datapath.
    Afxdp,
    /// OVN's logical pipeline decides in userspace; XDP caches its decisions and carries
    /// out a flow's frames once its first frame was decided.
    Hybrid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Local Open_vSwitch DB to read system-id, ovn-remote, ovn-encap-* and iface-ids from.
    /// Default: the usual socket, when it exists.
    #[arg(long, value_name = "REMOTE")]
    pub ovs_db: Option<String>,
    /// Southbound DB remote(s), e.g. `tcp:10.0.0.2:6642,tcp:10.0.0.3:6642`.
    #[arg(long, value_name = "REMOTES")]
    pub ovn_remote: Option<String>,
    /// Chassis name (Open_vSwitch external_ids:system-id).
    #[arg(long)]
    pub chassis: Option<String>,
    /// Tunnel endpoint IP of this chassis.
    #[arg(long)]
    pub encap_ip: Option<String>,
    /// Tunnel type registered in the chassis's Encap.
    #[arg(long)]
    pub encap_type: Option<String>,
    /// Bind an interface to a logical port without OVS: `--bind vm1=dmz-vm1` (repeatable).
    #[arg(long = "bind", value_name = "IFACE=LOGICAL_PORT")]
    pub binds: Vec<String>,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub datapath: DatapathMode,
    /// Decisions the XDP cache holds per address family (`hybrid`; least recently used
    /// ones make room).
    #[arg(long, default_value_t = ovnest_common::cache::DEFAULT_CACHE_ENTRIES, value_name = "ENTRIES")]
    pub cache_size: u32,
    /// AF_XDP poll threads (one per core; thread q serves queue q of every VIF).
    #[arg(long, default_value = "1")]
    pub cores: u32,
    /// How long an AF_XDP poll thread keeps polling after its last frame before it sleeps
    /// (0: sleep at once). Spinning costs CPU but spares the next frame a wake-up.
    #[arg(long, default_value_t = ovnest_datapath::afxdp::DEFAULT_BUSY_POLL.as_micros() as u64, value_name = "MICROSECONDS")]
    pub busy_poll_us: u64,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9476.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Where `status.json` lives (read by `ovnest status`).
    #[arg(long, default_value = "/run/ovnest")]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Full resync period, on top of event-driven reconciles.
    #[arg(long, default_value = "5", value_name = "SECONDS")]
    pub resync: u64,
    /// Replicate every Southbound row instead of the local datapaths' only (as
    /// `external_ids:ovn-monitor-all=true` in the local Open_vSwitch DB).
    #[arg(long)]
    pub monitor_all: bool,
    /// bpffs directory under which the datapath is pinned, one subdirectory per chassis:
    /// maps and XDP links there outlive ovnest, so a restart or an upgrade takes over
    /// forwarding without a gap. `ovnest cleanup` removes them.
    #[arg(long, default_value = ovnest_datapath::fastpath::pins::DEFAULT_ROOT, value_name = "DIR")]
    pub bpffs_root: PathBuf,
    /// Take these maps' layout as one version newer than this build's: a restart then
    /// behaves as an upgrade to a build whose layout of them changed (tests, drills).
    #[arg(long, hide = true, value_name = "MAP")]
    pub newer_layout: Vec<String>,
}

/// Flags checked once at start: anything malformed is an error before anything runs.
#[derive(Clone, Debug)]
pub struct Flags {
    pub ovs_db: Option<Remotes>,
    pub ovn_remote: Option<String>,
    pub chassis: Option<String>,
    pub encap_ip: Option<String>,
    pub encap_type: Option<String>,
    /// Interface → logical port.
    pub binds: BTreeMap<String, String>,
    pub datapath: DatapathMode,
    pub cache_size: u32,
    pub cores: u32,
    pub busy_poll: Duration,
    pub metrics: Option<SocketAddr>,
    pub state_dir: PathBuf,
    pub resync: Duration,
    pub monitor_all: bool,
    pub bpffs_root: PathBuf,
    pub newer_layout: Vec<String>,
}

impl Flags {
    pub fn check(args: &RunArgs) -> anyhow::Result<Flags> {
        let mut binds = BTreeMap::new();
        for bind in &args.binds {
            let Some((iface, port)) = bind
                .split_once('=')
                .filter(|(i, p)| !i.is_empty() && !p.is_empty())
            else {
                bail!("--bind {bind:?}: expected IFACE=LOGICAL_PORT, e.g. --bind vm1=dmz-vm1");
            };
            if let Some(previous) = binds.insert(iface.to_owned(), port.to_owned()) {
                bail!("--bind: interface {iface} given twice ({previous} and {port})");
            }
        }
        if let Some(remote) = &args.ovn_remote {
            remote
                .parse::<Remotes>()
                .map_err(|e| anyhow::anyhow!("--ovn-remote {remote:?}: {e}"))?;
        }
        if let Some(ip) = &args.encap_ip {
            ip.parse::<std::net::IpAddr>()
                .with_context(|| format!("--encap-ip {ip:?} is not an IP address"))?;
        }
        let ovs_db = match &args.ovs_db {
            Some(remote) => Some(
                remote
                    .parse::<Remotes>()
                    .map_err(|e| anyhow::anyhow!("--ovs-db {remote:?}: {e}"))?,
            ),
            None if std::path::Path::new(DEFAULT_OVS_DB.trim_start_matches("unix:")).exists() => {
                Some(
                    DEFAULT_OVS_DB
                        .parse()
                        .map_err(|e| anyhow::anyhow!("{DEFAULT_OVS_DB}: {e}"))?,
                )
            }
            None => None,
        };
        if ovs_db.is_none() && (args.chassis.is_none() || args.ovn_remote.is_none()) {
            bail!(
                "no local Open_vSwitch DB at {DEFAULT_OVS_DB}: give --ovs-db REMOTE, or run without OVS with \
                 --chassis NAME --ovn-remote REMOTES --encap-ip IP and --bind IFACE=LOGICAL_PORT"
            );
        }
        if args.cores == 0 || args.cores > 256 {
            bail!("--cores {}: expected 1..=256", args.cores);
        }
        if args.cache_size == 0 || args.cache_size > 1 << 24 {
            bail!(
                "--cache-size {}: expected 1..=16777216 entries",
                args.cache_size
            );
        }
        if args.busy_poll_us > 1_000_000 {
            bail!(
                "--busy-poll-us {}: expected 0..=1000000 (at most a second)",
                args.busy_poll_us
            );
        }
        if args.resync == 0 {
            bail!("--resync must be at least 1 second");
        }
        Ok(Flags {
            ovs_db,
            ovn_remote: args.ovn_remote.clone(),
            chassis: args.chassis.clone(),
            encap_ip: args.encap_ip.clone(),
            encap_type: args.encap_type.clone(),
            binds,
            datapath: args.datapath,
            cache_size: args.cache_size,
            cores: args.cores,
            busy_poll: Duration::from_micros(args.busy_poll_us),
            metrics: args.metrics,
            state_dir: args.state_dir.clone(),
            resync: Duration::from_secs(args.resync),
            monitor_all: args.monitor_all,
            bpffs_root: args.bpffs_root.clone(),
            newer_layout: args.newer_layout.clone(),
        })
    }
}

/// The configuration in force: flags over the local DB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub chassis: String,
    pub hostname: String,
    pub ovn_remote: String,
    pub encap_type: String,
    pub encap_ip: String,
    /// Interface → logical port.
    pub binds: BTreeMap<String, String>,
    /// Replicate the whole SB (`--monitor-all` or `ovn-monitor-all=true`).
    pub monitor_all: bool,
}

impl Effective {
    /// `Err` names what is still missing, for a "waiting for ..." line.
    pub fn resolve(flags: &Flags, local: Option<&LocalOvs>) -> Result<Effective, String> {
        let from_db = |pick: fn(&LocalOvs) -> Option<&String>| local.and_then(pick).cloned();
        let chassis = flags
            .chassis
            .clone()
            .or_else(|| from_db(|l| l.system_id.as_ref()));
        let ovn_remote = flags
            .ovn_remote
            .clone()
            .or_else(|| from_db(|l| l.ovn_remote.as_ref()));
        let encap_ip = flags
            .encap_ip
            .clone()
            .or_else(|| from_db(|l| l.encap_ip.as_ref()));
        let encap_type = flags
            .encap_type
            .clone()
            .or_else(|| from_db(|l| l.encap_type.as_ref()))
            .unwrap_or_else(|| "geneve".into());
        let hostname = from_db(|l| l.hostname.as_ref()).unwrap_or_else(system_hostname);
        let mut missing = Vec::new();
        if chassis.is_none() {
            missing.push("the chassis name (--chassis, or external_ids:system-id in Open_vSwitch)");
        }
        if ovn_remote.is_none() {
            missing.push("the Southbound remote (--ovn-remote, or external_ids:ovn-remote)");
        }
        if encap_ip.is_none() {
            missing.push("the encap IP (--encap-ip, or external_ids:ovn-encap-ip)");
        }
        if !missing.is_empty() {
            return Err(missing.join("; "));
        }
        let mut binds: BTreeMap<String, String> =
            local.map(|l| l.iface_ids.clone()).unwrap_or_default();
        binds.extend(flags.binds.clone());
        Ok(Effective {
            chassis: chassis.unwrap_or_default(),
            hostname,
            ovn_remote: ovn_remote.unwrap_or_default(),
            encap_type,
            encap_ip: encap_ip.unwrap_or_default(),
            binds,
            monitor_all: flags.monitor_all || local.is_some_and(|l| l.monitor_all),
        })
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
