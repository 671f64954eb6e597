use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// The chassis that may host a port, by priority (ovn-sb(5) HA_Chassis_Group), for
/// gateway ports and `external` ports. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaChassisGroup {
    pub uuid: Uuid,
    pub name: String,
    /// HA_Chassis rows.
    pub ha_chassis: Vec<Uuid>,
    /// Chassis that need tunnels to the active one (northd fills it).
    pub ref_chassis: Vec<Uuid>,
    pub external_ids: BTreeMap<String, String>,
}

impl SbRow for HaChassisGroup {
    const TABLE: &'static str = "HA_Chassis_Group";
    const COLUMNS: &'static [&'static str] = &["name", "ha_chassis", "ref_chassis", "external_ids"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<HaChassisGroup, RowError> {
        Ok(HaChassisGroup {
            uuid,
            name: v::string(r, "name")?,
            ha_chassis: v::uuids(r, "ha_chassis")?,
            ref_chassis: v::uuids(r, "ref_chassis")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
