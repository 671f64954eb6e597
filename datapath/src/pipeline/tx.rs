//! Transmit batches: the descriptors the pipeline decided to send during one RX batch,
//! flushed to each egress interface's TX ring afterwards (one kick per ring).
//!
//! One list for all interfaces rather than one per interface: a hypervisor may have
//! thousands of bound interfaces, and a batch touches a handful. The flusher walks only
//! the touched devices.

use super::{counters::Verdict, umem::Desc};
use ovnest_common::Counter;

/// `counts` value of a device this poll thread has no socket on.
const DISABLED: u32 = u32::MAX;

/// A queued descriptor and the device it leaves by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxEntry {
    pub device: u16,
    pub desc: Desc,
}

/// Queued transmissions of one batch, for all devices of a snapshot.
#[derive(Debug)]
pub struct TxBatches {
    entries: Box<[TxEntry]>,
    len: usize,
    /// Per device: entries queued for it, or [`DISABLED`] when the poll thread has no
    /// socket on that interface (frames for it are dropped as `DropNoEgress`, as XDP drops
    /// a redirect to a missing device).
    counts: Vec<u32>,
    /// Devices with at least one entry, in first-use order.
    touched: Vec<u16>,
}

impl TxBatches {
    /// Room for `capacity` descriptors per batch (one RX batch plus the flood copies it
    /// may make; copies past it are dropped and counted).
    pub fn new(capacity: usize) -> Self {
        TxBatches {
            entries: vec![TxEntry::default(); capacity].into_boxed_slice(),
            len: 0,
            counts: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Sizes the lists for a snapshot's `devices`, each enabled or not by `enabled(device)`.
    /// Housekeeping only (it allocates). Anything still queued is handed to `orphan`.
    pub fn prepare(
        &mut self,
        devices: usize,
        mut enabled: impl FnMut(u16) -> bool,
        orphan: impl FnMut(Desc),
    ) {
        self.entries[..self.len]
            .iter()
            .map(|e| e.desc)
            .for_each(orphan);
        self.len = 0;
        self.touched.clear();
        self.touched.reserve(devices);
        self.counts.clear();
        self.counts
            .extend((0..devices).map(|d| if enabled(d as u16) { 0 } else { DISABLED }));
    }

    /// Queues `desc` on `device`.
    #[inline(always)]
    pub fn push(&mut self, device: u16, desc: Desc) -> Result<(), Verdict> {
        let Some(count) = self.counts.get_mut(device as usize) else {
            return Err(Verdict::Fast(Counter::DropNoEgress));
        };
        if *count == DISABLED {
            return Err(Verdict::Fast(Counter::DropNoEgress));
        }
        let Some(slot) = self.entries.get_mut(self.len) else {
            return Err(Verdict::DropTxFull);
        };
        *slot = TxEntry { device, desc };
        self.len += 1;
        if *count == 0 {
            // Within its reservation: each device enters once per flush.
            self.touched.push(device);
        }
        *count += 1;
        Ok(())
    }

    /// Everything queued, in order.
    pub fn entries(&self) -> &[TxEntry] {
        &self.entries[..self.len]
    }

    /// Devices with something queued.
    pub fn touched(&self) -> &[u16] {
        &self.touched
    }

    /// Number queued for `device`.
    pub fn count(&self, device: u16) -> u32 {
        self.counts
            .get(device as usize)
            .copied()
            .filter(|c| *c != DISABLED)
            .unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn reset(&mut self) {
        for &device in &self.touched {
            if let Some(c) = self.counts.get_mut(device as usize) {
                *c = 0;
            }
        }
        self.touched.clear();
        self.len = 0;
    }

    /// Hands every touched device's descriptors to `send(device, count, descriptors)` and
    /// empties the batch. `send` owns them all: what its ring does not take it must give
    /// back to the frame pool.
    pub fn flush(&mut self, mut send: impl FnMut(u16, u32, &mut dyn Iterator<Item = Desc>)) {
        let entries = &self.entries[..self.len];
        for &device in &self.touched {
            let count = self.counts.get(device as usize).copied().unwrap_or(0);
            let mut descs = entries
                .iter()
                .filter(|e| e.device == device)
                .map(|e| e.desc);
            send(device, count, &mut descs);
        }
        self.reset();
    }

    /// Empties the batch, handing each descriptor to `f` (tests, benches, shutdown).
    pub fn drain_all(&mut self, mut f: impl FnMut(u16, Desc)) {
        for entry in &self.entries[..self.len] {
            f(entry.device, entry.desc);
        }
        self.reset();
    }
}
