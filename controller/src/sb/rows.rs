//! Typed rows of the Southbound tables ovnest uses (ovn-sb(5)), with the columns it needs.
//! Each is decoded from a raw row; columns missing from an older schema read as defaults,
//! columns we do not model are not monitored at all.

use std::collections::BTreeMap;
use std::fmt;

use crate::ovsdb::{RowView, TableMonitor, Uuid};

use super::addr::PortAddresses;
use super::validate::{self as v, RowError};

/// The Southbound tables in the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SbTable {
    PortBinding,
    DatapathBinding,
    Chassis,
    ChassisPrivate,
    Encap,
    SbGlobal,
    LogicalFlow,
}

impl SbTable {
    pub const ALL: [SbTable; 7] = [
        SbTable::DatapathBinding,
        SbTable::PortBinding,
        SbTable::Chassis,
        SbTable::ChassisPrivate,
        SbTable::Encap,
        SbTable::SbGlobal,
        SbTable::LogicalFlow,
    ];

    /// The table's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            SbTable::PortBinding => "Port_Binding",
            SbTable::DatapathBinding => "Datapath_Binding",
            SbTable::Chassis => "Chassis",
            SbTable::ChassisPrivate => "Chassis_Private",
            SbTable::Encap => "Encap",
            SbTable::SbGlobal => "SB_Global",
            SbTable::LogicalFlow => "Logical_Flow",
        }
    }

    /// The columns monitored.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            SbTable::PortBinding => &[
                "logical_port",
                "parent_port",
                "tag",
                "mac",
                "port_security",
                "tunnel_key",
                "datapath",
                "type",
                "options",
                "chassis",
                "requested_chassis",
                "up",
                "encap",
                "external_ids",
            ],
            SbTable::DatapathBinding => &["tunnel_key", "external_ids"],
            SbTable::Chassis => &["name", "hostname", "encaps", "other_config", "external_ids"],
            SbTable::ChassisPrivate => &["name", "chassis", "nb_cfg", "nb_cfg_timestamp"],
            SbTable::Encap => &["type", "ip", "chassis_name", "options"],
            SbTable::SbGlobal => &["nb_cfg", "options"],
            SbTable::LogicalFlow => &[
                "logical_datapath",
                "logical_dp_group",
                "pipeline",
                "table_id",
                "priority",
                "match",
                "actions",
                "external_ids",
                "tags",
            ],
        }
    }

    pub(crate) fn monitor(self) -> TableMonitor {
        TableMonitor::new(self.name(), self.columns())
    }
}

impl fmt::Display for SbTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A logical port bound somewhere (ovn-sb(5) Port_Binding). Keyed by `logical_port`:
/// northd re-creates the row (new `uuid`) when `parent_port` is set or cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub uuid: Uuid,
    pub logical_port: String,
    /// For a nested (container) port: the VIF it rides on.
    pub parent_port: Option<String>,
    /// For a nested port: the VLAN tag that identifies it on the parent, 1..=4095.
    pub tag: Option<u16>,
    pub mac: Vec<PortAddresses>,
    pub port_security: Vec<PortAddresses>,
    /// 1..=32767, unique within the datapath.
    pub tunnel_key: u32,
    pub datapath: Uuid,
    /// `""` for a VIF; `patch`, `localnet`, `router`, ... otherwise.
    pub port_type: String,
    pub options: BTreeMap<String, String>,
    pub chassis: Option<Uuid>,
    pub requested_chassis: Option<Uuid>,
    pub up: Option<bool>,
    pub encap: Option<Uuid>,
    pub external_ids: BTreeMap<String, String>,
}

