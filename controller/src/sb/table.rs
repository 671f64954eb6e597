//! One trait impl per Southbound table ([`SbRow`]), and the generic [`Table`] the snapshot
//! keeps for each.
//!
//! A new table is one file under `rows/` with one `impl SbRow`, plus its line in
//! `tables.rs` (the list the replica monitors and applies, in order).

use std::borrow::Borrow;
use std::fmt::{self, Debug};
use std::sync::Arc;

use imbl::OrdMap;

use crate::ovsdb::{Database, RowView, Uuid};

use super::changes::RowChange;
use super::tables::{Changes, Tables};
use super::validate::RowError;

/// A typed row of one Southbound table (ovn-sb(5)).
pub trait SbRow: Registered + Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The table's name in the schema.
    const TABLE: &'static str;
    /// The columns monitored (columns this server's schema lacks are left out and read
    /// as their defaults).
    const COLUMNS: &'static [&'static str];
    /// Tables that [`check`](SbRow::check) reads: when rows appear or vanish there, every
    /// row of this table is checked again. They must come earlier in `tables.rs`.
    const DEPENDS_ON: &'static [&'static str] = &[];
    /// What the snapshot keys rows by: a column the schema makes unique (so a row that
    /// northd deletes and re-creates under the same name is one change), or the UUID.
    type Key: RowKey;

    /// Decodes and validates one raw row. An error leaves the row out of the replica; it
    /// is logged, counted and listed in [`Snapshot::invalid_rows`](super::Snapshot).
    fn decode(uuid: Uuid, row: &RowView<'_>) -> Result<Self, RowError>;
    fn uuid(&self) -> Uuid;
    fn key(&self) -> Self::Key;
    /// References into other tables that must hold (see [`DEPENDS_ON`](SbRow::DEPENDS_ON)).
    fn check(&self, _refs: &Refs<'_>) -> Result<(), RowError> {
        Ok(())
    }
}

/// Where the replica keeps a table and its changes; implemented for every row type by
/// the list in `tables.rs`, so a row type that is not listed does not compile.
#[doc(hidden)]
pub trait Registered: Sized {
    fn table(tables: &Tables) -> &Table<Self>
    where
        Self: SbRow;
    fn table_mut(tables: &mut Tables) -> &mut Table<Self>
    where
        Self: SbRow;
    fn changes(changes: &Changes) -> &[RowChange<Self>];
    fn changes_mut(changes: &mut Changes) -> &mut Vec<RowChange<Self>>;
}

/// A table key. Tables keyed by their rows' UUID keep no separate UUID index.
pub trait RowKey: Ord + Clone + Debug + Send + Sync + 'static {
    /// The key of the row with this UUID, when keys are UUIDs.
    fn from_uuid(_uuid: &Uuid) -> Option<Self> {
        None
    }
}

impl RowKey for Uuid {
    fn from_uuid(uuid: &Uuid) -> Option<Uuid> {
        Some(*uuid)
    }
}

impl RowKey for String {}

impl<A, B> RowKey for (A, B)
where
    A: Ord + Clone + Debug + Send + Sync + 'static,
    B: Ord + Clone + Debug + Send + Sync + 'static,
{
}

/// The valid rows of one table, by key, with a UUID index. Cloning is O(1).
pub struct Table<T: SbRow> {
    rows: OrdMap<T::Key, Arc<T>>,
    /// Row UUID → key, for tables whose key is not the UUID.
    keys: OrdMap<Uuid, T::Key>,
}

impl<T: SbRow> Table<T> {
    /// The row with this key (`&str` works for name-keyed tables).
    pub fn get<Q>(&self, key: &Q) -> Option<&Arc<T>>
    where
        T::Key: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.rows.get(key)
    }

    /// The row with this UUID (what other tables' references hold).
    pub fn by_uuid(&self, uuid: &Uuid) -> Option<&Arc<T>> {
        self.rows.get(&self.key_of(uuid)?)
    }

    pub fn contains_uuid(&self, uuid: &Uuid) -> bool {
        self.by_uuid(uuid).is_some()
    }

    /// Every row, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        self.rows.values()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn key_of(&self, uuid: &Uuid) -> Option<T::Key> {
        T::Key::from_uuid(uuid).or_else(|| self.keys.get(uuid).cloned())
    }

    /// Takes the row with this UUID out; returns its key and the row, if it was there.
    pub(crate) fn remove_uuid(&mut self, uuid: &Uuid) -> Option<(T::Key, Option<Arc<T>>)> {
        let key = match T::Key::from_uuid(uuid) {
            Some(k) => k,
            None => self.keys.remove(uuid)?,
        };
        let row = self.rows.remove(&key);
        if row.is_none() && T::Key::from_uuid(uuid).is_some() {
            return None;
        }
        Some((key, row))
    }

    pub(crate) fn contains_key(&self, key: &T::Key) -> bool {
        self.rows.contains_key(key)
    }

    /// Inserts (or replaces) the row under its key.
    pub(crate) fn insert(&mut self, key: T::Key, row: Arc<T>) {
        if T::Key::from_uuid(&row.uuid()).is_none() {
            self.keys.insert(row.uuid(), key.clone());
        }
        self.rows.insert(key, row);
    }

    /// Puts back a row whose key and UUID are already indexed (an unchanged row).
    pub(crate) fn restore(&mut self, key: T::Key, row: Arc<T>) {
        self.rows.insert(key, row);
    }

    pub(crate) fn uuids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.rows.values().map(|r| r.uuid())
    }
}

impl<T: SbRow> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            rows: OrdMap::new(),
            keys: OrdMap::new(),
        }
    }
}

impl<T: SbRow> Clone for Table<T> {
    fn clone(&self) -> Table<T> {
        Table {
            rows: self.rows.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<T: SbRow> Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.rows.iter()).finish()
    }
}

/// What [`SbRow::check`] may look at: the tables applied before this one in the same
/// update, and which tables this monitor has at all.
pub struct Refs<'a> {
    pub(crate) tables: &'a Tables,
    pub(crate) db: &'a Database,
}

impl Refs<'_> {
    pub fn table<T: SbRow>(&self) -> &Table<T> {
        T::table(self.tables)
    }

    /// False when the table is not replicated (not in this monitor or this schema): a
    /// reference into it cannot be checked.
    pub fn monitored<T: SbRow>(&self) -> bool {
        self.db.table(T::TABLE).is_some()
    }
}
