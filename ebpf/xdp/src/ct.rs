//! Established connections in XDP: a cached decision that went through conntrack is
//! used only while the connections it met still hold the serials they had when the
//! pipeline decided (`ovnest_common::ct`), and each use refreshes their last-seen
//! time. Userspace's connection table writes and clears the slots; this program only
//! reads serials and writes timestamps. Design and rationale: the
//! `ovnest_datapath::conntrack` module.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use ovnest_common::{
    cache::CacheAction,
    ct::{CT_DEPS, CtCounter, CtEntry, DEFAULT_CT_SLOTS},
};

/// Established connections by their slot in the userspace table. Size set at load time.
#[map]
pub static CT: Array<CtEntry> = Array::with_max_entries(DEFAULT_CT_SLOTS, 0);

/// `CtCounter`s.
#[map]
pub static CT_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(CtCounter::COUNT, 0);

#[inline(always)]
fn count(counter: CtCounter) {
    if let Some(slot) = CT_STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

/// Whether every connection `action` depends on is still the one it was decided with
/// (counted either way); refreshes their last-seen time. A decision without
/// connections holds.
#[inline(always)]
pub fn holds(action: &CacheAction) -> bool {
    let n = action.ct_n as usize;
    if n == 0 {
        return true;
    }
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let mut i = 0;
    while i < CT_DEPS && i < n {
        let dep = action.ct[i];
        let Some(entry) = CT.get_ptr_mut(dep.slot) else {
            count(CtCounter::Gone);
            return false;
        };
        // SAFETY: the pointer is to a live array slot. Userspace rewrites a slot whole
        // (serial and time) with one syscall; a frame racing it sees either serial, and
        // a cleared or new serial fails the check. The time is a plain store: several
        // CPUs storing about the same time in any order is fine.
        unsafe {
            if (*entry).serial != dep.serial {
                count(CtCounter::Gone);
                return false;
            }
            // Skipped when unchanged (the coarse clock ticks every few ms), so a busy
            // connection does not dirty the line on every frame.
            if (*entry).last_seen != now {
                (*entry).last_seen = now;
            }
        }
        i += 1;
    }
    count(CtCounter::EstHit);
    true
}
