use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A hypervisor or gateway (ovn-sb(5) Chassis), every chassis, not only this one: the
/// tunnels need them all. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chassis {
    pub uuid: Uuid,
    pub name: String,
    pub hostname: String,
    /// Its tunnel endpoints (Encap rows).
    pub encaps: Vec<Uuid>,
    pub vtep_logical_switches: Vec<String>,
    pub nb_cfg: i64,
    pub external_ids: BTreeMap<String, String>,
    /// Feature flags (`ct-no-masked-label`, ...), `is-interconn`, ...
    pub other_config: BTreeMap<String, String>,
    pub transport_zones: Vec<String>,
}

impl SbRow for Chassis {
    const TABLE: &'static str = "Chassis";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "hostname",
        "encaps",
        "vtep_logical_switches",
        "nb_cfg",
        "external_ids",
        "other_config",
        "transport_zones",
    ];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<Chassis, RowError> {
        Ok(Chassis {
            uuid,
            name: v::string(r, "name")?,
            hostname: v::string(r, "hostname")?,
            encaps: v::uuids(r, "encaps")?,
            vtep_logical_switches: v::strings(r, "vtep_logical_switches")?,
            nb_cfg: v::integer(r, "nb_cfg")?,
            external_ids: v::string_map(r, "external_ids")?,
            other_config: v::string_map(r, "other_config")?,
            transport_zones: v::strings(r, "transport_zones")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
