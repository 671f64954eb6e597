use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// The chassis-owned half of a chassis (ovn-sb(5) Chassis_Private). Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChassisPrivate {
    pub uuid: Uuid,
    pub name: String,
    pub chassis: Option<Uuid>,
    pub nb_cfg: i64,
    pub nb_cfg_timestamp: i64,
    pub external_ids: BTreeMap<String, String>,
}

impl SbRow for ChassisPrivate {
    const TABLE: &'static str = "Chassis_Private";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "chassis",
        "nb_cfg",
        "nb_cfg_timestamp",
        "external_ids",
    ];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<ChassisPrivate, RowError> {
        Ok(ChassisPrivate {
            uuid,
            name: v::string(r, "name")?,
            chassis: v::opt_uuid(r, "chassis")?,
            nb_cfg: v::integer(r, "nb_cfg")?,
            nb_cfg_timestamp: v::integer(r, "nb_cfg_timestamp")?,
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
