//! The order in which an OVS IDL (ovn-trace's, ovn-sbctl's) iterates a table's rows.
//!
//! ovn-trace breaks ties between overlapping flows of equal priority by that order (it
//! stable-sorts flows by pipeline, table and priority, and takes the first that
//! matches), and northd emits such ties (`ls_in_pre_lb`'s `eth.mcast` and
//! `ip && inport == LOCALNET`). The order is OVS's `hmap` iteration order, twice over:
//! the monitor reply's rows are a JSON object, parsed into an `shash` keyed by the
//! row's UUID string (`hash_string`), and iterated to insert each row into the table's
//! `hmap` keyed by `uuid_hash` (the UUID's first 32 bits), which is then iterated. Both
//! are deterministic given the UUIDs, except among rows whose strings share an shash
//! bucket, whose order follows the server's reply (taken here as UUID order).

use imbl::OrdMap;
use rustc_hash::FxHashMap;

use crate::db::Uuid;

/// Each UUID's position in the IDL's iteration over a table holding exactly `uuids`.
pub fn ranks(uuids: &[Uuid]) -> FxHashMap<Uuid, usize> {
    let mut sorted = uuids.to_vec();
    if !sorted.is_sorted() {
        sorted.sort_unstable();
    }
    sorted.dedup();
    let parsed = hmap_order(&sorted, |u| hash_bytes(&uuid_string(u)));
    hmap_order(&parsed, |u| u.short())
        .into_iter()
        .enumerate()
        .map(|(i, u)| (u, i))
        .collect()
}

/// Where a row falls in the first map (the shash, filled in UUID order): its bucket,
/// which side of the bucket it went to, and its insertion position as seen from that
/// side (the UUID, complemented when later rows come first). Ordered as the shash
/// iterates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
struct First(u32, bool, u128);

impl First {
    fn uuid(self) -> Uuid {
        Uuid(if self.1 { self.2 } else { !self.2 })
    }

    /// The same row's place had it been inserted on the other side (after one rehash
    /// more or less).
    fn flipped(self) -> First {
        First(self.0, !self.1, !self.2)
    }

    /// Reverses the order.
    fn not(self) -> First {
        First(!self.0, !self.1, !self.2)
    }
}

/// A row's place in the IDL's iteration order ([`IdlOrder::key`]): rows compare as
/// the IDL iterates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key(u32, bool, First);

/// The rehash points of an OVS `hmap`: the counts after which `hmap_insert` rehashes
/// (2, 8, 16, 32, ...), up to `n`.
fn rehash_points(n: usize) -> impl Iterator<Item = usize> {
    let mut mask = 0usize;
    std::iter::from_fn(move || {
        // The smallest count with `count / 2 > mask`.
        let e = 2 * (mask + 1);
        mask = calc_mask(e);
        Some(e)
    })
    .take_while(move |&e| e <= n)
}

/// An ordered set that knows which of its elements sit at the rehash points: element
/// number `e` (from 0) for each rehash point `e` below its size. An element's side in
/// its bucket is the parity of the rehash points at or before it.
#[derive(Debug, Clone, Default)]
struct Ranked<T: Ord + Clone, V: Clone> {
    set: OrdMap<T, V>,
    bounds: Vec<T>,
}

impl<T: Ord + Clone + Copy, V: Clone> Ranked<T, V> {
    fn new(sorted: impl IntoIterator<Item = (T, V)>) -> Self {
        let set: OrdMap<T, V> = sorted.into_iter().collect();
        let n = set.len();
        let mut bounds = Vec::new();
        let mut it = set.keys();
        let mut at = 0;
        for e in rehash_points(n.saturating_sub(1)) {
            // `nth` counts from the element after the last one taken.
            if let Some(&x) = it.nth(e - at) {
                bounds.push(x);
                at = e + 1;
            }
        }
        Ranked { set, bounds }
    }

    /// Rehash points at or before `x` (the bounds are in the set's order).
    fn class(&self, x: &T) -> usize {
        self.bounds.partition_point(|b| b <= x)
    }

