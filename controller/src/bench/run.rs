//! Bringing the targets up, generating, measuring, reporting.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use log::info;
use ovnest_datapath::{fastpath::bench::BenchKit, frames::Frame};

use super::{BenchArgs, ControlPlane, Direction, Machine, Report, Row, Target, latency, plot};
use crate::{
    agent::config::DatapathMode,
    lab::{AgentKind, Lab, LabArgs, process},
};

const VM1_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
const VM2_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x31];
const C51_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];
const VM1_IP: [u8; 4] = [172, 16, 255, 130];
const VM2_IP: [u8; 4] = [172, 16, 255, 131];
const C51_IP: [u8; 4] = [172, 16, 255, 133];
/// The generator runs here; the datapath (threaded NAPI, agents) on the other core.
const GENERATOR_CPU: usize = 0;
const DATAPATH_CPU: usize = 1;

/// (direction, frame size, flows, target).
type CaseKey = (Direction, usize, usize, Target);

/// One target's lab, its bench kit (sinks, baseline), torn down on drop.
struct Bed {
    target: Target,
    lab: Lab,
    kit: BenchKit,
}

impl Drop for Bed {
    fn drop(&mut self) {
        Lab::down(&self.lab.dir);
    }
}

/// Where a direction's frames enter and leave: (namespace, interface) of the sending VM
/// and of the receiving one.
fn ends(direction: Direction) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match direction {
        Direction::C51ToVm1 => (("vm5", "brvm5-brint"), ("vm1", "eth0")),
        Direction::Vm1ToC51 => (("vm1", "eth0"), ("vm5", "brvm5-brint")),
        Direction::Vm2ToVm1 => (("vm2", "eth0"), ("vm1", "eth0")),
    }
}

/// The frames of one case: `flows` UDP source ports; `size` counts the FCS, as RFC 2544.
fn frames(direction: Direction, size: usize, flows: usize) -> Vec<Vec<u8>> {
    let payload = size.saturating_sub(4 + 14 + 20 + 8);
    (0..flows.max(1))
        .map(|flow| {
            let sport = 10_000 + flow as u16;
            match direction {
                Direction::C51ToVm1 => Frame::eth(VM1_MAC, C51_MAC)
                    .udp(C51_IP, VM1_IP, sport, 5001, payload)
                    .vlan(51),
                Direction::Vm1ToC51 => {
                    Frame::eth(C51_MAC, VM1_MAC).udp(VM1_IP, C51_IP, sport, 5001, payload)
                }
                Direction::Vm2ToVm1 => {
                    Frame::eth(VM1_MAC, VM2_MAC).udp(VM2_IP, VM1_IP, sport, 5001, payload)
                }
            }
            .build()
        })
        .collect()
}

fn pin_self(cpu: usize) {
    // SAFETY: cpu_set_t is plain data (zeroed = empty); sched_setaffinity(0) acts on the
    // calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Moves every threaded-NAPI kernel thread (ours: the labs' veths) and `pids` (all their
/// threads) to the datapath core.
fn pin_datapath(pids: &[i32]) {
    let napi = process::run("ps", &["-eo", "pid=,comm="]).unwrap_or_default();
    let napi_pids = napi.lines().filter_map(|l| {
        let mut words = l.split_whitespace();
        let pid = words.next()?;
        words.next()?.starts_with("napi/").then(|| pid.to_owned())
    });
    for pid in napi_pids.chain(pids.iter().map(i32::to_string)) {
        let _ = process::run(
            "taskset",
            &["-a", "-p", "-c", &DATAPATH_CPU.to_string(), &pid],
        );
    }
}

/// Set by SIGINT/SIGTERM: the run stops at the next measurement, and unwinding tears the
/// labs down and restores the host settings instead of leaving them behind.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_interrupt as *const () as libc::sighandler_t) };
    }
}

fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted; labs torn down, host settings restored");
    }
    Ok(())
}

/// Host settings held for the run, restored on drop. Both remove waits that belong to
/// the virtual machine, not to any datapath:
/// - `rcu_expedited`: each BPF_PROG_TEST_RUN call tears down its page pool with an RCU
///   grace period; a normal one (tens of ms here) idled the generator two thirds of the
///   time, so it offered bursts, not a rate;
/// - `/dev/cpu_dma_latency` = 0 while the file is open: idle vCPUs poll instead of
///   halting, so waking the datapath's NAPI thread costs no exit to the hypervisor.
struct HostTuning {
    rcu_expedited: Option<String>,
    dma_latency: Option<std::fs::File>,
}

const RCU_EXPEDITED: &str = "/sys/kernel/rcu_expedited";

