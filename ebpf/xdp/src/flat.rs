//! Lookups in the flat tables (`ovnest_common::flat`), falling back to the hash map.

use aya_ebpf::maps::{Array, HashMap};
use ovnest_common::flat::{FLAT_PROBE, FlatKey, FlatSlot, probe_slot};

/// The value of `key`: first in the flat table's probe window (inlined array reads), then
/// in the hash map for keys that did not fit their window or are being rewritten.
#[inline(always)]
pub fn lookup<'a, K: FlatKey, V>(
    flat: &'a Array<FlatSlot<K, V>>,
    slots: u32,
    hash_map: &'a HashMap<K, V>,
    key: &K,
) -> Option<&'a V> {
    if let Some(value) = probe(flat, slots, key.flat_hash(), |k| k.same(key)) {
        return Some(value);
    }
    // SAFETY: the value is plain data written whole by userspace and only read here, for
    // the duration of this program run (RCU keeps it alive).
    unsafe { hash_map.get(key) }
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
        if slot.live != 0 && matches(&slot.key) {
            return Some(&slot.value);
        }
        step += 1;
    }
    None
}
