//! A priority classifier over [`Flow`]s: tuple space search, as OVS's classifier.
//!
//! Rules with the same mask share a subtable: a hash map from the masked flow words to
//! the best rule. A lookup probes subtables in order of their highest priority and
//! stops as soon as no remaining subtable can beat the best match found, so its cost
//! is a handful of hash probes however many rules a logical table holds. The masks of
//! the subtables probed are what the decision depended on (OVS's megaflow wildcards),
//! which is what a cache of decisions must key on.

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::expr::Conj;
use crate::flow::{Flow, WORDS};

/// What a rule points at: an index chosen by the caller (a compiled logical flow).
pub type RuleId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    priority: u32,
    /// Insertion order, to break ties between equal priorities deterministically.
    order: u32,
    id: RuleId,
}

impl Rule {
    #[inline(always)]
    fn beats(&self, other: &Rule) -> bool {
        (self.priority, std::cmp::Reverse(self.order))
            > (other.priority, std::cmp::Reverse(other.order))
    }
}

/// Rules sharing one mask, while the classifier is being filled. Keys live in one flat
/// array (`n` words each); past a few entries a hash table of entry numbers indexes
/// them, so an insert finds an equal key without a scan.
#[derive(Debug, Clone)]
struct Subtable {
    /// The words this subtable's mask covers, with their masks.
    words: Vec<(u8, u64)>,
    max_priority: u32,
    keys: Vec<u64>,
    best: Vec<Rule>,
    index: HashTable<u32>,
}

/// Entries a subtable scans before it uses a hash index.
const SCAN_LIMIT: usize = 8;

/// A subtable without a hash index (it is scanned).
const NO_INDEX: u32 = u32::MAX;

fn hash(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^ (h >> 29)
}

