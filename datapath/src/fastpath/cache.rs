//! The decision cache's side of the loaded program: how it decides (chosen at load), the
//! current generation, the lookup counters, the entries, and descriptors for the poll
//! threads that install (see [`crate::cache`]).

use std::{os::fd::AsFd, sync::Arc};

use aya::{
    EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::TestRunResult,
};
use ovnest_common::{
    CacheCounter,
    cache::{CacheAction, CacheKey, CacheKey6},
    ct::CtCounter,
    tunnel::{TunnelCounter, TunnelKey},
};

use super::{FastPath, FastPathError, Options, handle};
use crate::cache::{
    Key,
    install::{CacheMaps, CacheStats},
};

/// Who decides what a classified frame gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decisions {
    /// The hand-written fast path (`--datapath xdp`: strip/push, port security, ARP,
    /// known unicast); no logical flows. The physical-layer benchmark mode.
    #[default]
    Physical,
    /// OVN's logical pipeline, its decisions cached in XDP (`--datapath hybrid`): hits
    /// are carried out in the kernel, misses go up. `entries`: size of each cache map.
    Cached { entries: u32 },
    /// OVN's logical pipeline in userspace for every frame (`--datapath afxdp`).
    Userspace,
}

/// Lookup outcomes, summed over CPUs, indexed by `CacheCounter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounters(pub [u64; CacheCounter::COUNT as usize]);

impl CacheCounters {
    pub fn get(&self, counter: CacheCounter) -> u64 {
        self.0[counter as usize]
    }
}

const CACHE: &str = "CACHE";
const CACHE6: &str = "CACHE6";
const CACHE_GEN: &str = "CACHE_GEN";

/// The decision cache's maps belong to one loaded program and are never pinned: a
/// restarted ovnest starts with an empty cache (a flow's next frame goes up again), so no
/// decision of an earlier pipeline or generation count outlives the process that made it.
/// The conntrack mirror (`CT`) goes with the userspace table, which also starts empty.
/// So do the tunnels' (`TUNNEL_*`, `UNDERLAYS`: the underlay is entered again on attach).
pub(super) const PER_PROGRAM: [&str; 10] = [
    CACHE,
    CACHE6,
    CACHE_GEN,
    "CACHE_STATS",
    CT,
    CT_STATS,
    TUNNEL_CACHE,
    TUNNEL_PEERS,
    TUNNEL_STATS,
    "UNDERLAYS",
];
const TUNNEL_CACHE: &str = "TUNNEL_CACHE";
const TUNNEL_PEERS: &str = "TUNNEL_PEERS";
const TUNNEL_STATS: &str = "TUNNEL_STATS";
const CT: &str = "CT";
const CT_STATS: &str = "CT_STATS";

impl Decisions {
    /// `Cached` with at least one entry per map.
    pub(super) fn normalized(self) -> Decisions {
        match self {
            Decisions::Cached { entries } => Decisions::Cached {
                entries: entries.max(1),
            },
            other => other,
        }
    }
}

/// Sets the program's load-time switches and cache sizes for `decisions`.
pub(super) fn configure(loader: &mut EbpfLoader<'_>, decisions: Decisions) {
    let (upcall, cache, entries) = match decisions {
        Decisions::Physical => (&0u8, &0u8, None),
        Decisions::Cached { entries } => (&1u8, &1u8, Some(entries)),
        Decisions::Userspace => (&1u8, &0u8, None),
    };
    loader
        .override_global("ALL_TO_USERSPACE", upcall, true)
        .override_global("DECISION_CACHE", cache, true);
    if let Some(entries) = entries {
        loader
            .map_max_entries(CACHE, entries)
            .map_max_entries(CACHE6, entries)
            .map_max_entries(TUNNEL_CACHE, entries);
    }
}

impl FastPath {
    /// Loads the program (attached nowhere yet, nothing pinned) deciding as `decisions`
    /// says.
    pub fn load_decisions(decisions: Decisions) -> Result<FastPath, FastPathError> {
        FastPath::open(&Options {
            decisions,
            ..Options::default()
        })
    }

    /// How the program decides.
    pub fn decisions(&self) -> Decisions {
        self.decisions
    }

    /// Size of each cache map (0 when the program does not cache).
    pub fn cache_capacity(&self) -> u32 {
        match self.decisions {
            Decisions::Cached { entries } => entries,
            _ => 0,
        }
    }

    /// Makes entries of `generation` the only ones the program uses.
    pub fn set_cache_generation(&mut self, generation: u64) -> Result<(), FastPathError> {
        let mut array: Array<&mut MapData, u64> = handle::map_mut(&mut self.ebpf, CACHE_GEN)?;
        array
            .set(0, &generation, 0)
            .map_err(|source| FastPathError::Map {
                map: CACHE_GEN,
                source,
            })
    }

    /// The generation entries must carry to be used.
    pub fn cache_generation(&self) -> Result<u64, FastPathError> {
        let array: Array<&MapData, u64> = handle::map(&self.ebpf, CACHE_GEN)?;
        array.get(&0, 0).map_err(|source| FastPathError::Map {
            map: CACHE_GEN,
            source,
        })
    }

