//! Leaving a hypervisor on purpose: `ovnest cleanup`, ovnest's `ovn-appctl exit` (without
//! `--restart`). ovn-controller keeps its chassis, claims and flows when it merely stops
//! (for a restart or an upgrade); only a deliberate exit removes them. ovnest does the
//! same: a signal (SIGTERM, SIGINT) or a crash leaves the chassis, the claims and the
//! pinned datapath forwarding, and `ovnest cleanup` stops the agent if it runs, releases
//! its ports and removes its Chassis / Chassis_Private rows from the Southbound, and
//! removes the pinned programs and maps (which detaches XDP from every VIF).
//!
//! It works from the `run.json` the agent keeps in its state directory, so it needs no
//! other flag and works after a crash too.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use ovnest_datapath::fastpath::PinDir;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{bindings, chassis};
use crate::sb::{self, Southbound};

/// Who runs on this hypervisor, for `ovnest cleanup` (written by `ovnest run`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRecord {
    pub pid: u32,
    pub chassis: String,
    pub ovn_remote: String,
    pub pin_dir: PathBuf,
}

const RUN_FILE: &str = "run.json";

impl RunRecord {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("run.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, dir.join(RUN_FILE))
    }

    pub fn read(dir: &Path) -> std::io::Result<RunRecord> {
        let bytes = std::fs::read(dir.join(RUN_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

#[derive(Args, Clone, Debug)]
pub struct CleanupArgs {
    /// The agent's state directory (`ovnest run --state-dir`).
    #[arg(long, default_value = "/run/ovnest")]
    pub state_dir: PathBuf,
    /// Southbound remote(s), when the state directory has no record.
    #[arg(long, value_name = "REMOTES")]
    pub ovn_remote: Option<String>,
    /// Chassis name, when the state directory has no record.
    #[arg(long)]
    pub chassis: Option<String>,
    /// bpffs root of the pins (`ovnest run --bpffs-root`), when there is no record.
    #[arg(long, default_value = ovnest_datapath::fastpath::pins::DEFAULT_ROOT, value_name = "DIR")]
    pub bpffs_root: PathBuf,
    /// How long to wait for the Southbound.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub timeout: u64,
}

/// Stops the agent, removes the chassis from the Southbound and the datapath from the
/// kernel. Each step is attempted even if an earlier one failed; the error names them.
pub async fn run(args: CleanupArgs) -> anyhow::Result<()> {
    let record = RunRecord::read(&args.state_dir).ok();
    let chassis = args
        .chassis
        .clone()
        .or_else(|| record.as_ref().map(|r| r.chassis.clone()))
        .context("no chassis: give --chassis, or --state-dir of a chassis that ran")?;
    let remote = args
        .ovn_remote
        .clone()
        .or_else(|| record.as_ref().map(|r| r.ovn_remote.clone()));
    let pins = record
        .as_ref()
        .map(|r| PinDir::at(&r.pin_dir))
        .unwrap_or_else(|| PinDir::for_chassis(&args.bpffs_root, &chassis));

    let mut failed = Vec::new();
    if let Some(record) = &record {
        stop_agent(record.pid, Duration::from_secs(10));
    }
    match &remote {
        Some(remote) => {
            if let Err(e) =
                remove_chassis(remote, &chassis, Duration::from_secs(args.timeout)).await
            {
                warn!("removing chassis {chassis} from the Southbound: {e:#}");
                failed.push(format!("Southbound ({e:#})"));
            }
        }
        None => failed.push("Southbound (no remote known: give --ovn-remote)".into()),
    }
    match pins.remove() {
        Ok(()) => info!("removed the datapath pinned in {}", pins.path().display()),
        Err(e) => failed.push(format!("pins in {} ({e})", pins.path().display())),
    }
    let _ = std::fs::remove_file(args.state_dir.join(RUN_FILE));
    if !failed.is_empty() {
        anyhow::bail!("cleanup incomplete: {}", failed.join("; "));
    }
    Ok(())
}

/// SIGTERM to the agent (which then stops for restart, touching nothing), and a wait for
/// it to be gone so it cannot re-register the chassis behind our back.
fn stop_agent(pid: u32, grace: Duration) {
    let pid = pid as i32;
    // A zombie (exited, not yet reaped by whoever started it) counts as gone.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    let is_us = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim().starts_with("ovnest"));
    if !alive() || !is_us || pid as u32 == std::process::id() {
        return;
    }
    info!("stopping ovnest (pid {pid})");
    // SAFETY: signalling the recorded agent; at worst it already exited.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(20));
    }
    if alive() {
        warn!("ovnest (pid {pid}) did not stop in {grace:?}; killing it");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Releases the chassis's ports and deletes its rows, as ovn-controller's exit does.
async fn remove_chassis(remote: &str, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let remotes = remote
        .parse()
        .map_err(|e| anyhow::anyhow!("ovn-remote {remote:?}: {e}"))?;
    let sb = Southbound::start(sb::config(remotes));
    let mut watch = sb.watch();
    tokio::time::timeout(timeout, async {
        while !watch.borrow().is_synced() {
            if watch.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .context("the Southbound did not answer")?;
    let snapshot = sb.snapshot();
    let mut ops = Vec::new();
    if let Some(chassis) = snapshot.chassis(name) {
        ops = bindings::port_binding_updates(
            &snapshot,
            chassis.uuid,
            &bindings::Plan::default(),
            &BTreeSet::new(),
        );
    }
    ops.extend(chassis::unregister(name));
    tokio::time::timeout(timeout, sb.transact(ops))
        .await
        .context("no answer to the cleanup transaction")?
        .context("cleanup transaction")?;
    info!("chassis {name} removed from the Southbound");
    Ok(())
}
