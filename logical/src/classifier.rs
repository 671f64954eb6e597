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
    fn beats(&self, other: &Rule) -> bool {
        (self.priority, std::cmp::Reverse(self.order))
            > (other.priority, std::cmp::Reverse(other.order))
    }
}

/// Rules sharing one mask. Keys live in one flat array (`n` words each); a subtable of a
/// few entries is scanned, a larger one indexed by a hash table of entry numbers, so a
/// probe is a hash and a handful of inline word compares, no allocation.
#[derive(Debug, Clone)]
struct Subtable {
    /// The words this subtable's mask covers, with their masks.
    words: Box<[(u8, u64)]>,
    full_mask: [u64; WORDS],
    max_priority: u32,
    keys: Vec<u64>,
    best: Vec<Rule>,
    index: HashTable<u32>,
}

/// Entries a subtable scans before it builds a hash index.
const SCAN_LIMIT: usize = 8;

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

    fn key(&self, i: usize) -> &[u64] {
        let n = self.n();
        &self.keys[i * n..(i + 1) * n]
    }

    fn find(&self, key: &[u64]) -> Option<usize> {
        if self.best.len() <= SCAN_LIMIT {
            (0..self.best.len()).find(|&i| same(self.key(i), key))
        } else {
            let n = self.n();
            let keys = &self.keys;
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
            if self.index.is_empty() {
                for j in 0..=i {
                    let h = hash(&self.keys[j * n..(j + 1) * n]);
                    let keys = &self.keys;
                    self.index.insert_unique(h, j as u32, |&k| {
                        hash(&keys[k as usize * n..(k as usize + 1) * n])
                    });
                }
            } else {
                let keys = &self.keys;
                self.index.insert_unique(hash(key), i as u32, |&k| {
                    hash(&keys[k as usize * n..(k as usize + 1) * n])
                });
            }
        }
    }
}

/// Rules of one logical table.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    subtables: Vec<Subtable>,
    by_mask: FxHashMap<[u64; WORDS], usize>,
    n_rules: u32,
}

impl Classifier {
    /// Adds a rule matching `conj` at `priority`.
    pub fn insert(&mut self, conj: &Conj, priority: u32, id: RuleId) {
        let rule = Rule {
            priority,
            order: self.n_rules,
            id,
        };
        self.n_rules += 1;
        let idx = *self.by_mask.entry(conj.mask).or_insert_with(|| {
            let words = (0..WORDS)
                .filter(|&i| conj.mask[i] != 0)
                .map(|i| (i as u8, conj.mask[i]))
                .collect();
            self.subtables.push(Subtable {
                words,
                full_mask: conj.mask,
                max_priority: 0,
                keys: Vec::new(),
                best: Vec::new(),
                index: HashTable::new(),
            });
            self.subtables.len() - 1
        });
        let st = &mut self.subtables[idx];
        let mut key = [0u64; WORDS];
        for (k, &(i, _)) in st.words.iter().enumerate() {
            key[k] = conj.value[i as usize];
        }
        st.max_priority = st.max_priority.max(priority);
        let n = st.words.len();
        st.insert(&key[..n], rule);
    }

    /// Orders subtables for lookup; call once after the last insert.
    pub fn finish(&mut self) {
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
        self.by_mask = self
            .subtables
            .iter()
            .enumerate()
            .map(|(i, s)| (s.full_mask, i))
            .collect();
    }

    /// The highest-priority rule matching `flow`. When `wc` is given, the masks of the
    /// subtables consulted are OR-ed into it.
    #[inline]
    pub fn lookup(&self, flow: &Flow, mut wc: Option<&mut [u64; WORDS]>) -> Option<RuleId> {
        let mut best: Option<Rule> = None;
        let mut key = [0u64; WORDS];
        for st in &self.subtables {
            if let Some(b) = &best
                && st.max_priority < b.priority
            {
                break;
            }
            if let Some(wc) = wc.as_deref_mut() {
                for &(i, m) in st.words.iter() {
                    wc[i as usize] |= m;
                }
            }
            let n = st.words.len();
            for (k, &(i, m)) in st.words.iter().enumerate() {
                key[k] = flow.w[i as usize] & m;
            }
            if let Some(e) = st.find(&key[..n]) {
                let r = st.best[e];
                if best.as_ref().is_none_or(|b| r.beats(b)) {
                    best = Some(r);
                }
            }
        }
        best.map(|r| r.id)
    }

    /// The rule, when the table holds exactly one and it matches every flow.
    pub fn only_catchall(&self) -> Option<RuleId> {
        match self.subtables.as_slice() {
            [st] if st.words.is_empty() && st.best.len() == 1 && self.n_rules == 1 => {
                Some(st.best[0].id)
            }
            _ => None,
        }
    }

    pub fn len(&self) -> u32 {
        self.n_rules
    }

    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
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
    fn first_inserted_wins_a_tie() {
        let mut cls = Classifier::default();
        cls.insert(&Conj::ANY, 10, 7);
        cls.insert(&Conj::ANY, 10, 8);
        cls.finish();
        assert_eq!(cls.lookup(&Flow::default(), None), Some(7));
    }
}
