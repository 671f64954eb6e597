//! `put_fdb`: learned MAC → port entries for the Southbound FDB table, buffered as
//! pinctrl does (one per datapath and MAC with the latest port, at most 1000, all
//! written at the next run).

use ovnest_logical::flow::Flow;
use ovnest_logical::symtab::FieldRef;

/// pinctrl's `MAX_FDB_ENTRIES`.
pub const MAX_PENDING: usize = 1000;

/// One FDB row to insert, or to update when (dp_key, mac) exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbUpsert {
    pub dp_key: u32,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub port_key: u32,
}

#[derive(Debug, Default)]
pub(crate) struct PutFdbs {
    pending: Vec<(u32, u64, u32)>,
}

impl PutFdbs {
    pub(crate) fn put(
        &mut self,
        dp_key: u32,
        flow: &Flow,
        port: FieldRef,
        mac: FieldRef,
    ) -> &'static str {
        let read = |r: FieldRef| {
            let sf = r.resolve();
            flow.get_bits(sf.field, sf.ofs, sf.n_bits)
        };
        let (port_key, mac) = (read(port) as u32, read(mac) as u64);
        if let Some(e) = self
            .pending
            .iter_mut()
            .find(|e| (e.0, e.1) == (dp_key, mac))
        {
            e.2 = port_key;
            return "updated";
        }
        if self.pending.len() >= MAX_PENDING {
            return "dropped_full";
        }
        self.pending.push((dp_key, mac, port_key));
        "queued"
    }

    pub(crate) fn flush(&mut self) -> Vec<FdbUpsert> {
        self.pending
            .drain(..)
            .map(|(dp_key, mac, port_key)| FdbUpsert {
                dp_key,
                mac: super::compose::mac_text(&super::compose::mac(u128::from(mac))),
                port_key,
            })
            .collect()
    }

    pub(crate) fn pending(&self) -> bool {
        !self.pending.is_empty()
    }
}
