//! Flat tables: open addressing in a BPF array, probed by the XDP program itself.
//!
//! A kernel hash-map lookup is an out-of-line call chain (hash, bucket walk, memcmp);
//! an array lookup is inlined by the verifier into a bounds check and an add. So the
//! per-frame tables are arrays of [`FlatSlot`]s: the key's hash picks a slot and the
//! program checks it and the next `FLAT_PROBE - 1` ones (the window). A key whose window
//! is full lives in a pair of spill slots after the windows, found through a small hash
//! map from the key to the pair's first slot.
//!
//! # Why a reader never sees a mixed entry
//! The program reads an entry in place, field by field, over many instructions and
//! helper calls, and XDP can be interrupted anywhere in between. So entries are never
//! rewritten in place: a slot is written only while no reader can be looking at it, and
//! an entry changes by replacement (RCU, with whole slots as the objects):
//! 1. a new entry goes into a free slot, bytes first with `live == 0`, then `live = 1`
//!    (two writes: a reader that sees `live` sees the bytes);
//! 2. after a grace period (every program run that might have missed the new slot has
//!    ended) the old slot is killed: only `live` changes, its bytes stay;
//! 3. a killed slot is reused only after another grace period, when no program run that
//!    saw it live can still be reading it.
//!
//! Between 1 and 2 a key has two live slots, both whole; a reader takes the first it
//! meets (window order, then the spill pair), old or new. Kernel hash maps cannot give
//! this: they recycle a replaced element for the next update at once, under a reader that
//! may still hold it. So the spill map holds only a slot index, and the reader checks the
//! slot's own key: a stale or recycled index finds a dead slot or another key, a miss,
//! never a wrong entry. Userspace (`ovnest-datapath`'s `fastpath::flat`) is the only
//! writer; a grace period is `membarrier(MEMBARRIER_CMD_GLOBAL)`, i.e. `synchronize_rcu`,
//! which waits for every XDP run since XDP runs inside an RCU read-side section.
//!
//! Both sides compute the hash with the code below, so they agree on where a key lives.
//! The hash, `FLAT_PROBE` and the table sizes are part of the maps' layout
//! (`ovnest_common::layout`): changing any of them changes the layout version.

use core::mem::size_of;

use crate::maps::{ArpKey, ArpTarget, ChildKey, EgressPort, IngressPort, MacKey, capacity};

/// Hash of an L2 key given as its datapath and [`crate::maps::mac48`].
#[inline(always)]
pub const fn mac_hash(datapath: u32, mac48: u64) -> u32 {
    mix(mac48 ^ (datapath as u64).rotate_left(48))
}

/// Slots the program checks for a key, starting at its hash.
pub const FLAT_PROBE: u32 = 4;

/// Window slots of each flat table (powers of two: the hash is masked, not divided).
/// Twice the capacity, so windows stay mostly free and a rewrite finds a second slot.
pub mod slots {
    pub const VIFS: u32 = super::capacity::VIFS * 2;
    pub const CHILDREN: u32 = super::capacity::CHILDREN * 2;
    pub const MACS: u32 = super::capacity::MACS * 2;
    pub const ARP_TARGETS: u32 = super::capacity::ARP_TARGETS * 2;
}
const _: () = assert!(slots::VIFS.is_power_of_two());
const _: () = assert!(slots::CHILDREN.is_power_of_two());
const _: () = assert!(slots::MACS.is_power_of_two());
const _: () = assert!(slots::ARP_TARGETS.is_power_of_two());

/// Spill pairs of each flat table: keys whose window is full. The array holds the window
/// slots, then two slots per pair.
pub mod spill {
    pub const VIFS: u32 = super::capacity::VIFS / 8;
    pub const CHILDREN: u32 = super::capacity::CHILDREN / 8;
    pub const MACS: u32 = super::capacity::MACS / 8;
    pub const ARP_TARGETS: u32 = super::capacity::ARP_TARGETS / 8;
}

/// Entries of a flat table's array: its window slots and its spill pairs.
pub const fn array_len(window: u32, pairs: u32) -> u32 {
    window + 2 * pairs
}

/// One slot. `live` is set after the key and value were written, and cleared (bytes
/// unchanged) before the slot is reused; see the module doc for when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlatSlot<K, V> {
    pub live: u32,
    pub key: K,
    pub value: V,
}

/// The flat tables' slots: VIF (ifindex), child (parent ifindex, vid), L2 (datapath,
/// MAC), ARP responder (datapath, IPv4).
pub type VifSlot = FlatSlot<u32, IngressPort>;
pub type ChildSlot = FlatSlot<ChildKey, IngressPort>;
pub type MacSlot = FlatSlot<MacKey, EgressPort>;
pub type ArpSlot = FlatSlot<ArpKey, ArpTarget>;
const _: () = assert!(size_of::<VifSlot>() == 4 + 4 + 48);
const _: () = assert!(size_of::<ChildSlot>() == 4 + 8 + 48);
const _: () = assert!(size_of::<MacSlot>() == 4 + 12 + 24);
const _: () = assert!(size_of::<ArpSlot>() == 4 + 8 + 16);

/// A key of a flat table: where its probe window starts.
pub trait FlatKey: Copy {
    /// Hash of the key; the window starts at `flat_hash() & (slots - 1)`.
    fn flat_hash(&self) -> u32;
    /// Equality, written so it compiles to a few word compares in BPF.
    fn same(&self, other: &Self) -> bool;
}

/// Fibonacci hashing: multiply by 2^64 / phi and keep the high half, which depends on
/// every input bit.
#[inline(always)]
const fn mix(x: u64) -> u32 {
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

/// VIF table: the ingress ifindex.
impl FlatKey for u32 {
    #[inline(always)]
    fn flat_hash(&self) -> u32 {
        mix(*self as u64)
    }

    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl FlatKey for ChildKey {
    #[inline(always)]
    fn flat_hash(&self) -> u32 {
        mix((self.parent_ifindex as u64) << 16 | self.vid as u64)
    }

    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        self.parent_ifindex == other.parent_ifindex && self.vid == other.vid
    }
}

impl FlatKey for MacKey {
    #[inline(always)]
    fn flat_hash(&self) -> u32 {
        mac_hash(self.datapath, self.mac48())
    }

    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        self.datapath == other.datapath && self.mac48() == other.mac48()
    }
}

impl FlatKey for ArpKey {
    #[inline(always)]
    fn flat_hash(&self) -> u32 {
        mix((self.datapath as u64) << 32 | u32::from_ne_bytes(self.ipv4) as u64)
    }

    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        self.datapath == other.datapath && self.ipv4 == other.ipv4
    }
}

/// The slot index of probe `step` (0..FLAT_PROBE) for a key of hash `hash`.
#[inline(always)]
pub const fn probe_slot(hash: u32, step: u32, slots: u32) -> u32 {
    hash.wrapping_add(step) & (slots - 1)
}