#[inline(always)]
fn same(a: &[u64], b: &[u64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl Subtable {
    fn n(&self) -> usize {
        self.words.len()
    }

    fn find(&self, key: &[u64]) -> Option<usize> {
        let n = self.n();
        let keys = &self.keys;
        if self.index.is_empty() {
            (0..self.best.len()).find(|&i| same(&keys[i * n..(i + 1) * n], key))
        } else {
            self.index
                .find(hash(key), |&i| {
                    same(&keys[i as usize * n..(i as usize + 1) * n], key)
                })
                .map(|&i| i as usize)
        }
    }

    fn insert(&mut self, key: &[u64], rule: Rule) {
        if let Some(i) = self.find(key) {
            if rule.beats(&self.best[i]) {
                self.best[i] = rule;
            }
            return;
        }
        let i = self.best.len();
        self.keys.extend_from_slice(key);
        self.best.push(rule);
        let n = self.n();
        if i + 1 > SCAN_LIMIT {
            let keys = &self.keys;
            let rehash = |&k: &u32| hash(&keys[k as usize * n..(k as usize + 1) * n]);
            if self.index.is_empty() {
                for j in 0..=i {
                    let h = hash(&keys[j * n..(j + 1) * n]);
                    self.index.insert_unique(h, j as u32, rehash);
                }
            } else {
                self.index.insert_unique(hash(key), i as u32, rehash);
            }
        }
    }
}

/// Rules of one logical table.
///
/// Filled with [`insert`](Self::insert), then [`finish`](Self::finish)ed into the form
/// lookups use: every subtable laid end to end in one array of words (header, word
/// numbers, masks, keys), so a lookup reads memory in order, one block per table,
/// instead of three heap blocks per subtable. An insert after `finish` reopens it
/// (call `finish` again).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// After `finish`: the subtables in descending order of their highest priority,
    /// each as [`Layout`] describes.
    code: Vec<u64>,
    /// The best rule of each entry, subtable after subtable.
    rules: Vec<Rule>,
    /// Hash indexes of the subtables with more than [`SCAN_LIMIT`] entries.
    indexes: Vec<HashTable<u32>>,
    n_subtables: u32,
    n_rules: u32,
    /// While filling: the subtables, by mask.
    building: Vec<Subtable>,
    by_mask: FxHashMap<[u64; WORDS], usize>,
}

/// One subtable in [`Classifier::code`]:
/// - `max_priority` (bits 0-31) | words (32-39) | entries (40-63);
/// - the first rule's place in `rules` (0-31) | hash index or [`NO_INDEX`] (32-63);
/// - the word numbers, one per word of the flow it covers;
/// - the masks, one per word;
/// - the keys, entry after entry.
struct Layout;

impl Layout {
    const HEADER: usize = 2;

    fn len(n_words: usize, n_entries: usize) -> usize {
        Self::HEADER + 2 * n_words + n_words * n_entries
    }
}

impl Classifier {
    /// Adds a rule matching `conj` at `priority`.
    pub fn insert(&mut self, conj: &Conj, priority: u32, id: RuleId) {
        if self.n_subtables != 0 {
            self.reopen();
        }
        let rule = Rule {
            priority,
            order: self.n_rules,
            id,
        };
        self.n_rules += 1;
        let building = &mut self.building;
        let idx = *self.by_mask.entry(conj.mask).or_insert_with(|| {
            let words = (0..WORDS)
                .filter(|&i| conj.mask[i] != 0)
                .map(|i| (i as u8, conj.mask[i]))
                .collect();
            building.push(Subtable {
                words,
                max_priority: 0,
                keys: Vec::new(),
                best: Vec::new(),
                index: HashTable::new(),
            });
            building.len() - 1
        });
        let st = &mut self.building[idx];
        let mut key = [0u64; WORDS];
        for (k, &(i, _)) in st.words.iter().enumerate() {
            key[k] = conj.value[i as usize];
        }
        st.max_priority = st.max_priority.max(priority);
        let n = st.words.len();
        st.insert(&key[..n], rule);
    }

    /// Lays the subtables out for lookup; call after the last insert.
    pub fn finish(&mut self) {
        if self.building.is_empty() {
            return;
        }
        let mut building = std::mem::take(&mut self.building);
        building.sort_by_key(|s| std::cmp::Reverse(s.max_priority));
        self.by_mask.clear();
        let len: usize = building
            .iter()
            .map(|s| Layout::len(s.words.len(), s.best.len()))
            .sum();
        self.code = Vec::with_capacity(len);
        self.rules = Vec::with_capacity(building.iter().map(|s| s.best.len()).sum());
        // `by_mask` is rebuilt only if an insert reopens the classifier.
        self.n_subtables = building.len() as u32;
        for st in building {
            let index = if st.index.is_empty() {
                NO_INDEX
            } else {
                self.indexes.push(st.index);
                (self.indexes.len() - 1) as u32
            };
            self.code.push(
                u64::from(st.max_priority)
                    | (st.words.len() as u64) << 32
                    | (st.best.len() as u64) << 40,
            );
            self.code
                .push(self.rules.len() as u64 | u64::from(index) << 32);
            self.code
                .extend(st.words.iter().map(|&(i, _)| u64::from(i)));
            self.code.extend(st.words.iter().map(|&(_, m)| m));
            self.code.extend_from_slice(&st.keys);
            self.rules.extend_from_slice(&st.best);
        }
    }

    /// Back from the lookup form to the filling form (an insert after `finish`).
    fn reopen(&mut self) {
        let mut indexes: Vec<Option<HashTable<u32>>> = std::mem::take(&mut self.indexes)
            .into_iter()
            .map(Some)
            .collect();
        let code = std::mem::take(&mut self.code);
        let rules = std::mem::take(&mut self.rules);
        let mut pos = 0;
        while pos < code.len() {
            let (h, r) = (code[pos], code[pos + 1]);
            let n = (h >> 32 & 0xff) as usize;
            let k = (h >> 40) as usize;
            let (rule_off, index) = (r as u32 as usize, (r >> 32) as u32);
            let idx = pos + Layout::HEADER;
            let masks = idx + n;
            let keys = masks + n;
            self.building.push(Subtable {
                words: (0..n)
                    .map(|j| (code[idx + j] as u8, code[masks + j]))
                    .collect(),
                max_priority: h as u32,
                keys: code[keys..keys + n * k].to_vec(),
                best: rules[rule_off..rule_off + k].to_vec(),
                index: if index == NO_INDEX {
                    HashTable::new()
                } else {
                    indexes[index as usize].take().unwrap_or_default()
                },
            });
            pos = keys + n * k;
        }
        self.by_mask.clear();
        for (i, st) in self.building.iter().enumerate() {
            let mut mask = [0u64; WORDS];
            for &(w, m) in &st.words {
                mask[w as usize] = m;
            }
            self.by_mask.insert(mask, i);
        }
        self.n_subtables = 0;
    }

    /// The highest-priority rule matching `flow`. When `wc` is given, the masks of the
    /// subtables consulted are OR-ed into it.
    #[inline]
    pub fn lookup(&self, flow: &Flow, mut wc: Option<&mut [u64; WORDS]>) -> Option<RuleId> {
        let mut best: Option<Rule> = None;
        let code = self.code.as_slice();
        let mut key = [0u64; WORDS];
        let mut pos = 0;
        while pos < code.len() {
            let h = code[pos];
            if let Some(b) = &best
                && (h as u32) < b.priority
            {
                break;
            }
            let n = (h >> 32 & 0xff) as usize;
            let k = (h >> 40) as usize;
            let r = code[pos + 1];
            // SAFETY: only `finish` writes `code`, laying each subtable out as
            // `Layout` says: its `Layout::len(n, k)` words lie within `code` from `pos`,
            // and its word numbers come from masks of `WORDS` words (`< WORDS`) and
            // `n <= WORDS`. So every pointer below stays inside `code`, `key` and
            // `flow.w`.
            let found = unsafe {
                let idx = code.as_ptr().add(pos + Layout::HEADER);
                let masks = idx.add(n);
                let keys = masks.add(n);
                let index = (r >> 32) as u32;
                if let Some(wc) = wc.as_deref_mut() {
                    for j in 0..n {
                        *wc.get_unchecked_mut(*idx.add(j) as usize) |= *masks.add(j);
                    }
                }
                for j in 0..n {
                    *key.get_unchecked_mut(j) =
                        *flow.w.get_unchecked(*idx.add(j) as usize) & *masks.add(j);
                }
                if index == NO_INDEX {
                    // A few entries compared with the masked flow; a miss usually fails
                    // on the first word.
                    let mut found = None;
                    'entries: for e in 0..k {
                        let ek = keys.add(e * n);
                        for j in 0..n {
                            if *ek.add(j) != *key.get_unchecked(j) {
                                continue 'entries;
                            }
                        }
                        found = Some(e);
                        break;
                    }
                    found
                } else {
                    let key = &key[..n];
                    let keys = std::slice::from_raw_parts(keys, n * k);
                    self.indexes[index as usize]
                        .find(hash(key), |&e| same(&keys[e as usize * n..][..n], key))
                        .map(|&e| e as usize)
                }
            };
            pos += Layout::len(n, k);
            if let Some(e) = found {
                let r = self.rules[r as u32 as usize + e];
                if best.as_ref().is_none_or(|b| r.beats(b)) {
                    best = Some(r);
                }
            }
        }
        best.map(|r| r.id)
    }

    /// The rule, when the table holds exactly one and it matches every flow.
    pub fn only_catchall(&self) -> Option<RuleId> {
        (self.n_subtables == 1 && self.n_rules == 1 && self.code.len() == Layout::HEADER)
            .then(|| self.rules[0].id)
    }

    pub fn len(&self) -> u32 {
        self.n_rules
    }

    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    pub fn n_subtables(&self) -> usize {
        (self.n_subtables as usize).max(self.building.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;

    fn conj(f: Field, v: u128, m: u128) -> Conj {
        let mut c = Conj::ANY;
        crate::flow::to_words(f, v, m, &mut c.value, &mut c.mask);
        c
    }

    #[test]
    fn priorities_win_and_masks_accumulate() {
        let mut cls = Classifier::default();
        cls.insert(&Conj::ANY, 0, 1);
        cls.insert(&conj(Field::EthType, 0x800, 0xffff), 50, 2);
        cls.insert(&conj(Field::IpTtl, 1, 0xff), 100, 3);
        cls.finish();
        let mut f = Flow::default();
        assert_eq!(cls.lookup(&f, None), Some(1));
        f.set(Field::EthType, 0x800);
        let mut wc = [0u64; WORDS];
        assert_eq!(cls.lookup(&f, Some(&mut wc)), Some(2));
        assert_ne!(wc, [0u64; WORDS]);
        f.set(Field::IpTtl, 1);
        assert_eq!(cls.lookup(&f, None), Some(3));
    }

    #[test]
    fn insert_after_finish_reopens() {
        let mut cls = Classifier::default();
        for v in 0..20u128 {
            cls.insert(&conj(Field::TcpDst, v, 0xffff), 10, v as u32);
        }
        cls.insert(&Conj::ANY, 0, 100);
        cls.finish();
        let mut f = Flow::default();
        f.set(Field::TcpDst, 15);
        assert_eq!(cls.lookup(&f, None), Some(15));
        cls.insert(&conj(Field::TcpDst, 15, 0xffff), 20, 200);
        cls.insert(&conj(Field::TcpDst, 99, 0xffff), 10, 99);
        cls.finish();
        assert_eq!(cls.lookup(&f, None), Some(200));
        f.set(Field::TcpDst, 99);
        assert_eq!(cls.lookup(&f, None), Some(99));
        f.set(Field::TcpDst, 1000);
        assert_eq!(cls.lookup(&f, None), Some(100));
        assert_eq!(cls.len(), 23);
    }

    #[test]
    fn first_inserted_wins_a_tie() {
        let mut cls = Classifier::default();
        cls.insert(&Conj::ANY, 10, 7);
        cls.insert(&Conj::ANY, 10, 8);
        cls.finish();
        assert_eq!(cls.lookup(&Flow::default(), None), Some(7));
    }
}