    /// Inserts `x` (absent); returns the elements whose class changed (each moved one
    /// rehash point). The size must not reach a rehash point.
    fn insert(&mut self, x: T, v: V, moved: &mut Vec<T>) {
        for b in &mut self.bounds {
            if x < *b {
                // The element before the boundary moves onto it.
                let p = self.set.range(..*b).next_back().map(|(k, _)| *k);
                match p {
                    Some(p) if p > x => {
                        moved.push(p);
                        *b = p;
                    }
                    _ => *b = x,
                }
            }
        }
        self.set.insert(x, v);
    }

    /// Removes `x` (present); returns the elements whose class changed. The size must
    /// stay above the last rehash point.
    fn remove(&mut self, x: &T, moved: &mut Vec<T>) {
        self.set.remove(x);
        for b in &mut self.bounds {
            if *x <= *b {
                // The element after the boundary moves onto it.
                let next = self
                    .set
                    .range((std::ops::Bound::Excluded(*b), std::ops::Bound::Unbounded))
                    .next()
                    .map(|(k, _)| *k);
                if *b != *x {
                    moved.push(*b);
                }
                if let Some(next) = next {
                    *b = next;
                }
            }
        }
    }
}

/// The IDL's iteration order of a table, kept as rows come and go: [`key`](Self::key)
/// gives any row a key that compares as [`ranks`] orders, without numbering the rows.
///
/// A row's key depends on its UUID, the bucket mask (the row count) and, in each of the
/// two maps, which side of its bucket it went to: the parity of the rehashes before its
/// insertion, that is of the rehash points at or before its position. A row added or
/// removed shifts the rows after it by one, so only the rows next to a rehash point
/// change sides, in each map: [`update`](Self::update) finds them with the ordered
/// sets of both maps' insertion orders and returns them. When the row count reaches a
/// rehash point, the mask changes and every row may move: the order is computed anew.
/// Clones share their sets, so a pipeline and its successor can each keep theirs.
#[derive(Debug, Clone, Default)]
pub struct IdlOrder {
    mask: u32,
    reversed: bool,
    /// Rows in UUID order (the shash's insertion order), each with a value the caller
    /// keeps with it.
    first: Ranked<Uuid, u64>,
    /// Rows in the shash's iteration order (the hmap's insertion order).
    second: Ranked<First, ()>,
}

impl IdlOrder {
    /// The order of a table holding `rows` (UUID and the caller's value).
    pub fn new(rows: impl IntoIterator<Item = (Uuid, u64)>) -> IdlOrder {
        let mut rows: Vec<(Uuid, u64)> = rows.into_iter().collect();
        rows.sort_unstable_by_key(|r| r.0);
        rows.dedup_by_key(|r| r.0);
        let n = rows.len();
        let points: Vec<usize> = rehash_points(n).collect();
        let mut o = IdlOrder {
            mask: points.last().map_or(0, |&e| calc_mask(e)) as u32,
            reversed: points.len() % 2 == 1,
            first: Ranked::new(rows.iter().copied()),
            second: Ranked::default(),
        };
        let mut firsts: Vec<First> = rows.iter().map(|&(u, _)| o.first_of(u)).collect();
        firsts.sort_unstable();
        o.second = Ranked::new(firsts.into_iter().map(|f| (f, ())));
        o
    }

    pub fn len(&self) -> usize {
        self.first.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.set.is_empty()
    }

    /// The value kept with row `u`.
    pub fn value(&self, u: Uuid) -> Option<u64> {
        self.first.set.get(&u).copied()
    }

    fn first_of(&self, u: Uuid) -> First {
        let g = (self.first.class(&u) % 2 == 1) ^ self.reversed;
        let h = hash_bytes(&uuid_string(u)) & self.mask;
        First(h, g, if g { u.0 } else { !u.0 })
    }

    /// Row `u`'s place in the iteration: rows of this table compare by their keys as
    /// the IDL iterates them.
    pub fn key(&self, u: Uuid) -> Key {
        let f = self.first_of(u);
        let g = (self.second.class(&f) % 2 == 1) ^ self.reversed;
        Key(u.short() & self.mask, g, if g { f } else { f.not() })
    }

