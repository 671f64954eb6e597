//! The machines' DHCP clients, as the seed runs them: `dhclient` on each machine's NIC,
//! answered by OVN's DHCP (`put_dhcp_opts`, executed by the chassis agent's pinctrl).
//! Each client stays to renew its lease, as in the seed; its pidfile and lease file are
//! in the lab directory, and `ovnest lab down` stops it by that pidfile.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow};

use crate::{Lab, MACHINES, Machine, process};

/// Where `ns`'s dhclient records its pid.
pub fn pidfile(dir: &Path, ns: &str) -> PathBuf {
    dir.join(format!("{ns}.dhclient.pid"))
}

/// Where `ns`'s dhclient keeps its lease.
pub fn lease_file(dir: &Path, ns: &str) -> PathBuf {
    dir.join(format!("{ns}.leases"))
}

/// How long a machine may take to get its lease before `lab up` gives up.
const TIMEOUT_S: u32 = 20;

/// Runs dhclient on every machine in `machines` at once; returns when each is bound
/// (address and default route configured by dhclient-script) or fails with the ones that
/// got no lease.
pub fn start(lab: &Lab, machines: &[&Machine]) -> anyhow::Result<()> {
    let conf = lab.dir.join("dhclient.conf");
    // dhclient's defaults ask again after 10 s and give up after 60 s; the lab asks every
    // second or two, so a first DISCOVER lost while the agent settles costs little.
    std::fs::write(
        &conf,
        format!("timeout {TIMEOUT_S};\ninitial-interval 1;\nbackoff-cutoff 2;\n"),
    )?;
    let failed: Vec<String> = std::thread::scope(|s| {
        let clients: Vec<_> = machines
            .iter()
            .map(|m| (m.ns, s.spawn(|| run(lab, m, &conf))))
            .collect();
        clients
            .into_iter()
            .filter_map(|(ns, client)| {
                match client.join().unwrap_or_else(|_| Err(anyhow!("panicked"))) {
                    Ok(()) => None,
                    Err(e) => Some(format!("{ns}: {e:#}")),
                }
            })
            .collect()
    });
    if !failed.is_empty() {
        anyhow::bail!(
            "no DHCP lease within {TIMEOUT_S} s (does the chassis agent answer DHCP? see {}/*.log):\n  {}",
            lab.dir.display(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// `dhclient -1`: one try; once bound it configures the NIC and stays in the background.
fn run(lab: &Lab, machine: &Machine, conf: &Path) -> anyhow::Result<()> {
    let pid = pidfile(&lab.dir, machine.ns);
    let lease = lease_file(&lab.dir, machine.ns);
    lab.exec(
        machine.ns,
        "dhclient",
        &[
            "-1",
            "-cf",
            &conf.to_string_lossy(),
            "-pf",
            &pid.to_string_lossy(),
            "-lf",
            &lease.to_string_lossy(),
            machine.nic,
        ],
    )
    .context("dhclient")?;
    Ok(())
}

/// Stops every machine's dhclient (before their namespaces go: a client whose interface
/// vanished would otherwise stay forever).
pub fn stop(dir: &Path) {
    for machine in MACHINES {
        process::stop(&pidfile(dir, machine.ns), Duration::from_secs(5));
    }
}
