//! Bringing the targets up, generating, measuring, reporting.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use ovnest_datapath::{fastpath::bench::BenchKit, frames::Frame};
use tracing::info;

use super::{
    ACLS, BenchArgs, ControlPlane, Direction, Load, Machine, Report, Row, Target, latency, plot,
    search::{Sample, Search},
};
use ovnest::agent::config::DatapathMode;

use crate::{AgentKind, Lab, LabArgs, process};

const VM1_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
const VM2_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x31];
const C51_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];
/// lr0's port on dmz (the seed's default gateway).
const LR0_DMZ_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
const VM3_IP: [u8; 4] = [172, 16, 255, 194];
const VM1_IP: [u8; 4] = [172, 16, 255, 130];
const VM2_IP: [u8; 4] = [172, 16, 255, 131];
const C51_IP: [u8; 4] = [172, 16, 255, 133];
/// The generator runs here; the datapath (threaded NAPI, agents) on the other core.
pub(super) const GENERATOR_CPU: usize = 0;
pub(super) const DATAPATH_CPU: usize = 1;

/// (direction, frame size, flows, target).
type CaseKey = (Direction, usize, usize, Target);

/// One target's lab, its bench kit (sinks, baseline), torn down on drop.
pub(super) struct Bed {
    pub(super) target: Target,
    pub(super) lab: Lab,
    pub(super) kit: BenchKit,
    /// The NAPI threads of this lab's hypervisor-side veths.
    pub(super) napi: Vec<i32>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        Lab::down(&self.lab.dir);
    }
}

/// Where a direction's frames enter and leave: (namespace, interface) of the sending VM
/// and of the receiving one.
pub(super) fn ends(
    direction: Direction,
) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match direction {
        Direction::C51ToVm1 | Direction::C51ToVm1Acls | Direction::C51ToVm1Stateful => {
            (("vm5", "brvm5-brint"), ("vm1", "eth0"))
        }
        Direction::C51ToVm3 => (("vm5", "brvm5-brint"), ("vm3", "eth0")),
        Direction::Vm1ToC51 => (("vm1", "eth0"), ("vm5", "brvm5-brint")),
        Direction::Vm2ToVm1 => (("vm2", "eth0"), ("vm1", "eth0")),
    }
}

