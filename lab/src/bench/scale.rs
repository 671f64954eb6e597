//! Full sync at production scale: 4095 containers on one parent VIF (every tag) and
//! 20,000 logical ports in all, plus 1,000 ACLs on 50 port groups of those containers,
//! created through real ovn-nbctl and northd. Measures, for ovnest (`hybrid`: the logical
//! pipeline compiled) and for ovn-controller, the time from the agent's start until every
//! container is up in the SB and `ovn-nbctl --wait=hv sync` returns, and the agent's
//! memory then.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tracing::info;

use ovnest::agent::config::DatapathMode;

use crate::{AgentKind, Lab, LabArgs, process};

/// Containers on dmz-vm5, tags 1..=4095 (the lab's c51/c52 hold 51 and 52). OVN accepts
/// tag 4095; 802.1Q reserves it, so the agent binds the other 4094 and reports that one.
pub const CHILDREN: usize = 4095;
/// Containers that can be bound.
pub const BINDABLE: usize = 4094;
/// Logical ports in the NB, the lab's own included.
pub const PORTS: usize = 20_000;
/// Port groups of containers, and ACLs on each (1,000 in all).
pub const PORT_GROUPS: usize = 50;
pub const ACLS_PER_GROUP: usize = 20;
/// Commands per ovn-nbctl invocation.
const BATCH: usize = 500;

#[derive(Clone, Debug, Serialize)]
pub struct ScaleResult {
    pub agent: String,
    pub children_up_s: f64,
    pub wait_hv_s: f64,
    pub agent_rss_kib: u64,
}

fn nbctl_batch(lab: &Lab, commands: &[Vec<String>]) -> anyhow::Result<()> {
    for chunk in commands.chunks(BATCH) {
        let mut args: Vec<&str> = Vec::new();
        for (i, command) in chunk.iter().enumerate() {
            if i > 0 {
                args.push("--");
            }
            args.extend(command.iter().map(String::as_str));
        }
        lab.nbctl(&args)?;
    }
    Ok(())
}

/// Adds the containers and the other ports to `lab`'s NB.
fn populate(lab: &Lab) -> anyhow::Result<()> {
    let mut commands = Vec::new();
    for tag in (1..=CHILDREN as u32).filter(|t| *t != 51 && *t != 52) {
        let name = format!("dmz-k{tag}");
        let addresses = format!(
            "02:aa:{:02x}:{:02x}:00:01 10.{}.{}.1",
            tag >> 8,
            tag & 0xff,
            tag >> 8,
            tag & 0xff
        );
        commands.push(vec![
            "lsp-add".into(),
            "dmz".into(),
            name.clone(),
            "dmz-vm5".into(),
            tag.to_string(),
        ]);
        commands.push(vec!["lsp-set-addresses".into(), name, addresses]);
    }
    // The rest: VMs on other switches, bound nowhere (other hypervisors' ports).
    let others = PORTS - 6 - (CHILDREN - 2);
    for switch in 0..20 {
        commands.push(vec!["ls-add".into(), format!("far{switch}")]);
    }
    for i in 0..others {
        let name = format!("far-vm{i}");
        commands.push(vec![
            "lsp-add".into(),
            format!("far{}", i % 20),
            name.clone(),
        ]);
        commands.push(vec![
            "lsp-set-addresses".into(),
            name,
            format!(
                "02:bb:{:02x}:{:02x}:00:01 10.200.{}.{}",
                i >> 8,
                i & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ),
        ]);
    }
    nbctl_batch(lab, &commands)?;
    // Security groups as an operator writes them: a port group per 80 containers, and
    // on each, stateless ACLs both ways (drops of addresses, allows of ports).
    let tags: Vec<u32> = (1..=CHILDREN as u32)
        .filter(|t| *t != 51 && *t != 52)
        .collect();
    let mut commands = Vec::new();
    for (g, members) in tags.chunks(tags.len().div_ceil(PORT_GROUPS)).enumerate() {
        let mut add = vec!["pg-add".to_owned(), format!("pg{g}")];
        add.extend(members.iter().map(|t| format!("dmz-k{t}")));
        commands.push(add);
        for a in 0..ACLS_PER_GROUP {
            let (direction, port) = if a % 2 == 0 {
                ("to-lport", "outport")
            } else {
                ("from-lport", "inport")
            };
            let (matched, verdict) = if a < ACLS_PER_GROUP / 2 {
                (
                    format!("{port} == @pg{g} && ip4.src == 10.99.{g}.{a}"),
                    "drop",
                )
            } else {
                (
                    format!("{port} == @pg{g} && tcp.dst == {}", 8000 + a),
                    "allow",
                )
            };
            commands.push(vec![
                "acl-add".into(),
                format!("pg{g}"),
                direction.into(),
                (1000 + a).to_string(),
                matched,
                verdict.into(),
            ]);
        }
    }
    nbctl_batch(lab, &commands)?;
    lab.nbctl(&["--wait=sb", "sync"])?;
    Ok(())
}