    /// The order once `removed` rows have left and `added` ones (UUID and value) come
    /// in (a row in both is kept, with its new value), and the rows present before and
    /// after whose keys changed (none: the mask changed, every row may have moved).
    pub fn update(&self, removed: &[Uuid], added: &[(Uuid, u64)]) -> (IdlOrder, Option<Vec<Uuid>>) {
        let mut o = self.clone();
        let added_uuids: rustc_hash::FxHashSet<Uuid> = added.iter().map(|a| a.0).collect();
        let mut removed: Vec<Uuid> = removed
            .iter()
            .copied()
            .filter(|u| self.first.set.contains_key(u) && !added_uuids.contains(u))
            .collect();
        removed.sort_unstable();
        removed.dedup();
        let mut new = Vec::new();
        for &(u, v) in added {
            if let Some(old) = o.first.set.get_mut(&u) {
                *old = v;
            } else {
                new.push((u, v));
            }
        }
        new.sort_unstable_by_key(|r| r.0);
        new.dedup_by_key(|r| r.0);
        let n = self.len();
        // The sizes the sets pass through (one more or less while a row changes
        // sides). A rehash point among them: the mask, or which rows sit at rehash
        // points, changes.
        let (lo, hi) = ((n + 1).saturating_sub(removed.len() + 2), n + new.len() + 1);
        if rehash_points(hi).any(|e| e >= lo) {
            for u in &removed {
                o.first.set.remove(u);
            }
            for &(u, v) in &new {
                o.first.set.insert(u, v);
            }
            let o = IdlOrder::new(o.first.set.iter().map(|(u, v)| (*u, *v)));
            return (o, None);
        }
        let mut moved: Vec<Uuid> = Vec::new();
        let mut moved1 = Vec::new();
        let mut moved2 = Vec::new();
        for u in &removed {
            let f = o.first_of(*u);
            moved1.clear();
            o.first.remove(u, &mut moved1);
            o.second.remove(&f, &mut moved2);
            o.resettle(&moved1, &mut moved2);
            moved.extend_from_slice(&moved1);
        }
        for &(u, v) in &new {
            moved1.clear();
            o.first.insert(u, v, &mut moved1);
            o.resettle(&moved1, &mut moved2);
            let f = o.first_of(u);
            o.second.insert(f, (), &mut moved2);
            moved.extend_from_slice(&moved1);
        }
        moved.extend(moved2.into_iter().map(First::uuid));
        moved.sort_unstable();
        moved.dedup();
        moved.retain(|u| o.first.set.contains_key(u) && !added_uuids.contains(u));
        (o, Some(moved))
    }

    /// Rows that changed sides in the first map take their new place in the second.
    fn resettle(&mut self, moved1: &[Uuid], moved2: &mut Vec<First>) {
        for &m in moved1 {
            let f = self.first_of(m);
            self.second.remove(&f.flipped(), moved2);
            self.second.insert(f, (), moved2);
        }
    }
}

/// The iteration order of an OVS `hmap` after inserting `items` in order.
///
/// `hmap_insert` puts a node at the head of its bucket and, once `n / 2 > mask`,
/// rehashes into `calc_mask(n)` buckets by walking the old buckets in order and again
/// inserting each node at the head of its new bucket, which reverses every bucket (the
/// nodes of a new bucket all come from one old bucket). So within a final bucket a node
/// inserted after an even number of rehashes went to the front of the list as it stood
/// then and one inserted after an odd number to the back, and the whole list is read
/// reversed if the number of rehashes is odd: a sort key, with no buckets to build.
fn hmap_order<T: Copy>(items: &[T], hash: impl Fn(T) -> u32) -> Vec<T> {
    let mut mask = 0usize;
    let mut rehashes = 0usize;
    // (bucket, side, position on that side) per item, then the final mask applied.
    let mut keys: Vec<(u32, bool, isize, usize)> = Vec::with_capacity(items.len());
    for (i, &item) in items.iter().enumerate() {
        let odd = rehashes % 2 == 1;
        // Front pushes read latest first, back pushes earliest first.
        let pos = if odd { i as isize } else { -(i as isize) };
        keys.push((hash(item), odd, pos, i));
        let n = i + 1;
        if n / 2 > mask {
            mask = calc_mask(n);
            rehashes += 1;
        }
    }
    let reversed = rehashes % 2 == 1;
    keys.sort_unstable_by_key(|&(h, odd, pos, _)| {
        let within = (odd, pos);
        (
            h as usize & mask,
            if reversed {
                (!within.0, -within.1)
            } else {
                within
            },
        )
    });
    keys.into_iter().map(|(_, _, _, i)| items[i]).collect()
}

