//! A priority classifier over [`Flow`]s: tuple space search, as OVS's classifier.
//!
//! Rules with the same mask share a subtable: a hash map from the masked flow words to
//! the best rule. A lookup probes subtables in order of their highest priority and
//! stops as soon as no remaining subtable can beat the best match found, so its cost
//! is a handful of hash probes however many rules a logical table holds. The masks of
//! the subtables probed are what the decision depended on (OVS's megaflow wildcards),
//! which is what a cache of decisions must key on.

use std::sync::Arc;

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

    /// Takes entry `e` out: the last entry takes its place.
    fn swap_remove(&mut self, e: usize) {
        let n = self.n();
        let last = self.best.len() - 1;
        if !self.index.is_empty() {
            let h = hash(&self.keys[e * n..(e + 1) * n]);
            if let Ok(slot) = self.index.find_entry(h, |&i| i as usize == e) {
                slot.remove();
            }
            if last != e {
                let h = hash(&self.keys[last * n..(last + 1) * n]);
                if let Some(i) = self.index.find_mut(h, |&i| i as usize == last) {
                    *i = e as u32;
                }
            }
        }
        if last != e {
            self.keys.copy_within(last * n..(last + 1) * n, e * n);
            self.best[e] = self.best[last];
        }
        self.keys.truncate(last * n);
        self.best.truncate(last);
        self.max_priority = self.best.iter().map(|r| r.priority).max().unwrap_or(0);
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
        // Indexed past a few entries (and, once indexed, for good: removals may bring
        // it back under).
        if i + 1 > SCAN_LIMIT || !self.index.is_empty() {
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
/// lookups use: the subtables in lookup order, each one block of words (word numbers,
/// masks and, for a few entries, the keys) and, past `SCAN_LIMIT` entries, shards of
/// keys under hash indexes. Subtables and shards are shared between copies of a
/// classifier, so an edit of a copy (an update of one logical table) copies only the
/// subtable and the shard it changes, not the table. An insert that does not fit the
/// laid-out form reopens it (call `finish` again).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// After `finish`: the subtables in descending order of their highest priority
    /// (bit `i` of a selection is subtable `i`).
    subs: Vec<Arc<Sub>>,
    n_rules: u32,
    /// Fields whose value rules out subtables before they are probed (OVN's tables
    /// pin `eth.type`, `ip.proto`, `inport`, `outport`... in most of their flows, so a
    /// frame's value of one of them excludes the subtables of the other values).
    selectors: Arc<Vec<Selector>>,
    /// While filling: the subtables, by mask.
    building: Vec<Subtable>,
    by_mask: FxHashMap<[u64; WORDS], usize>,
}

/// A laid-out subtable.
#[derive(Debug, Clone)]
struct Sub {
    max_priority: u32,
    /// Words of the flow its mask covers.
    n: u32,
    /// Entries (keys).
    k: u32,
    /// Shards minus one (a power of two minus one); unused when scanned.
    shard_mask: u32,
    /// The word numbers, then their masks, then, when the subtable is scanned, the
    /// keys entry after entry.
    code: Vec<u64>,
    /// Scanned: the best rule of each entry.
    rules: Vec<Rule>,
    /// Hashed (more than [`SCAN_LIMIT`] entries): the entries, in shards by bits 32..
    /// of their key's hash, the shards in groups of [`GROUP`] (an edit copies the
    /// list of groups, one group and one shard).
    shards: Vec<Arc<[Arc<Shard>]>>,
}

/// Some of a hashed subtable's entries: their keys, best rules and hash index.
#[derive(Debug, Default)]
struct Shard {
    keys: Vec<u64>,
    rules: Vec<Rule>,
    index: HashTable<u32>,
}

/// Entries per shard when a subtable is laid out (an edit copies one shard).
const SHARD_ENTRIES: usize = if cfg!(test) { 4 } else { 32 };

/// Shards per group of a subtable's shards (a power of two).
const GROUP: usize = if cfg!(test) { 2 } else { 16 };

/// Entries a copied shard has room for without growing (a copy is made to be edited).
const SHARD_ROOM: usize = 4;

impl Clone for Shard {
    fn clone(&self) -> Shard {
        let k = self.rules.len();
        let n = self.keys.len().checked_div(k).unwrap_or(0);
        let mut keys = Vec::with_capacity(self.keys.len() + SHARD_ROOM * n);
        keys.extend_from_slice(&self.keys);
        let mut rules = Vec::with_capacity(k + SHARD_ROOM);
        rules.extend_from_slice(&self.rules);
        let rehash = |&e: &u32| hash(&keys[e as usize * n..][..n]);
        // Copied as it is when it has the room (a shard is laid out with it), else
        // hashed anew into a bigger table (rather than copied, then grown).
        let index = if self.index.capacity() >= k + SHARD_ROOM {
            self.index.clone()
        } else {
            let mut t = HashTable::with_capacity(k + SHARD_ROOM);
            for &e in self.index.iter() {
                t.insert_unique(rehash(&e), e, rehash);
            }
            t
        };
        Shard { keys, rules, index }
    }
}

impl Shard {
    fn find(&self, n: usize, h: u64, key: &[u64]) -> Option<usize> {
        let keys = &self.keys;
        self.index
            .find(h, |&e| same(&keys[e as usize * n..][..n], key))
            .map(|&e| e as usize)
    }

    fn push(&mut self, n: usize, h: u64, key: &[u64], rule: Rule) {
        let e = self.rules.len() as u32;
        self.keys.extend_from_slice(key);
        self.rules.push(rule);
        let keys = &self.keys;
        self.index
            .insert_unique(h, e, |&x| hash(&keys[x as usize * n..][..n]));
    }

    /// Takes entry `e` (whose key hashes to `h`) out: the last entry takes its place.
    fn swap_remove(&mut self, n: usize, h: u64, e: usize) {
        let last = self.rules.len() - 1;
        if let Ok(slot) = self.index.find_entry(h, |&i| i as usize == e) {
            slot.remove();
        }
        if last != e {
            let lh = hash(&self.keys[last * n..][..n]);
            if let Some(i) = self.index.find_mut(lh, |&i| i as usize == last) {
                *i = e as u32;
            }
            self.keys.copy_within(last * n..(last + 1) * n, e * n);
            self.rules[e] = self.rules[last];
        }
        self.keys.truncate(last * n);
        self.rules.truncate(last);
    }
}

impl Sub {
    /// Lays out `keys` (`n` words each) and their `rules`.
    fn new(max_priority: u32, words: &[(u8, u64)], keys: &[u64], rules: &[Rule]) -> Sub {
        let n = words.len();
        let k = rules.len();
        let mut code: Vec<u64> = words.iter().map(|&(i, _)| u64::from(i)).collect();
        code.extend(words.iter().map(|&(_, m)| m));
        let mut sub = Sub {
            max_priority,
            n: n as u32,
            k: k as u32,
            shard_mask: 0,
            code,
            rules: Vec::new(),
            shards: Vec::new(),
        };
        if k <= SCAN_LIMIT {
            sub.code.extend_from_slice(keys);
            sub.rules = rules.to_vec();
        } else {
            sub.shard(keys, rules);
        }
        sub
    }

    /// Spreads the entries over shards (the subtable becomes hashed).
    fn shard(&mut self, keys: &[u64], rules: &[Rule]) {
        let n = self.n as usize;
        let count = rules.len().div_ceil(SHARD_ENTRIES).next_power_of_two();
        self.shard_mask = (count - 1) as u32;
        // Each shard sized once: its entries counted first.
        let hashes: Vec<u64> = (0..rules.len())
            .map(|e| hash(&keys[e * n..][..n]))
            .collect();
        let mut sizes = vec![0usize; count];
        for &h in &hashes {
            sizes[self.shard_of(h)] += 1;
        }
        let mut shards: Vec<Shard> = sizes
            .iter()
            .map(|&m| Shard {
                keys: Vec::with_capacity(m * n),
                rules: Vec::with_capacity(m),
                index: HashTable::with_capacity(m + SHARD_ROOM),
            })
            .collect();
        for (e, (rule, &h)) in rules.iter().zip(&hashes).enumerate() {
            shards[self.shard_of(h)].push(n, h, &keys[e * n..][..n], *rule);
        }
        let shards: Vec<Arc<Shard>> = shards.into_iter().map(Arc::new).collect();
        self.shards = shards.chunks(GROUP).map(Arc::from).collect();
    }

    #[inline(always)]
    fn shard_of(&self, h: u64) -> usize {
        ((h >> 32) as u32 & self.shard_mask) as usize
    }

    /// The shard of the entries whose key hashes to `h`.
    #[inline(always)]
    fn shard_at(&self, h: u64) -> &Shard {
        let i = self.shard_of(h);
        &self.shards[i / GROUP][i % GROUP]
    }

    /// The same, to edit: copied (and its group) when shared.
    fn shard_at_mut(&mut self, h: u64) -> &mut Shard {
        let i = self.shard_of(h);
        Arc::make_mut(&mut Arc::make_mut(&mut self.shards[i / GROUP])[i % GROUP])
    }

    fn words(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        let n = self.n as usize;
        (0..n).map(move |j| (self.code[j] as u8, self.code[n + j]))
    }

    fn has_mask(&self, mask: &[u64; WORDS]) -> bool {
        let n = self.n as usize;
        n == mask.iter().filter(|&&m| m != 0).count()
            && self
                .words()
                .all(|(w, m)| usize::from(w) < WORDS && mask[usize::from(w)] == m)
    }

    /// `conj`'s key here (its first `n` words).
    fn key_of(&self, conj: &Conj) -> [u64; WORDS] {
        let mut key = [0u64; WORDS];
        for (kw, (w, _)) in key.iter_mut().zip(self.words()) {
            *kw = conj.value[usize::from(w)];
        }
        key
    }

    /// The best rule of the entry with `key`, if one has it.
    fn rule_of(&self, key: &[u64]) -> Option<Rule> {
        let n = self.n as usize;
        if self.shards.is_empty() {
            let keys = &self.code[2 * n..];
            (0..self.k as usize)
                .find(|&e| keys[e * n..(e + 1) * n] == *key)
                .map(|e| self.rules[e])
        } else {
            let h = hash(key);
            let s = self.shard_at(h);
            s.find(n, h, key).map(|e| s.rules[e])
        }
    }

    /// Keeps `rule` for `key`: an entry's best rule when it beats it, else a new entry.
    /// Returns true when it made a new entry.
    fn put(&mut self, key: &[u64], rule: Rule) -> bool {
        let n = self.n as usize;
        self.max_priority = self.max_priority.max(rule.priority);
        if self.shards.is_empty() {
            let k = self.k as usize;
            let keys = &self.code[2 * n..];
            if let Some(e) = (0..k).find(|&e| keys[e * n..(e + 1) * n] == *key) {
                if rule.beats(&self.rules[e]) {
                    self.rules[e] = rule;
                }
                return false;
            }
            self.k += 1;
            if k < SCAN_LIMIT {
                self.code.extend_from_slice(key);
                self.rules.push(rule);
            } else {
                let mut keys = self.code.split_off(2 * n);
                keys.extend_from_slice(key);
                let mut rules = std::mem::take(&mut self.rules);
                rules.push(rule);
                self.shard(&keys, &rules);
            }
            return true;
        }
        let h = hash(key);
        if let Some(e) = self.shard_at(h).find(n, h, key) {
            let s = self.shard_at(h);
            if rule.beats(&s.rules[e]) {
                self.shard_at_mut(h).rules[e] = rule;
            }
            return false;
        }
        self.shard_at_mut(h).push(n, h, key, rule);
        self.k += 1;
        true
    }

    /// Takes out the entry with `key` when its best rule is `id`: true when it did.
    fn take(&mut self, key: &[u64], id: RuleId) -> bool {
        let n = self.n as usize;
        if self.shards.is_empty() {
            let k = self.k as usize;
            let keys = &self.code[2 * n..];
            let Some(e) = (0..k).find(|&e| keys[e * n..(e + 1) * n] == *key) else {
                return false;
            };
            if self.rules[e].id != id {
                return false;
            }
            let (keys, last) = (2 * n, k - 1);
            self.code
                .copy_within(keys + last * n..keys + k * n, keys + e * n);
            self.code.truncate(keys + last * n);
            self.rules.swap_remove(e);
        } else {
            let h = hash(key);
            let s = self.shard_at(h);
            match s.find(n, h, key) {
                Some(e) if s.rules[e].id == id => self.shard_at_mut(h).swap_remove(n, h, e),
                _ => return false,
            }
        }
        self.k -= 1;
        true
    }

    /// Every entry: the keys, then the rules, in one order.
    fn entries(&self) -> (Vec<u64>, Vec<Rule>) {
        let n = self.n as usize;
        if self.shards.is_empty() {
            (self.code[2 * n..].to_vec(), self.rules.clone())
        } else {
            let mut keys = Vec::with_capacity(self.k as usize * n);
            let mut rules = Vec::with_capacity(self.k as usize);
            for s in self.shards.iter().flat_map(|g| g.iter()) {
                keys.extend_from_slice(&s.keys);
                rules.extend_from_slice(&s.rules);
            }
            (keys, rules)
        }
    }
}

/// A field (bits `mask` of word `word`) and, per value some entry pins it to, the
/// subtables that can match a flow with that value. A subtable whose mask covers the
/// whole field matches only flows with one of its entries' values there; the others
/// (`free`) do not depend on it.
#[derive(Debug, Clone, Default)]
struct Selector {
    word: u8,
    mask: u64,
    free: u64,
    /// (value, subtables pinning the field to it), scanned when there are few values.
    few: Vec<(u64, u64)>,
    /// The same, hashed, when there are many.
    many: FxHashMap<u64, u64>,
}

/// Values a selector scans before it hashes them.
const SELECTOR_SCAN: usize = 8;

/// Subtables a selection can name (one bit each).
const MAX_SELECTED: usize = 64;

/// Selectors per classifier at most: each costs a lookup some work.
const MAX_SELECTORS: usize = 3;

impl Selector {
    /// The subtables that can match `flow`.
    #[inline(always)]
    fn select(&self, flow: &Flow) -> u64 {
        self.select_value(flow.w[usize::from(self.word)] & self.mask)
    }

    /// The subtables that can match a flow whose field is `v`.
    #[inline(always)]
    fn select_value(&self, v: u64) -> u64 {
        let pinned = if self.many.is_empty() {
            self.few
                .iter()
                .find(|&&(x, _)| x == v)
                .map_or(0, |&(_, b)| b)
        } else {
            self.many.get(&v).copied().unwrap_or(0)
        };
        self.free | pinned
    }

    /// The selector on `(word, mask)` over `subtables` (in lookup order).
    fn new(word: u8, mask: u64, subtables: &[Subtable]) -> Selector {
        let mut sel = Selector {
            word,
            mask,
            ..Default::default()
        };
        for (i, st) in subtables.iter().enumerate() {
            let bit = 1u64 << i;
            match st
                .words
                .iter()
                .position(|&(w, m)| w == word && m & mask == mask)
            {
                Some(j) => {
                    let n = st.n();
                    for e in 0..st.best.len() {
                        *sel.many.entry(st.keys[e * n + j] & mask).or_default() |= bit;
                    }
                }
                None => sel.free |= bit,
            }
        }
        if sel.many.len() <= SELECTOR_SCAN {
            sel.few = sel.many.drain().collect();
            sel.few.sort_unstable();
        }
        sel
    }

    /// Subtables `bits` can match a flow whose field is `v`.
    fn add(&mut self, v: u64, bits: u64) {
        if !self.many.is_empty() {
            *self.many.entry(v).or_default() |= bits;
        } else if let Some(x) = self.few.iter_mut().find(|x| x.0 == v) {
            x.1 |= bits;
        } else {
            self.few.push((v, bits));
            if self.few.len() > SELECTOR_SCAN {
                self.many = self.few.drain(..).collect();
            }
        }
    }

    /// Every selection this selector can make.
    fn outcomes(&self) -> Vec<u64> {
        let pinned = self
            .few
            .iter()
            .map(|&(_, b)| b)
            .chain(self.many.values().copied());
        let mut out: Vec<u64> = pinned.chain([0]).map(|b| self.free | b).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn n_outcomes(&self) -> usize {
        self.few.len().max(self.many.len()) + 1
    }
}

/// Picks, greedily, the selectors that most cut the subtables a lookup probes (on
/// average over the values each selector knows, plus one it does not), as long as each
/// saves about a probe. `subtables` are in lookup order, at most [`MAX_SELECTED`].
fn choose_selectors(subtables: &[Subtable]) -> Vec<Selector> {
    use crate::flow::Field;
    let n = subtables.len();
    // Candidates: the masks the subtables have, word by word, and the fields almost
    // every OVN flow pins (a subtable's mask may cover one of them and more).
    let mut cands: Vec<(u8, u64)> = subtables
        .iter()
        .flat_map(|st| st.words.iter().copied())
        .collect();
    for f in [
        Field::EthType,
        Field::IpProto,
        Field::Reg(14),
        Field::Reg(15),
    ] {
        let (mut v, mut m) = ([0u64; WORDS], [0u64; WORDS]);
        crate::flow::to_words(f, 0, u128::MAX, &mut v, &mut m);
        if let Some(w) = m.iter().position(|&x| x != 0) {
            cands.push((w as u8, m[w]));
        }
    }
    cands.sort_unstable();
    cands.dedup();
    let mut cands: Vec<Selector> = cands
        .into_iter()
        .map(|(w, m)| Selector::new(w, m, subtables))
        .filter(|s| s.free.count_ones() as usize != n)
        .collect();
    let all = if n == MAX_SELECTED {
        u64::MAX
    } else {
        (1u64 << n) - 1
    };
    // The selections the chosen selectors can make together (each counted once).
    let mut outcomes = vec![all];
    let mut cost = n as f64;
    let mut chosen = Vec::new();
    while chosen.len() < MAX_SELECTORS && !cands.is_empty() {
        let mut best: Option<(usize, f64)> = None;
        for (c, sel) in cands.iter().enumerate() {
            if outcomes.len() * sel.n_outcomes() > 20_000 {
                continue;
            }
            let (mut total, mut count) = (0u64, 0u64);
            let sel_outcomes = sel.outcomes();
            for &o in &outcomes {
                for &b in &sel_outcomes {
                    total += u64::from((o & b).count_ones());
                    count += 1;
                }
            }
            let c_cost = total as f64 / count as f64;
            if best.is_none_or(|(_, b)| c_cost < b) {
                best = Some((c, c_cost));
            }
        }
        match best {
            Some((c, c_cost)) if c_cost <= cost - 0.5 => {
                let sel = cands.swap_remove(c);
                let sel_outcomes = sel.outcomes();
                let mut next: Vec<u64> = outcomes
                    .iter()
                    .flat_map(|&o| sel_outcomes.iter().map(move |&b| o & b))
                    .collect();
                next.sort_unstable();
                next.dedup();
                outcomes = next;
                cost = c_cost;
                chosen.push(sel);
            }
            _ => break,
        }
    }
    chosen
}

impl Classifier {
    /// Adds a rule matching `conj` at `priority`; among rules of equal priority that
    /// match a flow, the first inserted wins.
    pub fn insert(&mut self, conj: &Conj, priority: u32, id: RuleId) {
        self.insert_ordered(conj, priority, self.n_rules, id);
    }

    /// Adds a rule matching `conj` at `priority`; among rules of equal priority that
    /// match a flow, the lowest `order` wins (rules of equal priority and order: the
    /// first inserted).
    pub fn insert_ordered(&mut self, conj: &Conj, priority: u32, order: u32, id: RuleId) {
        self.n_rules += 1;
        let rule = Rule {
            priority,
            order,
            id,
        };
        if !self.place_laid_out(&conj.mask, &[(*conj, rule)]) {
            self.place(conj, rule);
        }
    }

    /// Puts back a rule that is in the classifier but was shadowed by one with the
    /// same match that [`remove`](Self::remove) took out (it is not counted again).
    pub fn reinstate(&mut self, conj: &Conj, priority: u32, order: u32, id: RuleId) {
        let rule = Rule {
            priority,
            order,
            id,
        };
        if !self.place_laid_out(&conj.mask, &[(*conj, rule)]) {
            self.place(conj, rule);
        }
    }

    /// Removes rule `id` matching `conj`. Returns true when it was the one rule kept
    /// for its match (other rules with the same match, which it shadowed, must then be
    /// [`reinstate`](Self::reinstate)d); false when it was shadowed.
    pub fn remove(&mut self, conj: &Conj, id: RuleId) -> bool {
        self.n_rules = self.n_rules.saturating_sub(1);
        if let Some(removed) = self.remove_laid_out(conj, id) {
            return removed;
        }
        if !self.subs.is_empty() {
            self.reopen();
        }
        let Some(&idx) = self.by_mask.get(&conj.mask) else {
            return false;
        };
        let st = &mut self.building[idx];
        let mut key = [0u64; WORDS];
        for (k, &(i, _)) in st.words.iter().enumerate() {
            key[k] = conj.value[i as usize];
        }
        let n = st.words.len();
        match st.find(&key[..n]) {
            Some(e) if st.best[e].id == id => {
                st.swap_remove(e);
                true
            }
            _ => false,
        }
    }

    /// The laid-out subtable with `mask`: its number in lookup order.
    fn laid_out(&self, mask: &[u64; WORDS]) -> Option<usize> {
        self.subs.iter().position(|s| s.has_mask(mask))
    }

    /// Inserts `rules`, all with mask `mask`, into the laid-out form, copying only the
    /// subtable (and shard) they go to; false (nothing inserted) when there is no
    /// subtable with that mask or they would move it in the order of highest
    /// priorities (the classifier must be reopened).
    fn place_laid_out(&mut self, mask: &[u64; WORDS], rules: &[(Conj, Rule)]) -> bool {
        let Some(si) = self.laid_out(mask) else {
            return false;
        };
        let prev = si
            .checked_sub(1)
            .map_or(u32::MAX, |p| self.subs[p].max_priority);
        if rules.iter().any(|(_, r)| r.priority > prev) {
            return false;
        }
        let sub = Arc::make_mut(&mut self.subs[si]);
        let n = sub.n as usize;
        let mut learnt: Vec<(usize, u64)> = Vec::new();
        for (conj, rule) in rules {
            let key = sub.key_of(conj);
            if sub.put(&key[..n], *rule) {
                // Selectors learn the new entries' values of the fields this subtable
                // pins.
                for (s, sel) in self.selectors.iter().enumerate() {
                    if let Some(j) = sub
                        .words()
                        .position(|(w, m)| w == sel.word && m & sel.mask == sel.mask)
                    {
                        let v = key[j] & sel.mask;
                        if sel.select_value(v) & 1u64 << si == 0 {
                            learnt.push((s, v));
                        }
                    }
                }
            }
        }
        if !learnt.is_empty() {
            let sels = Arc::make_mut(&mut self.selectors);
            for (s, v) in learnt {
                sels[s].add(v, 1u64 << si);
            }
        }
        true
    }

    /// Adds rules as [`insert_ordered`](Self::insert_ordered) does, each as
    /// (match, priority, order, id).
    pub fn insert_all(&mut self, rules: &[(Conj, u32, u32, RuleId)]) {
        // Rules by mask, masks in the order first met.
        type Group = ([u64; WORDS], Vec<(Conj, Rule)>);
        let mut groups: Vec<Group> = Vec::new();
        for &(conj, priority, order, id) in rules {
            let rule = Rule {
                priority,
                order,
                id,
            };
            match groups.iter_mut().find(|(m, _)| *m == conj.mask) {
                Some((_, g)) => g.push((conj, rule)),
                None => groups.push((conj.mask, vec![(conj, rule)])),
            }
        }
        for (mask, group) in groups {
            self.n_rules += group.len() as u32;
            if !self.place_laid_out(&mask, &group) {
                for (conj, rule) in group {
                    self.place(&conj, rule);
                }
            }
        }
    }

    /// Removes rule `id` from the laid-out form: `Some(true)` when it was the rule kept
    /// for its match, `Some(false)` when it was not there (shadowed); none when the
    /// classifier must be reopened (not laid out, or the subtable would be empty).
    fn remove_laid_out(&mut self, conj: &Conj, id: RuleId) -> Option<bool> {
        if self.subs.is_empty() {
            return None;
        }
        let Some(si) = self.laid_out(&conj.mask) else {
            return Some(false);
        };
        let sub = &self.subs[si];
        let n = sub.n as usize;
        let key = sub.key_of(conj);
        if sub.rule_of(&key[..n]).is_none_or(|r| r.id != id) {
            return Some(false);
        }
        if sub.k == 1 {
            return None;
        }
        // The subtable's highest priority stays (an upper bound is all a lookup needs),
        // and so do the selectors' values (a superset of the subtables to probe).
        Some(Arc::make_mut(&mut self.subs[si]).take(&key[..n], id))
    }

    fn place(&mut self, conj: &Conj, rule: Rule) {
        if !self.subs.is_empty() {
            self.reopen();
        }
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
        st.max_priority = st.max_priority.max(rule.priority);
        let n = st.words.len();
        st.insert(&key[..n], rule);
    }

    /// Lays the subtables out for lookup; call after the last insert.
    pub fn finish(&mut self) {
        if self.building.is_empty() {
            return;
        }
        let mut building = std::mem::take(&mut self.building);
        // Subtables whose rules were all removed.
        building.retain(|s| !s.best.is_empty());
        building.sort_by_key(|s| std::cmp::Reverse(s.max_priority));
        // Dropped, not cleared: a copy of the classifier would copy its buckets.
        self.by_mask = FxHashMap::default();
        self.selectors = Arc::new(if (2..=MAX_SELECTED).contains(&building.len()) {
            choose_selectors(&building)
        } else {
            Vec::new()
        });
        // `by_mask` is rebuilt only if an insert reopens the classifier.
        self.subs = building
            .iter()
            .map(|st| Arc::new(Sub::new(st.max_priority, &st.words, &st.keys, &st.best)))
            .collect();
    }

    /// Back from the lookup form to the filling form (an insert after `finish`).
    fn reopen(&mut self) {
        self.selectors = Arc::default();
        for sub in std::mem::take(&mut self.subs) {
            let (keys, best) = sub.entries();
            let mut st = Subtable {
                words: sub.words().collect(),
                max_priority: sub.max_priority,
                keys: Vec::with_capacity(keys.len()),
                best: Vec::with_capacity(best.len()),
                index: HashTable::new(),
            };
            let n = st.words.len();
            for (e, rule) in best.into_iter().enumerate() {
                st.insert(&keys[e * n..][..n], rule);
            }
            self.building.push(st);
        }
        self.by_mask.clear();
        for (i, st) in self.building.iter().enumerate() {
            let mut mask = [0u64; WORDS];
            for &(w, m) in &st.words {
                mask[w as usize] = m;
            }
            self.by_mask.insert(mask, i);
        }
    }

    /// The highest-priority rule matching `flow`. When `wc` is given, the masks of the
    /// subtables consulted, and of the selectors that chose them, are OR-ed into it.
    #[inline]
    pub fn lookup(&self, flow: &Flow, wc: Option<&mut [u64; WORDS]>) -> Option<RuleId> {
        // Two copies of the loop: without wildcards (the datapath's traversals) no
        // probe tests for them.
        match wc {
            Some(wc) => self.lookup_in::<true>(flow, Some(wc)),
            None => self.lookup_in::<false>(flow, None),
        }
    }

    #[inline(always)]
    fn lookup_in<const WC: bool>(
        &self,
        flow: &Flow,
        mut wc: Option<&mut [u64; WORDS]>,
    ) -> Option<RuleId> {
        let mut best: Option<Rule> = None;
        let selectors = self.selectors.as_slice();
        if selectors.is_empty() {
            for sub in &self.subs {
                if !Self::probe::<WC>(sub, flow, wc.as_deref_mut(), &mut best) {
                    break;
                }
            }
        } else {
            let mut set = u64::MAX;
            for sel in selectors {
                set &= sel.select(flow);
                if WC && let Some(wc) = wc.as_deref_mut() {
                    wc[usize::from(sel.word)] |= sel.mask;
                }
            }
            // Bits beyond the last subtable are never set by a selector's outcome.
            while set != 0 {
                let i = set.trailing_zeros() as usize;
                set &= set - 1;
                // SAFETY: a selector names only subtables `finish` chose it over, and
                // edits keep the number and order of the subtables (an edit that would
                // change them reopens the classifier, which drops the selectors).
                let sub = unsafe { self.subs.get_unchecked(i) };
                if !Self::probe::<WC>(sub, flow, wc.as_deref_mut(), &mut best) {
                    break;
                }
            }
        }
        best.map(|r| r.id)
    }

    /// Probes `sub`, keeping in `best` the better of it and its match. Returns false
    /// when neither it nor any subtable after it can beat `best`.
    #[inline(always)]
    fn probe<const WC: bool>(
        sub: &Sub,
        flow: &Flow,
        wc: Option<&mut [u64; WORDS]>,
        best: &mut Option<Rule>,
    ) -> bool {
        if let Some(b) = best
            && sub.max_priority < b.priority
        {
            return false;
        }
        let n = sub.n as usize;
        let k = sub.k as usize;
        let code = sub.code.as_slice();
        // SAFETY: `Sub::new` and its edits keep `code` as `Sub` says: `n` word numbers,
        // `n` masks and, when `shards` is empty, `k` keys of `n` words (`rules` holding
        // `k` rules); the word numbers come from masks of `WORDS` words (`< WORDS`) and
        // `n <= WORDS`. `shard` makes `shard_mask + 1` shards (`shard_of` is below
        // that) in groups of `GROUP`, and edits keep them. A shard's `index` holds only entry numbers below its `rules`'
        // length, with keys of `n` words each. So every read below stays inside
        // `code`, `flow.w`, `key` and the shard's vectors.
        unsafe {
            let idx = code.as_ptr();
            let masks = idx.add(n);
            if WC && let Some(wc) = wc {
                for j in 0..n {
                    *wc.get_unchecked_mut(*idx.add(j) as usize) |= *masks.add(j);
                }
            }
            let word = |j: usize| *flow.w.get_unchecked(*idx.add(j) as usize) & *masks.add(j);
            let found = if sub.shards.is_empty() {
                // A few entries compared with the masked flow; a miss usually fails on
                // the first word, so only that one is masked ahead.
                let keys = masks.add(n);
                let e = if n == 0 {
                    (k > 0).then_some(0)
                } else {
                    let first = word(0);
                    let mut found = None;
                    'entries: for e in 0..k {
                        let ek = keys.add(e * n);
                        if *ek != first {
                            continue;
                        }
                        for j in 1..n {
                            if *ek.add(j) != word(j) {
                                continue 'entries;
                            }
                        }
                        found = Some(e);
                        break;
                    }
                    found
                };
                e.map(|e| *sub.rules.get_unchecked(e))
            } else {
                let mut key = [0u64; WORDS];
                for j in 0..n {
                    *key.get_unchecked_mut(j) = word(j);
                }
                let key = &key[..n];
                let h = hash(key);
                let i = sub.shard_of(h);
                let s = sub.shards.get_unchecked(i / GROUP).get_unchecked(i % GROUP);
                let keys = s.keys.as_slice();
                s.index
                    .find(h, |&e| {
                        same(keys.get_unchecked(e as usize * n..e as usize * n + n), key)
                    })
                    .map(|&e| *s.rules.get_unchecked(e as usize))
            };
            if let Some(r) = found
                && best.as_ref().is_none_or(|b| r.beats(b))
            {
                *best = Some(r);
            }
            true
        }
    }

    /// The rule, when the table holds exactly one and it matches every flow.
    pub fn only_catchall(&self) -> Option<RuleId> {
        match self.subs.as_slice() {
            [s] if self.n_rules == 1 && s.n == 0 => Some(s.rules[0].id),
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
        self.subs.len().max(self.building.len())
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

    /// A rule's match over `fields`: none or a value per field, `value(v, mask)` giving
    /// the bits it pins.
    fn conj_over(
        fields: &[(Field, u128)],
        vals: &[Option<u128>],
        value: impl Fn(u128, u128) -> u128,
    ) -> Conj {
        let mut c = Conj::ANY;
        for (&(f, m), v) in fields.iter().zip(vals) {
            if let Some(v) = v {
                crate::flow::to_words(f, value(*v, m), m, &mut c.value, &mut c.mask);
            }
        }
        c
    }

    fn matches(c: &Conj, f: &Flow) -> bool {
        (0..WORDS).all(|w| f.w[w] & c.mask[w] == c.value[w])
    }

    /// The lookup of `f` with every bit outside the reported wildcards `wc` flipped:
    /// bits a lookup did not read cannot change its answer.
    fn lookup_off_wildcards(cls: &Classifier, f: &Flow, wc: &[u64; WORDS]) -> Option<RuleId> {
        let mut g = *f;
        for (gw, &m) in g.w.iter_mut().zip(wc) {
            *gw ^= !m;
        }
        cls.lookup(&g, None)
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

    /// Rules inserted, some removed again (the shadowed ones with the same match put
    /// back, as the caller does) and others added, on a finished classifier: every
    /// lookup equals the brute-force answer over the rules left (highest priority, the
    /// lowest order among equals), and the rule count and the catch-all test agree.
    #[test]
    fn removals_and_inserts_in_place_equal_a_linear_scan() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let fields = [
            (Field::EthType, 0xffffu128),
            (Field::IpProto, 0xff),
            (Field::Reg(15), 0xffff_ffff),
            (Field::TcpDst, 0xffff),
        ];
        // (priority, order, values per field); few values so matches collide.
        let rule = (
            0u32..3,
            0u32..50,
            prop::collection::vec(prop::option::weighted(0.85, 0u128..3), fields.len()),
        );
        let mut runner = TestRunner::new(Config {
            cases: 300,
            ..Config::default()
        });
        runner
            .run(
                &(
                    prop::collection::vec(rule.clone(), 1..80),
                    prop::collection::vec(any::<bool>(), 80),
                    prop::collection::vec(rule, 0..20),
                ),
                |(rules, removed, more)| {
                    let to_conj =
                        |vals: &Vec<Option<u128>>| conj_over(&fields, vals, |v, _| v * 0x11);
                    let mut cls = Classifier::default();
                    let mut live: Vec<(u32, u32, Conj, u32)> = Vec::new();
                    for (i, (p, o, v)) in rules.iter().enumerate() {
                        let c = to_conj(v);
                        cls.insert_ordered(&c, *p, *o, i as u32);
                        live.push((*p, *o, c, i as u32));
                    }
                    cls.finish();
                    for (i, _) in rules.iter().enumerate().filter(|(i, _)| removed[*i]) {
                        let at = live.iter().position(|r| r.3 == i as u32).unwrap();
                        let (_, _, c, id) = live.remove(at);
                        if cls.remove(&c, id) {
                            for r in live.iter().filter(|r| r.2 == c) {
                                cls.reinstate(&r.2, r.0, r.1, r.3);
                            }
                        }
                    }
                    // Added all at once (several per subtable), as an update does.
                    let mut batch = Vec::new();
                    for (j, (p, o, v)) in more.iter().enumerate() {
                        let c = to_conj(v);
                        let id = 100 + j as u32;
                        batch.push((c, *p, *o, id));
                        live.push((*p, *o, c, id));
                    }
                    cls.insert_all(&batch);
                    cls.finish();
                    prop_assert_eq!(cls.len() as usize, live.len());
                    let catchall = live.len() == 1 && live[0].2 == Conj::ANY;
                    prop_assert_eq!(cls.only_catchall().is_some(), catchall);
                    for a in 0..3u128 {
                        for b in 0..3u128 {
                            let mut f = Flow::default();
                            for (k, &(field, m)) in fields.iter().enumerate() {
                                f.set(field, ([a, b, (a + b) % 3, a][k] * 0x11) & m);
                            }
                            // Equal priority and order: the first inserted (in `live`).
                            let want = live
                                .iter()
                                .enumerate()
                                .filter(|(_, r)| matches(&r.2, &f))
                                .max_by_key(|(i, r)| {
                                    (r.0, std::cmp::Reverse(r.1), std::cmp::Reverse(*i))
                                })
                                .map(|(_, r)| (r.0, r.1));
                            let mut wc = [0u64; WORDS];
                            let id = cls.lookup(&f, Some(&mut wc));
                            let got = id.map(|id| {
                                let r = live.iter().find(|r| r.3 == id).expect("a live rule");
                                (r.0, r.1)
                            });
                            prop_assert_eq!(got, want);
                            // Any flow equal to this one on the wildcards: the same rule.
                            prop_assert_eq!(lookup_off_wildcards(&cls, &f, &wc), id);
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    /// Rules over a few fields OVN pins (and masked bits of others), so that selectors
    /// are chosen: every lookup equals the brute-force answer (highest priority, the
    /// first inserted among equals), and the wildcards it reports decide it.
    #[test]
    fn selected_lookups_equal_a_linear_scan() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let fields = [
            (Field::EthType, 0xffffu128),
            (Field::IpProto, 0xff),
            (Field::Reg(14), 0xffff_ffff),
            (Field::Reg(15), 0xffff_ffff),
            (Field::TcpDst, 0xff00),
            (Field::Reg(0), 0x4),
        ];
        // A rule: priority and, per field, none or a value (small, so flows collide).
        let rule = (
            0u32..4,
            prop::collection::vec(prop::option::of(0u128..3), fields.len()),
        );
        let rules = prop::collection::vec(rule, 1..40);
        let flows = prop::collection::vec(prop::collection::vec(0u128..3, fields.len()), 1..20);
        let spread = |v: u128, m: u128| [0, m & 0x5555_5555_5555_5555, m][v as usize];
        let selected = std::cell::Cell::new(0);
        let mut runner = TestRunner::new(Config {
            cases: 300,
            ..Config::default()
        });
        runner
            .run(&(rules, flows), |(rules, flows)| {
                let to_conj = |vals: &Vec<Option<u128>>| conj_over(&fields, vals, spread);
                let conjs: Vec<Conj> = rules.iter().map(|(_, v)| to_conj(v)).collect();
                let mut cls = Classifier::default();
                for (i, ((p, _), c)) in rules.iter().zip(&conjs).enumerate() {
                    cls.insert(c, *p * 10, i as u32);
                }
                cls.finish();
                for vals in &flows {
                    let mut f = Flow::default();
                    for (&(field, m), v) in fields.iter().zip(vals) {
                        f.set(field, spread(*v, m));
                    }
                    let want = rules
                        .iter()
                        .zip(&conjs)
                        .enumerate()
                        .filter(|(_, (_, c))| matches(c, &f))
                        .max_by_key(|(i, ((p, _), _))| (*p, std::cmp::Reverse(*i)))
                        .map(|(i, _)| i as u32);
                    let mut wc = [0u64; WORDS];
                    let got = cls.lookup(&f, Some(&mut wc));
                    prop_assert_eq!(got, want);
                    // Any flow equal to this one on the wildcards gets the same answer.
                    prop_assert_eq!(lookup_off_wildcards(&cls, &f, &wc), got);
                }
                if !cls.selectors.is_empty() {
                    selected.set(selected.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        // The property held with selectors in play, not only without.
        assert!(
            selected.get() > 100,
            "{} cases had selectors",
            selected.get()
        );
    }
}