    /// Lookup outcomes so far.
    pub fn cache_counters(&self) -> Result<CacheCounters, FastPathError> {
        Ok(CacheCounters(self.per_cpu_sums("CACHE_STATS")?))
    }

    /// Conntrack lookups of cached decisions so far (`CtCounter`), summed over CPUs.
    pub fn ct_counters(&self) -> Result<[u64; CtCounter::COUNT as usize], FastPathError> {
        self.per_cpu_sums(CT_STATS)
    }

    /// Geneve in XDP so far (`TunnelCounter`), summed over CPUs.
    pub fn tunnel_counters(&self) -> Result<[u64; TunnelCounter::COUNT as usize], FastPathError> {
        self.per_cpu_sums(TUNNEL_STATS)
    }

    /// The `N` counters of the per-CPU array `map` (a counter enum's values are its
    /// indices, `0..N`), each summed over CPUs.
    fn per_cpu_sums<const N: usize>(&self, map: &'static str) -> Result<[u64; N], FastPathError> {
        let array: PerCpuArray<&MapData, u64> = handle::map(&self.ebpf, map)?;
        let mut out = [0; N];
        for (index, sum) in (0u32..).zip(out.iter_mut()) {
            let values = array
                .get(&index, 0)
                .map_err(|source| FastPathError::Map { map, source })?;
            *sum = values.iter().sum();
        }
        Ok(out)
    }

    /// Entries in both cache maps, whatever their generation (walks the keys: a
    /// syscall per entry, for status output, not for the packet path).
    pub fn cache_entries(&self) -> Result<u64, FastPathError> {
        let v4: HashMap<&MapData, CacheKey, CacheAction> = handle::map(&self.ebpf, CACHE)?;
        let v6: HashMap<&MapData, CacheKey6, CacheAction> = handle::map(&self.ebpf, CACHE6)?;
        Ok(
            (v4.keys().filter(Result::is_ok).count() + v6.keys().filter(Result::is_ok).count())
                as u64,
        )
    }

    /// The entry of `key`, whatever its generation (diagnostics and tests).
    pub fn cache_entry(&self, key: &Key) -> Result<Option<CacheAction>, FastPathError> {
        let found = match key {
            Key::V4(k) => {
                let map: HashMap<&MapData, CacheKey, CacheAction> = handle::map(&self.ebpf, CACHE)?;
                map.get(k, 0)
            }
            Key::V6(k) => {
                let map: HashMap<&MapData, CacheKey6, CacheAction> =
                    handle::map(&self.ebpf, CACHE6)?;
                map.get(k, 0)
            }
            Key::Tunnel(k) => {
                let map: HashMap<&MapData, TunnelKey, CacheAction> =
                    handle::map(&self.ebpf, TUNNEL_CACHE)?;
                map.get(k, 0)
            }
        };
        match found {
            Ok(action) => Ok(Some(action)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(FastPathError::Map { map: CACHE, source }),
        }
    }

    /// Descriptors of the cache maps for the poll threads' writers, counting into
    /// `stats`.
    pub fn cache_maps(&self, stats: Arc<CacheStats>) -> Result<CacheMaps, FastPathError> {
        let fd = |name: &'static str| -> Result<std::os::fd::OwnedFd, FastPathError> {
            let map = self
                .ebpf
                .map(name)
                .ok_or(FastPathError::MissingMap { map: name })?;
            let Map::LruHashMap(data) = map else {
                return Err(FastPathError::MissingMap { map: name });
            };
            data.fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|io_error| FastPathError::Map {
                    map: name,
                    source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                        call: "dup",
                        io_error,
                    }),
                })
        };
        let ct = match self.ebpf.map(CT) {
            Some(Map::Array(data)) => {
                Some(data.fd().as_fd().try_clone_to_owned().map_err(|io_error| {
                    FastPathError::Map {
                        map: CT,
                        source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                            call: "dup",
                            io_error,
                        }),
                    }
                })?)
            }
            _ => None,
        };
        let array_fd = |name: &'static str| -> Result<std::os::fd::OwnedFd, FastPathError> {
            let Some(Map::Array(data)) = self.ebpf.map(name) else {
                return Err(FastPathError::MissingMap { map: name });
            };
            data.fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|io_error| FastPathError::Map {
                    map: name,
                    source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                        call: "dup",
                        io_error,
                    }),
                })
        };
        Ok(CacheMaps {
            v4: fd(CACHE)?,
            v6: fd(CACHE6)?,
            tunnel: fd(TUNNEL_CACHE)?,
            peers: array_fd(TUNNEL_PEERS)?,
            ct,
            stats,
        })
    }

    /// [`FastPath::test_run`] that also tells where the frame starts in `out`: a frame
    /// handed to userspace is preceded there by the XDP metadata written for it (`out`
    /// holds `metadata ++ frame`; the returned offset is the metadata's length).
    pub fn test_run_with_meta(
        &self,
        ifindex: u32,
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<(TestRunResult, usize), FastPathError> {
        super::test_run_with_meta(self.program()?, ifindex, frame, out)
    }
}