/// The frames of one case: `flows` UDP source ports; `size` counts the FCS, as RFC 2544.
pub(super) fn frames(direction: Direction, size: usize, flows: usize) -> Vec<Vec<u8>> {
    let payload = size.saturating_sub(4 + 14 + 20 + 8);
    (0..flows.max(1))
        .map(|flow| {
            let sport = 10_000 + flow as u16;
            match direction {
                Direction::C51ToVm1 | Direction::C51ToVm1Acls | Direction::C51ToVm1Stateful => {
                    Frame::eth(VM1_MAC, C51_MAC)
                        .udp(C51_IP, VM1_IP, sport, 5001, payload)
                        .vlan(51)
                }
                Direction::C51ToVm3 => Frame::eth(LR0_DMZ_MAC, C51_MAC)
                    .udp(C51_IP, VM3_IP, sport, 5001, payload)
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

pub(super) fn pin_self(cpu: usize) {
    // SAFETY: cpu_set_t is plain data (zeroed = empty); sched_setaffinity(0) acts on the
    // calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The threaded-NAPI kernel threads now running (pids): bringing up a bed adds its
/// veths' threads.
fn napi_threads() -> std::collections::BTreeSet<i32> {
    let ps = process::run("ps", &["-eo", "pid=,comm="]).unwrap_or_default();
    ps.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let pid = words.next()?.parse().ok()?;
            words.next()?.starts_with("napi/").then_some(pid)
        })
        .collect()
}

/// Where the whole datapath runs in its NAPI threads (baseline, ovnest xdp), they run
/// SCHED_FIFO, as a dedicated datapath core would: otherwise the kworkers and RCU
/// threads that share the core delay them by more than the 256-frame veth ring holds,
/// and every target loses 0.4-3 % at half its capacity. Where a userspace thread carries
/// the frames (ovnest afxdp's poller, the peer's ovs-vswitchd) everything stays
/// SCHED_OTHER: a real-time NAPI thread would starve it.
fn realtime_napi(target: Target) -> bool {
    matches!(target, Target::Baseline | Target::Xdp | Target::Hybrid)
}

/// Sets a bed's NAPI threads to SCHED_FIFO (`realtime`) or back to SCHED_OTHER. The
/// hybrid's misses are decided by its userspace poll thread, on the datapath core: for
/// the miss path its NAPI threads share the core fairly, as the afxdp target's do.
pub(super) fn napi_policy(bed: &Bed, realtime: bool) {
    let (policy, priority) = if realtime {
        (libc::SCHED_FIFO, 50)
    } else {
        (libc::SCHED_OTHER, 0)
    };
    for pid in &bed.napi {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: a plain syscall on a pid with a valid parameter block.
        if unsafe { libc::sched_setscheduler(*pid, policy, &param) } != 0 {
            tracing::warn!(
                "scheduling policy of NAPI thread {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Moves every bed's NAPI threads and `pids` (all their threads) to the datapath core.
fn pin_datapath(beds: &[Bed], pids: &[i32]) {
    for bed in beds {
        if realtime_napi(bed.target) {
            napi_policy(bed, true);
        }
    }
    let threads = beds.iter().flat_map(|b| b.napi.iter()).chain(pids);
    for pid in threads {
        let _ = process::run(
            "taskset",
            &[
                "-a",
                "-p",
                "-c",
                &DATAPATH_CPU.to_string(),
                &pid.to_string(),
            ],
        );
    }
}

/// Set by SIGINT/SIGTERM: the run stops at the next measurement, and unwinding tears the
/// labs down and restores the host settings instead of leaving them behind.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub(super) fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_interrupt as *const () as libc::sighandler_t) };
    }
}

pub(super) fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("interrupted; labs torn down, host settings restored");
    }
    Ok(())
}

/// Host settings held for the run, restored on drop. They remove waits that belong to
/// the virtual machine, not to any datapath:
/// - `rcu_expedited`: each BPF_PROG_TEST_RUN call tears down its page pool with an RCU
///   grace period; a normal one (tens of ms here) idled the generator two thirds of the
///   time, so it offered bursts, not a rate;
/// - `/dev/cpu_dma_latency` = 0 while the file is open: idle vCPUs poll instead of
///   halting, so waking the datapath's NAPI thread costs no exit to the hypervisor;
/// - `sched_rt_runtime_us` = -1: the real-time NAPI threads (see `realtime_napi`) keep
///   the datapath core busy near capacity, and RT throttling would stop them for the
///   last 50 ms of each second, losing a ring's worth of frames many times over;
/// - `net.core.rmem_default` = 4 MiB: the peer's `system` ports are raw sockets, and the
///   generator's frames arrive in bursts of its batch (64), each holding a page (4 KiB
///   truesize). At the default 208 KiB a socket holds about 50 of them, so
///   ovs-vswitchd lost 24–34 % at any rate, even 14 kpps (`ss -0 -m`: the drops are the
///   raw socket's `d` counter, not OVS's). Raised before the labs come up, as an operator
///   of OVS's userspace datapath would; it changes nothing for ovnest (no data socket).
pub(super) struct HostTuning {
    /// (file, value before the run) for each sysctl-like file changed.
    restore: Vec<(&'static str, String)>,
    dma_latency: Option<std::fs::File>,
}

/// The files changed for the run and the value they hold meanwhile.
const HELD: [(&str, &str); 3] = [
    ("/sys/kernel/rcu_expedited", "1"),
    ("/proc/sys/kernel/sched_rt_runtime_us", "-1"),
    ("/proc/sys/net/core/rmem_default", "4194304"),
];

impl HostTuning {
    pub(super) fn hold() -> HostTuning {
        let restore = HELD
            .iter()
            .filter_map(|(file, value)| {
                let previous = std::fs::read_to_string(file).ok()?;
                std::fs::write(file, value).ok()?;
                Some((*file, previous.trim().to_owned()))
            })
            .collect();
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
            restore,
            dma_latency,
        }
    }

    pub(super) fn describe(&self) -> String {
        let held = |file: &str| self.restore.iter().any(|(f, _)| *f == file);
        let or_unavailable = |on: bool, what: &str| {
            if on {
                what.to_owned()
            } else {
                "unavailable".to_owned()
            }
        };
        format!(
            "rcu_expedited {}, sched_rt_runtime_us {}, cpu_dma_latency {}, rmem_default {}",
            or_unavailable(held(HELD[0].0), "on"),
            or_unavailable(held(HELD[1].0), "-1 (RT NAPI threads unthrottled)"),
            or_unavailable(self.dma_latency.is_some(), "0 (poll idle)"),
            or_unavailable(held(HELD[2].0), "4 MiB (the peer's raw sockets)"),
        )
    }
}

impl Drop for HostTuning {
    fn drop(&mut self) {
        for (file, previous) in &self.restore {
            let _ = std::fs::write(file, previous);
        }
    }
}

fn bed(args: &BenchArgs, target: Target) -> anyhow::Result<Bed> {
    let (short, agent, datapath) = match target {
        Target::Baseline => ("b", AgentKind::None, DatapathMode::Xdp),
        Target::Hybrid => ("h", AgentKind::Ovnest, DatapathMode::Hybrid),
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
        containers: Default::default(),
        addressing: crate::Addressing::Static,
        hypervisors: 1,
        hv2_agent: Default::default(),
    })
    .with_context(|| format!("lab for {}", target.label()))?;
    let mut kit = BenchKit::load()?;
    // Every VIF runs NAPI in a kernel thread we can pin away from the generator; where no
    // XDP program runs on it (the peer), GRO lets it accept XDP-transmitted frames.
    for dev in ["vm1", "vm2", "vm3", "brint-brvm5"] {
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
    for (ns, dev) in [
        ("vm1", "eth0"),
        ("vm2", "eth0"),
        ("vm3", "eth0"),
        ("vm5", "brvm5-brint"),
    ] {
        lab.exec(
            ns,
            "sh",
            &["-c", &format!("echo 0 > /sys/class/net/{dev}/threaded")],
        )?;
    }
    for (ns, dev) in [("vm1", "eth0"), ("vm3", "eth0"), ("vm5", "brvm5-brint")] {
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
    Ok(Bed {
        target,
        lab,
        kit,
        napi: Vec::new(),
    })
}

pub(super) fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface {name} here");
    }
    Ok(index)
}

/// Frames per BPF_PROG_TEST_RUN call at most: each call sets up and tears down a page
/// pool, so calls must be long; the window is counted in whole calls.
const BURST: u32 = 1 << 16;
/// A paced call lasts about this long (fewer frames at low rates, so windows stay short).
const PACED_CALL: Duration = Duration::from_millis(40);

/// Offered and received frames per second over one window, the generator sending one
/// frame every `gap_ns` (0: as fast as it goes).
pub(super) fn measure(
    bed: &mut Bed,
    direction: Direction,
    frames: &[Vec<u8>],
    window: Duration,
    gap_ns: u64,
    batch: u32,
) -> anyhow::Result<Sample> {
    let label = bed.target.label();
    measure_on(
        &mut bed.kit,
        &bed.lab,
        label,
        direction,
        frames,
        window,
        gap_ns,
        batch,
    )
}

/// [`measure`] with a kit and a lab of any kind (`label` for the log).
#[allow(clippy::too_many_arguments)]
pub(super) fn measure_on(
    kit: &mut BenchKit,
    lab: &Lab,
    label: &str,
    direction: Direction,
    frames: &[Vec<u8>],
    window: Duration,
    gap_ns: u64,
    batch: u32,
) -> anyhow::Result<Sample> {
    let (source, _) = ends(direction);
    measure_from(kit, lab, label, source, frames, window, gap_ns, batch)
}

/// [`measure_on`] with the generator on any interface `source` = (namespace, device) of
/// the lab: its frames arrive on that interface's peer.
#[allow(clippy::too_many_arguments)]
pub(super) fn measure_from(
    kit: &mut BenchKit,
    lab: &Lab,
    label: &str,
    (src_ns, src_dev): (&str, &str),
    frames: &[Vec<u8>],
    window: Duration,
    gap_ns: u64,
    batch: u32,
) -> anyhow::Result<Sample> {
    kit.set_frames(frames)?;
    kit.set_gap_ns(gap_ns)?;
    let _in = process::enter_netns(&lab.ns(src_ns))?;
    let src = ifindex(src_dev)?;
    let per_call = match gap_ns {
        0 => BURST,
        gap => (PACED_CALL.as_nanos() as u64 / gap).clamp(4096, u64::from(BURST)) as u32,
    };
    let burst = |kit: &BenchKit| -> anyhow::Result<()> {
        // A signal interrupts the injecting syscall; say why, not EINTR.
        kit.inject(src, &frames[0], per_call, batch)
            .map_err(|e| check_interrupted().err().unwrap_or_else(|| e.into()))?;
        Ok(())
    };
    check_interrupted()?;
    let warm = Instant::now();
    while warm.elapsed() < window / 4 {
        burst(kit)?;
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
    let before = settle(kit)?;
    let sent_before = kit.sent()?;
    let start = Instant::now();
    while start.elapsed() < window {
        burst(kit)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent = kit.sent()? - sent_before;
    let received = settle(kit)? - before;
    tracing::debug!(
        "{label}: gap {gap_ns} ns, offered {sent}, received {received} in {elapsed:.3} s"
    );
    Ok(Sample {
        offered: sent as f64 / elapsed,
        received: received as f64 / elapsed,
    })
}

/// The generator's gap between frames for `rate` frames per second.
pub(super) fn gap_ns(rate: f64) -> u64 {
    (1e9 / rate).round().max(1.0) as u64
}

/// One target's figure in one case and round.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// The reported point: the fixed-load trial, or the throughput the search found
    /// (None: no trial passed).
    point: Option<Sample>,
    /// Search only: the overload trial.
    overload: Option<Sample>,
    /// Search only: even overload stayed within the loss tolerance.
    generator_limited: bool,
}

/// Has the hybrid's pipeline decide every flow of a case once (its slow path), so the
/// case measures the decision cache: each frame sent four times at 50 kpps, then the
/// receiver settles.
fn warm(bed: &mut Bed, direction: Direction, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    bed.kit.set_frames(frames)?;
    bed.kit.set_gap_ns(20_000)?;
    let ((src_ns, src_dev), _) = ends(direction);
    let _in = process::enter_netns(&bed.lab.ns(src_ns))?;
    let src = ifindex(src_dev)?;
    bed.kit
        .inject(src, &frames[0], (frames.len() * 4) as u32, 1)?;
    let mut last = bed.kit.received()?;
    for _ in 0..40 {
        std::thread::park_timeout(Duration::from_millis(5));
        let now = bed.kit.received()?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(())
}

/// The hybrid's decision cache figures from a status it wrote after `after`.
fn cache_figures(bed: &Bed, after: std::time::SystemTime) -> Option<super::CacheFigures> {
    let after_ms = after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(status) = ovnest::agent::status::Status::read(&bed.lab.state_dir())
            && status.updated_unix_ms > after_ms
        {
            let c = status.cache?;
            return Some(super::CacheFigures {
                hits: c.hits,
                misses: c.misses,
                stale: c.stale,
                installs: c.installs,
                upcalls: c.upcalls,
                ct_est_hits: c.ct_est_hits,
                ct_mirrored: c.ct_mirrored,
            });
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    None
}

/// Gives `dmz` [`ACLS`] drop ACLs that never match the bench's traffic (sources outside
/// the lab, half from-lport, half to-lport), in one transaction per lab, and waits until
/// each agent programmed them (`--wait=hv`; `--wait=sb` where no agent runs).
fn add_acls(beds: &[Bed]) -> anyhow::Result<()> {
    for bed in beds {
        let wait = if bed.target == Target::Baseline {
            "--wait=sb"
        } else {
            "--wait=hv"
        };
        let mut args: Vec<String> = vec![wait.into()];
        for i in 0..ACLS {
            let direction = if i % 2 == 0 { "from-lport" } else { "to-lport" };
            let field = if i % 2 == 0 { "ip4.src" } else { "ip4.dst" };
            if i > 0 {
                args.push("--".into());
            }
            args.extend([
                "acl-add".into(),
                "dmz".into(),
                direction.into(),
                (1000 + i).to_string(),
                format!("{field} == 10.{}.{}.0/24 && udp", i / 250, i % 250),
                "drop".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bed.lab
            .nbctl(&args)
            .with_context(|| format!("ACLs for {}", bed.target.label()))?;
    }
    Ok(())
}

/// Gives c51 a security group (`from-lport allow-related` for what it sends): `dmz`
/// becomes stateful, every frame of its IP traffic goes through conntrack.
fn add_security_group(beds: &[Bed]) -> anyhow::Result<()> {
    for bed in beds.iter().filter(|b| b.target != Target::Baseline) {
        bed.lab
            .nbctl(&[
                "--wait=hv",
                "acl-add",
                "dmz",
                "from-lport",
                "1002",
                "inport == \"dmz-c51\" && ip4",
                "allow-related",
            ])
            .with_context(|| format!("security group for {}", bed.target.label()))?;
    }
    Ok(())
}

/// Opens every flow of a stateful case as a connection and establishes it: c51's frames
/// (committed by the security group), then vm1's answers (the reply direction), each
/// flow's first frames decided in the slow path.
fn establish(bed: &mut Bed, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    warm(bed, Direction::C51ToVm1Stateful, frames)?;
    let replies: Vec<Vec<u8>> = (0..frames.len())
        .map(|flow| {
            Frame::eth(C51_MAC, VM1_MAC)
                .udp(VM1_IP, C51_IP, 5001, 10_000 + flow as u16, 18)
                .build()
        })
        .collect();
    warm(bed, Direction::Vm1ToC51, &replies)
}

/// Measures one case on every bed. Under a search, the targets' trials alternate
/// (A B A B ...) as the rounds do.
fn measure_case(
    all: &mut [Bed],
    args: &BenchArgs,
    direction: Direction,
    frames: &[Vec<u8>],
) -> anyhow::Result<Vec<(Target, Measured)>> {
    let window = Duration::from_millis(args.window_ms);
    let mut beds: Vec<&mut Bed> = all
        .iter_mut()
        .filter(|b| direction.served_by(b.target))
        .collect();
    let targets: Vec<Target> = beds.iter().map(|b| b.target).collect();
    if direction == Direction::C51ToVm1Stateful {
        for bed in beds.iter_mut() {
            establish(bed, frames)?;
        }
    }
    for bed in beds.iter_mut().filter(|b| b.target == Target::Hybrid) {
        warm(bed, direction, frames)?;
    }
    let fixed = |point| Measured {
        point: Some(point),
        overload: None,
        generator_limited: false,
    };
    let measured: Vec<Measured> = match args.load {
        Load::Max | Load::Rate(_) => {
            let gap = match args.load {
                Load::Rate(rate) => gap_ns(rate),
                _ => 0,
            };
            beds.iter_mut()
                .map(|bed| {
                    Ok(fixed(measure(
                        bed, direction, frames, window, gap, args.batch,
                    )?))
                })
                .collect::<anyhow::Result<_>>()?
        }
        Load::Search => {
            let mut searches = Vec::with_capacity(beds.len());
            for bed in beds.iter_mut() {
                let mut search = Search::new(args.loss / 100.0);
                search.start(measure(bed, direction, frames, window, 0, args.batch)?);
                searches.push(search);
            }
            loop {
                let mut searching = false;
                for (bed, search) in beds.iter_mut().zip(searches.iter_mut()) {
                    if let Some(rate) = search.next_rate() {
                        searching = true;
                        let sample =
                            measure(bed, direction, frames, window, gap_ns(rate), args.batch)?;
                        search.record(rate, sample);
                    }
                }
                if !searching {
                    break;
                }
            }
            // One entry per bed, in order, even where a search has no outcome.
            searches
                .iter()
                .map(|search| match search.outcome() {
                    Some(outcome) => Measured {
                        point: outcome.throughput,
                        overload: Some(outcome.overload),
                        generator_limited: outcome.generator_limited,
                    },
                    None => Measured {
                        point: None,
                        overload: None,
                        generator_limited: false,
                    },
                })
                .collect()
        }
    };
    Ok(targets.into_iter().zip(measured).collect())
}

pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

pub(super) fn loadavg() -> String {
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
/// faster of the two received (2 % slack for counting windows); under a search, when both
/// found a throughput and the generator limited neither.
fn honest_ratio(load: Load, a: &Summary, b: &Summary) -> Option<f64> {
    if b.received <= 0.0 || a.received <= 0.0 {
        return None;
    }
    match load {
        Load::Search => {
            (!a.generator_limited && !b.generator_limited).then(|| a.received / b.received)
        }
        Load::Max | Load::Rate(_) => honest_fixed_ratio(
            Sample {
                offered: a.offered,
                received: a.received,
            },
            Sample {
                offered: b.offered,
                received: b.received,
            },
        ),
    }
}

/// At a fixed load, honest when the generator offered, in both runs, at least what the
/// faster of the two received (2 % slack for counting windows).
fn honest_fixed_ratio(a: Sample, b: Sample) -> Option<f64> {
    let faster = a.received.max(b.received);
    (b.received > 0.0 && a.offered >= faster * 0.98 && b.offered >= faster * 0.98)
        .then(|| a.received / b.received)
}

/// A case's rounds for one target, as medians (rates in frames per second).
struct Summary {
    offered: f64,
    received: f64,
    received_min: f64,
    received_max: f64,
    loss: f64,
    /// Under a search: the overload trials, as medians.
    overload: Option<Sample>,
    generator_limited: bool,
}

impl Summary {
    fn of(rounds: &[Measured]) -> Summary {
        let point = |m: &Measured| {
            m.point.unwrap_or(Sample {
                offered: 0.0,
                received: 0.0,
            })
        };
        let mut offered: Vec<f64> = rounds.iter().map(|m| point(m).offered).collect();
        let mut received: Vec<f64> = rounds.iter().map(|m| point(m).received).collect();
        let mut loss: Vec<f64> = rounds.iter().map(|m| point(m).loss()).collect();
        let overloads: Vec<Sample> = rounds.iter().filter_map(|m| m.overload).collect();
        let mut overload_offered: Vec<f64> = overloads.iter().map(|o| o.offered).collect();
        let mut overload_received: Vec<f64> = overloads.iter().map(|o| o.received).collect();
        Summary {
            received_min: received.iter().copied().fold(f64::INFINITY, f64::min),
            received_max: received.iter().copied().fold(0.0, f64::max),
            offered: median(&mut offered),
            received: median(&mut received),
            loss: median(&mut loss),
            overload: (!overloads.is_empty()).then(|| Sample {
                offered: median(&mut overload_offered),
                received: median(&mut overload_received),
            }),
            generator_limited: rounds.iter().any(|m| m.generator_limited),
        }
    }
}

fn control_plane(beds: &[Bed], changes: usize) -> anyhow::Result<Vec<ControlPlane>> {
    let measured: Vec<&Bed> = beds
        .iter()
        .filter(|b| matches!(b.target, Target::Hybrid | Target::Xdp | Target::Peer))
        .collect();
    let labs: Vec<&Lab> = measured.iter().map(|b| &b.lab).collect();
    let samples = latency::nb_change_latency(&labs, changes, 3)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(measured
        .iter()
        .zip(samples)
        .filter(|(_, s)| !s.is_empty())
        .map(|(bed, s)| ControlPlane {
            agent: match bed.target {
                Target::Peer => "ovn-controller".into(),
                other => other.label().into(),
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
    if !(args.loss > 0.0 && args.loss < 100.0) {
        bail!("--loss is a percentage of the offered frames: 0 < loss < 100");
    }
    let _lock = super::lock::take(&super::lock::default_path())?;
    if args.cni {
        let r = super::cni::measure(&args.dir, None, args.cni_containers)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!("load before {} / after {}", r.load_before, r.load_after);
        println!(
            "{:<45} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}  pool hits",
            "series", "n", "p50 ms", "p99 ms", "mean ms", "min ms", "max ms"
        );
        for s in &r.series {
            println!(
                "{:<45} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
                s.name,
                s.n,
                s.p50_ms,
                s.p99_ms,
                s.mean_ms,
                s.min_ms,
                s.max_ms,
                s.pool_hits.map_or("-".into(), |h| h.to_string())
            );
        }
        return Ok(());
    }
    if args.tunnel {
        let report = super::tunnel::measure(&args)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            super::tunnel::print(&report);
        }
        return Ok(());
    }
    if args.scale {
        let results = super::scale::measure(&args.dir, &args.scale_agents)?;
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
        let before = napi_threads();
        let mut bed = bed(&args, *target)?;
        bed.napi = napi_threads().difference(&before).copied().collect();
        beds.push(bed);
    }
    let agents: Vec<i32> = beds.iter().filter_map(|b| b.lab.agent_pid()).collect();
    let mut vswitchd: Vec<i32> = beds
        .iter()
        .filter_map(|b| process::alive(&b.lab.dir.join("hv-vswitchd.pid")))
        .collect();
    vswitchd.extend(agents);
    pin_datapath(&beds, &vswitchd);
    pin_self(GENERATOR_CPU);

    let mut results: BTreeMap<CaseKey, Vec<Measured>> = BTreeMap::new();
    // The ACL cases come last, the security group's after them: ACLs stay once added.
    for stage in 0..3 {
        let mut cases = Vec::new();
        for direction in Direction::ALL.into_iter().filter(|d| d.stage() == stage) {
            for size in &args.sizes {
                for flows in &args.flows {
                    cases.push((direction, *size, *flows, frames(direction, *size, *flows)));
                }
            }
        }
        match stage {
            1 => add_acls(&beds)?,
            2 => add_security_group(&beds)?,
            _ => {}
        }
        for round in 0..args.rounds {
            info!("round {} of {}", round + 1, args.rounds);
            for (direction, size, flows, frames) in &cases {
                for (target, m) in measure_case(&mut beds, &args, *direction, frames)? {
                    results
                        .entry((*direction, *size, *flows, target))
                        .or_default()
                        .push(m);
                }
            }
        }
    }

    let summary: BTreeMap<CaseKey, Summary> = results
        .iter()
        .map(|(key, rounds)| (*key, Summary::of(rounds)))
        .collect();
    let mut rows = Vec::new();
    for ((direction, size, flows, target), mine) in &summary {
        let ratio_to = |t: Target| {
            summary
                .get(&(*direction, *size, *flows, t))
                .and_then(|other| honest_ratio(args.load, mine, other))
        };
        let overload_ratio_to = |t: Target| {
            let other = summary.get(&(*direction, *size, *flows, t))?;
            honest_fixed_ratio(mine.overload?, other.overload?)
        };
        rows.push(Row {
            direction: *direction,
            size: *size,
            flows: *flows,
            target: *target,
            offered_mpps: mine.offered / 1e6,
            received_mpps: mine.received / 1e6,
            received_min_mpps: mine.received_min / 1e6,
            received_max_mpps: mine.received_max / 1e6,
            loss_percent: mine.loss * 100.0,
            overload_mpps: mine.overload.map(|o| o.received / 1e6),
            generator_limited: mine.generator_limited,
            ratio_to_baseline: ratio_to(Target::Baseline),
            ratio_to_peer: ratio_to(Target::Peer),
            overload_ratio_to_baseline: overload_ratio_to(Target::Baseline),
            overload_ratio_to_peer: overload_ratio_to(Target::Peer),
        });
    }
    let cache = beds
        .iter()
        .find(|b| b.target == Target::Hybrid)
        .and_then(|b| cache_figures(b, std::time::SystemTime::now()));
    let miss_path = if args.miss_samples > 0 {
        super::miss::measure(&mut beds, &args)?
    } else {
        Vec::new()
    };
    let control_plane = if args.changes > 0 {
        control_plane(&beds, args.changes)?
    } else {
        Vec::new()
    };
    let report = Report {
        machine: machine(load_before, cores, &tuning),
        window_ms: args.window_ms,
        load: args.load,
        loss_percent: args.loss,
        batch: args.batch,
        rounds: args.rounds,
        rows,
        cache,
        miss_path,
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
    let load = match report.load {
        Load::Search => format!(
            "throughput search (highest rate losing <= {}%; overload = generator unpaced)",
            report.loss_percent
        ),
        Load::Max => "overload (generator unpaced)".to_owned(),
        Load::Rate(rate) => format!("fixed rate {:.3} Mpps", rate / 1e6),
    };
    let _ = writeln!(
        out,
        "generator: BPF_PROG_TEST_RUN live frames on core {GENERATOR_CPU}, batch {}, {load}; datapath (threaded NAPI, agents; VMs' receive in softirq) on core {DATAPATH_CPU}; {} rounds x {} ms, median (min-max)",
        report.batch, report.rounds, report.window_ms
    );
    let _ = writeln!(
        out,
        "{:<20} {:>4} {:>5} {:<19} {:>7} {:>22} {:>5} {:>6} {:>6} | {:>8} {:>6} {:>6}",
        "direction",
        "size",
        "flows",
        "target",
        "offered",
        "received Mpps",
        "loss%",
        "/base",
        "/peer",
        "overload",
        "/base",
        "/peer"
    );
    let ratio = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{r:.2}x"));
    for row in &report.rows {
        let overload = match (row.overload_mpps, row.generator_limited) {
            (Some(o), true) => format!("{o:.3}*"),
            (Some(o), false) => format!("{o:.3}"),
            (None, _) => "-".to_owned(),
        };
        let received = if row.received_max_mpps > 0.0 {
            format!(
                "{:.3} ({:.3}-{:.3})",
                row.received_mpps, row.received_min_mpps, row.received_max_mpps
            )
        } else {
            "none passed".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<20} {:>4} {:>5} {:<19} {:>7.3} {:>22} {:>5.2} {:>6} {:>6} | {:>8} {:>6} {:>6}",
            row.direction.label(),
            row.size,
            row.flows,
            row.target.label(),
            row.offered_mpps,
            received,
            row.loss_percent,
            ratio(row.ratio_to_baseline),
            ratio(row.ratio_to_peer),
            overload,
            ratio(row.overload_ratio_to_baseline),
            ratio(row.overload_ratio_to_peer),
        );
    }
    let _ = writeln!(
        out,
        "n/a: no ratio is claimed where the generator offered less than the faster target received{}.",
        if report.load == Load::Search {
            ", where no trial passed, or where even the unpaced generator lost no more than the tolerance (*)"
        } else {
            ""
        }
    );
    if let Some(c) = &report.cache {
        let _ = writeln!(
            out,
            "ovnest hybrid decision cache over the rate cases: {} hits, {} misses ({} stale), {} installs, {} upcalls (warm-up: every flow of every case decided once, then cached); {} of the hits on established connections ({} mirrored)",
            c.hits, c.misses, c.stale, c.installs, c.upcalls, c.ct_est_hits, c.ct_mirrored
        );
    }
    for m in &report.miss_path {
        let rate = |r: Option<f64>| r.map_or("none passed".to_owned(), |r| format!("{:.0}", r));
        let _ = writeln!(
            out,
            "miss path {:<19} new flows/s {:>10} (overload {:>10}); first frame p50 {:.1} us p99 {:.1} us; known flow p50 {:.1} us p99 {:.1} us ({} probes, {} lost)",
            m.target.label(),
            rate(m.new_flows_per_s),
            rate(m.overload_new_flows_per_s),
            m.first_frame_p50_us,
            m.first_frame_p99_us,
            m.known_frame_p50_us,
            m.known_frame_p99_us,
            m.samples,
            m.lost
        );
    }
    if !report.miss_path.is_empty() {
        let _ = writeln!(
            out,
            "miss path: c51->vm1, 64 B, every frame a new UDP port pair (a new microflow); ovn-controller+OVS with megaflows off (`upcall/disable-megaflows`), so each is an upcall; rates: highest losing <= the loss tolerance, median over the rounds"
        );
    }
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
