//! `ovnest bench --tunnel`: the packet rate of c51 → vm1 across two hypervisors, through
//! Geneve over the underlay veth (`--hypervisors 2`: c51 on hv, vm1 on hv2), for each
//! pair of chassis agents in one run — ovnest on both ends, the two mixed pairs, and
//! ovn-controller + userspace OVS on both ends — beside ovnest's own rate for the same
//! frames with vm1 on the same chassis (the one-hypervisor lab).
//!
//! Same generator and receiver as the rate cases (BPF_PROG_TEST_RUN live frames out of
//! vm5's uplink, an XDP counter on vm1's NIC), same throughput search; the pairs
//! alternate within each round. Both hypervisors' agents share the datapath core: on a
//! two-core machine the receiving chassis's decapsulation competes with the sending
//! chassis's encapsulation, which a real pair of hosts would not.

use std::time::Duration;

use anyhow::Context as _;
use ovnest::agent::config::DatapathMode;
use ovnest_datapath::fastpath::bench::BenchKit;
use serde::Serialize;
use tracing::info;

use super::{
    BenchArgs, Direction,
    run::{self, ifindex},
    search::{Sample, Search},
};
use crate::{AgentKind, Lab, LabArgs, hypervisors::Hv2Agent, process};

/// Who runs each hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pair {
    /// ovnest (`hybrid`) on both.
    OvnestOvnest,
    /// ovnest sends, ovn-controller + OVS receives.
    OvnestOvs,
    /// ovn-controller + OVS sends, ovnest receives.
    OvsOvnest,
    /// ovn-controller + OVS on both.
    OvsOvs,
    /// ovnest, vm1 on the same chassis as c51 (no tunnel): the reference for the ratio.
    OvnestLocal,
}

impl Pair {
    pub const ALL: [Pair; 5] = [
        Pair::OvnestOvnest,
        Pair::OvnestOvs,
        Pair::OvsOvnest,
        Pair::OvsOvs,
        Pair::OvnestLocal,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Pair::OvnestOvnest => "ovnest -> ovnest (Geneve)",
            Pair::OvnestOvs => "ovnest -> OVS (Geneve)",
            Pair::OvsOvnest => "OVS -> ovnest (Geneve)",
            Pair::OvsOvs => "OVS -> OVS (Geneve)",
            Pair::OvnestLocal => "ovnest, same chassis",
        }
    }

    fn lab_args(self, dir: &std::path::Path, short: &str) -> LabArgs {
        let (agent, hv2_agent, hypervisors) = match self {
            Pair::OvnestOvnest => (AgentKind::Ovnest, Hv2Agent::Ovnest, 2),
            Pair::OvnestOvs => (AgentKind::Ovnest, Hv2Agent::OvnController, 2),
            Pair::OvsOvnest => (AgentKind::OvnController, Hv2Agent::Ovnest, 2),
            Pair::OvsOvs => (AgentKind::OvnController, Hv2Agent::OvnController, 2),
            Pair::OvnestLocal => (AgentKind::Ovnest, Hv2Agent::OvnController, 1),
        };
        LabArgs {
            dir: dir.join(short),
            prefix: format!("ot{short}-"),
            ovnest: None,
            agent,
            datapath: DatapathMode::Hybrid,
            containers: Default::default(),
            addressing: crate::Addressing::Static,
            hypervisors,
            hv2_agent,
        }
    }
}

/// One pair's lab, torn down on drop.
struct Bed {
    pair: Pair,
    lab: Lab,
    kit: BenchKit,
}

impl Drop for Bed {
    fn drop(&mut self) {
        Lab::down(&self.lab.dir);
    }
}

/// One pair's figures at one frame size, medians over the rounds.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelRow {
    pub pair: Pair,
    pub size: usize,
    /// The throughput search's figure (at most `--loss` lost); `None`: no trial passed.
    pub throughput_mpps: Option<f64>,
    pub throughput_min_mpps: Option<f64>,
    pub throughput_max_mpps: Option<f64>,
    /// Received with the generator unpaced.
    pub overload_mpps: f64,
    /// Some round's overload stayed within the loss: the generator set the figure.
    pub generator_limited: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TunnelReport {
    pub load_before: String,
    pub load_after: String,
    pub tuning: String,
    pub rounds: usize,
    pub window_ms: u64,
    pub rows: Vec<TunnelRow>,
}

fn bed(args: &BenchArgs, pair: Pair, short: &str) -> anyhow::Result<Bed> {
    let lab_args = pair.lab_args(&args.dir, short);
    Lab::down(&lab_args.dir);
    let lab = Lab::up(&lab_args).with_context(|| format!("lab for {}", pair.label()))?;
    let mut kit = BenchKit::load()?;
    // Frames the generator transmits out of vm5's uplink arrive as XDP frames on the
    // hypervisor's end: with no program of ovnest's there (OVS), NAPI must take them.
    lab.exec("hv", "ethtool", &["-K", "brint-brvm5", "gro", "on"])?;
    {
        let _in = process::enter_netns(&lab.ns("vm1"))?;
        kit.attach_sink(ifindex("eth0")?)?;
    }
    Ok(Bed { pair, lab, kit })
}

/// The pids of every agent and vswitchd of a bed's lab (both hypervisors).
fn datapath_pids(lab: &Lab) -> Vec<i32> {
    [
        "ovnest.pid",
        "hv2-ovnest.pid",
        "ovn-controller.pid",
        "hv2-ovn-controller.pid",
        "hv-vswitchd.pid",
        "hv2-vswitchd.pid",
    ]
    .iter()
    .filter_map(|f| process::alive(&lab.dir.join(f)))
    .collect()
}

