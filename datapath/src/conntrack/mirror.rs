//! The XDP side's view of the table: established connections written into the `CT`
//! array the XDP program validates cached decisions against (`ovnest_common::ct`).

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{Array, Map, MapData, MapError};
use ovnest_common::ct::CtEntry;

/// Where the table mirrors its established connections. Slots are the table's entry
/// indices.
pub trait Mirror: Send + core::fmt::Debug {
    /// Slots there are: entries at or above are never mirrored.
    fn capacity(&self) -> u32;
    /// Writes `serial` into `slot`, seen at `now_ns`. False when refused.
    fn set(&mut self, slot: u32, serial: u32, now_ns: u64) -> bool;
    /// Clears `slot`: no decision depending on it holds any longer. False when refused.
    fn clear(&mut self, slot: u32) -> bool;
    /// When XDP last carried a frame for the connection in `slot` (`CLOCK_MONOTONIC`
    /// nanoseconds), or userspace mirrored it.
    fn last_seen(&self, slot: u32) -> Option<u64>;
}

/// The `CT` array of a loaded XDP program. Every call is a syscall: made when a
/// connection becomes established, changes or goes, and when it looks expired.
pub struct BpfMirror {
    array: Array<MapData, CtEntry>,
    capacity: u32,
}

impl core::fmt::Debug for BpfMirror {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BpfMirror")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl BpfMirror {
    /// The array behind `fd` (duplicated).
    pub fn open(fd: &OwnedFd) -> Result<BpfMirror, MapError> {
        let fd = fd.as_fd().try_clone_to_owned().map_err(|io_error| {
            MapError::SyscallError(aya::sys::SyscallError {
                call: "dup",
                io_error,
            })
        })?;
        let array: Array<MapData, CtEntry> =
            Array::try_from(Map::from_map_data(MapData::from_fd(fd)?)?)?;
        let capacity = array.len();
        Ok(BpfMirror { array, capacity })
    }
}

impl Mirror for BpfMirror {
    fn capacity(&self) -> u32 {
        self.capacity
    }

    fn set(&mut self, slot: u32, serial: u32, now_ns: u64) -> bool {
        let entry = CtEntry {
            serial,
            _pad: 0,
            last_seen: now_ns,
        };
        self.array.set(slot, &entry, 0).is_ok()
    }

    fn clear(&mut self, slot: u32) -> bool {
        self.array.set(slot, &CtEntry::default(), 0).is_ok()
    }

    fn last_seen(&self, slot: u32) -> Option<u64> {
        self.array
            .get(&slot, 0)
            .ok()
            .filter(|e| e.serial != 0)
            .map(|e| e.last_seen)
    }
}