impl HostTuning {
    fn hold() -> HostTuning {
        let rcu_expedited = std::fs::read_to_string(RCU_EXPEDITED)
            .ok()
            .filter(|_| std::fs::write(RCU_EXPEDITED, "1").is_ok());
        let dma_latency = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .and_then(|mut f| {
                use std::io::Write as _;
                f.write_all(&0i32.to_ne_bytes())?;
                Ok(f)
            })
            .ok();
        HostTuning {
            rcu_expedited,
            dma_latency,
        }
    }

    fn describe(&self) -> String {
        format!(
            "rcu_expedited {}, cpu_dma_latency {}",
            if self.rcu_expedited.is_some() {
                "on"
            } else {
                "unavailable"
            },
            if self.dma_latency.is_some() {
                "0 (poll idle)"
            } else {
                "unavailable"
            }
        )
    }
}

impl Drop for HostTuning {
    fn drop(&mut self) {
        if let Some(previous) = &self.rcu_expedited {
            let _ = std::fs::write(RCU_EXPEDITED, previous.trim());
        }
    }
}

fn bed(args: &BenchArgs, target: Target) -> anyhow::Result<Bed> {
    let (short, agent, datapath) = match target {
        Target::Baseline => ("b", AgentKind::None, DatapathMode::Xdp),
        Target::Xdp => ("x", AgentKind::Ovnest, DatapathMode::Xdp),
        Target::Afxdp => ("a", AgentKind::Ovnest, DatapathMode::Afxdp),
        Target::Peer => ("p", AgentKind::OvnController, DatapathMode::Xdp),
    };
    let dir = args.dir.join(short);
    Lab::down(&dir);
    let lab = Lab::up(&LabArgs {
        dir,
        prefix: format!("ob{short}-"),
        ovnest: None,
        agent,
        datapath,
    })
    .with_context(|| format!("lab for {}", target.label()))?;
    let mut kit = BenchKit::load()?;
    // Every VIF runs NAPI in a kernel thread we can pin away from the generator; where no
    // XDP program runs on it (the peer), GRO lets it accept XDP-transmitted frames.
    for dev in ["vm1", "vm2", "brint-brvm5"] {
        lab.exec("hv", "ethtool", &["-K", dev, "gro", "on"])?;
        lab.exec(
            "hv",
            "sh",
            &["-c", &format!("echo 1 > /sys/class/net/{dev}/threaded")],
        )?;
    }
    // The VMs' ends stay in softirq NAPI: a frame the datapath redirects to a VM is
    // received (and counted by the sink) on the datapath's core right after the batch
    // that sent it, as from a NIC. A threaded receiver would compete with the datapath's
    // thread for that core, and the scheduler's slices, not the datapath, would decide
    // how much of each burst overflows the 256-frame veth ring in between.
    for (ns, dev) in [("vm1", "eth0"), ("vm2", "eth0"), ("vm5", "brvm5-brint")] {
        lab.exec(
            ns,
            "sh",
            &["-c", &format!("echo 0 > /sys/class/net/{dev}/threaded")],
        )?;
    }
    for (ns, dev) in [("vm1", "eth0"), ("vm5", "brvm5-brint")] {
        let _in = process::enter_netns(&lab.ns(ns))?;
        kit.attach_sink(ifindex(dev)?)?;
    }
    if target == Target::Baseline {
        let _in = process::enter_netns(&lab.ns("hv"))?;
        let (vm1, vm2, vm5) = (ifindex("vm1")?, ifindex("vm2")?, ifindex("brint-brvm5")?);
        // One program instance, one egress: vm5 and vm2 send to vm1; vm1's own traffic
        // (the push direction) is sent to vm5 by a second kit.
        kit.attach_baseline(vm5, vm1)?;
        let mut reverse = BenchKit::load()?;
        reverse.attach_baseline(vm1, vm5)?;
        let mut untagged = BenchKit::load()?;
        untagged.attach_baseline(vm2, vm1)?;
        std::mem::forget(reverse); // attached for the lab's lifetime; the lab's teardown removes them
        std::mem::forget(untagged);
    }
    Ok(Bed { target, lab, kit })
}

fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface {name} here");
    }
    Ok(index)
}

/// (offered, received) in packets per second over one window.
/// Frames per BPF_PROG_TEST_RUN call: each call sets up and tears down a page pool (tens
/// of ms here), so calls must be long; the window is counted in whole calls.
const BURST: u32 = 1 << 16;

