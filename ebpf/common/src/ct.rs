//! Established connections in the XDP fast path: the map the userspace connection table
//! (`ovnest_datapath::conntrack`) mirrors its established entries into, and what a cached
//! decision that went through conntrack records about them.
//!
//! The userspace table stays the only place that creates, changes and removes
//! connections. It writes an entry's slot here (`CT`, indexed by the entry's slot in
//! the table) when the connection is established and stable, and clears it (serial 0)
//! when the connection changes or goes. A cached decision made with connections lists
//! them as (slot, serial); the program uses the decision only while every slot still
//! holds its serial, and refreshes the slots' last-seen time, which userspace reads
//! before it expires a connection.

use core::mem::size_of;

/// A slot of the `CT` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// The connection incarnation the slot holds, 0 for none. Userspace gives every
    /// commit and every change of a connection's state, mark or label a new serial.
    pub serial: u32,
    pub _pad: u32,
    /// `CLOCK_MONOTONIC` (coarse) nanoseconds of the last frame XDP carried for the
    /// connection (or of userspace's mirroring).
    pub last_seen: u64,
}
const _: () = assert!(size_of::<CtEntry>() == 16);

/// A connection a cached decision depends on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtDep {
    /// Index into `CT`.
    pub slot: u32,
    /// The serial the slot must hold.
    pub serial: u32,
}
const _: () = assert!(size_of::<CtDep>() == 8);

/// Connections one cached decision may depend on (a switch's two port zones, a
/// router's DNAT and SNAT zones).
pub const CT_DEPS: usize = 4;

/// Slots of `CT` unless configured otherwise: connections beyond it are tracked in
/// userspace only (their frames are decided there, never cached).
pub const DEFAULT_CT_SLOTS: u32 = 65536;

/// Index into the `CT_STATS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtCounter {
    /// A cached decision carried out in XDP on established connections.
    EstHit = 0,
    /// A cached decision whose connection changed or went: handed up (counted `stale`
    /// by the cache too).
    Gone = 1,
}

impl CtCounter {
    pub const COUNT: u32 = 2;
    pub const ALL: [CtCounter; 2] = [CtCounter::EstHit, CtCounter::Gone];

    pub const fn name(self) -> &'static str {
        match self {
            CtCounter::EstHit => "ct_est_hits",
            CtCounter::Gone => "ct_gone",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] plain data, sizes pinned above to the sum of their fields (no
    // hidden padding), every bit pattern valid.
    unsafe impl aya::Pod for super::CtEntry {}
}
