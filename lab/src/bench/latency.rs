//! Control-plane latency as an operator sees it: an NB change until every chassis has
//! programmed it (`ovn-nbctl --wait=hv` returns once the chassis acknowledged the change's
//! nb_cfg after programming its datapath).

use std::time::{Duration, Instant};

use crate::Lab;

/// Times `changes` tag changes of dmz-c52 in each lab, alternating between the labs
/// (A B A B ...), after `warmup` uncounted rounds. Each lab's samples come back sorted.
pub fn nb_change_latency(
    labs: &[&Lab],
    changes: usize,
    warmup: usize,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = vec![Vec::with_capacity(changes); labs.len()];
    for round in 0..warmup + changes {
        for (lab, samples) in labs.iter().zip(samples.iter_mut()) {
            let tag = format!("tag={}", 60 + round % 2);
            let start = Instant::now();
            lab.nbctl(&["--wait=hv", "set", "Logical_Switch_Port", "dmz-c52", &tag])?;
            if round >= warmup {
                samples.push(start.elapsed());
            }
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted[index.min(sorted.len().saturating_sub(1))]
}

/// Resident memory of a process, from /proc.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
        })
        .unwrap_or(0)
}