fn measure(
    bed: &mut Bed,
    direction: Direction,
    frames: &[Vec<u8>],
    window: Duration,
    pace: u32,
    batch: u32,
) -> anyhow::Result<(f64, f64)> {
    bed.kit.set_frames(frames)?;
    bed.kit.set_pace(pace)?;
    let ((src_ns, src_dev), _) = ends(direction);
    let _in = process::enter_netns(&bed.lab.ns(src_ns))?;
    let src = ifindex(src_dev)?;
    let burst = |kit: &BenchKit| -> anyhow::Result<u64> {
        // A signal interrupts the injecting syscall; say why, not EINTR.
        kit.inject(src, &frames[0], BURST, batch)
            .map_err(|e| check_interrupted().err().unwrap_or_else(|| e.into()))?;
        Ok(u64::from(BURST))
    };
    check_interrupted()?;
    let warm = Instant::now();
    while warm.elapsed() < window / 4 {
        burst(&bed.kit)?;
    }
    let settle = |kit: &BenchKit| -> anyhow::Result<u64> {
        // In-flight frames land within a few ms; wait until the count stops moving.
        let mut last = kit.received()?;
        for _ in 0..40 {
            std::thread::park_timeout(Duration::from_millis(5));
            let now = kit.received()?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last)
    };
    let before = settle(&bed.kit)?;
    let sent_before = bed.kit.sent()?;
    let start = Instant::now();
    while start.elapsed() < window {
        burst(&bed.kit)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent = bed.kit.sent()? - sent_before;
    let received = settle(&bed.kit)? - before;
    log::debug!(
        "{}: offered {sent}, received {received} in {elapsed:.3} s",
        bed.target.label()
    );
    Ok((sent as f64 / elapsed, received as f64 / elapsed))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(load_before: String, cores: usize, tuning: &HostTuning) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    Machine {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        cpu,
        cores,
        load_before,
        load_after: loadavg(),
        tuning: tuning.describe(),
    }
}

/// A ratio is honest only when the generator offered, in both runs, at least what the
/// faster of the two received (2 % slack for counting windows).
fn honest_ratio(a: (f64, f64), b: (f64, f64)) -> Option<f64> {
    let faster = a.1.max(b.1);
    (a.0 >= faster * 0.98 && b.0 >= faster * 0.98 && b.1 > 0.0).then(|| a.1 / b.1)
}

fn control_plane(beds: &[Bed], changes: usize) -> anyhow::Result<Vec<ControlPlane>> {
    let measured: Vec<&Bed> = beds
        .iter()
        .filter(|b| matches!(b.target, Target::Xdp | Target::Peer))
        .collect();
    let labs: Vec<&Lab> = measured.iter().map(|b| &b.lab).collect();
    let samples = latency::nb_change_latency(&labs, changes, 3)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(measured
        .iter()
        .zip(samples)
        .filter(|(_, s)| !s.is_empty())
        .map(|(bed, s)| ControlPlane {
            agent: if bed.target == Target::Peer {
                "ovn-controller".into()
            } else {
                "ovnest".into()
            },
            p50_ms: ms(latency::percentile(&s, 0.5)),
            p99_ms: ms(latency::percentile(&s, 0.99)),
            changes: s.len(),
            agent_rss_kib: bed.lab.agent_pid().map_or(0, latency::rss_kib),
        })
        .collect())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ovnest bench needs root (namespaces, BPF, OVN daemons)");
    }
    if args.sizes.iter().any(|s| *s < 64 || *s > 1518)
        || args.flows.iter().any(|f| *f == 0 || *f > 65_000)
        || args.rounds == 0
    {
        bail!("--sizes must be within 64..=1518, --flows within 1..=65000, --rounds at least 1");
    }
    if args.scale {
        let results = super::scale::measure(&args.dir)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        }
        for r in &results {
            println!(
                "scale {:<15} {} of {} containers up {:.2} s, --wait=hv {:.2} s after start; agent RSS {} KiB",
                r.agent,
                super::scale::BINDABLE,
                super::scale::CHILDREN,
                r.children_up_s,
                r.wait_hv_s,
                r.agent_rss_kib
            );
        }
        return Ok(());
    }
    let load_before = loadavg();
    catch_interrupts();
    let tuning = HostTuning::hold();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut targets = args.targets.clone();
    targets.sort();
    targets.dedup();
    let mut beds = Vec::new();
    for target in &targets {
        check_interrupted()?;
        info!("bringing up the lab for {}", target.label());
        beds.push(bed(&args, *target)?);
    }
    let agents: Vec<i32> = beds.iter().filter_map(|b| b.lab.agent_pid()).collect();
    let mut vswitchd: Vec<i32> = beds
        .iter()
        .filter_map(|b| process::alive(&b.lab.dir.join("hv-vswitchd.pid")))
        .collect();
    vswitchd.extend(agents);
    pin_datapath(&vswitchd);
    pin_self(GENERATOR_CPU);

    let window = Duration::from_millis(args.window_ms);
    let mut cases = Vec::new();
    for direction in Direction::ALL {
        for size in &args.sizes {
            for flows in &args.flows {
                cases.push((direction, *size, *flows, frames(direction, *size, *flows)));
            }
        }
    }
    let mut results: BTreeMap<CaseKey, Vec<(f64, f64)>> = BTreeMap::new();
    for round in 0..args.rounds {
        info!("round {} of {}", round + 1, args.rounds);
        for (direction, size, flows, frames) in &cases {
            for bed in beds.iter_mut() {
                let sample = measure(bed, *direction, frames, window, args.pace, args.batch)?;
                results
                    .entry((*direction, *size, *flows, bed.target))
                    .or_default()
                    .push(sample);
            }
        }
    }

    let summary: BTreeMap<_, (f64, f64, f64, f64)> = results
        .iter()
        .map(|(key, samples)| {
            let mut offered: Vec<f64> = samples.iter().map(|s| s.0).collect();
            let mut received: Vec<f64> = samples.iter().map(|s| s.1).collect();
            let min = received.iter().copied().fold(f64::INFINITY, f64::min);
            let max = received.iter().copied().fold(0.0, f64::max);
            (
                *key,
                (median(&mut offered), median(&mut received), min, max),
            )
        })
        .collect();
    let mut rows = Vec::new();
    for ((direction, size, flows, target), (offered, received, min, max)) in &summary {
        let other = |t: Target| {
            summary
                .get(&(*direction, *size, *flows, t))
                .map(|s| (s.0, s.1))
        };
        let mine = (*offered, *received);
        rows.push(Row {
            direction: *direction,
            size: *size,
            flows: *flows,
            target: *target,
            offered_mpps: offered / 1e6,
            received_mpps: received / 1e6,
            received_min_mpps: min / 1e6,
            received_max_mpps: max / 1e6,
            ratio_to_baseline: other(Target::Baseline).and_then(|b| honest_ratio(mine, b)),
            ratio_to_peer: other(Target::Peer).and_then(|p| honest_ratio(mine, p)),
        });
    }
    let control_plane = if args.changes > 0 {
        control_plane(&beds, args.changes)?
    } else {
        Vec::new()
    };
    let report = Report {
        machine: machine(load_before, cores, &tuning),
        window_ms: args.window_ms,
        pace: args.pace,
        batch: args.batch,
        rounds: args.rounds,
        rows,
        control_plane,
    };
    drop(beds);
    drop(tuning);

    plot::write(&args.plot, &report).with_context(|| format!("writing {}", args.plot.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report, &args.plot));
    }
    Ok(())
}