fn children_up(lab: &Lab) -> usize {
    lab.sbctl(&[
        "--bare",
        "--columns=logical_port",
        "find",
        "Port_Binding",
        "parent_port=dmz-vm5",
        "up=true",
    ])
    .map(|out| out.split_whitespace().count())
    .unwrap_or(0)
}

/// Measures `agents` (ovnest and ovn-controller; others are skipped) one after the other.
pub fn measure(dir: &std::path::Path, agents: &[AgentKind]) -> anyhow::Result<Vec<ScaleResult>> {
    let mut results = Vec::new();
    for &agent in agents {
        let short = match agent {
            AgentKind::Ovnest => "s",
            AgentKind::OvnController => "t",
            AgentKind::None => continue,
        };
        let dir = dir.join(format!("scale-{short}"));
        Lab::down(&dir);
        let lab = Lab::up(&LabArgs {
            dir: dir.clone(),
            prefix: format!("o{short}-"),
            ovnest: None,
            agent,
            datapath: DatapathMode::Hybrid,
            containers: Default::default(),
            addressing: crate::Addressing::Static,
            hypervisors: 1,
            hv2_agent: Default::default(),
        })?;
        let name = if agent == AgentKind::Ovnest {
            "ovnest"
        } else {
            "ovn-controller"
        };
        // Stop the agent, grow the NB, start it again on the full database.
        let pidfile = if agent == AgentKind::Ovnest {
            lab.agent_pidfile()
        } else {
            dir.join("ovn-controller.pid")
        };
        process::stop(&pidfile, Duration::from_secs(10));
        info!(
            "{name}: creating {PORTS} logical ports ({CHILDREN} containers on dmz-vm5) and {} ACLs through ovn-nbctl",
            PORT_GROUPS * ACLS_PER_GROUP
        );
        populate(&lab).context("populating the NB")?;
        let start = Instant::now();
        match agent {
            AgentKind::Ovnest => lab.start_agent(None, DatapathMode::Hybrid)?,
            _ => crate::start_ovn_controller(&lab)?,
        }
        process::wait_for(
            &format!("{name}: {BINDABLE} containers up"),
            Duration::from_secs(600),
            || children_up(&lab) >= BINDABLE,
        )?;
        let children_up_s = start.elapsed().as_secs_f64();
        lab.nbctl(&["--timeout=600", "--wait=hv", "sync"])?;
        let wait_hv_s = start.elapsed().as_secs_f64();
        let rss = lab.agent_pid().map_or(0, super::latency::rss_kib);
        info!(
            "{name}: children up after {children_up_s:.2} s, --wait=hv after {wait_hv_s:.2} s, RSS {rss} KiB"
        );
        results.push(ScaleResult {
            agent: name.into(),
            children_up_s,
            wait_hv_s,
            agent_rss_kib: rss,
        });
        Lab::down(&dir);
    }
    Ok(results)
}
