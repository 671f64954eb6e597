//! Counter bumps. Per-CPU maps: no atomics needed, userspace sums the CPUs.

use ovnest_common::{Counter, PortEntry};

use crate::maps::{COUNTERS, PORT_STATS};

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn port_rx(port: &PortEntry, bytes: u64) {
    if let Some(stats) = PORT_STATS.get_ptr_mut(port.stats_slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*stats).rx_packets += 1;
            (*stats).rx_bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn port_tx(stats_slot: u32, bytes: u64) {
    if let Some(stats) = PORT_STATS.get_ptr_mut(stats_slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*stats).tx_packets += 1;
            (*stats).tx_bytes += bytes;
        }
    }
}

#[inline(always)]
pub fn port_drop(port: &PortEntry) {
    if let Some(stats) = PORT_STATS.get_ptr_mut(port.stats_slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { (*stats).drops += 1 };
    }
}
