use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A tunnel endpoint of a chassis (ovn-sb(5) Encap).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encap {
    pub uuid: Uuid,
    /// `geneve`, `vxlan` or `stt`.
    pub encap_type: String,
    /// `csum`, `dst_port`, ...
    pub options: BTreeMap<String, String>,
    pub ip: String,
    pub chassis_name: String,
}

impl SbRow for Encap {
    const TABLE: &'static str = "Encap";
    const COLUMNS: &'static [&'static str] = &["type", "ip", "chassis_name", "options"];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<Encap, RowError> {
        Ok(Encap {
            uuid,
            encap_type: v::string(r, "type")?,
            options: v::string_map(r, "options")?,
            ip: v::string(r, "ip")?,
            chassis_name: v::string(r, "chassis_name")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