/// OVS's `calc_mask`: the bucket mask for `capacity` nodes (at least 4 buckets).
fn calc_mask(capacity: usize) -> usize {
    let mut m = capacity / 2;
    m |= m >> 1;
    m |= m >> 2;
    m |= m >> 4;
    m |= m >> 8;
    m |= m >> 16;
    m |= m >> 32;
    m | ((m & 1) << 1)
}

/// `u` as OVSDB spells it (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), without allocating.
fn uuid_string(u: Uuid) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each of the 16 bytes' two digits go: the dashes at 8, 13, 18 and 23.
    const AT: [u8; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    for (&at, b) in AT.iter().zip(u.0.to_be_bytes()) {
        let at = usize::from(at);
        out[at] = HEX[usize::from(b >> 4)];
        out[at + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// OVS's `hash_bytes(b, len, 0)` (what `hash_string` hashes a key with): native-endian
/// 32-bit words through the murmur-based `mhash`, as distribution builds without SSE
/// 4.2 compute it.
fn hash_bytes(b: &[u8]) -> u32 {
    let mut h = 0u32;
    let (words, rest) = b.as_chunks::<4>();
    for w in words {
        h = mhash_add(h, u32::from_le_bytes(*w));
    }
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        h = mhash_add(h, u32::from_le_bytes(w));
    }
    mhash_finish(h ^ b.len() as u32)
}

fn mhash_add(hash: u32, data: u32) -> u32 {
    let mut hash = hash;
    if data != 0 {
        let d = data
            .wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
        hash ^= d;
    }
    hash.rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

fn mhash_finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Uuid {
        Uuid(u128::from_str_radix(&s.replace('-', ""), 16).expect("uuid"))
    }

    /// `ovn-sbctl --bare --columns=_uuid list Logical_Flow` (an IDL iterating the
    /// table) on the seed lab with its drop ACL, real OVN 23.03: the same order.
    #[test]
    fn the_order_ovn_sbctl_lists_logical_flows_in() {
        let listed: Vec<Uuid> = include_str!("testdata/idl-order-logical-flow.txt")
            .lines()
            .map(parse)
            .collect();
        assert_eq!(listed.len(), 239);
        let ranks = ranks(&listed);
        let mut emulated = listed.clone();
        emulated.sort_by_key(|u| ranks[u]);
        assert_eq!(emulated, listed);
    }

    #[test]
    fn uuids_spelled_as_ovsdb_spells_them() {
        let u = parse("3a45f200-c0fd-4d68-a74d-f3903ce77b89");
        assert_eq!(uuid_string(u), *u.to_string().as_bytes());
    }

    /// The hmap itself, simulated: `hmap_insert` puts a node at the head of its bucket and, once `n / 2 > mask`,
    /// rehashes into `calc_mask(n)` buckets by walking the old buckets in order and again
    /// inserting each node at the head of its new bucket.
    fn hmap_order_by_simulation<T: Copy>(items: &[T], hash: impl Fn(T) -> u32) -> Vec<T> {
        let mut mask = 0usize;
        // Each bucket lists its nodes tail first, so the head is `last()`.
        let mut buckets: Vec<Vec<(T, u32)>> = vec![Vec::new()];
        for (n, &item) in items.iter().enumerate() {
            let h = hash(item);
            buckets[h as usize & mask].push((item, h));
            let n = n + 1;
            if n / 2 > mask {
                let new_mask = calc_mask(n);
                if new_mask > mask {
                    let mut grown: Vec<Vec<(T, u32)>> = vec![Vec::new(); new_mask + 1];
                    for bucket in &buckets {
                        for &(node, h) in bucket.iter().rev() {
                            grown[h as usize & new_mask].push((node, h));
                        }
                    }
                    buckets = grown;
                    mask = new_mask;
                }
            }
        }
        buckets
            .iter()
            .flat_map(|b| b.iter().rev().map(|&(node, _)| node))
            .collect()
    }

    #[test]
    fn the_sort_key_orders_as_the_simulated_hmap() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in [0, 1, 2, 3, 5, 8, 9, 17, 100, 239, 1000, 5000] {
            let items: Vec<u32> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Few distinct low bits, so buckets hold many nodes.
                    (x as u32) & 0xff_f0ff
                })
                .collect();
            assert_eq!(
                hmap_order(&items, |h| h),
                hmap_order_by_simulation(&items, |h| h),
                "{n} items"
            );
        }
    }

    /// Random rows added and removed, a few at a time, across rehash points: the
    /// keys kept incrementally order the rows as `ranks` computed from scratch, and
    /// the rows reported as moved are exactly those whose place relative to the
    /// others changed.
    #[test]
    fn kept_keys_order_as_ranks_computed_anew() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 200,
            ..Config::default()
        });
        // (start size, batches of (removals, additions) as random picks).
        let batches = prop::collection::vec(
            (
                prop::collection::vec(any::<prop::sample::Index>(), 0..4),
                prop::collection::vec(any::<u128>(), 0..4),
            ),
            1..12,
        );
        let incremental = std::cell::Cell::new(0);
        runner
            .run(&(0usize..300, batches), |(start, batches)| {
                let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
                let mut rows: Vec<Uuid> = (0..start)
                    .map(|_| {
                        x = x
                            .wrapping_mul(0x2545_f491_4f6c_dd1d)
                            .wrapping_add(1442695040888963407);
                        Uuid(x ^ (x >> 67))
                    })
                    .collect();
                let mut order = IdlOrder::new(rows.iter().map(|&u| (u, u.0 as u64)));
                for (removals, additions) in batches {
                    let removed: Vec<Uuid> = if rows.is_empty() {
                        Vec::new()
                    } else {
                        removals.iter().map(|i| rows[i.index(rows.len())]).collect()
                    };
                    let added: Vec<(Uuid, u64)> = additions.iter().map(|&a| (Uuid(a), 7)).collect();
                    let before = ranks(&rows);
                    rows.retain(|u| !removed.contains(u));
                    rows.extend(added.iter().map(|a| a.0));
                    rows.sort_unstable();
                    rows.dedup();
                    let (next, moved) = order.update(&removed, &added);
                    let want = ranks(&rows);
                    let mut by_key = rows.clone();
                    by_key.sort_by_key(|&u| next.key(u));
                    let mut by_rank = rows.clone();
                    by_rank.sort_by_key(|u| want[u]);
                    prop_assert_eq!(&by_key, &by_rank);
                    prop_assert_eq!(next.len(), rows.len());
                    for a in &added {
                        prop_assert_eq!(next.value(a.0), Some(7));
                    }
                    // A row that kept its key kept its place among the others that did.
                    let kept: Vec<Uuid> = by_key
                        .iter()
                        .copied()
                        .filter(|u| before.contains_key(u) && order.key(*u) == next.key(*u))
                        .collect();
                    let mut old_order = kept.clone();
                    old_order.sort_by_key(|u| before[u]);
                    prop_assert_eq!(&old_order, &kept);
                    // Every row whose key changed (other than those added) is reported,
                    // unless the mask changed.
                    if let Some(moved) = &moved {
                        incremental.set(incremental.get() + 1);
                        for u in &rows {
                            if before.contains_key(u)
                                && !added.iter().any(|a| a.0 == *u)
                                && order.key(*u) != next.key(*u)
                            {
                                prop_assert!(moved.contains(u), "{u} moved unreported");
                            }
                        }
                    }
                    order = next;
                }
                Ok(())
            })
            .unwrap();
        // Most batches were kept incrementally, not recomputed.
        assert!(incremental.get() > 500, "{}", incremental.get());
    }

    #[test]
    fn masks_grow_as_ovs_grows_them() {
        assert_eq!(calc_mask(2), 3);
        assert_eq!(calc_mask(7), 3);
        assert_eq!(calc_mask(8), 7);
        assert_eq!(calc_mask(10), 7);
        assert_eq!(calc_mask(239), 127);
    }
}
