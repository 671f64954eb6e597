use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// One candidate chassis of a distributed gateway port (ovn-sb(5) Gateway_Chassis),
/// listed in a `chassisredirect` Port_Binding's `gateway_chassis`. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayChassis {
    pub uuid: Uuid,
    pub name: String,
    pub chassis: Option<Uuid>,
    /// 0..=32767: the highest live one is active.
    pub priority: u16,
    pub external_ids: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

impl SbRow for GatewayChassis {
    const TABLE: &'static str = "Gateway_Chassis";
    const COLUMNS: &'static [&'static str] =
        &["name", "chassis", "priority", "external_ids", "options"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<GatewayChassis, RowError> {
        Ok(GatewayChassis {
            uuid,
            name: v::string(r, "name")?,
            chassis: v::opt_uuid(r, "chassis")?,
            priority: v::integer_in(r, "priority", 0, 32767)? as u16,
            external_ids: v::string_map(r, "external_ids")?,
            options: v::string_map(r, "options")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
