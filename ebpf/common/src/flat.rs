//! Flat tables: open addressing in a BPF array, probed by the XDP program itself.
//!
//! A kernel hash-map lookup is an out-of-line call chain (hash, bucket walk, memcmp);
//! an array lookup is inlined by the verifier into a bounds check and an add. So the
//! per-frame tables are mirrored into arrays of [`FlatSlot`]s: the key's hash picks a
//! slot and the program checks it and the next `FLAT_PROBE - 1` ones. The kernel hash
//! maps stay the source of truth: a key that found no free slot in its window, or that
//! is in the middle of being rewritten, is simply looked up there instead.
//!
//! Both sides compute the hash with the code below, so they agree on where a key lives.

use core::mem::size_of;

use crate::maps::{ChildKey, EgressPort, IngressPort, MacKey, capacity};

/// Hash of an L2 key given as its datapath and [`crate::maps::mac48`].
#[inline(always)]
pub const fn mac_hash(datapath: u32, mac48: u64) -> u32 {
    mix(mac48 ^ (datapath as u64).rotate_left(48))
}

/// Slots the program checks for a key, starting at its hash.
pub const FLAT_PROBE: u32 = 4;

/// Slots of each flat table (powers of two: the hash is masked, not divided).
pub mod slots {
    pub const VIFS: u32 = super::capacity::VIFS * 2;
    pub const CHILDREN: u32 = super::capacity::CHILDREN;
    pub const MACS: u32 = super::capacity::MACS;
}
const _: () = assert!(slots::VIFS.is_power_of_two());
const _: () = assert!(slots::CHILDREN.is_power_of_two());
const _: () = assert!(slots::MACS.is_power_of_two());

/// One slot. `live` is set last on insert and cleared first on removal or before a
/// rewrite, each time with the key and value bytes unchanged, so a reader that sees
/// `live != 0` sees a whole entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlatSlot<K, V> {
    pub live: u32,
    pub key: K,
    pub value: V,
}

/// The flat tables' slots: VIF (ifindex), child (parent ifindex, vid), L2 (datapath, MAC).
pub type VifSlot = FlatSlot<u32, IngressPort>;
pub type ChildSlot = FlatSlot<ChildKey, IngressPort>;
pub type MacSlot = FlatSlot<MacKey, EgressPort>;
const _: () = assert!(size_of::<VifSlot>() == 4 + 4 + 48);
const _: () = assert!(size_of::<ChildSlot>() == 4 + 8 + 48);
const _: () = assert!(size_of::<MacSlot>() == 4 + 12 + 24);

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

/// The slot index of probe `step` (0..FLAT_PROBE) for a key of hash `hash`.
#[inline(always)]
pub const fn probe_slot(hash: u32, step: u32, slots: u32) -> u32 {
    hash.wrapping_add(step) & (slots - 1)
}
