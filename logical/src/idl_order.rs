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
    let mut out = [b'-'; 36];
    let mut nibble = 0;
    for (i, c) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        *c = HEX[((u.0 >> (124 - 4 * nibble)) & 0xf) as usize];
        nibble += 1;
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

    #[test]
    fn masks_grow_as_ovs_grows_them() {
        assert_eq!(calc_mask(2), 3);
        assert_eq!(calc_mask(7), 3);
        assert_eq!(calc_mask(8), 7);
        assert_eq!(calc_mask(10), 7);
        assert_eq!(calc_mask(239), 127);
    }
}