/// Waits until c51's frames reach vm1: the pair's tunnel is up and its next hops
/// resolved (the first frames resolve the underlay's neighbours).
fn wait_through(bed: &mut Bed, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        bed.lab
            .exec("c51", "ping", &["-c1", "-W1", "172.16.255.130"])
            .ok();
        let s = run::measure_on(
            &mut bed.kit,
            &bed.lab,
            bed.pair.label(),
            Direction::C51ToVm1,
            frames,
            Duration::from_millis(50),
            20_000,
            1,
        )?;
        if s.received > 0.0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{}: no frame reaches vm1", bed.pair.label());
        }
    }
}

pub fn measure(args: &BenchArgs) -> anyhow::Result<TunnelReport> {
    let load_before = run::loadavg();
    run::catch_interrupts();
    let tuning = run::HostTuning::hold();
    let mut beds = Vec::new();
    for (i, pair) in Pair::ALL.into_iter().enumerate() {
        run::check_interrupted()?;
        info!("bringing up the lab for {}", pair.label());
        beds.push(bed(args, pair, &i.to_string())?);
    }
    for bed in &beds {
        for pid in datapath_pids(&bed.lab) {
            let _ = process::run(
                "taskset",
                &[
                    "-a",
                    "-p",
                    "-c",
                    &run::DATAPATH_CPU.to_string(),
                    &pid.to_string(),
                ],
            );
        }
    }
    run::pin_self(run::GENERATOR_CPU);
    let window = Duration::from_millis(args.window_ms);
    let mut rows = Vec::new();
    for size in &args.sizes {
        let frames = run::frames(Direction::C51ToVm1, *size, 1);
        for bed in beds.iter_mut() {
            wait_through(bed, &frames)?;
        }
        let mut found: Vec<Vec<(Option<Sample>, Sample, bool)>> = vec![Vec::new(); beds.len()];
        for round in 0..args.rounds {
            info!("{size} bytes, round {} of {}", round + 1, args.rounds);
            for (i, bed) in beds.iter_mut().enumerate() {
                let mut trial = |gap: u64| {
                    run::check_interrupted()?;
                    run::measure_on(
                        &mut bed.kit,
                        &bed.lab,
                        bed.pair.label(),
                        Direction::C51ToVm1,
                        &frames,
                        window,
                        gap,
                        args.batch,
                    )
                };
                let mut search = Search::new(args.loss / 100.0);
                search.start(trial(0)?);
                while let Some(rate) = search.next_rate() {
                    let sample = trial(run::gap_ns(rate))?;
                    search.record(rate, sample);
                }
                let outcome = search.outcome().context("search without an outcome")?;
                found[i].push((
                    outcome.throughput,
                    outcome.overload,
                    outcome.generator_limited,
                ));
            }
        }
        for (bed, rounds) in beds.iter().zip(found) {
            let mut points: Vec<f64> = rounds
                .iter()
                .filter_map(|(t, _, _)| t.map(|t| t.received / 1e6))
                .collect();
            let mut overload: Vec<f64> = rounds.iter().map(|(_, o, _)| o.received / 1e6).collect();
            let complete = points.len() == rounds.len();
            rows.push(TunnelRow {
                pair: bed.pair,
                size: *size,
                throughput_min_mpps: complete
                    .then(|| points.iter().copied().fold(f64::INFINITY, f64::min)),
                throughput_max_mpps: complete.then(|| points.iter().copied().fold(0.0, f64::max)),
                throughput_mpps: complete.then(|| run::median(&mut points)),
                overload_mpps: run::median(&mut overload),
                generator_limited: rounds.iter().any(|(_, _, g)| *g),
            });
        }
    }
    Ok(TunnelReport {
        load_before,
        load_after: run::loadavg(),
        tuning: tuning.describe(),
        rounds: args.rounds,
        window_ms: args.window_ms,
        rows,
    })
}

/// The table `ovnest bench --tunnel` prints.
pub fn print(report: &TunnelReport) {
    println!(
        "load before {} / after {}; {}; {} rounds of {} ms windows",
        report.load_before, report.load_after, report.tuning, report.rounds, report.window_ms
    );
    println!(
        "{:<28} {:>6} {:>8} {:>8} {:>8} {:>9}  {:>6} {:>7}  {:>12}",
        "c51 -> vm1",
        "bytes",
        "Mpps",
        "min",
        "max",
        "overload",
        "x OVS",
        "x local",
        "overload xOVS"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    for row in &report.rows {
        let of = |pair: Pair| {
            report
                .rows
                .iter()
                .find(|r| r.pair == pair && r.size == row.size)
                .and_then(|r| r.throughput_mpps)
        };
        let ratio = |other: Option<f64>| match (row.throughput_mpps, other) {
            (Some(a), Some(b)) if b > 0.0 && !row.generator_limited => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        let overload_ratio = report
            .rows
            .iter()
            .find(|r| r.pair == Pair::OvsOvs && r.size == row.size)
            .filter(|r| r.overload_mpps > 0.0)
            .map_or("-".to_owned(), |r| {
                format!("{:.2}", row.overload_mpps / r.overload_mpps)
            });
        println!(
            "{:<28} {:>6} {:>8} {:>8} {:>8} {:>9.4}  {:>6} {:>7}  {:>12}{}",
            row.pair.label(),
            row.size,
            fmt(row.throughput_mpps),
            fmt(row.throughput_min_mpps),
            fmt(row.throughput_max_mpps),
            row.overload_mpps,
            ratio(of(Pair::OvsOvs)),
            ratio(of(Pair::OvnestLocal)),
            overload_ratio,
            if row.generator_limited {
                "  (generator-limited)"
            } else {
                ""
            }
        );
    }
}
