//! `ovnest bench --cni`: how long a container waits for its network, with and without
//! `ovnest-cni`'s port pool, in one interleaved run on one lab (`--containers cni`, real
//! OVN, `ovnest run` on the hypervisor, the TC tagger in each VM).
//!
//! - **ADD**: the plugin exec'd as a runtime does (environment, config on stdin, in the
//!   VM's namespace), timed from spawn to exit; it exits once the port is `up` in OVN.
//!   A burst: `n` containers per VM, back to back, all kept (no DEL in between), so the
//!   pool's background refill has to keep up (a miss falls back to a new port). Network
//!   `bench` (a /22: room for every container).
//! - **podman run**: `podman run --rm` of a busybox container whose command pings its
//!   gateway (lr0's port on `dmz`) until it answers and prints a mark; timed from starting podman to reading the mark
//!   (podman's teardown after it is not counted). One container at a time, each removed
//!   before the next: with the pool, `--rm` returns the port and the next one takes it.
//!
//! Each variant has a VM of its own (vm6/vm8 without pool, vm7/vm9 with), and the two
//! variants alternate (A B A B ...) so load on the machine hits both alike.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::info;

use crate::{
    AgentKind, Lab, LabArgs,
    containers::{self, Containers},
    process,
};

/// Latencies of one series, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// ADDs served from the pool (pool series only).
    pub pool_hits: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CniBench {
    pub series: Vec<Series>,
    pub load_before: String,
    pub load_after: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn series(name: &str, mut ms: Vec<f64>, pool_hits: Option<usize>) -> Series {
    ms.sort_by(f64::total_cmp);
    Series {
        name: name.to_owned(),
        n: ms.len(),
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        min_ms: ms.first().copied().unwrap_or(0.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
        pool_hits,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One plugin ADD in `vm`'s namespace; returns the elapsed time.
fn add(
    plugin: &Path,
    vm: &str,
    container: &str,
    netns: &str,
    conf: &Value,
) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", format!("/run/netns/{netns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", plugin.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    // The child is forked from this thread, inside the VM's namespace, as a runtime in
    // the VM would fork it.
    let mut child = {
        let _inside = process::enter_netns(vm)?;
        cmd.spawn().context("exec ovnest-cni")?
    };
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "ADD {container} in {vm}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(elapsed)
}

/// The plugin's VERSION, which does nothing but start, answer and exit: what any exec'd
/// plugin pays on this machine at this load.
fn version(plugin: &Path, vm: &str) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = {
        let _inside = process::enter_netns(vm)?;
        cmd.spawn().context("exec ovnest-cni")?
    };
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"{\"cniVersion\":\"1.0.0\"}")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("VERSION failed");
    }
    Ok(start.elapsed())
}

/// `podman run --rm` in `vm` on network `net` until the container printed its mark.
fn podman_run(lab: &Lab, vm: &str, net: &str) -> anyhow::Result<Duration> {
    let dir = containers::cni_dir(lab).join("podman");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", lab.ns(vm)))
        .arg("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs", "run", "--rm", "--network", net])
        .args(containers::podman_run_args(lab))
        .args([
            "/bin/sh",
            "-c",
            "i=0; until ping -c1 -W1 172.16.255.129 >/dev/null; do i=$((i+1)); [ $i -lt 30 ] || exit 1; done; echo ovnest-bench-up",
        ])
        .env("CONTAINERS_CONF", dir.join("containers.conf"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().context("podman run")?;
    let stdout = child.stdout.take().context("podman stdout")?;
    let mut up = None;
    for line in BufReader::new(stdout).lines() {
        if line?.contains("ovnest-bench-up") {
            up = Some(start.elapsed());
        }
    }
    let status = child.wait()?;
    match up {
        Some(t) if status.success() => Ok(t),
        _ => bail!("podman run in {vm} on {net} did not reach the gateway ({status})"),
    }
}

/// Runs the benchmark: `n` containers per series.
pub fn measure(dir: &Path, ovnest: Option<&Path>, n: usize) -> anyhow::Result<CniBench> {
    let load_before = loadavg();
    let dir = dir.join("cni");
    Lab::down(&dir);
    let lab = Lab::up(&LabArgs {
        dir: dir.clone(),
        prefix: "oc-".into(),
        ovnest: ovnest.map(Path::to_owned),
        agent: AgentKind::Ovnest,
        datapath: ovnest::agent::config::DatapathMode::Hybrid,
        containers: Containers::Cni,
        addressing: crate::Addressing::Static,
        hypervisors: 1,
        hv2_agent: Default::default(),
    })?;
    let result = run(&lab, n);
    Lab::down(&dir);
    let series = result?;
    Ok(CniBench {
        series,
        load_before,
        load_after: loadavg(),
    })
}

fn run(lab: &Lab, n: usize) -> anyhow::Result<Vec<Series>> {
    let plugin = containers::cni_dir(lab).join("bin/ovnest-cni");
    // Kuryr-Kubernetes' defaults are min 10, batch 10; max bounds what DEL keeps.
    let pool = json!({ "pool": { "min": 10, "max": 100, "batch": 10 } });
    let out = Command::new(&plugin)
        .args([
            "cni",
            "network",
            "create",
            "bench",
            "--subnet",
            "10.200.0.0/22",
            "--vm-port",
            "dmz-vm6",
            "--no-conflist",
        ])
        .arg0_ovnest()
        .env("OVN_NB_DB", &lab.nb)
        .output()?;
    if !out.status.success() {
        bail!("network create: {}", String::from_utf8_lossy(&out.stderr));
    }
    let vms: Vec<_> = (6..=9)
        .map(|i| containers::add_vm(lab, i))
        .collect::<Result<_, _>>()?;
    let conf = |vm: &containers::ContainerVm, net: &str, switch: &str, extra: Value| {
        containers::single_conf(&containers::plugin_conf(lab, net, &vm.port, "eth0", {
            let mut e = extra;
            e["switch"] = json!(switch);
            e
        }))
    };
    let (plain, pooled) = (&vms[0], &vms[1]);
    let plain_conf = conf(plain, "bench-plain", "bench", json!({}));
    let pooled_conf = conf(pooled, "bench-pool", "bench", pool.clone());
    // Fill the pool as a VM would before its first container (one refill run).
    let fill = {
        let path = containers::cni_dir(lab).join("bench-pool.json");
        std::fs::write(&path, pooled_conf.to_string())?;
        Command::new(&plugin)
            .args(["cni", "pool", "fill", "--conf"])
            .arg(&path)
            .arg0_ovnest()
            .output()?
    };
    if !fill.status.success() {
        bail!("pool fill: {}", String::from_utf8_lossy(&fill.stderr));
    }
    wait_pool_up(lab, &pooled.port, 10)?;

    info!("ADD: {n} containers per VM, alternating no pool / pool (and VERSION, the exec floor)");
    let (mut add_plain, mut add_pooled, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let mut netns = Vec::new();
    for i in 0..n {
        for (vm, conf, out) in [
            (plain, &plain_conf, &mut add_plain),
            (pooled, &pooled_conf, &mut add_pooled),
        ] {
            let ns = format!("oc-k{}-{i}", vm.name);
            process::run("ip", &["netns", "add", &ns])?;
            netns.push(ns.clone());
            let t = add(&plugin, &vm.ns, &format!("k{i}"), &ns, conf)?;
            out.push(t.as_secs_f64() * 1e3);
        }
        floor.push(version(&plugin, &plain.ns)?.as_secs_f64() * 1e3);
    }
    let hits = pool_hits(lab, &pooled.port);
    for ns in &netns {
        let _ = process::run("ip", &["netns", "del", ns]);
    }

    info!("podman run: {n} containers per VM, alternating no pool / pool");
    let (podman_plain_vm, podman_pooled_vm) = (&vms[2], &vms[3]);
    containers::write_conflist(lab, "dmz-plain", &podman_plain_vm.port, "eth0", json!({}))?;
    containers::write_conflist(
        lab,
        "dmz-pool",
        &podman_pooled_vm.port,
        "eth0",
        pool.clone(),
    )?;
    let pool_list = containers::cni_dir(lab).join("net.d/dmz-pool.conflist");
    let fill = Command::new(&plugin)
        .args(["cni", "pool", "fill", "--conf"])
        .arg(&pool_list)
        .arg0_ovnest()
        .output()?;
    if !fill.status.success() {
        bail!("pool fill: {}", String::from_utf8_lossy(&fill.stderr));
    }
    wait_pool_up(lab, &podman_pooled_vm.port, 10)?;
    let (mut run_plain, mut run_pooled) = (Vec::new(), Vec::new());
    for _ in 0..n {
        run_plain.push(podman_run(lab, &podman_plain_vm.name, "dmz-plain")?.as_secs_f64() * 1e3);
        run_pooled.push(podman_run(lab, &podman_pooled_vm.name, "dmz-pool")?.as_secs_f64() * 1e3);
    }
    Ok(vec![
        series("VERSION → returns (exec floor)", floor, None),
        series("ADD → returns, port up (no pool)", add_plain, None),
        series("ADD → returns, port up (pool)", add_pooled, Some(hits)),
        series("podman run → first gateway ping (no pool)", run_plain, None),
        series("podman run → first gateway ping (pool)", run_pooled, None),
    ])
}

/// The ovnest binary behind `ovnest-cni` answers `ovnest cni …` only by its own name.
trait Arg0 {
    fn arg0_ovnest(&mut self) -> &mut Self;
}

impl Arg0 for Command {
    fn arg0_ovnest(&mut self) -> &mut Self {
        std::os::unix::process::CommandExt::arg0(self, "ovnest")
    }
}

fn children(lab: &Lab, parent: &str) -> Vec<Value> {
    let out = lab
        .nbctl(&[
            "--format=json",
            "--columns=up,external_ids",
            "find",
            "Logical_Switch_Port",
            &format!("parent_name={parent}"),
        ])
        .unwrap_or_default();
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v["data"].as_array().cloned())
        .unwrap_or_default()
}

fn wait_pool_up(lab: &Lab, parent: &str, n: usize) -> anyhow::Result<()> {
    process::wait_for("the pool's ports up", Duration::from_secs(60), || {
        children(lab, parent)
            .iter()
            .filter(|row| row[0] == json!(true) && row[1].to_string().contains("\"free\""))
            .count()
            >= n
    })
}

/// Containers of `parent` whose ADD took a pool port (`ovnest-cni:origin=pool`).
fn pool_hits(lab: &Lab, parent: &str) -> usize {
    children(lab, parent)
        .iter()
        .filter(|row| {
            row[1]
                .to_string()
                .contains("[\"ovnest-cni:origin\",\"pool\"]")
        })
        .count()
}
