//! Where each key of a flat table lives (`ovnest_common::flat`), and the write order that
//! keeps every slot whole for a concurrent reader.
//!
//! The hash maps stay the source of truth and are written first; a flat slot only
//! short-cuts them. So a key that finds no free slot in its probe window is left to the
//! hash map (counted in [`FlatPlacement::overflow`]), and a slot being rewritten is
//! marked dead first: in between, the program misses it and falls back to the hash map.

use std::collections::HashMap;
use std::hash::Hash;

use aya::maps::{Array, MapData, MapError};
use ovnest_common::{
    ChildKey, MacKey,
    flat::{FLAT_PROBE, FlatKey, FlatSlot, probe_slot, slots},
};

/// The placements of the program's three flat tables.
#[derive(Debug)]
pub(super) struct FlatTables {
    /// Off: nothing is mirrored, every key is looked up by hash (to test that path).
    pub enabled: bool,
    pub vifs: FlatPlacement<u32>,
    pub children: FlatPlacement<ChildKey>,
    pub macs: FlatPlacement<MacKey>,
}

impl FlatTables {
    pub(super) fn new() -> Self {
        FlatTables {
            enabled: true,
            vifs: FlatPlacement::new(slots::VIFS),
            children: FlatPlacement::new(slots::CHILDREN),
            macs: FlatPlacement::new(slots::MACS),
        }
    }
}

/// The occupancy of one flat table, as this process wrote it.
#[derive(Debug)]
pub(super) struct FlatPlacement<K> {
    slots: u32,
    placed: HashMap<K, u32>,
    used: Vec<bool>,
}

impl<K: FlatKey + Hash + Eq> FlatPlacement<K> {
    pub(super) fn new(slots: u32) -> Self {
        FlatPlacement {
            slots,
            placed: HashMap::new(),
            used: vec![false; slots as usize],
        }
    }

    /// The slot `key` holds (and `true`), or a free slot of its window for it (and
    /// `false`); `None` when the window is full.
    fn place(&mut self, key: &K) -> Option<(u32, bool)> {
        if let Some(slot) = self.placed.get(key) {
            return Some((*slot, true));
        }
        let hash = key.flat_hash();
        let slot = (0..FLAT_PROBE)
            .map(|step| probe_slot(hash, step, self.slots))
            .find(|slot| !self.used[*slot as usize])?;
        self.used[slot as usize] = true;
        self.placed.insert(*key, slot);
        Some((slot, false))
    }

    /// Frees the slot of `key`, returning it.
    fn release(&mut self, key: &K) -> Option<u32> {
        let slot = self.placed.remove(key)?;
        self.used[slot as usize] = false;
        Some(slot)
    }

    /// Keys served by the hash map alone because their window was full.
    pub(super) fn overflow(&self, hash_keys: usize) -> usize {
        hash_keys.saturating_sub(self.placed.len())
    }

    /// Mirrors an upsert already written to the hash map.
    pub(super) fn upsert<V: aya::Pod>(
        &mut self,
        array: &mut Array<&mut MapData, FlatSlot<K, V>>,
        key: &K,
        value: &V,
    ) -> Result<(), MapError>
    where
        K: aya::Pod,
        FlatSlot<K, V>: aya::Pod,
    {
        let Some((slot, held)) = self.place(key) else {
            return Ok(());
        };
        if held {
            // Dead first with its old bytes, so no reader sees `live` with a value that
            // is half rewritten.
            kill(array, slot)?;
        }
        let mut entry = FlatSlot {
            live: 0,
            key: *key,
            value: *value,
        };
        // Dead while its bytes change, then live with the same bytes.
        array.set(slot, &entry, 0)?;
        entry.live = 1;
        array.set(slot, &entry, 0)
    }

    /// Takes `key` out of the flat table before it leaves the hash map.
    pub(super) fn remove<V: aya::Pod>(
        &mut self,
        array: &mut Array<&mut MapData, FlatSlot<K, V>>,
        key: &K,
    ) -> Result<(), MapError>
    where
        K: aya::Pod,
        FlatSlot<K, V>: aya::Pod,
    {
        let Some(slot) = self.release(key) else {
            return Ok(());
        };
        kill(array, slot)
    }
}

/// Marks `slot` dead. Only `live` changes: a reader sees the old entry whole or a dead slot.
fn kill<K: aya::Pod, V: aya::Pod>(
    array: &mut Array<&mut MapData, FlatSlot<K, V>>,
    slot: u32,
) -> Result<(), MapError>
where
    FlatSlot<K, V>: aya::Pod,
{
    let mut entry = array.get(&slot, 0)?;
    entry.live = 0;
    array.set(slot, &entry, 0)
}

#[cfg(test)]
mod tests {
    use ovnest_common::ChildKey;

    use super::*;

    /// Child keys whose probe windows start at the same slot of a table of `slots`.
    fn colliding(slots: u32, n: usize) -> Vec<ChildKey> {
        let first = ChildKey::new(7, 1);
        let start = probe_slot(first.flat_hash(), 0, slots);
        (1..4095)
            .flat_map(|vid| (1..64).map(move |ifindex| ChildKey::new(ifindex, vid)))
            .filter(|k| probe_slot(k.flat_hash(), 0, slots) == start)
            .take(n)
            .collect()
    }

    #[test]
    fn a_full_window_leaves_the_key_to_the_hash_map() {
        let slots = 64;
        let keys = colliding(slots, FLAT_PROBE as usize + 1);
        assert_eq!(keys.len(), FLAT_PROBE as usize + 1);
        let mut table = FlatPlacement::new(slots);
        let placed: Vec<_> = keys
            .iter()
            .map(|k| table.place(k).map(|(s, _)| s))
            .collect();
        let start = probe_slot(keys[0].flat_hash(), 0, slots);
        for (step, slot) in placed.iter().take(FLAT_PROBE as usize).enumerate() {
            assert_eq!(*slot, Some(probe_slot(start, step as u32, slots)));
        }
        assert_eq!(placed[FLAT_PROBE as usize], None);
        assert_eq!(table.overflow(keys.len()), 1);
        // A freed slot is found again, and a placed key keeps its slot.
        assert_eq!(table.release(&keys[1]), placed[1]);
        assert_eq!(
            table.place(&keys[FLAT_PROBE as usize]),
            placed[1].map(|s| (s, false))
        );
        assert_eq!(table.place(&keys[0]), placed[0].map(|s| (s, true)));
        assert_eq!(table.release(&keys[1]), None);
    }

    #[test]
    fn windows_wrap_around_the_end_of_the_table() {
        let slots = 8;
        let key = (1..10_000u32)
            .find(|k| probe_slot(k.flat_hash(), 0, slots) == slots - 1)
            .expect("some ifindex hashes to the last slot");
        let mut table = FlatPlacement::new(slots);
        assert_eq!(table.place(&key), Some((slots - 1, false)));
        let twin = (key + 1..20_000u32)
            .find(|k| probe_slot(k.flat_hash(), 0, slots) == slots - 1)
            .expect("another one does too");
        assert_eq!(table.place(&twin), Some((0, false)));
    }
}
