//! The miss path: how fast and how soon a datapath sets up flows it never saw.
//!
//! Every generated frame carries a UDP port pair never used before (the generator's
//! new-flows mode), so every frame is a new microflow. For `ovnest hybrid` each one
//! misses the XDP decision cache, goes up over AF_XDP, is decided by the logical
//! pipeline, delivered, and installed. For the peer, megaflows are turned off for this
//! part (`ovs-appctl upcall/disable-megaflows`): OVN's megaflows wildcard the UDP ports,
//! so with them on a new port pair is not an upcall at all and the figure would be its
//! hit path; off, each frame is an upcall, which is what is compared.
//!
//! Two figures per target, measured alternately (A B A B):
//! - new flows per second: the throughput search of the rate cases (highest rate losing
//!   at most `--loss`), over `--rounds`, median;
//! - first-frame latency: one frame of a new flow injected, timed until the receiver's
//!   counter moves; against the same probe on a flow already set up.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tracing::info;

use super::{
    BenchArgs, Direction, MissPath, Target,
    run::{self, Bed, check_interrupted, ends, frames, gap_ns, ifindex, median, napi_policy},
    search::Search,
};
use crate::process;

/// Offset of the UDP port pair in the c51 -> vm1 frames (Ethernet, tag, IPv4 header).
const PORTS_AT: u32 = 14 + 4 + 20;
/// A probe not counted by then is lost.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);

/// The peer's ovs-vswitchd, as `ovs-appctl -t` names it.
fn vswitchd(bed: &Bed) -> String {
    bed.lab.dir.join("hv-vswitchd.ctl").display().to_string()
}

fn megaflows(bed: &Bed, on: bool) -> anyhow::Result<()> {
    let command = if on {
        "upcall/enable-megaflows"
    } else {
        "upcall/disable-megaflows"
    };
    process::run("ovs-appctl", &["-t", &vswitchd(bed), command])
        .with_context(|| format!("ovs-appctl {command}"))?;
    Ok(())
}

pub fn measure(beds: &mut [Bed], args: &BenchArgs) -> anyhow::Result<Vec<MissPath>> {
    let chosen: Vec<usize> = beds
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b.target, Target::Hybrid | Target::Peer))
        .map(|(i, _)| i)
        .collect();
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    info!("miss path: new flows per second and first-frame latency");
    let direction = Direction::C51ToVm1;
    let frames = frames(direction, 64, 1);
    for &i in &chosen {
        let bed = &mut beds[i];
        match bed.target {
            Target::Peer => megaflows(bed, false)?,
            _ => napi_policy(bed, false),
        }
        // Sequence numbers only grow from here: no port pair is ever sent twice.
        bed.kit.set_new_flows(Some(PORTS_AT), 1)?;
    }
    let result = figures(beds, &chosen, args, direction, &frames);
    for &i in &chosen {
        let bed = &mut beds[i];
        bed.kit.set_new_flows(None, 0)?;
        match bed.target {
            Target::Peer => megaflows(bed, true)?,
            _ => napi_policy(bed, true),
        }
    }
    result
}

