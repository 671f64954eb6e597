use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// One member of an HA chassis group (ovn-sb(5) HA_Chassis). Keyed by UUID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaChassis {
    pub uuid: Uuid,
    pub chassis: Option<Uuid>,
    /// 0..=32767: the highest live one is active.
    pub priority: u16,
    pub external_ids: BTreeMap<String, String>,
}

impl SbRow for HaChassis {
    const TABLE: &'static str = "HA_Chassis";
    const COLUMNS: &'static [&'static str] = &["chassis", "priority", "external_ids"];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<HaChassis, RowError> {
        Ok(HaChassis {
            uuid,
            chassis: v::opt_uuid(r, "chassis")?,
            priority: v::integer_in(r, "priority", 0, 32767)? as u16,
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
