//! Typed replica of the OVN Southbound tables (ovn-sb(5)), kept current by the OVSDB
//! client ([`crate::ovsdb`]). Each table is one type implementing [`SbRow`] (under
//! `rows/`); a [`Snapshot`] holds a [`Table`] of each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ovnest::sb::*;
//! let sb = Southbound::start(ovnest::sb::config("tcp:10.0.0.2:6642,tcp:10.0.0.3:6642".parse()?));
//! let mut changes = sb.subscribe();            // before reading, so nothing is missed
//! let snap = sb.wait_synced().await?;          // Arc<Snapshot>: consistent, cheap to clone
//! if let Some(pb) = snap.port_binding("dmz-c51") {
//!     println!("{} tag {:?} on {:?}", pb.logical_port, pb.tag, pb.parent_port);
//!     for flow in snap.flows_of(pb.datapath) {
//!         println!("{:?} {} {} {}", flow.pipeline, flow.table_id, flow.priority, flow.match_expr);
//!     }
//! }
//! let pg = snap.table::<PortGroup>().get("1_pg_web");   // any table, by key
//! while let Ok(set) = changes.recv().await {   // Err(Lagged): re-read sb.snapshot()
//!     for change in set.of::<PortBinding>() {
//!         if let RowChange::Modified { old, new } = change {
//!             println!("{} changed ({} -> {})", new.logical_port, old.uuid, new.uuid);
//!         }
//!     }
//! }
//! // Narrow Port_Binding to what this chassis needs (monitor_cond_change):
//! use ovnest::ovsdb::{Clause, Datum, MonitorCondition};
//! sb.set_condition::<PortBinding>(MonitorCondition::Any(vec![
//!     Clause::eq("parent_port", Datum::atom("dmz-vm5")),
//! ])).await?;
//! # Ok(()) }
//! ```
//!
//! Design: the client task applies each update to the raw replica and then to the typed
//! one ([`Replica`]), which publishes a new `Arc<Snapshot>` through a `watch` channel (read
//! it any time with [`Southbound::snapshot`]) and the typed differences as an
//! `Arc<ChangeSet>` through a `broadcast` channel. Snapshots are persistent maps, so a
//! reader holding one costs the writer nothing. A subscriber that falls more than
//! [`CHANGE_BUFFER`] change sets behind gets `Lagged` and should reconcile from a fresh
//! snapshot: reconcile, not react.

mod addr;
mod changes;
mod replica;
mod rows;
mod snapshot;
mod string_map;
mod table;
mod tables;
mod validate;

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::ovsdb::{
    Client, ClientConfig, CounterValues, Error, Monitor, MonitorCondition, Operation,
    OperationResult, Remotes, TableMonitor,
};

pub use addr::{IpNet, MacAddr, PortAddresses};
pub use changes::{ChangeSet, Changes, RowChange};
pub use replica::{CHANGE_BUFFER, Replica};
pub use rows::*;
pub use snapshot::Snapshot;
pub use string_map::StringMap;
pub use table::{Refs, RowKey, SbRow, Table};
pub use tables::{TABLES, Tables};
pub use validate::RowError;

/// The Southbound database's name.
pub const DATABASE: &str = "OVN_Southbound";

/// A client configuration for the Southbound database at `remotes`, with defaults.
pub fn config(remotes: Remotes) -> ClientConfig {
    ClientConfig::new(remotes, DATABASE)
}

/// The monitor ovnest runs: every table in the replica, all rows except where
/// `conditions` (table name, condition) say otherwise.
pub fn monitor_tables(conditions: &[(&str, MonitorCondition)]) -> Vec<TableMonitor> {
    tables::monitors()
        .into_iter()
        .map(
            |t| match conditions.iter().find(|(name, _)| *name == t.table) {
                Some((_, c)) => t.with_condition(c.clone()),
                None => t,
            },
        )
        .collect()
}

/// A running Southbound client and its replica.
pub struct Southbound {
    client: Client,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    changes: broadcast::Sender<Arc<ChangeSet>>,
}

impl Southbound {
    /// Starts the client task (on the current tokio runtime) monitoring every table.
    pub fn start(config: ClientConfig) -> Southbound {
        Southbound::start_with(config, &[])
    }

    /// Like [`start`](Self::start), with initial monitor conditions for some tables, by
    /// name (e.g. only this chassis's Port_Bindings from the first snapshot on).
    pub fn start_with(config: ClientConfig, conditions: &[(&str, MonitorCondition)]) -> Southbound {
        let replica = Replica::new();
        let snapshot = replica.snapshot_receiver();
        let changes = replica.change_sender();
        let client = Client::start(
            config,
            Some(Monitor {
                tables: monitor_tables(conditions),
                sink: Box::new(replica),
            }),
        );
        Southbound {
            client,
            snapshot,
            changes,
        }
    }

    /// The latest consistent state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver woken on every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// The typed changes of every update from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeSet>> {
        self.changes.subscribe()
    }

    /// Waits for the first full snapshot.
    pub async fn wait_synced(&self) -> Result<Arc<Snapshot>, Error> {
        let mut rx = self.snapshot.clone();
        let snap = rx
            .wait_for(|s| s.is_synced())
            .await
            .map_err(|_| Error::Stopped)?;
        Ok(snap.clone())
    }

    /// Changes which rows of table `T` are replicated (`monitor_cond_change`).
    pub async fn set_condition<T: SbRow>(&self, condition: MonitorCondition) -> Result<(), Error> {
        self.client.set_condition(T::TABLE, condition).await
    }

    /// Changes the conditions of several tables, by name, in one `monitor_cond_change`.
    /// Returns once the server applied them and the replica holds the result.
    pub async fn set_conditions(
        &self,
        conditions: &[(&str, MonitorCondition)],
    ) -> Result<(), Error> {
        let conditions = conditions
            .iter()
            .map(|(t, c)| ((*t).to_owned(), c.clone()))
            .collect();
        self.client.set_conditions(conditions).await
    }

    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OperationResult>, Error> {
        self.client.transact(ops).await
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn counters(&self) -> CounterValues {
        self.client.counters().snapshot()
    }
}

#[cfg(test)]
pub(crate) mod tests;
