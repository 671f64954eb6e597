use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A logical switch or router (ovn-sb(5) Datapath_Binding).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatapathBinding {
    pub uuid: Uuid,
    /// 1..=16777215, the datapath's id in tunnel encapsulations (the Geneve VNI).
    pub tunnel_key: u32,
    /// Deprecated by northd in favour of Load_Balancer.datapaths; read for older northds.
    pub load_balancers: Vec<Uuid>,
    /// `name`, `name2`, `logical-switch` or `logical-router`, `interconn-ts`, ...
    pub external_ids: BTreeMap<String, String>,
}

impl DatapathBinding {
    /// The NB name northd copies into `external_ids:name`.
    pub fn name(&self) -> Option<&str> {
        self.external_ids.get("name").map(String::as_str)
    }

    /// The NB `external_ids:neutron:network_name`-style alias northd copies to `name2`.
    pub fn name2(&self) -> Option<&str> {
        self.external_ids.get("name2").map(String::as_str)
    }

    /// The NB Logical_Switch this datapath implements, if it is a switch.
    pub fn logical_switch(&self) -> Option<Uuid> {
        self.external_ids.get("logical-switch")?.parse().ok()
    }

    /// The NB Logical_Router this datapath implements, if it is a router.
    pub fn logical_router(&self) -> Option<Uuid> {
        self.external_ids.get("logical-router")?.parse().ok()
    }

    pub fn is_router(&self) -> bool {
        self.external_ids.contains_key("logical-router")
    }
}

impl SbRow for DatapathBinding {
    const TABLE: &'static str = "Datapath_Binding";
    const COLUMNS: &'static [&'static str] = &["tunnel_key", "load_balancers", "external_ids"];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<DatapathBinding, RowError> {
        Ok(DatapathBinding {
            uuid,
            tunnel_key: v::tunnel_key(v::integer(r, "tunnel_key")?, 16_777_215)?,
            load_balancers: v::uuids(r, "load_balancers")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
