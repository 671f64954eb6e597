//! The typed replica: turns the raw rows the client maintains into typed, validated,
//! keyed rows, and publishes each update as a new [`Snapshot`] plus a [`ChangeSet`].
//!
//! Per update, every touched row is taken out under its old key, re-decoded, and put back
//! under its new key; then old and new are compared key by key. So a delete and insert of
//! the same logical_port in one update is one `Modified`, a row whose modelled columns did
//! not change emits nothing, and a full resync (all rows touched) emits exactly the real
//! differences. Rows that fail validation are left out, recorded in
//! [`Snapshot::invalid_rows`], logged and counted once per row and reason.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use imbl::OrdMap;
use tokio::sync::{broadcast, watch};

use crate::ovsdb::{Counters, Database, DbChange, MonitorSink, RowView, Uuid};

use super::changes::{Change, ChangeSet, RowChange};
use super::rows::{
    Chassis, ChassisPrivate, DatapathBinding, DhcpOptionsFlow, Encap, PortBinding, SbGlobal,
    SbTable,
};
use super::snapshot::Snapshot;
use super::validate::RowError;

/// How many change sets a slow subscriber may fall behind before it gets
/// `RecvError::Lagged` (and should re-read the snapshot).
pub const CHANGE_BUFFER: usize = 1024;

/// The Southbound [`MonitorSink`].
pub struct Replica {
    state: Snapshot,
    datapath_owner: OrdMap<Uuid, Uuid>,
    port_owner: OrdMap<Uuid, String>,
    chassis_private_owner: OrdMap<Uuid, String>,
    encap_owner: OrdMap<Uuid, Uuid>,
    global_owner: OrdMap<Uuid, Uuid>,
    flow_owner: OrdMap<Uuid, Uuid>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    changes_tx: broadcast::Sender<Arc<ChangeSet>>,
}

enum Decoded<K, T> {
    /// Not in the raw replica (deleted).
    Absent,
    /// A row we do not model (e.g. a non-DHCP logical flow).
    Ignored,
    Invalid(RowError),
    Valid(K, T),
}

impl Replica {
    pub fn new() -> Replica {
        let (snapshot_tx, _) = watch::channel(Arc::new(Snapshot::default()));
        let (changes_tx, _) = broadcast::channel(CHANGE_BUFFER);
        Replica {
            state: Snapshot::default(),
            datapath_owner: OrdMap::new(),
            port_owner: OrdMap::new(),
            chassis_private_owner: OrdMap::new(),
            encap_owner: OrdMap::new(),
            global_owner: OrdMap::new(),
            flow_owner: OrdMap::new(),
            snapshot_tx,
            changes_tx,
        }
    }

    pub fn snapshot_receiver(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot_tx.subscribe()
    }

    pub fn change_sender(&self) -> broadcast::Sender<Arc<ChangeSet>> {
        self.changes_tx.clone()
    }

