//! What subscribers receive: the typed differences one update made to the replica.

use std::sync::Arc;

use super::table::SbRow;
pub use super::tables::Changes;

/// One row's change, by the table's key ([`SbRow::Key`]: Port_Binding by `logical_port`,
/// Chassis by `name`, Logical_Flow by UUID, ...). A row deleted and re-created under the
/// same key in one update (northd does this on a parent_port change) is one `Modified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange<T> {
    Added(Arc<T>),
    Modified { old: Arc<T>, new: Arc<T> },
    Removed(Arc<T>),
}

impl<T> RowChange<T> {
    /// The row before the change, if it existed.
    pub fn before(&self) -> Option<&Arc<T>> {
        match self {
            RowChange::Added(_) => None,
            RowChange::Modified { old, .. } | RowChange::Removed(old) => Some(old),
        }
    }

    /// The row after the change, if it still exists.
    pub fn after(&self) -> Option<&Arc<T>> {
        match self {
            RowChange::Removed(_) => None,
            RowChange::Modified { new, .. } | RowChange::Added(new) => Some(new),
        }
    }
}

/// The changes of one applied update.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    /// The [`Snapshot::generation`](super::Snapshot::generation) these changes produced.
    pub generation: u64,
    /// True when this came from a full snapshot (first sync, or a reconnect the server
    /// could not resume): the changes are then the difference from the replica before.
    pub resync: bool,
    pub changes: Changes,
}

impl ChangeSet {
    /// The changes to one table: `set.of::<PortBinding>()`.
    pub fn of<T: SbRow>(&self) -> &[RowChange<T>] {
        T::changes(&self.changes)
    }

    /// Row changes in all tables.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}
