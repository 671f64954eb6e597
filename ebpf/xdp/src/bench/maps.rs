//! The bench object's maps. Userspace (ovnest-datapath's `fastpath::bench`) writes the
//! configuration and reads the counters.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, PerCpuArray},
};
use ovnest_common::maps::{BenchTemplate, capacity};

/// The baseline's redirect target (one entry: its egress).
#[map]
pub static DEVICES: DevMapHash = DevMapHash::with_max_entries(8, 0);

/// The baseline program's single egress ifindex.
#[map]
pub static BASELINE_EGRESS: Array<u32> = Array::with_max_entries(1, 0);

/// Frames counted by `bench_sink`.
#[map]
pub static BENCH_RECEIVED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The last frame `bench_capture` saw.
#[map]
pub static BENCH_CAPTURED: Array<BenchTemplate> = Array::with_max_entries(1, 0);

/// The generator's frames, one per flow.
#[map]
pub static BENCH_TEMPLATES: Array<BenchTemplate> =
    Array::with_max_entries(capacity::BENCH_FLOWS, 0);

/// How many of `BENCH_TEMPLATES` are in use.
#[map]
pub static BENCH_FLOWS: Array<u32> = Array::with_max_entries(1, 0);

/// The next flow each CPU's generator sends.
#[map]
pub static BENCH_NEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Generator rate: nanoseconds between transmitted frames, 0 = as fast as the core goes.
#[map]
pub static BENCH_GAP_NS: Array<u64> = Array::with_max_entries(1, 0);

/// Each CPU's next departure time, `bpf_ktime_get_ns` clock.
#[map]
pub static BENCH_DUE_NS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Frames the generator transmitted, summed over CPUs by userspace.
#[map]
pub static BENCH_SENT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// New-flows mode: when not 0, the packet offset where the generator writes a 32-bit
/// big-endian sequence number into every frame (a UDP port pair), so each frame is a
/// flow never seen before.
#[map]
pub static BENCH_SEQ_AT: Array<u32> = Array::with_max_entries(1, 0);

/// The next sequence number each CPU's generator writes.
#[map]
pub static BENCH_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
