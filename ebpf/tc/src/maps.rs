//! The tagger's maps, one set per uplink, pinned by `ovnest-cni` so each plugin run finds
//! them. Userspace is the only writer; the programs only read (and count).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use ovnest_common::tagger::{TaggerCounter, TaggerPort, VIDS};

/// Host-side veth ifindex → the container's tag and the uplink to send it out of.
#[map]
pub static TAGGER_PORTS: HashMap<u32, TaggerPort> = HashMap::with_max_entries(VIDS, 0);

/// VID → ifindex of the container's host-side veth (0: no container on that VID).
#[map]
pub static TAGGER_VIDS: Array<u32> = Array::with_max_entries(VIDS, 0);

/// One counter per verdict and drop reason (`TaggerCounter`).
#[map]
pub static TAGGER_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(TaggerCounter::COUNT, 0);