impl PortBinding {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<PortBinding, RowError> {
        Ok(PortBinding {
            uuid,
            logical_port: v::string(r, "logical_port")?,
            parent_port: v::opt_string(r, "parent_port")?,
            tag: v::tag(v::opt_integer(r, "tag")?)?,
            mac: v::addresses("mac", v::strings(r, "mac")?)?,
            port_security: v::addresses("port_security", v::strings(r, "port_security")?)?,
            tunnel_key: v::tunnel_key(v::integer(r, "tunnel_key")?, 32767)?,
            datapath: v::opt_uuid(r, "datapath")?.unwrap_or(Uuid::ZERO),
            port_type: v::string(r, "type")?,
            options: v::string_map(r, "options")?,
            chassis: v::opt_uuid(r, "chassis")?,
            requested_chassis: v::opt_uuid(r, "requested_chassis")?,
            up: v::opt_bool(r, "up")?,
            encap: v::opt_uuid(r, "encap")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    /// A nested container port: has a parent VIF and a tag.
    pub fn is_nested(&self) -> bool {
        self.parent_port.is_some()
    }
}

/// A logical switch or router (ovn-sb(5) Datapath_Binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatapathBinding {
    pub uuid: Uuid,
    /// 1..=16777215, the datapath's id in tunnel encapsulations.
    pub tunnel_key: u32,
    pub external_ids: BTreeMap<String, String>,
}

impl DatapathBinding {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<DatapathBinding, RowError> {
        Ok(DatapathBinding {
            uuid,
            tunnel_key: v::tunnel_key(v::integer(r, "tunnel_key")?, 16_777_215)?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    /// The NB name northd copies into `external_ids:name`.
    pub fn name(&self) -> Option<&str> {
        self.external_ids.get("name").map(String::as_str)
    }

    /// The NB Logical_Switch this datapath implements, if it is a switch.
    pub fn logical_switch(&self) -> Option<Uuid> {
        self.external_ids.get("logical-switch")?.parse().ok()
    }

    /// The NB Logical_Router this datapath implements, if it is a router.
    pub fn logical_router(&self) -> Option<Uuid> {
        self.external_ids.get("logical-router")?.parse().ok()
    }
}

/// A hypervisor or gateway (ovn-sb(5) Chassis). Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chassis {
    pub uuid: Uuid,
    pub name: String,
    pub hostname: String,
    pub encaps: Vec<Uuid>,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl Chassis {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<Chassis, RowError> {
        Ok(Chassis {
            uuid,
            name: v::string(r, "name")?,
            hostname: v::string(r, "hostname")?,
            encaps: v::uuids(r, "encaps")?,
            other_config: v::string_map(r, "other_config")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }
}

/// The chassis-owned half of a chassis (ovn-sb(5) Chassis_Private). Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisPrivate {
    pub uuid: Uuid,
    pub name: String,
    pub chassis: Option<Uuid>,
    pub nb_cfg: i64,
    pub nb_cfg_timestamp: i64,
}

impl ChassisPrivate {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<ChassisPrivate, RowError> {
        Ok(ChassisPrivate {
            uuid,
            name: v::string(r, "name")?,
            chassis: v::opt_uuid(r, "chassis")?,
            nb_cfg: v::integer(r, "nb_cfg")?,
            nb_cfg_timestamp: v::integer(r, "nb_cfg_timestamp")?,
        })
    }
}

/// A tunnel endpoint of a chassis (ovn-sb(5) Encap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encap {
    pub uuid: Uuid,
    /// `geneve`, `vxlan` or `stt`.
    pub encap_type: String,
    pub ip: String,
    pub chassis_name: String,
    pub options: BTreeMap<String, String>,
}

impl Encap {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<Encap, RowError> {
        Ok(Encap {
            uuid,
            encap_type: v::string(r, "type")?,
            ip: v::string(r, "ip")?,
            chassis_name: v::string(r, "chassis_name")?,
            options: v::string_map(r, "options")?,
        })
    }
}

/// The Southbound's global row (ovn-sb(5) SB_Global).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbGlobal {
    pub uuid: Uuid,
    pub nb_cfg: i64,
    pub options: BTreeMap<String, String>,
}

impl SbGlobal {
    pub(crate) fn from_row(uuid: Uuid, r: &RowView<'_>) -> Result<SbGlobal, RowError> {
        Ok(SbGlobal {
            uuid,
            nb_cfg: v::integer(r, "nb_cfg")?,
            options: v::string_map(r, "options")?,
        })
    }
}

/// The Logical_Flow stage that answers DHCPv4 requests.
pub const DHCP_OPTIONS_STAGE: &str = "ls_in_dhcp_options";

/// A logical flow of stage `ls_in_dhcp_options` whose actions offer DHCPv4 options
/// (`put_dhcp_opts(...)`): what a local DHCP responder needs to answer for a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptionsFlow {
    pub uuid: Uuid,
    pub logical_datapath: Option<Uuid>,
    pub logical_dp_group: Option<Uuid>,
    pub pipeline: String,
    pub table_id: i64,
    pub priority: i64,
    pub match_expr: String,
    pub actions: String,
    /// The port the flow is for: `tags:in_out_port`, else the `inport == "..."` of the match.
    pub logical_port: Option<String>,
    pub external_ids: BTreeMap<String, String>,
}

impl DhcpOptionsFlow {
    /// `Ok(None)` for flows of other stages or actions: not wanted, not an error.
    pub(crate) fn from_row(
        uuid: Uuid,
        r: &RowView<'_>,
    ) -> Result<Option<DhcpOptionsFlow>, RowError> {
        let external_ids = v::string_map(r, "external_ids")?;
        let actions = v::string(r, "actions")?;
        if external_ids.get("stage-name").map(String::as_str) != Some(DHCP_OPTIONS_STAGE)
            || !actions.contains("put_dhcp_opts")
        {
            return Ok(None);
        }
        let match_expr = v::string(r, "match")?;
        let tags = v::string_map(r, "tags")?;
        let logical_port = tags
            .get("in_out_port")
            .cloned()
            .or_else(|| inport_of(&match_expr));
        Ok(Some(DhcpOptionsFlow {
            uuid,
            logical_datapath: v::opt_uuid(r, "logical_datapath")?,
            logical_dp_group: v::opt_uuid(r, "logical_dp_group")?,
            pipeline: v::string(r, "pipeline")?,
            table_id: v::integer(r, "table_id")?,
            priority: v::integer(r, "priority")?,
            match_expr,
            actions,
            logical_port,
            external_ids,
        }))
    }
}

/// `inport == "dmz-c51" && ...` → `dmz-c51`.
fn inport_of(m: &str) -> Option<String> {
    let rest = m.split("inport == \"").nth(1)?;
    Some(rest.split('"').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inport_from_match() {
        let m = r#"inport == "dmz-c51" && eth.src == 02:ac:10:ff:01:33 && ip4.src == 0.0.0.0"#;
        assert_eq!(inport_of(m).as_deref(), Some("dmz-c51"));
        assert_eq!(inport_of("ip4"), None);
    }
}