fn figures(
    beds: &mut [Bed],
    chosen: &[usize],
    args: &BenchArgs,
    direction: Direction,
    frames: &[Vec<u8>],
) -> anyhow::Result<Vec<MissPath>> {
    let window = Duration::from_millis(args.window_ms);
    let mut rates: Vec<Vec<(Option<f64>, f64)>> = vec![Vec::new(); chosen.len()];
    for round in 0..args.rounds {
        info!("miss path: round {} of {}", round + 1, args.rounds);
        let mut searches = Vec::with_capacity(chosen.len());
        for &i in chosen {
            let mut search = Search::new(args.loss / 100.0);
            search.start(run::measure(
                &mut beds[i],
                direction,
                frames,
                window,
                0,
                args.batch,
            )?);
            searches.push(search);
        }
        loop {
            let mut searching = false;
            for (&i, search) in chosen.iter().zip(searches.iter_mut()) {
                if let Some(rate) = search.next_rate() {
                    searching = true;
                    let sample = run::measure(
                        &mut beds[i],
                        direction,
                        frames,
                        window,
                        gap_ns(rate),
                        args.batch,
                    )?;
                    search.record(rate, sample);
                }
            }
            if !searching {
                break;
            }
        }
        for (search, out) in searches.iter().zip(rates.iter_mut()) {
            if let Some(outcome) = search.outcome() {
                out.push((
                    outcome.throughput.map(|s| s.received),
                    outcome.overload.received,
                ));
            }
        }
    }

    // Latency probes, alternating between the targets.
    let mut first: Vec<Vec<Duration>> = vec![Vec::new(); chosen.len()];
    let mut known: Vec<Vec<Duration>> = vec![Vec::new(); chosen.len()];
    let mut lost = vec![0usize; chosen.len()];
    for _ in 0..args.miss_samples {
        check_interrupted()?;
        for (k, &i) in chosen.iter().enumerate() {
            match probe(&mut beds[i], direction, &frames[0])? {
                Some(d) => first[k].push(d),
                None => lost[k] += 1,
            }
        }
    }
    for &i in chosen {
        // The known flow: the template itself, set up once.
        let bed = &mut beds[i];
        bed.kit.set_new_flows(None, 0)?;
        let _ = probe(bed, direction, &frames[0])?;
    }
    for _ in 0..args.miss_samples {
        check_interrupted()?;
        for (k, &i) in chosen.iter().enumerate() {
            match probe(&mut beds[i], direction, &frames[0])? {
                Some(d) => known[k].push(d),
                None => lost[k] += 1,
            }
        }
    }

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let quantile = |samples: &mut Vec<Duration>, p: f64| {
        samples.sort();
        if samples.is_empty() {
            return f64::NAN;
        }
        us(super::latency::percentile(samples, p))
    };
    Ok(chosen
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let mut passed: Vec<f64> = rates[k].iter().filter_map(|(t, _)| *t).collect();
            let mut overload: Vec<f64> = rates[k].iter().map(|(_, o)| *o).collect();
            MissPath {
                target: beds[i].target,
                // A round without a passing trial counts as none: the median of what
                // passed only when most rounds passed.
                new_flows_per_s: (passed.len() * 2 > rates[k].len()).then(|| median(&mut passed)),
                overload_new_flows_per_s: (!overload.is_empty()).then(|| median(&mut overload)),
                first_frame_p50_us: quantile(&mut first[k], 0.5),
                first_frame_p99_us: quantile(&mut first[k], 0.99),
                known_frame_p50_us: quantile(&mut known[k], 0.5),
                known_frame_p99_us: quantile(&mut known[k], 0.99),
                samples: args.miss_samples,
                lost: lost[k],
            }
        })
        .collect())
}

/// One frame injected (a new flow in new-flows mode), timed until the receiver counted
/// it; the time includes the injection call itself, the same for both kinds of probe.
fn probe(bed: &mut Bed, direction: Direction, frame: &[u8]) -> anyhow::Result<Option<Duration>> {
    bed.kit.set_frames(std::slice::from_ref(&frame.to_vec()))?;
    bed.kit.set_gap_ns(0)?;
    let ((src_ns, src_dev), _) = ends(direction);
    let _in = process::enter_netns(&bed.lab.ns(src_ns))?;
    let src = ifindex(src_dev)?;
    let before = bed.kit.received()?;
    let start = Instant::now();
    bed.kit.inject(src, frame, 1, 1)?;
    while start.elapsed() < PROBE_TIMEOUT {
        if bed.kit.received()? > before {
            return Ok(Some(start.elapsed()));
        }
    }
    // A late frame must not count for the next probe.
    std::thread::park_timeout(PROBE_TIMEOUT);
    Ok(None)
}
