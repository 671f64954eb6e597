//! A consistent, immutable view of the replica. Cloning is O(1) (persistent maps), so a
//! reader can hold one for as long as it likes while the client keeps updating.

use std::sync::Arc;

use imbl::OrdMap;

use crate::ovsdb::Uuid;

use super::rows::{
    Chassis, ChassisPrivate, DHCP_OPTIONS_STAGE, DatapathBinding, Encap, LogicalFlow, PortBinding,
    SbGlobal,
};
use super::table::{SbRow, Table};
use super::tables::Tables;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) synced: bool,
    pub(crate) tables: Tables,
    /// Rows left out, by (table, uuid), with why.
    pub(crate) invalid: OrdMap<(&'static str, Uuid), String>,
}

impl Snapshot {
    /// Increases with every update that changed something.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True once the first full snapshot from the server has been loaded.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Any table: `snap.table::<LogicalFlow>().iter()`, `.get(key)`, `.by_uuid(&uuid)`.
    pub fn table<T: SbRow>(&self) -> &Table<T> {
        T::table(&self.tables)
    }

    /// Rows left out of the replica (they did not decode or their references do not
    /// hold): table, row UUID, why.
    pub fn invalid_rows(&self) -> impl Iterator<Item = (&'static str, Uuid, &str)> {
        self.invalid
            .iter()
            .map(|((t, u), why)| (*t, *u, why.as_str()))
    }

    // Shorthands for the tables the agent reads most.

    pub fn port_binding(&self, logical_port: &str) -> Option<&Arc<PortBinding>> {
        self.table::<PortBinding>().get(logical_port)
    }

    /// All valid Port_Bindings, ordered by logical_port.
    pub fn port_bindings(&self) -> impl Iterator<Item = &Arc<PortBinding>> {
        self.table::<PortBinding>().iter()
    }

    pub fn datapath(&self, uuid: &Uuid) -> Option<&Arc<DatapathBinding>> {
        self.table::<DatapathBinding>().get(uuid)
    }

    pub fn datapaths(&self) -> impl Iterator<Item = &Arc<DatapathBinding>> {
        self.table::<DatapathBinding>().iter()
    }

    pub fn chassis(&self, name: &str) -> Option<&Arc<Chassis>> {
        self.table::<Chassis>().get(name)
    }

    /// The chassis a Port_Binding's `chassis` column points at.
    pub fn chassis_by_uuid(&self, uuid: &Uuid) -> Option<&Arc<Chassis>> {
        self.table::<Chassis>().by_uuid(uuid)
    }

    pub fn all_chassis(&self) -> impl Iterator<Item = &Arc<Chassis>> {
        self.table::<Chassis>().iter()
    }

    pub fn chassis_private(&self, name: &str) -> Option<&Arc<ChassisPrivate>> {
        self.table::<ChassisPrivate>().get(name)
    }

    pub fn encap(&self, uuid: &Uuid) -> Option<&Arc<Encap>> {
        self.table::<Encap>().get(uuid)
    }

    pub fn encaps(&self) -> impl Iterator<Item = &Arc<Encap>> {
        self.table::<Encap>().iter()
    }

    /// The Encap rows a chassis lists.
    pub fn encaps_of<'a>(&'a self, chassis: &'a Chassis) -> impl Iterator<Item = &'a Arc<Encap>> {
        chassis.encaps.iter().filter_map(|u| self.encap(u))
    }

    pub fn sb_global(&self) -> Option<&Arc<SbGlobal>> {
        self.table::<SbGlobal>().iter().next()
    }

    /// The datapaths a logical flow applies to: its `logical_datapath`, or the members of
    /// its `logical_dp_group`.
    pub fn flow_datapaths<'a>(&'a self, flow: &'a LogicalFlow) -> impl Iterator<Item = Uuid> + 'a {
        let group = flow
            .logical_dp_group
            .and_then(|g| self.table::<super::rows::LogicalDpGroup>().get(&g));
        flow.logical_datapath
            .into_iter()
            .chain(group.into_iter().flat_map(|g| g.datapaths.iter().copied()))
    }

    /// The logical flows of one datapath (a scan of the table: build an index for
    /// repeated use).
    pub fn flows_of(&self, datapath: Uuid) -> impl Iterator<Item = &Arc<LogicalFlow>> {
        self.table::<LogicalFlow>()
            .iter()
            .filter(move |f| self.flow_datapaths(f).any(|d| d == datapath))
    }

    /// The flows of stage `ls_in_dhcp_options` that offer DHCPv4 options to a logical
    /// port (northd makes two: broadcast DISCOVER/REQUEST, unicast renewal).
    pub fn dhcp_flows_for<'a>(
        &'a self,
        logical_port: &'a str,
    ) -> impl Iterator<Item = &'a Arc<LogicalFlow>> {
        self.table::<LogicalFlow>().iter().filter(move |f| {
            f.stage_name() == Some(DHCP_OPTIONS_STAGE)
                && f.actions.contains("put_dhcp_opts")
                && f.logical_port().as_deref() == Some(logical_port)
        })
    }

    /// Puts a row in (tests build snapshots by hand).
    #[cfg(test)]
    pub(crate) fn insert<T: SbRow>(&mut self, row: T) {
        let key = row.key();
        T::table_mut(&mut self.tables).insert(key, Arc::new(row));
    }
}
