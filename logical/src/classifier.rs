//! A priority classifier over [`Flow`]s: tuple space search, as OVS's classifier.
//!
//! Rules with the same mask share a subtable: a hash map from the masked flow words to
//! the best rule. A lookup probes subtables in order of their highest priority and
//! stops as soon as no remaining subtable can beat the best match found, so its cost
//! is a handful of hash probes however many rules a logical table holds. The masks of
//! the subtables probed are what the decision depended on (OVS's megaflow wildcards),
//! which is what a cache of decisions must key on.

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

#[derive(Debug, Clone)]
struct Subtable {
    /// The words this subtable's mask covers, with their masks.
    words: Vec<(u8, u64)>,
    full_mask: [u64; WORDS],
    max_priority: u32,
    rules: FxHashMap<Box<[u64]>, Rule>,
}

/// Rules of one logical table.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    subtables: Vec<Subtable>,
    by_mask: FxHashMap<[u64; WORDS], usize>,
    n_rules: u32,
}

/// The most words any mask has, for stack buffers in lookups.
const MAX_KEY: usize = WORDS;

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
                rules: FxHashMap::default(),
            });
            self.subtables.len() - 1
        });
        let st = &mut self.subtables[idx];
        let key: Box<[u64]> = st
            .words
            .iter()
            .map(|&(i, _)| conj.value[i as usize])
            .collect();
        st.max_priority = st.max_priority.max(priority);
        match st.rules.get_mut(&key) {
            Some(r) if r.beats(&rule) => {}
            Some(r) => *r = rule,
            None => {
                st.rules.insert(key, rule);
            }
        }
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
    pub fn lookup(&self, flow: &Flow, mut wc: Option<&mut [u64; WORDS]>) -> Option<RuleId> {
        let mut best: Option<Rule> = None;
        let mut key = [0u64; MAX_KEY];
        for st in &self.subtables {
            if let Some(b) = &best
                && st.max_priority < b.priority
            {
                break;
            }
            if let Some(wc) = wc.as_deref_mut() {
                for &(i, m) in &st.words {
                    wc[i as usize] |= m;
                }
            }
            for (k, &(i, m)) in st.words.iter().enumerate() {
                key[k] = flow.w[i as usize] & m;
            }
            if let Some(r) = st.rules.get(&key[..st.words.len()])
                && best.as_ref().is_none_or(|b| r.beats(b))
            {
                best = Some(*r);
            }
        }
        best.map(|r| r.id)
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