fn table(report: &Report, plot: &std::path::Path) -> String {
    use std::fmt::Write as _;
    let m = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "machine: kernel {}, {} x {}, load {} -> {}; {}",
        m.kernel, m.cores, m.cpu, m.load_before, m.load_after, m.tuning
    );
    let _ = writeln!(
        out,
        "generator: BPF_PROG_TEST_RUN live frames on core {GENERATOR_CPU}, batch {}, pace {}/1024; datapath (threaded NAPI, agents; VMs' receive in softirq) on core {DATAPATH_CPU}; {} rounds x {} ms, median (min-max)",
        report.batch, report.pace, report.rounds, report.window_ms
    );
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>5} {:<19} {:>9} {:>22} {:>8} {:>8}",
        "direction", "size", "flows", "target", "offered", "received Mpps", "/base", "/peer"
    );
    let ratio = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.2}x"));
    for row in &report.rows {
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>5} {:<19} {:>9.3} {:>8.3} ({:.3}-{:.3}) {:>8} {:>8}",
            row.direction.label(),
            row.size,
            row.flows,
            row.target.label(),
            row.offered_mpps,
            row.received_mpps,
            row.received_min_mpps,
            row.received_max_mpps,
            ratio(row.ratio_to_baseline),
            ratio(row.ratio_to_peer)
        );
    }
    let _ = writeln!(
        out,
        "n/a: the generator offered less than the faster target received, so no ratio is claimed."
    );
    for cp in &report.control_plane {
        let _ = writeln!(
            out,
            "control plane {:<15} NB change -> programmed (ovn-nbctl --wait=hv): p50 {:.2} ms, p99 {:.2} ms over {} changes; agent RSS {} KiB",
            cp.agent, cp.p50_ms, cp.p99_ms, cp.changes, cp.agent_rss_kib
        );
    }
    let _ = writeln!(out, "plot: {}", plot.display());
    out
}
