//! Reading the per-CPU counters and summing them.

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use ovnest_common::{Counter, PortStats};

use super::FastPathError;

/// Totals of every [`Counter`], indexed by `Counter as usize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; Counter::COUNT as usize]);

impl Counters {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Named values, in [`Counter::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|c| (*c, self.0[*c as usize]))
    }

    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut out = Counters::default();
        for (i, slot) in out.0.iter_mut().enumerate() {
            *slot = self.0[i].wrapping_sub(earlier.0[i]);
        }
        out
    }
}

fn per_cpu<'a, V: aya::Pod>(
    ebpf: &'a Ebpf,
    map: &'static str,
) -> Result<PerCpuArray<&'a MapData, V>, FastPathError> {
    super::handle::map(ebpf, map)
}

pub(super) fn read(ebpf: &Ebpf) -> Result<Counters, FastPathError> {
    let map = per_cpu::<u64>(ebpf, "COUNTERS")?;
    let mut out = Counters::default();
    for counter in Counter::ALL {
        let values = map
            .get(&(counter as u32), 0)
            .map_err(|source| FastPathError::Map {
                map: "COUNTERS",
                source,
            })?;
        out.0[counter as usize] = values.iter().sum();
    }
    Ok(out)
}

pub(super) fn port_stats(ebpf: &Ebpf, slot: u32) -> Result<PortStats, FastPathError> {
    let map = per_cpu::<PortStats>(ebpf, "PORT_STATS")?;
    let values = map.get(&slot, 0).map_err(|source| FastPathError::Map {
        map: "PORT_STATS",
        source,
    })?;
    let mut total = PortStats::default();
    for cpu in values.iter() {
        total.add(cpu);
    }
    Ok(total)
}
