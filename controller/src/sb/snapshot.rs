//! A consistent, immutable view of the replica. Cloning is O(1) (persistent maps), so a
//! reader can hold one for as long as it likes while the client keeps updating.

use std::sync::Arc;

use imbl::OrdMap;

use crate::ovsdb::Uuid;

use super::rows::{
    Chassis, ChassisPrivate, DatapathBinding, DhcpOptionsFlow, Encap, PortBinding, SbGlobal,
    SbTable,
};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) synced: bool,
    pub(crate) port_bindings: OrdMap<String, Arc<PortBinding>>,
    pub(crate) datapaths: OrdMap<Uuid, Arc<DatapathBinding>>,
    pub(crate) chassis: OrdMap<String, Arc<Chassis>>,
    pub(crate) chassis_names: OrdMap<Uuid, String>,
    pub(crate) chassis_private: OrdMap<String, Arc<ChassisPrivate>>,
    pub(crate) encaps: OrdMap<Uuid, Arc<Encap>>,
    pub(crate) sb_global: OrdMap<Uuid, Arc<SbGlobal>>,
    pub(crate) dhcp_flows: OrdMap<Uuid, Arc<DhcpOptionsFlow>>,
    pub(crate) invalid: OrdMap<(SbTable, Uuid), String>,
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

    pub fn port_binding(&self, logical_port: &str) -> Option<&Arc<PortBinding>> {
        self.port_bindings.get(logical_port)
    }

    /// All valid Port_Bindings, ordered by logical_port.
    pub fn port_bindings(&self) -> impl Iterator<Item = &Arc<PortBinding>> {
        self.port_bindings.values()
    }

    pub fn datapath(&self, uuid: &Uuid) -> Option<&Arc<DatapathBinding>> {
        self.datapaths.get(uuid)
    }

    pub fn datapaths(&self) -> impl Iterator<Item = &Arc<DatapathBinding>> {
        self.datapaths.values()
    }

    pub fn chassis(&self, name: &str) -> Option<&Arc<Chassis>> {
        self.chassis.get(name)
    }

    /// The chassis a Port_Binding's `chassis` column points at.
    pub fn chassis_by_uuid(&self, uuid: &Uuid) -> Option<&Arc<Chassis>> {
        self.chassis.get(self.chassis_names.get(uuid)?)
    }

    pub fn all_chassis(&self) -> impl Iterator<Item = &Arc<Chassis>> {
        self.chassis.values()
    }

    pub fn chassis_private(&self, name: &str) -> Option<&Arc<ChassisPrivate>> {
        self.chassis_private.get(name)
    }

    pub fn encap(&self, uuid: &Uuid) -> Option<&Arc<Encap>> {
        self.encaps.get(uuid)
    }

    pub fn encaps(&self) -> impl Iterator<Item = &Arc<Encap>> {
        self.encaps.values()
    }

    /// The Encap rows a chassis lists.
    pub fn encaps_of<'a>(&'a self, chassis: &'a Chassis) -> impl Iterator<Item = &'a Arc<Encap>> {
        chassis.encaps.iter().filter_map(|u| self.encaps.get(u))
    }

    pub fn sb_global(&self) -> Option<&Arc<SbGlobal>> {
        self.sb_global.values().next()
    }

    pub fn dhcp_flows(&self) -> impl Iterator<Item = &Arc<DhcpOptionsFlow>> {
        self.dhcp_flows.values()
    }

    /// The DHCPv4 options flows of a logical port (northd makes two: one for broadcast
    /// DISCOVER/REQUEST, one for unicast renewals to the server).
    pub fn dhcp_flows_for<'a>(
        &'a self,
        logical_port: &'a str,
    ) -> impl Iterator<Item = &'a Arc<DhcpOptionsFlow>> {
        self.dhcp_flows
            .values()
            .filter(move |f| f.logical_port.as_deref() == Some(logical_port))
    }

    /// Rows left out of the replica, with why.
    pub fn invalid_rows(&self) -> impl Iterator<Item = (SbTable, Uuid, &str)> {
        self.invalid
            .iter()
            .map(|((t, u), why)| (*t, *u, why.as_str()))
    }
}
