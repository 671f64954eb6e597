//! What subscribers receive: the typed differences one update made to the replica.

use std::sync::Arc;

use super::rows::{
    Chassis, ChassisPrivate, DatapathBinding, DhcpOptionsFlow, Encap, PortBinding, SbGlobal,
};

/// One row's change, by the table's key (Port_Binding by `logical_port`, Chassis and
/// Chassis_Private by `name`, the rest by UUID). A row deleted and re-created under the same
/// key in one update (northd does this on a parent_port change) is one `Modified`.
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

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    PortBinding(RowChange<PortBinding>),
    Datapath(RowChange<DatapathBinding>),
    Chassis(RowChange<Chassis>),
    ChassisPrivate(RowChange<ChassisPrivate>),
    Encap(RowChange<Encap>),
    SbGlobal(RowChange<SbGlobal>),
    DhcpFlow(RowChange<DhcpOptionsFlow>),
}

/// The changes of one applied update, in table order (datapaths first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// The [`Snapshot::generation`](super::Snapshot::generation) these changes produced.
    pub generation: u64,
    /// True when this came from a full snapshot (first sync, or a reconnect the server
    /// could not resume): `changes` is then the difference from the replica before.
    pub resync: bool,
    pub changes: Vec<Change>,
}
