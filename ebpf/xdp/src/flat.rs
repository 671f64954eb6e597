//! Lookups in the flat tables (`ovnest_common::flat`): the key's window first, then its
//! spill pair. Entries are read in place: a live slot is not rewritten while a program
//! run that saw it live can still be reading it (see `ovnest_common::flat`).

use core::sync::atomic::{Ordering, compiler_fence};

use aya_ebpf::maps::{Array, HashMap};
use ovnest_common::flat::{FLAT_PROBE, FlatKey, FlatSlot, probe_slot};

/// Whether `slot` holds an entry, read so that the entry's bytes (written before `live`
/// was set) are read after it: the compiler may not move later loads above this one, and
/// x86 does not reorder loads with loads. (The target has no load-acquire below BPF
/// cpu v4; a weakly ordered CPU would need one here.)
#[inline(always)]
fn is_live<K, V>(slot: &FlatSlot<K, V>) -> bool {
    // SAFETY: `live` is an aligned u32 of a map value that stays valid for this run.
    let live = unsafe { core::ptr::read_volatile(&slot.live) };
    compiler_fence(Ordering::Acquire);
    live != 0
}

/// The value of `key`: in its window of `flat` (inlined array reads), else in its spill
/// pair.
#[inline(always)]
pub fn lookup<'a, K: FlatKey, V>(
    flat: &'a Array<FlatSlot<K, V>>,
    slots: u32,
    spill: &HashMap<K, u32>,
    key: &K,
) -> Option<&'a V> {
    if let Some(value) = probe(flat, slots, key.flat_hash(), |k| k.same(key)) {
        return Some(value);
    }
    spilled(flat, spill, key)
}

/// The live slot of the window at `hash` whose key `matches`.
#[inline(always)]
pub fn probe<K, V>(
    flat: &Array<FlatSlot<K, V>>,
    slots: u32,
    hash: u32,
    matches: impl Fn(&K) -> bool,
) -> Option<&V> {
    let mut step = 0;
    while step < FLAT_PROBE {
        let slot = flat.get(probe_slot(hash, step, slots))?;
        if is_live(slot) && matches(&slot.key) {
            return Some(&slot.value);
        }
        step += 1;
    }
    None
}

/// `key` in its spill pair, if it has one. The index is copied out of the hash map and
/// only trusted through the slot's own key: a recycled element gives a miss.
#[inline(never)]
pub fn spilled<'a, K: FlatKey, V>(
    flat: &'a Array<FlatSlot<K, V>>,
    spill: &HashMap<K, u32>,
    key: &K,
) -> Option<&'a V> {
    // SAFETY: a plain u32 copied out at once; any value it holds is bounds-checked below.
    let base = unsafe { spill.get(key) }.copied()?;
    let mut i = 0;
    while i < 2 {
        let slot = flat.get(base.wrapping_add(i))?;
        if is_live(slot) && slot.key.same(key) {
            return Some(&slot.value);
        }
        i += 1;
    }
    None
}