    /// The current state (what the last published snapshot holds).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_tx.borrow().clone()
    }

    /// Applies one change of the raw replica; returns the change set it published, if
    /// anything changed.
    pub fn update(
        &mut self,
        db: &Database,
        change: DbChange<'_>,
        counters: &Counters,
    ) -> Option<Arc<ChangeSet>> {
        let reset = matches!(change, DbChange::Reset);
        let first_sync = reset && !self.state.synced;
        let mut changes = Vec::new();
        let mut invalid_changed = false;
        let s = &mut self.state;

        // Datapath_Binding first: Port_Binding validity depends on it.
        let rows = rows_to_decode(
            change,
            db,
            SbTable::DatapathBinding,
            &self.datapath_owner,
            &s.invalid,
        );
        let dp = apply_table(
            SbTable::DatapathBinding,
            &mut s.datapaths,
            &mut self.datapath_owner,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| DatapathBinding::from_row(u, r).map(|d| Some((u, d))),
            db,
        );
        let datapaths_changed = dp.iter().any(|c| !matches!(c, RowChange::Modified { .. }));
        changes.extend(dp.into_iter().map(Change::Datapath));

        let pb_rows = if datapaths_changed {
            rows_to_decode(
                DbChange::Reset,
                db,
                SbTable::PortBinding,
                &self.port_owner,
                &s.invalid,
            )
        } else {
            rows_to_decode(
                change,
                db,
                SbTable::PortBinding,
                &self.port_owner,
                &s.invalid,
            )
        };
        let datapaths = &s.datapaths;
        let check_datapaths = db.table(SbTable::DatapathBinding.name()).is_some();
        let pb = apply_table(
            SbTable::PortBinding,
            &mut s.port_bindings,
            &mut self.port_owner,
            &mut s.invalid,
            &pb_rows,
            counters,
            &mut invalid_changed,
            |u, r| {
                let pb = PortBinding::from_row(u, r)?;
                if check_datapaths && !datapaths.contains_key(&pb.datapath) {
                    return Err(RowError::DanglingDatapath(pb.datapath));
                }
                Ok(Some((pb.logical_port.clone(), pb)))
            },
            db,
        );
        changes.extend(pb.into_iter().map(Change::PortBinding));

        let rows = rows_to_decode(change, db, SbTable::Chassis, &s.chassis_names, &s.invalid);
        let ch = apply_table(
            SbTable::Chassis,
            &mut s.chassis,
            &mut s.chassis_names,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| Chassis::from_row(u, r).map(|c| Some((c.name.clone(), c))),
            db,
        );
        changes.extend(ch.into_iter().map(Change::Chassis));

        let rows = rows_to_decode(
            change,
            db,
            SbTable::ChassisPrivate,
            &self.chassis_private_owner,
            &s.invalid,
        );
        let cp = apply_table(
            SbTable::ChassisPrivate,
            &mut s.chassis_private,
            &mut self.chassis_private_owner,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| ChassisPrivate::from_row(u, r).map(|c| Some((c.name.clone(), c))),
            db,
        );
        changes.extend(cp.into_iter().map(Change::ChassisPrivate));

        let rows = rows_to_decode(change, db, SbTable::Encap, &self.encap_owner, &s.invalid);
        let en = apply_table(
            SbTable::Encap,
            &mut s.encaps,
            &mut self.encap_owner,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| Encap::from_row(u, r).map(|e| Some((u, e))),
            db,
        );
        changes.extend(en.into_iter().map(Change::Encap));

        let rows = rows_to_decode(
            change,
            db,
            SbTable::SbGlobal,
            &self.global_owner,
            &s.invalid,
        );
        let gl = apply_table(
            SbTable::SbGlobal,
            &mut s.sb_global,
            &mut self.global_owner,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| SbGlobal::from_row(u, r).map(|g| Some((u, g))),
            db,
        );
        changes.extend(gl.into_iter().map(Change::SbGlobal));

        let rows = rows_to_decode(
            change,
            db,
            SbTable::LogicalFlow,
            &self.flow_owner,
            &s.invalid,
        );
        let fl = apply_table(
            SbTable::LogicalFlow,
            &mut s.dhcp_flows,
            &mut self.flow_owner,
            &mut s.invalid,
            &rows,
            counters,
            &mut invalid_changed,
            |u, r| DhcpOptionsFlow::from_row(u, r).map(|f| f.map(|f| (u, f))),
            db,
        );
        changes.extend(fl.into_iter().map(Change::DhcpFlow));

        if changes.is_empty() && !invalid_changed && !first_sync {
            return None;
        }
        s.generation += 1;
        s.synced = true;
        let set = Arc::new(ChangeSet {
            generation: s.generation,
            resync: reset,
            changes,
        });
        self.snapshot_tx.send_replace(Arc::new(s.clone()));
        if !set.changes.is_empty() {
            // No subscriber is not an error.
            let _ = self.changes_tx.send(set.clone());
        }
        Some(set)
    }
}

impl Default for Replica {
    fn default() -> Replica {
        Replica::new()
    }
}

impl MonitorSink for Replica {
    fn apply(&mut self, db: &Database, change: DbChange<'_>, counters: &Counters) {
        self.update(db, change, counters);
    }
}

