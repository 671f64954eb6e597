//! The typed replica: turns the raw rows the client maintains into typed, validated,
//! keyed rows, and publishes each update as a new [`Snapshot`] plus a [`ChangeSet`].
//!
//! Per update, table by table (the order of `tables.rs`), every touched row is taken out
//! under its old key, re-decoded ([`SbRow::decode`], [`SbRow::check`]) and put back under
//! its new key; then old and new are compared key by key. So a delete and insert of the
//! same logical_port in one update is one `Modified`, a row whose monitored columns did
//! not change emits nothing, and a full resync (all rows touched) emits exactly the real
//! differences. When rows appear or vanish in a table another one depends on
//! ([`SbRow::DEPENDS_ON`]), every row of the dependent table is checked again. Rows that
//! fail are left out, recorded in [`Snapshot::invalid_rows`], logged and counted once
//! per row and reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::OrdMap;
use tokio::sync::{broadcast, watch};

use crate::ovsdb::{Counters, Database, DbChange, MonitorSink, Uuid};

use super::changes::{ChangeSet, Changes, RowChange};
use super::snapshot::Snapshot;
use super::table::{Refs, SbRow, Table};
use super::tables::{TableVisitor, Tables, for_each_table};
use super::validate::RowError;

/// How many change sets a slow subscriber may fall behind before it gets
/// `RecvError::Lagged` (and should re-read the snapshot).
pub const CHANGE_BUFFER: usize = 1024;

/// The Southbound [`MonitorSink`].
pub struct Replica {
    state: Snapshot,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    changes_tx: broadcast::Sender<Arc<ChangeSet>>,
}

impl Replica {
    pub fn new() -> Replica {
        let (snapshot_tx, _) = watch::channel(Arc::new(Snapshot::default()));
        let (changes_tx, _) = broadcast::channel(CHANGE_BUFFER);
        Replica {
            state: Snapshot::default(),
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
        let s = &mut self.state;
        let mut pass = Pass {
            db,
            change,
            counters,
            tables: &mut s.tables,
            invalid: &mut s.invalid,
            changes: Changes::default(),
            membership_changed: BTreeSet::new(),
            invalid_changed: false,
        };
        for_each_table(&mut pass);
        let (changes, invalid_changed) = (pass.changes, pass.invalid_changed);

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
        if !set.is_empty() {
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

/// One update's walk over the tables.
struct Pass<'a> {
    db: &'a Database,
    change: DbChange<'a>,
    counters: &'a Counters,
    tables: &'a mut Tables,
    invalid: &'a mut OrdMap<(&'static str, Uuid), String>,
    changes: Changes,
    /// Tables where rows appeared or vanished in this update.
    membership_changed: BTreeSet<&'static str>,
    invalid_changed: bool,
}

impl TableVisitor for Pass<'_> {
    fn visit<T: SbRow>(&mut self) {
        let recheck_all = matches!(self.change, DbChange::Reset)
            || T::DEPENDS_ON
                .iter()
                .any(|t| self.membership_changed.contains(t));
        // Taken out while it is rebuilt, so `check` can read the other tables.
        let mut table = std::mem::take(T::table_mut(self.tables));
        let rows = if recheck_all {
            all_rows(self.db, &table, self.invalid, T::TABLE)
        } else {
            match self.change {
                DbChange::Rows(t) => t.rows(T::TABLE).to_vec(),
                DbChange::Reset => Vec::new(),
            }
        };
        let out = if rows.is_empty() {
            Vec::new()
        } else {
            let refs = Refs {
                tables: self.tables,
                db: self.db,
            };
            apply_table(
                &mut table,
                &refs,
                self.invalid,
                &rows,
                self.counters,
                &mut self.invalid_changed,
            )
        };
        *T::table_mut(self.tables) = table;
        if out.iter().any(|c| !matches!(c, RowChange::Modified { .. })) {
            self.membership_changed.insert(T::TABLE);
        }
        *T::changes_mut(&mut self.changes) = out;
    }
}

/// Every row the table has, had, or refused (only collected on a resync or recheck: it
/// is O(table)).
fn all_rows<T: SbRow>(
    db: &Database,
    table: &Table<T>,
    invalid: &OrdMap<(&'static str, Uuid), String>,
    name: &'static str,
) -> Vec<Uuid> {
    let mut rows: Vec<Uuid> = table.uuids().collect();
    if let Some(t) = db.table(name) {
        rows.extend(t.uuids().copied());
    }
    rows.extend(invalid.keys().filter(|(t, _)| *t == name).map(|(_, u)| *u));
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Re-decodes `rows` of one table and returns the per-key differences.
fn apply_table<T: SbRow>(
    table: &mut Table<T>,
    refs: &Refs<'_>,
    invalid: &mut OrdMap<(&'static str, Uuid), String>,
    rows: &[Uuid],
    counters: &Counters,
    invalid_changed: &mut bool,
) -> Vec<RowChange<T>> {
    let raw = refs.db.table(T::TABLE);
    // Take every touched row out under its old key.
    let mut old: BTreeMap<T::Key, Option<Arc<T>>> = BTreeMap::new();
    for u in rows {
        if let Some((k, prev)) = table.remove_uuid(u) {
            old.entry(k).or_insert(prev);
        }
    }
    // Put back what exists now, under its new key.
    for &u in rows {
        // None: deleted.
        let decoded = raw.and_then(|t| t.row(&u)).map(|r| match r.error() {
            Some(e) => Err(RowError::Undecodable(e.to_owned())),
            None => T::decode(u, &r).and_then(|row| row.check(refs).map(|()| row)),
        });
        let error = match decoded {
            None => None,
            Some(Err(e)) => Some(e),
            Some(Ok(row)) => {
                let k = row.key();
                if table.contains_key(&k) {
                    Some(RowError::DuplicateKey(format!("{k:?}")))
                } else {
                    old.entry(k.clone()).or_insert(None);
                    table.insert(k, Arc::new(row));
                    None
                }
            }
        };
        let slot = (T::TABLE, u);
        match error {
            Some(e) => {
                let why = e.to_string();
                if invalid.get(&slot) != Some(&why) {
                    tracing::warn!("sb: {} row {u} left out of the replica: {why}", T::TABLE);
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
        match (before, table.get(&k).cloned()) {
            (None, None) => {}
            (None, Some(new)) => out.push(RowChange::Added(new)),
            (Some(old), None) => out.push(RowChange::Removed(old)),
            (Some(old), Some(new)) if *old == *new => {
                // Keep the old Arc so unchanged rows stay pointer-equal across snapshots.
                table.restore(k, old);
            }
            (Some(old), Some(new)) => out.push(RowChange::Modified { old, new }),
        }
    }
    out
}
