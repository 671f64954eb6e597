use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// The Southbound's global row (ovn-sb(5) SB_Global).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SbGlobal {
    pub uuid: Uuid,
    pub nb_cfg: i64,
    pub external_ids: BTreeMap<String, String>,
    /// `mac_prefix`, `svc_monitor_mac`, `northd_internal_version`, ...
    pub options: BTreeMap<String, String>,
    pub ipsec: bool,
}

impl SbRow for SbGlobal {
    const TABLE: &'static str = "SB_Global";
    const COLUMNS: &'static [&'static str] = &["nb_cfg", "external_ids", "options", "ipsec"];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<SbGlobal, RowError> {
        Ok(SbGlobal {
            uuid,
            nb_cfg: v::integer(r, "nb_cfg")?,
            external_ids: v::string_map(r, "external_ids")?,
            options: v::string_map(r, "options")?,
            ipsec: v::boolean(r, "ipsec")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
