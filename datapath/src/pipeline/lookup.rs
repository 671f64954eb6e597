//! An open-addressing hash table from `u64` keys to `u32` values, built once per
//! [`Snapshot`](super::Snapshot) and only read afterwards.
//!
//! Why not `HashMap`: the hot loop does two or three lookups per frame, and a flat table of
//! 16-byte slots with a multiplicative hash and linear probing costs one cache line per hit
//! (SipHash alone would cost more than the rest of the frame's work). Built read-only, so
//! no deletion or tombstones are needed.

/// A key no caller inserts: every table key packs a small index into the top bits, and
/// those indexes never reach `0xffff`.
const EMPTY: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
struct Slot {
    key: u64,
    value: u32,
}

/// A read-only `u64 → u32` table at most half full, so every probe sequence meets an
/// empty slot and terminates.
#[derive(Clone, Debug)]
pub struct FlatMap {
    slots: Box<[Slot]>,
    mask: usize,
    len: usize,
}

impl FlatMap {
    /// A table holding `entries`; a later duplicate key replaces an earlier one. Keys equal
    /// to [`u64::MAX`] are skipped (never produced by the snapshot's key packing).
    pub fn build(entries: impl IntoIterator<Item = (u64, u32)>) -> FlatMap {
        let entries: Vec<(u64, u32)> = entries.into_iter().filter(|(k, _)| *k != EMPTY).collect();
        let capacity = (entries.len() * 2).next_power_of_two().max(16);
        let mut map = FlatMap {
            slots: vec![
                Slot {
                    key: EMPTY,
                    value: 0
                };
                capacity
            ]
            .into_boxed_slice(),
            mask: capacity - 1,
            len: 0,
        };
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }

    fn insert(&mut self, key: u64, value: u32) {
        let mut i = Self::hash(key) & self.mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.key == EMPTY {
                *slot = Slot { key, value };
                self.len += 1;
                return;
            }
            if slot.key == key {
                slot.value = value;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline(always)]
    fn hash(key: u64) -> usize {
        // Fibonacci hashing; the high half carries the mixed bits.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
    }

    /// The value stored for `key`. Never panics: indexes are masked, and the table is at
    /// most half full so the probe ends at an empty slot.
    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<u32> {
        if key == EMPTY {
            return None;
        }
        let mut i = Self::hash(key) & self.mask;
        loop {
            let slot = self.slots.get(i)?;
            if slot.key == key {
                return Some(slot.value);
            }
            if slot.key == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let map = FlatMap::build((0..20_000u64).map(|k| (k << 20 | 7, k as u32)));
        assert_eq!(map.len(), 20_000);
        for k in 0..20_000u64 {
            assert_eq!(map.get(k << 20 | 7), Some(k as u32));
            assert_eq!(map.get(k << 20 | 8), None);
        }
        assert_eq!(map.get(EMPTY), None);
    }

    #[test]
    fn empty_and_duplicates() {
        assert_eq!(FlatMap::build([]).get(0), None);
        let map = FlatMap::build([(1, 1), (1, 2), (EMPTY, 3)]);
        assert_eq!((map.get(1), map.len()), (Some(2), 1));
    }
}