/// The rows to re-decode: the touched ones, or on a resync every row the table has, had,
/// or refused (only collected then: it is O(table)).
fn rows_to_decode<K: Clone>(
    change: DbChange<'_>,
    db: &Database,
    table: SbTable,
    owner: &OrdMap<Uuid, K>,
    invalid: &OrdMap<(SbTable, Uuid), String>,
) -> Vec<Uuid> {
    if let DbChange::Rows(t) = change {
        return t.rows(table.name()).to_vec();
    }
    let mut owners: Vec<Uuid> = owner.keys().copied().collect();
    if let Some(t) = db.table(table.name()) {
        owners.extend(t.uuids().copied());
    }
    owners.extend(invalid.keys().filter(|(t, _)| *t == table).map(|(_, u)| *u));
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// Re-decodes `rows` of one table into `map` (keyed by K, with `owner` mapping row UUIDs
/// to keys) and returns the per-key differences.
#[allow(clippy::too_many_arguments)]
fn apply_table<K, T>(
    table: SbTable,
    map: &mut OrdMap<K, Arc<T>>,
    owner: &mut OrdMap<Uuid, K>,
    invalid: &mut OrdMap<(SbTable, Uuid), String>,
    rows: &[Uuid],
    counters: &Counters,
    invalid_changed: &mut bool,
    mut decode: impl FnMut(Uuid, &RowView<'_>) -> Result<Option<(K, T)>, RowError>,
    db: &Database,
) -> Vec<RowChange<T>>
where
    K: Ord + Clone + Debug,
    T: PartialEq,
{
    let raw = db.table(table.name());
    // Take every touched row out under its old key.
    let mut old: BTreeMap<K, Option<Arc<T>>> = BTreeMap::new();
    for u in rows {
        if let Some(k) = owner.remove(u) {
            let prev = map.remove(&k);
            old.entry(k).or_insert(prev);
        }
    }
    // Put back what exists now, under its new key.
    for &u in rows {
        let decoded = match raw.and_then(|t| t.row(&u)) {
            None => Decoded::Absent,
            Some(r) => match r.error() {
                Some(e) => Decoded::Invalid(RowError::Undecodable(e.to_owned())),
                None => match decode(u, &r) {
                    Ok(Some((k, t))) => Decoded::Valid(k, t),
                    Ok(None) => Decoded::Ignored,
                    Err(e) => Decoded::Invalid(e),
                },
            },
        };
        let error = match decoded {
            Decoded::Absent | Decoded::Ignored => None,
            Decoded::Invalid(e) => Some(e),
            Decoded::Valid(k, _) if map.contains_key(&k) => {
                Some(RowError::DuplicateKey(format!("{k:?}")))
            }
            Decoded::Valid(k, t) => {
                old.entry(k.clone()).or_insert(None);
                map.insert(k.clone(), Arc::new(t));
                owner.insert(u, k);
                None
            }
        };
        let slot = (table, u);
        match error {
            Some(e) => {
                let why = e.to_string();
                if invalid.get(&slot) != Some(&why) {
                    log::warn!("sb: {table} row {u} left out of the replica: {why}");
                    Counters::inc(&counters.bad_rows);
                    invalid.insert(slot, why);
                    *invalid_changed = true;
                }
            }
            None => {
                if invalid.remove(&slot).is_some() {
                    *invalid_changed = true;
                }
            }
        }
    }
    // Compare per key.
    let mut out = Vec::new();
    for (k, before) in old {
        match (before, map.get(&k).cloned()) {
            (None, None) => {}
            (None, Some(new)) => out.push(RowChange::Added(new)),
            (Some(old), None) => out.push(RowChange::Removed(old)),
            (Some(old), Some(new)) if *old == *new => {
                // Keep the old Arc so unchanged rows stay pointer-equal across snapshots.
                map.insert(k, old);
            }
            (Some(old), Some(new)) => out.push(RowChange::Modified { old, new }),
        }
    }
    out
}
